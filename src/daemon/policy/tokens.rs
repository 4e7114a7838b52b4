//! Which token is live: the primary file's while the API has not rejected it; else a
//! standby that was validated beforehand; never a token the API rejected. Also when the
//! live token is probed (periodically, and to confirm a suspicion from a bot's log), and the
//! standby's state, as `/status`, the metrics and the announcements tell them.
//!
//! | primary file's token | standby | live token |
//! |---|---|---|
//! | good | any | the primary's |
//! | rejected by the API | validated (`ready`) | the standby's, at once (`standby_promoted`, then `standby_needed`) |
//! | rejected by the API | missing, invalid or rejected | none new: the targets are left alone, `standby_needed` |
//! | a new token written after a promotion | any | the new primary's; the standby, if still valid, waits again |

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime};

use super::retired::Watch;
use super::{rfc3339, Action, Clock, Event, Out, Plan, Purpose, Record};
use crate::daemon::trigger::File;
use crate::rotation::RotationReport;
use crate::secret::{Fingerprint, SecretError, Token};
use crate::telemetry::{LiveStatus, StandbyStatus, TokenStatus};
use crate::validate::Verdict;

/// At most one confirming probe per token in this time, whatever the logs say.
pub const CONFIRM_EVERY: Duration = Duration::from_secs(30);

/// Why the live token is probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// A bot's log line looked like a rejection.
    Logs,
    /// The periodic backstop (`--live-probe-interval`).
    Periodic,
}

impl Probe {
    /// The `source` label of the rejection metric and event.
    pub fn label(self) -> &'static str {
        match self {
            Probe::Logs => "logs",
            Probe::Periodic => "probe",
        }
    }
}

/// What decides next, once the standby file has been read (and validated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Then {
    /// Nothing: it was only looked at.
    Nothing,
    /// Its file changed: a ready standby replaces a live token the API rejected.
    PromoteIfLiveRejected,
    /// The live token was rejected just now: deploy a ready standby, or ask a person for one.
    AfterRejection(Fingerprint),
    /// The live token is known rejected: deploy the standby if it has become ready.
    PromoteIfReady,
}

/// The live token's health, from the last answer about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// The API accepted it (a probe, or the rotation's validation).
    Ok,
    /// Nothing known yet, or the last answer said nothing (5xx, timeout).
    Unknown,
    /// The API rejected it (401, 403).
    Rejected,
}

impl Health {
    /// Its name in `/status`.
    pub fn label(self) -> &'static str {
        match self {
            Health::Ok => "ok",
            Health::Unknown => "unknown",
            Health::Rejected => "rejected",
        }
    }
}

/// The standby's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StandbyState {
    /// No file, none configured, or nothing in it.
    Missing,
    /// Not usable, and why.
    Invalid(String),
    /// Validated: it may replace a rejected live token.
    Ready,
    /// It is the live token.
    Promoted,
}

impl StandbyState {
    /// Its name in `/status`.
    pub fn label(&self) -> &'static str {
        match self {
            StandbyState::Missing => "missing",
            StandbyState::Invalid(_) => "invalid",
            StandbyState::Ready => "ready",
            StandbyState::Promoted => "promoted",
        }
    }
}

/// What the targets should carry now.
pub enum Choice {
    /// This token, from this file (replacing the primary's rejected token, for a standby).
    Deploy {
        /// The token.
        token: Token,
        /// Its file.
        file: File,
        /// The rejected primary token a standby replaces.
        replacing: Option<Fingerprint>,
    },
    /// The secret file cannot be used (reported as a refused token; targets untouched).
    Unusable(SecretError),
    /// Nothing may be deployed (the primary's token was rejected and no standby is ready).
    Nothing,
}

/// The tokens' state as `/status` and the gauges show it.
#[derive(Debug, Clone)]
pub struct View {
    /// `/status`'s `live`, `standby` and `retired`.
    pub status: TokenStatus,
    /// Whether a validated standby waits.
    pub standby_ready: bool,
    /// Retired tokens still accepted, and rejected at last.
    pub retired_alive: i64,
    /// See `retired_alive`.
    pub retired_dead: i64,
    /// When the oldest retired token still accepted was retired.
    pub oldest_alive: Option<SystemTime>,
}

