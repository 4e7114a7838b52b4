//! After each input, the open problems ([`super::problems`]) are brought up to date with
//! what the input did: the announcements it makes open theirs (and one that says nothing
//! new about an open problem is dropped), and a problem whose cause is gone is closed.
//!
//! | problem | over when |
//! |---|---|
//! | `standby_needed` | a valid standby is read (`ready`); with no `--standby-file`, a live token the API has not rejected replaced the rejected one |
//! | `retired_token_alive` | the API rejects the token at last (`token_dead`), it is live again (`live_again`), or its watch ended (`watch_ended`: `--retired-watch-max`) |
//! | `rotation_failed` | a rotation lands: every target carries the token it deployed |
//! | `drift` | likewise |
//! | `token_expiring` | another token is live and the API has not rejected it (`live_token_replaced`) |

use super::problems::{Detail, Kind, Problem};
use super::retired::State as Seen;
use super::{age, Action, Clock, Out, Policy};
use crate::rotation::{RotationReport, TargetOutcome};
use crate::secret::Fingerprint;

impl Policy {
    /// Opens, drops and closes problems after an input; the state is then kept, if it changed.
    pub(super) fn review(&mut self, clock: Clock, out: &mut Out) {
        let problems = &mut self.problems;
        out.actions.retain(|a| match a {
            Action::Announce(e) => problems.announced(e, clock),
            _ => true,
        });
        let landed = std::mem::take(&mut self.landed);
        let over: Vec<(Kind, Fingerprint, &'static str)> = (self.problems.open().iter())
            .filter_map(|p| Some((p.kind(), p.fingerprint.clone(), self.over(p, landed)?)))
            .collect();
        let reason = |p: &Problem| {
            let found = over
                .iter()
                .find(|o| o.0 == p.kind() && o.1 == p.fingerprint);
            found.map(|o| o.2)
        };
        self.problems.close(reason, clock, out);
        if self.problems.take_changed(clock, out) {
            out.changed();
        }
    }

    /// Why `p` is over, if it is (`landed`: this input's rotation put its token everywhere).
    fn over(&self, p: &Problem, landed: bool) -> Option<&'static str> {
        match p.kind() {
            Kind::StandbyNeeded => {
                if self.tokens.standby_ready() {
                    return Some("standby_ready");
                }
                let live = self.tokens.live().filter(|_| self.cfg.standby.is_none());
                let replaced = live.is_some_and(|t| {
                    t.fingerprint() != &p.fingerprint && !self.tokens.is_rejected(t)
                });
                replaced.then_some("live_token_replaced")
            }
            Kind::RetiredTokenAlive => match self.retired.state_of(&p.fingerprint) {
                Some(Seen::Alive | Seen::Unknown) => None,
                Some(Seen::Dead { .. }) => Some("token_dead"),
                None if self.tokens.live().map(|t| t.fingerprint()) == Some(&p.fingerprint) => {
                    Some("live_again")
                }
                None => Some("watch_ended"),
            },
            Kind::RotationFailed | Kind::Drift => landed.then_some("rotation_landed"),
            Kind::TokenExpiring => {
                let live = self.tokens.live();
                let replaced = live.is_some_and(|t| {
                    t.fingerprint() != &p.fingerprint && !self.tokens.is_rejected(t)
                });
                replaced.then_some("live_token_replaced")
            }
        }
    }

    /// Takes back the first-deployed times kept before a restart (after the problems): a
    /// `token_expiring` announced by a build that kept it only as `expiry_announced` is
    /// opened as announced, so that it is reminded and resolved, never announced again.
    pub(super) fn restore_ages(&mut self, deployed: &[age::Kept], clock: Clock) {
        self.ages.restore(deployed);
        for k in deployed.iter().filter(|k| k.expiry_announced) {
            let (event, at) = self.ages.announced_before(k, &self.targets, clock.wall);
            self.problems.restore_announced(&event, at);
        }
    }

    /// A rotation could not put its token everywhere: `drift` waits for `--drift-after`
    /// from when the token was first decided, then is announced unless a rotation lands.
    pub(super) fn drifting(&mut self, report: &RotationReport) {
        let Some((fp, since)) = self.wanted.clone() else {
            return;
        };
        let mut targets: Vec<String> = report
            .targets
            .iter()
            .filter(|t| {
                !matches!(
                    t.outcome,
                    TargetOutcome::Swapped | TargetOutcome::AlreadyCurrent
                )
            })
            .map(|t| t.name.clone())
            .collect();
        if targets.is_empty() {
            targets = self.targets.clone(); // the engine could not even list them
        }
        self.problems.pending(fp, Detail::Drift { targets }, since);
    }
}
