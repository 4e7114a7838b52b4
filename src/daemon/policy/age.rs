//! How old the live token is, and when a person is told that it is about to end.
//!
//! A `claude setup-token` token is opaque: its expiry cannot be read from it. What is known
//! is when it was first deployed: the rotation writes that time on every replacement (the
//! label `token-rotator.first-deployed`, the earliest time known for that token) and
//! reports it; the daemon keeps it per fingerprint, across restarts ([`Kept`]). Its
//! estimated end is that time plus `--token-lifetime` (about a year, as reported, not
//! published); `--expiry-warning` before it, `token_expiring` is announced, once per token.
//!
//! The decision is [`expiry`], one small function of the time it is given; [`Ages`] keeps
//! what it needs and runs it for the live token.

use std::collections::HashSet;
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
    /// Told already: nothing more (a reminder mechanism may repeat it).
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
    /// Whether `token_expiring` was announced for it.
    pub expiry_announced: bool,
}

/// The first-deployed times of the tokens deployed, and which were warned of.
#[derive(Debug)]
pub struct Ages {
    cfg: AgeConfig,
    /// Least recently deployed first.
    first: Vec<(Fingerprint, SystemTime)>,
    told: HashSet<Fingerprint>,
}

impl Ages {
    /// Nothing known yet.
    pub fn new(cfg: AgeConfig) -> Self {
        Ages {
            cfg,
            first: Vec::new(),
            told: HashSet::new(),
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
            let (gone, _) = self.first.remove(0);
            self.told.remove(&gone);
        }
    }

    /// What survives a restart.
    pub fn kept(&self) -> Vec<Kept> {
        self.first
            .iter()
            .map(|(fp, at)| Kept {
                fingerprint: fp.clone(),
                first_deployed: *at,
                expiry_announced: self.told.contains(fp),
            })
            .collect()
    }

    /// Takes back what was kept before a restart.
    pub fn restore(&mut self, kept: Vec<Kept>) {
        for k in kept {
            self.deployed(&k.fingerprint, Some(k.first_deployed), k.first_deployed);
            if k.expiry_announced {
                self.told.insert(k.fingerprint);
            }
        }
    }

    /// Runs [`expiry`] for the live token `live`: announces `token_expiring` when due (then
    /// the state changed: it is kept), else sets [`Timer::Expiry`] for when it falls due.
    pub fn check(
        &mut self,
        live: Option<&Fingerprint>,
        bots: &[String],
        clock: Clock,
        out: &mut Out,
    ) {
        let Some((fp, first)) = live.and_then(|fp| Some((fp, self.first_deployed(fp)?))) else {
            out.push(Action::Schedule(Timer::Expiry, None));
            return;
        };
        match expiry(first, self.cfg, self.told.contains(fp), clock.wall) {
            Expiry::NotYet(left) => {
                out.push(Action::Schedule(Timer::Expiry, Some(clock.now + left)))
            }
            Expiry::Told => out.push(Action::Schedule(Timer::Expiry, None)),
            Expiry::Due => {
                let expires_at = first + self.cfg.lifetime;
                let age = clock.wall.duration_since(first).unwrap_or_default();
                tracing::warn!(fingerprint = %fp, first_deployed_at = %rfc3339(first), expires_at = %rfc3339(expires_at), "the live token nears its estimated end: mint a new one (claude setup-token)");
                self.told.insert(fp.clone());
                out.push(Action::Schedule(Timer::Expiry, None));
                out.push(Action::Announce(Event::TokenExpiring {
                    fingerprint: fp.clone(),
                    first_deployed: first,
                    expires_at,
                    age,
                    targets: bots.to_vec(),
                }));
                out.changed();
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
