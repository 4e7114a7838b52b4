//! The retired-token watch: after a swap, the token it replaced may keep working for days
//! (a revoke does not propagate at once). Each retired token is probed on a schedule until
//! the API rejects it, or until the watch ends; a token still accepted after
//! `alert_after` is announced once, and its death too.

use std::time::{Duration, Instant, SystemTime};

use super::{Action, Clock, Event, Out, Purpose, Record, Timer};
use crate::secret::{Fingerprint, Token};
use crate::telemetry::RetiredStatus;
use crate::validate::Verdict;

/// How retired tokens are watched.
#[derive(Debug, Clone)]
pub struct WatchPlan {
    /// Offsets from the retirement at which to probe; after the last, every that long.
    pub schedule: Vec<Duration>,
    /// How long a token is watched at most.
    pub max: Duration,
    /// A token still accepted this long after its retirement is announced, once.
    pub alert_after: Duration,
}

impl WatchPlan {
    /// The offset of the `n`th probe from the retirement.
    pub fn offset(&self, n: usize) -> Duration {
        let s = &self.schedule;
        match s.get(n) {
            Some(d) => *d,
            None => {
                let last = *s.last().unwrap_or(&Duration::from_secs(6 * 3600));
                last + last * (n + 1 - s.len()) as u32
            }
        }
    }
}

/// What the API last said of a retired token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Not probed yet, or the last answer said nothing.
    Unknown,
    /// Still accepted.
    Alive,
    /// Rejected at last, at that time, after working for that long.
    Dead {
        /// When it was seen rejected.
        at: SystemTime,
        /// How long after its retirement.
        alive_for: Duration,
    },
}

impl State {
    /// Its name in `/status`.
    pub fn label(self) -> &'static str {
        match self {
            State::Unknown => "unknown",
            State::Alive => "alive",
            State::Dead { .. } => "dead",
        }
    }
}

/// One retired token's watch, as kept across a restart ([`super::State`]).
#[derive(Debug, Clone)]
pub struct Kept {
    /// The token itself: it is probed.
    pub token: Token,
    /// When a swap replaced it.
    pub retired_at: SystemTime,
    /// The number of the next probe in the schedule.
    pub next: usize,
    /// When the next probe is due.
    pub next_at: SystemTime,
    /// What the API last said of it.
    pub state: State,
    /// When it was last probed.
    pub last_probe_at: Option<SystemTime>,
    /// What that probe answered.
    pub last_answer: Option<String>,
    /// Whether `retired_token_alive` was announced for it.
    pub alerted: bool,
}

impl PartialEq for Kept {
    fn eq(&self, o: &Self) -> bool {
        self.token.fingerprint() == o.token.fingerprint()
            && self.retired_at == o.retired_at
            && self.next == o.next
            && self.next_at == o.next_at
            && self.state == o.state
            && self.last_probe_at == o.last_probe_at
            && self.last_answer == o.last_answer
            && self.alerted == o.alerted
    }
}

struct Retired {
    token: Token,
    retired_at: SystemTime,
    /// An instant at which its age was `age_at_base` (its retirement, or the restart that
    /// restored it: instants do not survive a restart).
    base: Instant,
    age_at_base: Duration,
    /// The number of the next probe.
    next: usize,
    next_at: Instant,
    /// `next_at` by the wall clock, as kept across a restart.
    next_at_wall: SystemTime,
    state: State,
    last_probe_at: Option<SystemTime>,
    last_answer: Option<String>,
    alerted: bool,
}

impl Retired {
    /// How long ago it was retired.
    fn age(&self, clock: Clock) -> Duration {
        self.age_at_base + clock.now.saturating_duration_since(self.base)
    }
}

/// Every token being watched.
pub struct Watch {
    plan: WatchPlan,
    jitter: fn(Duration) -> Duration,
    tokens: Vec<Retired>,
}