/// The live token, the standby, and every token the API rejected.
pub struct Tokens {
    can_probe: bool,
    live: Option<(Token, File)>,
    health: Health,
    rejected: HashSet<Fingerprint>,
    standby: Option<Token>,
    standby_state: StandbyState,
    /// When each token's last confirming probe ran.
    confirmed: HashMap<Fingerprint, Instant>,
    /// A standby whose swap failed, not tried again until the file holds another token.
    failed_standby: Option<Fingerprint>,
    last_probe: Option<SystemTime>,
    last_answer: Option<String>,
    false_alarms: u64,
}

impl Tokens {
    /// Nothing live yet.
    pub fn new(can_probe: bool) -> Self {
        Tokens {
            can_probe,
            live: None,
            health: Health::Unknown,
            rejected: HashSet::new(),
            standby: None,
            standby_state: StandbyState::Missing,
            confirmed: HashMap::new(),
            failed_standby: None,
            last_probe: None,
            last_answer: None,
            false_alarms: 0,
        }
    }

    /// The live token.
    pub fn live(&self) -> Option<&Token> {
        self.live.as_ref().map(|(t, _)| t)
    }

    /// The rejected tokens' fingerprints, sorted.
    pub fn rejected(&self) -> Vec<Fingerprint> {
        let mut all: Vec<Fingerprint> = self.rejected.iter().cloned().collect();
        all.sort();
        all
    }

    /// Takes back the rejected tokens kept before a restart.
    pub fn restore_rejected(&mut self, kept: Vec<Fingerprint>) {
        self.rejected.extend(kept);
    }

    /// Whether a validated standby waits.
    pub fn standby_ready(&self) -> bool {
        self.standby_state == StandbyState::Ready
    }

    /// Whether the API rejected the live token.
    pub fn live_rejected(&self) -> bool {
        self.live().is_some_and(|t| self.is_rejected(t))
    }

    /// Whether the API rejected `token`.
    pub fn is_rejected(&self, token: &Token) -> bool {
        self.rejected.contains(token.fingerprint())
    }

    /// Whether `token` is the standby file's (the spare is never a retired token).
    pub fn is_standby(&self, token: &Token) -> bool {
        self.standby
            .as_ref()
            .is_some_and(|s| s.fingerprint() == token.fingerprint())
    }

    /// What the targets should carry, given what the primary file holds now.
    pub fn choose(&self, primary: Result<Token, SecretError>) -> Choice {
        let t = match primary {
            Err(e) => return Choice::Unusable(e),
            Ok(t) if !self.is_rejected(&t) => {
                return Choice::Deploy {
                    token: t,
                    file: File::Primary,
                    replacing: None,
                }
            }
            Ok(t) => t,
        };
        let usable = matches!(
            self.standby_state,
            StandbyState::Ready | StandbyState::Promoted
        );
        match &self.standby {
            Some(s) if usable && !self.is_rejected(s) => Choice::Deploy {
                token: s.clone(),
                file: File::Standby,
                replacing: Some(t.fingerprint().clone()),
            },
            _ => {
                tracing::warn!(fingerprint = %t.fingerprint(), "the secret file holds a token the API rejected, and no standby is ready: the targets are left as they are; write a new token");
                Choice::Nothing
            }
        }
    }

    /// Probes the live token, unless it cannot be or was confirmed a moment ago.
    pub fn probe_live(&mut self, how: Probe, clock: Clock, out: &mut Out) {
        let Some(token) = self.live().cloned().filter(|_| self.can_probe) else {
            return;
        };
        let fp = token.fingerprint().clone();
        if self.rejected.contains(&fp) {
            // Already known dead: the periodic probe still looks for a standby that became
            // valid (one that failed on an inconclusive answer, say).
            if how == Probe::Periodic {
                out.push(Action::ReadStandby {
                    again: true,
                    then: Then::PromoteIfReady,
                });
            }
            return;
        }
        if how == Probe::Logs {
            let last = self.confirmed.get(&fp);
            if last.is_some_and(|at| clock.now.saturating_duration_since(*at) < CONFIRM_EVERY) {
                tracing::debug!(fingerprint = %fp, "confirmed less than 30 s ago; not probing again");
                return;
            }
            self.confirmed.insert(fp, clock.now);
        }
        out.push(Action::Probe {
            token,
            purpose: Purpose::Live(how),
        });
    }

