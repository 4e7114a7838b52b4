//! How old the live token is, and when a person is told that it is about to end.
//!
//! A `claude setup-token` token is opaque: its expiry cannot be read from it. What is known
//! is when it was first deployed: the rotation writes that time on every replacement (the
//! label `token-rotator.first-deployed`, the earliest time known for that token) and
//! reports it; the daemon keeps it per fingerprint, across restarts ([`Kept`]). Its
//! estimated end is that time plus `--token-lifetime` (about a year, as reported, not
//! published); `--expiry-warning` before it, `token_expiring` is announced.
//!
//! The decision is [`expiry`], one small function of the time it is given; [`Ages`] keeps
//! the first-deployed times and runs it for the live token. Once announced, `token_expiring`
//! is an open problem ([`super::problems`], the one record of what was announced): repeated
//! every `--remind-every`, and `resolved` once another token is live.

use std::time::{Duration, SystemTime};

use super::{rfc3339, Action, Clock, Event, Out, Timer};
use crate::secret::Fingerprint;
use crate::telemetry::AgeStatus;

/// How many tokens' first-deployed times are kept (the live one and those before it).
pub const KEEP: usize = 32;

/// `--token-lifetime` and `--expiry-warning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgeConfig {
    /// How long a token is expected to last from its first deployment.
    pub lifetime: Duration,
    /// How long before its estimated end `token_expiring` is announced (below `lifetime`).
    pub warning: Duration,
}

impl Default for AgeConfig {
    /// 365 days, warned 30 days before.
    fn default() -> Self {
        AgeConfig {
            lifetime: Duration::from_secs(365 * 86_400),
            warning: Duration::from_secs(30 * 86_400),
        }
    }
}

/// What a token's age calls for at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Nothing yet: the warning falls due in this long.
    NotYet(Duration),
    /// Its end is near (or past): tell a person.
    Due,
    /// Told already (its problem is open: the reminders repeat it).
    Told,
}

/// The decision: a token first deployed at `first` is due for its warning once its age
/// reaches `lifetime - warning`, at `wall`; once told, it is not told again.
pub fn expiry(first: SystemTime, cfg: AgeConfig, told: bool, wall: SystemTime) -> Expiry {
    if told {
        return Expiry::Told;
    }
    let due_at = first + cfg.lifetime.saturating_sub(cfg.warning);
    match due_at.duration_since(wall) {
        Ok(left) if !left.is_zero() => Expiry::NotYet(left),
        _ => Expiry::Due,
    }
}

/// One token's first deployment, as kept across a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    /// The token.
    pub fingerprint: Fingerprint,
    /// When it was first deployed.
    pub first_deployed: SystemTime,
    /// Whether `token_expiring` is open for it: written from the open problems, for a build
    /// that kept no problems; read only from a file that has no `token_expiring` problem
    /// for it (one written before: [`Ages::announced_before`]).
    pub expiry_announced: bool,
}

/// The first-deployed times of the tokens deployed.
#[derive(Debug)]
pub struct Ages {
    cfg: AgeConfig,
    /// Least recently deployed first.
    first: Vec<(Fingerprint, SystemTime)>,
}

impl Ages {
    /// Nothing known yet.
    pub fn new(cfg: AgeConfig) -> Self {
        Ages {
            cfg,
            first: Vec::new(),
        }
    }

    /// When `fp` was first deployed, if known.
    pub fn first_deployed(&self, fp: &Fingerprint) -> Option<SystemTime> {
        self.first.iter().find(|(f, _)| f == fp).map(|(_, t)| *t)
    }

    /// `fp` was deployed (or found deployed): keeps the earliest of what was known and what
    /// the rotation `reported`; `wall` when neither knows (first seen now).
    pub fn deployed(&mut self, fp: &Fingerprint, reported: Option<SystemTime>, wall: SystemTime) {
        let known = self.first_deployed(fp);
        let first = known.into_iter().chain(reported).min().unwrap_or(wall);
        self.first.retain(|(f, _)| f != fp);
        self.first.push((fp.clone(), first));
        if self.first.len() > KEEP {
            self.first.remove(0);
        }
    }

    /// What survives a restart (`told`: whether `token_expiring` is open for a token).
    pub fn kept(&self, told: impl Fn(&Fingerprint) -> bool) -> Vec<Kept> {
        self.first
            .iter()
            .map(|(fp, at)| Kept {
                fingerprint: fp.clone(),
                first_deployed: *at,
                expiry_announced: told(fp),
            })
            .collect()
    }

    /// Takes back the first-deployed times kept before a restart.
    pub fn restore(&mut self, kept: &[Kept]) {
        for k in kept {
            self.deployed(&k.fingerprint, Some(k.first_deployed), k.first_deployed);
        }
    }

    /// A `token_expiring` that a build before problems announced (`expiry_announced`, no
    /// problem kept): the event it was and when, taken as when it fell due (or `wall`, if
    /// that is earlier), so that it is opened, not announced again, and reminded.
    pub fn announced_before(
        &self,
        k: &Kept,
        bots: &[String],
        wall: SystemTime,
    ) -> (Event, SystemTime) {
        let due = k.first_deployed + self.cfg.lifetime.saturating_sub(self.cfg.warning);
        let at = due.min(wall);
        let event = Event::TokenExpiring {
            fingerprint: k.fingerprint.clone(),
            first_deployed: k.first_deployed,
            expires_at: k.first_deployed + self.cfg.lifetime,
            age: at.duration_since(k.first_deployed).unwrap_or_default(),
            targets: bots.to_vec(),
        };
        (event, at)
    }

    /// Runs [`expiry`] for the live token `live` (`told`: its `token_expiring` is open):
    /// announces `token_expiring` when due (which opens its problem), else sets
    /// [`Timer::Expiry`] for when it falls due.
    pub fn check(
        &self,
        live: Option<&Fingerprint>,
        told: impl Fn(&Fingerprint) -> bool,
        bots: &[String],
        clock: Clock,
        out: &mut Out,
    ) {
        let Some((fp, first)) = live.and_then(|fp| Some((fp, self.first_deployed(fp)?))) else {
            out.push(Action::Schedule(Timer::Expiry, None));
            return;
        };
        match expiry(first, self.cfg, told(fp), clock.wall) {
            Expiry::NotYet(left) => {
                out.push(Action::Schedule(Timer::Expiry, Some(clock.now + left)))
            }
            Expiry::Told => out.push(Action::Schedule(Timer::Expiry, None)),
            Expiry::Due => {
                let expires_at = first + self.cfg.lifetime;
                let age = clock.wall.duration_since(first).unwrap_or_default();
                tracing::warn!(fingerprint = %fp, first_deployed_at = %rfc3339(first), expires_at = %rfc3339(expires_at), "the live token nears its estimated end: mint a new one (claude setup-token)");
                out.push(Action::Schedule(Timer::Expiry, None));
                out.push(Action::Announce(Event::TokenExpiring {
                    fingerprint: fp.clone(),
                    first_deployed: first,
                    expires_at,
                    age,
                    targets: bots.to_vec(),
                }));
            }
        }
    }

    /// The age of `live` as `/status` shows it (recomputed at each request from `since`).
    pub fn status(&self, live: Option<&Fingerprint>, wall: SystemTime) -> AgeStatus {
        match live.and_then(|fp| self.first_deployed(fp)) {
            Some(first) => AgeStatus::of(first, self.cfg.lifetime, wall),
            None => AgeStatus::default(),
        }
    }
}