impl Watch {
    /// An empty watch.
    pub fn new(plan: WatchPlan, jitter: fn(Duration) -> Duration) -> Self {
        Watch {
            plan,
            jitter,
            tokens: Vec::new(),
        }
    }

    /// Starts watching `token`, just replaced by a swap (not if it is watched already, or
    /// if the watch is off).
    pub fn retire(&mut self, token: Token, clock: Clock, out: &mut Out) {
        let watched = self
            .tokens
            .iter()
            .any(|r| r.token.fingerprint() == token.fingerprint());
        if self.plan.max.is_zero() || watched {
            return;
        }
        let first = (self.jitter)(self.plan.offset(0));
        tracing::info!(fingerprint = %token.fingerprint(), first_probe_in_secs = first.as_secs(), "watching the retired token until the API rejects it");
        self.tokens.push(Retired {
            token,
            retired_at: clock.wall,
            base: clock.now,
            age_at_base: Duration::ZERO,
            next: 0,
            next_at: clock.now + first,
            next_at_wall: clock.wall + first,
            state: State::Unknown,
            last_probe_at: None,
            last_answer: None,
            alerted: false,
        });
        self.changed(out);
    }

    /// Stops watching a token that is live again.
    pub fn unretire(&mut self, fp: &Fingerprint, out: &mut Out) {
        let before = self.tokens.len();
        self.tokens.retain(|r| r.token.fingerprint() != fp);
        if self.tokens.len() != before {
            self.changed(out);
        }
    }

    /// What the API last said of `fp`, if it is watched.
    pub fn state_of(&self, fp: &Fingerprint) -> Option<State> {
        let r = self.tokens.iter().find(|r| r.token.fingerprint() == fp);
        r.map(|r| r.state)
    }

    /// When the next probe is due.
    pub fn next_due(&self) -> Option<Instant> {
        let watched = self
            .tokens
            .iter()
            .filter(|r| !matches!(r.state, State::Dead { .. }));
        watched.map(|r| r.next_at).min()
    }

    /// Probes every token that is due; ends the watch of those watched for `max`.
    pub fn probe_due(&mut self, clock: Clock, out: &mut Out) {
        let max = self.plan.max;
        self.tokens.retain(|r| {
            let keep = r.age(clock) < max;
            if !keep {
                tracing::info!(fingerprint = %r.token.fingerprint(), state = r.state.label(), "the watch of this retired token ended (--retired-watch-max)");
            }
            keep
        });
        for i in 0..self.tokens.len() {
            let r = &self.tokens[i];
            if matches!(r.state, State::Dead { .. }) || r.next_at > clock.now {
                continue;
            }
            let offset = self.plan.offset(r.next + 1);
            let since = r.age(clock);
            // Jittered by up to 10% of the gap to the next probe (not of the whole time since
            // retirement), and never sooner than a second from now.
            let gap = (self.jitter)(offset.saturating_sub(since)).max(Duration::from_secs(1));
            let r = &mut self.tokens[i];
            r.next += 1;
            r.next_at = clock.now + gap;
            r.next_at_wall = clock.wall + gap;
            out.push(Action::Probe {
                token: r.token.clone(),
                purpose: Purpose::Retired,
            });
        }
        self.changed(out);
    }