    /// The live token's probe answered; returns whether a standby is to be deployed now.
    pub fn live_probed(
        &mut self,
        how: Probe,
        fp: &Fingerprint,
        verdict: Verdict,
        clock: Clock,
        targets: &[String],
        out: &mut Out,
    ) -> bool {
        if self.live().map(|t| t.fingerprint()) != Some(fp) {
            return false; // an answer about a token no longer live
        }
        out.push(Action::Record(Record::LiveProbed));
        out.changed();
        self.last_probe = Some(clock.wall);
        self.last_answer = Some(verdict.to_string());
        match &verdict {
            Verdict::Invalid { .. } => {
                self.rejected.insert(fp.clone());
                self.health = Health::Rejected;
                out.push(Action::Record(Record::LiveRejected(how.label())));
                tracing::error!(fingerprint = %fp, source = how.label(), "the live token was rejected by the API: {verdict}");
                out.push(Action::Announce(Event::LiveTokenRejected {
                    fingerprint: fp.clone(),
                    source: how.label(),
                    answer: verdict.to_string(),
                    targets: targets.to_vec(),
                }));
                out.push(Action::ReadStandby {
                    again: false,
                    then: Then::AfterRejection(fp.clone()),
                });
                return false;
            }
            Verdict::Valid { .. } | Verdict::Skipped => {
                self.health = Health::Ok;
                if how == Probe::Logs {
                    self.false_alarms += 1;
                    tracing::info!(fingerprint = %fp, "a log line looked like a rejection, but the API accepts the token: false alarm");
                }
            }
            Verdict::Inconclusive { .. } => {
                self.health = Health::Unknown;
                tracing::warn!(fingerprint = %fp, "the live token could not be probed: {verdict}");
            }
        }
        if how == Probe::Periodic {
            // The standby is proved again at each periodic probe.
            out.push(Action::ReadStandby {
                again: true,
                then: Then::Nothing,
            });
        }
        false
    }

    /// The standby file as read; returns whether a standby is to be deployed now (or asks
    /// for its validation first).
    pub fn standby_read(
        &mut self,
        read: Result<Token, SecretError>,
        again: bool,
        then: Then,
        out: &mut Out,
    ) -> bool {
        let token = match read {
            Ok(t) => t,
            Err(e) => {
                self.standby = None;
                self.standby_state = match e {
                    SecretError::Missing(_) => StandbyState::Missing,
                    e => StandbyState::Invalid(e.to_string()),
                };
                out.changed();
                return self.finish(then, out);
            }
        };
        let fp = token.fingerprint().clone();
        let same = self.standby.as_ref().map(|s| s.fingerprint()) == Some(&fp);
        let is_live = matches!(&self.live, Some((t, File::Standby)) if *t.fingerprint() == fp);
        self.standby = Some(token.clone());
        self.standby_state = if self.rejected.contains(&fp) {
            StandbyState::Invalid("the API rejected this token".into())
        } else if self.failed_standby.as_ref() == Some(&fp) {
            StandbyState::Invalid("its swap failed; write another token to the standby file".into())
        } else if is_live {
            StandbyState::Promoted
        } else if (same && self.standby_state == StandbyState::Ready && !again) || !self.can_probe {
            // Proved before, or --validate none (taken as it is).
            StandbyState::Ready
        } else {
            out.push(Action::Probe {
                token,
                purpose: Purpose::Standby(then),
            });
            return false; // decided when the API answers
        };
        tracing::info!(fingerprint = %fp, state = self.standby_state.label(), "standby token");
        out.changed();
        self.finish(then, out)
    }

    /// The standby's validation answered.
    pub fn standby_probed(
        &mut self,
        fp: &Fingerprint,
        verdict: Verdict,
        then: Then,
        out: &mut Out,
    ) -> bool {
        if self.standby.as_ref().map(|s| s.fingerprint()) != Some(fp) {
            return false; // the file holds another token by now
        }
        self.standby_state = match &verdict {
            Verdict::Valid { .. } | Verdict::Skipped => StandbyState::Ready,
            Verdict::Invalid { .. } => {
                self.rejected.insert(fp.clone());
                StandbyState::Invalid(verdict.to_string())
            }
            Verdict::Inconclusive { .. } => StandbyState::Invalid(format!("not proved: {verdict}")),
        };
        tracing::info!(fingerprint = %fp, state = self.standby_state.label(), "standby token");
        out.changed();
        self.finish(then, out)
    }

    /// What the standby's state means for `then`.
    fn finish(&mut self, then: Then, out: &mut Out) -> bool {
        let ready = self.standby_state == StandbyState::Ready;
        match then {
            Then::Nothing => false,
            // Nothing live yet (after a restart whose primary token is rejected, none is
            // chosen): a look decides whether the ready standby replaces it.
            Then::PromoteIfLiveRejected => (self.live_rejected() || self.live.is_none()) && ready,
            Then::PromoteIfReady => ready,
            Then::AfterRejection(_) if ready => true,
            Then::AfterRejection(fp) => {
                let reason = match &self.standby_state {
                    StandbyState::Invalid(r) => r.clone(),
                    _ => "no standby token".into(),
                };
                tracing::error!(fingerprint = %fp, "no valid standby: the targets are left as they are; {reason}");
                out.push(Action::Announce(Event::StandbyNeeded {
                    fingerprint: fp,
                    reason,
                    live: None,
                }));
                false
            }
        }
    }

    /// The standby's swap failed: it is not deployed again until its file changes.
    pub fn standby_failed(&mut self, why: &str, out: &mut Out) {
        if let Some(s) = &self.standby {
            tracing::error!(fingerprint = %s.fingerprint(), "the standby token's swap failed ({why}): not tried again until the standby file changes");
        }
        self.standby_state = StandbyState::Invalid(why.to_string());
        self.failed_standby = self.standby.as_ref().map(|s| s.fingerprint().clone());
        out.changed();
    }

    /// The targets carry `plan`'s token now; returns the rejected token it replaced, when a
    /// standby just went live in its place.
    pub fn deployed(
        &mut self,
        plan: &Plan,
        report: &RotationReport,
        out: &mut Out,
    ) -> Option<Fingerprint> {
        let changed = self.live().map(|t| t.fingerprint()) != Some(plan.token.fingerprint());
        if changed {
            // Only a validation that said so makes it `ok`; else it is not known yet.
            self.health = match report.validation {
                Some(label) if label == Verdict::VALID => Health::Ok,
                _ => Health::Unknown,
            };
            self.last_answer = report.verdict.clone();
        }
        let was_promoted = self.standby_state == StandbyState::Promoted;
        self.live = Some((plan.token.clone(), plan.file));
        out.changed();
        match plan.file {
            File::Standby => {
                self.standby_state = StandbyState::Promoted;
                plan.replacing.clone().filter(|_| changed)
            }
            File::Primary => {
                if was_promoted {
                    // The standby is no longer live: it waits again, if still valid.
                    self.standby_state = StandbyState::Missing;
                    out.push(Action::ReadStandby {
                        again: true,
                        then: Then::Nothing,
                    });
                }
                None
            }
        }
    }

    /// `/status`'s view and the gauges.
    pub fn view(&self, retired: &Watch, clock: Clock) -> View {
        let live = self.live.as_ref().map(|(t, f)| LiveStatus {
            fingerprint: t.fingerprint().to_string(),
            source: f.label(),
            state: if self.is_rejected(t) {
                Health::Rejected.label()
            } else {
                self.health.label()
            },
            last_probe: self.last_probe.map(rfc3339),
            last_answer: self.last_answer.clone(),
            false_alarms: self.false_alarms,
            age: Default::default(),
        });
        let standby = StandbyStatus {
            fingerprint: self.standby.as_ref().map(|t| t.fingerprint().to_string()),
            state: self.standby_state.label(),
            reason: match &self.standby_state {
                StandbyState::Invalid(r) => Some(r.clone()),
                _ => None,
            },
        };
        let (alive, dead) = retired.counts();
        View {
            status: TokenStatus {
                live,
                standby,
                retired: retired.status(clock),
                rejected: self.rejected().iter().map(|f| f.to_string()).collect(),
            },
            standby_ready: self.standby_state == StandbyState::Ready,
            retired_alive: alive,
            retired_dead: dead,
            oldest_alive: retired.oldest_alive(),
        }
    }
}