    /// A retired token's probe answered.
    pub fn probed(&mut self, fp: &Fingerprint, verdict: Verdict, clock: Clock, out: &mut Out) {
        let alert_after = self.plan.alert_after;
        let Some(r) = self.tokens.iter_mut().find(|r| r.token.fingerprint() == fp) else {
            return; // no longer watched
        };
        r.last_probe_at = Some(clock.wall);
        r.last_answer = Some(verdict.to_string());
        let since = r.age(clock);
        match verdict {
            Verdict::Invalid { .. } => {
                r.state = State::Dead {
                    at: clock.wall,
                    alive_for: since,
                };
                out.push(Action::Record(Record::RetiredDead(since)));
                tracing::info!(fingerprint = %fp, alive_for_secs = since.as_secs(), "the retired token is dead: the API rejects it");
                out.push(Action::Announce(Event::RetiredTokenDead {
                    fingerprint: fp.clone(),
                    retired_at: r.retired_at,
                    dead_at: clock.wall,
                    alive_for: since,
                }));
            }
            Verdict::Valid { .. } | Verdict::Skipped => {
                r.state = State::Alive;
                if since >= alert_after && !r.alerted {
                    r.alerted = true;
                    tracing::warn!(fingerprint = %fp, alive_for_secs = since.as_secs(), "the retired token still works: revoke it at claude.ai (settings, Claude Code)");
                    out.push(Action::Announce(Event::RetiredTokenAlive {
                        fingerprint: fp.clone(),
                        retired_at: r.retired_at,
                        alive_for: since,
                    }));
                }
            }
            Verdict::Inconclusive { .. } => r.state = State::Unknown,
        }
        self.changed(out);
    }

    /// Takes back the watch kept before a restart (tokens watched already are kept as they are).
    pub fn restore(&mut self, kept: Vec<Kept>, clock: Clock, out: &mut Out) {
        for k in kept {
            let fp = k.token.fingerprint();
            if self.tokens.iter().any(|r| r.token.fingerprint() == fp) {
                continue;
            }
            let due_in = k.next_at.duration_since(clock.wall).unwrap_or_default();
            self.tokens.push(Retired {
                age_at_base: clock.wall.duration_since(k.retired_at).unwrap_or_default(),
                base: clock.now,
                token: k.token,
                retired_at: k.retired_at,
                next: k.next,
                next_at: clock.now + due_in,
                next_at_wall: k.next_at,
                state: k.state,
                last_probe_at: k.last_probe_at,
                last_answer: k.last_answer,
                alerted: k.alerted,
            });
        }
        self.changed(out);
    }

    /// The watch as kept across a restart.
    pub fn kept(&self) -> Vec<Kept> {
        self.tokens
            .iter()
            .map(|r| Kept {
                token: r.token.clone(),
                retired_at: r.retired_at,
                next: r.next,
                next_at: r.next_at_wall,
                state: r.state,
                last_probe_at: r.last_probe_at,
                last_answer: r.last_answer.clone(),
                alerted: r.alerted,
            })
            .collect()
    }

    fn changed(&self, out: &mut Out) {
        out.changed();
        out.push(Action::Schedule(Timer::Retired, self.next_due()));
    }

    /// How many are alive, and how many dead.
    pub fn counts(&self) -> (i64, i64) {
        let alive = self
            .tokens
            .iter()
            .filter(|r| r.state == State::Alive)
            .count();
        let dead = self
            .tokens
            .iter()
            .filter(|r| matches!(r.state, State::Dead { .. }))
            .count();
        (alive as i64, dead as i64)
    }

    /// When the oldest token still accepted was retired.
    pub fn oldest_alive(&self) -> Option<SystemTime> {
        let alive = self.tokens.iter().filter(|r| r.state == State::Alive);
        alive.map(|r| r.retired_at).min()
    }

    /// Each token as `/status` shows it.
    pub fn status(&self, clock: Clock) -> Vec<RetiredStatus> {
        self.tokens
            .iter()
            .map(|r| RetiredStatus {
                fingerprint: r.token.fingerprint().to_string(),
                retired_at: super::rfc3339(r.retired_at),
                last_probe_at: r.last_probe_at.map(super::rfc3339),
                last_answer: r.last_answer.clone(),
                state: r.state.label(),
                alive_for_seconds: match r.state {
                    State::Dead { alive_for, .. } => Some(alive_for.as_secs()),
                    State::Alive => Some(r.age(clock).as_secs()),
                    State::Unknown => None,
                },
            })
            .collect()
    }
}
