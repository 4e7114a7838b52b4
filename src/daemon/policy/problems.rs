//! Problems that need a person, until they are fixed: each open problem (its kind, the
//! token it is about, since when, when it was last announced, how many reminders) is
//! announced once, repeated every `--remind-every` while it lasts, and closed with one
//! `resolved` when it is over. A problem may also wait before its first announcement
//! (`drift`, for `--drift-after`): a failure that a retry fixes meanwhile is never told.
//!
//! This module knows no token or target: the policy tells it what was announced
//! ([`Problems::announced`]), what is waiting ([`Problems::pending`]), and which problems
//! are over ([`Problems::close`]); it keeps the schedule ([`Timer::Remind`]: the earliest
//! reminder due). Times are wall-clock times: they are kept across a restart
//! ([`super::State`]), and a reminder keeps its schedule after one. A new kind of problem
//! is one [`Detail`] variant (and its notice).

use std::time::{Duration, SystemTime};

use super::{Action, Clock, Event, Out, Timer};
use crate::error::Outcome;
use crate::secret::Fingerprint;

/// The kinds of problem, named as the event that announces them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// No valid standby is left.
    StandbyNeeded,
    /// A retired token still works past `--retired-alert-after`.
    RetiredTokenAlive,
    /// The targets could not be swapped to the token.
    RotationFailed,
    /// A target does not carry the token it should, for longer than `--drift-after`.
    Drift,
    /// The live token's age passed `--token-lifetime` minus `--expiry-warning`.
    TokenExpiring,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 5] = [
        Kind::StandbyNeeded,
        Kind::RetiredTokenAlive,
        Kind::RotationFailed,
        Kind::Drift,
        Kind::TokenExpiring,
    ];

    /// The event that announces it (and that `resolved`'s `problem` names).
    pub fn event(self) -> &'static str {
        match self {
            Kind::StandbyNeeded => "standby_needed",
            Kind::RetiredTokenAlive => "retired_token_alive",
            Kind::RotationFailed => "rotation_failed",
            Kind::Drift => "drift",
            Kind::TokenExpiring => "token_expiring",
        }
    }

    /// The kind an event name announces.
    pub fn parse(event: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.event() == event)
    }
}

/// What a problem's announcements say beside its token and since when (kept across a
/// restart, so that a reminder says it again).
#[derive(Debug, Clone, PartialEq)]
pub enum Detail {
    /// `standby_needed`.
    StandbyNeeded {
        /// Why there is no spare.
        reason: String,
        /// The live token, when the standby went live.
        live: Option<Fingerprint>,
    },
    /// `retired_token_alive`.
    RetiredTokenAlive {
        /// When a swap retired it.
        retired_at: SystemTime,
    },
    /// `rotation_failed`.
    RotationFailed {
        /// The last failed rotation's outcome.
        outcome: Outcome,
        /// Its error.
        error: Option<String>,
        /// Its targets.
        targets: Vec<String>,
    },
    /// `drift`.
    Drift {
        /// The targets that do not carry the token.
        targets: Vec<String>,
    },
    /// `token_expiring` (its age is told as of each reminder).
    TokenExpiring {
        /// When the token was first deployed.
        first_deployed: SystemTime,
        /// Its estimated end.
        expires_at: SystemTime,
        /// The targets carrying it.
        targets: Vec<String>,
    },
}

impl Detail {
    /// Its kind.
    pub fn kind(&self) -> Kind {
        match self {
            Detail::StandbyNeeded { .. } => Kind::StandbyNeeded,
            Detail::RetiredTokenAlive { .. } => Kind::RetiredTokenAlive,
            Detail::RotationFailed { .. } => Kind::RotationFailed,
            Detail::Drift { .. } => Kind::Drift,
            Detail::TokenExpiring { .. } => Kind::TokenExpiring,
        }
    }

    /// Whether an announcement with `other` tells nothing new (then it is not made again).
    fn same_news(&self, other: &Detail) -> bool {
        match (self, other) {
            (Detail::StandbyNeeded { live: a, .. }, Detail::StandbyNeeded { live: b, .. }) => {
                a == b
            }
            (
                Detail::RotationFailed { outcome: a, .. },
                Detail::RotationFailed { outcome: b, .. },
            ) => a == b,
            (a, b) => a.kind() == b.kind(),
        }
    }
}

/// One open problem, as kept across a restart.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// The token it is about.
    pub fingerprint: Fingerprint,
    /// What its announcements say.
    pub detail: Detail,
    /// When it began.
    pub since: SystemTime,
    /// When it was last announced, first time or reminder (`None`: not yet, it waits).
    pub announced_at: Option<SystemTime>,
    /// How many reminders were sent.
    pub reminders: u32,
}

impl Problem {
    /// Its kind.
    pub fn kind(&self) -> Kind {
        self.detail.kind()
    }
}

/// Whether a rotation with this outcome is `rotation_failed`: the targets could not be
/// swapped (a refused token is `token_rejected` or `canary_failed`: the targets keep theirs).
pub fn rotation_failed(outcome: Outcome) -> bool {
    matches!(
        outcome,
        Outcome::BadTarget
            | Outcome::RolledBack
            | Outcome::EngineUnavailable
            | Outcome::Busy
            | Outcome::Inconclusive
            | Outcome::RollbackFailed
    )
}

/// The problem an announcement opens, if it opens one.
fn opened_by(event: &Event) -> Option<(Fingerprint, Detail)> {
    match event {
        Event::StandbyNeeded {
            fingerprint,
            reason,
            live,
        } => Some((
            fingerprint.clone(),
            Detail::StandbyNeeded {
                reason: reason.clone(),
                live: live.clone(),
            },
        )),
        Event::RetiredTokenAlive {
            fingerprint,
            retired_at,
            ..
        } => Some((
            fingerprint.clone(),
            Detail::RetiredTokenAlive {
                retired_at: *retired_at,
            },
        )),
        Event::Rotation(r) if rotation_failed(r.outcome) => {
            let fp = Fingerprint::parse(r.fingerprint.as_deref()?)?;
            let detail = Detail::RotationFailed {
                outcome: r.outcome,
                error: r.error.clone(),
                targets: r.targets.iter().map(|t| t.name.clone()).collect(),
            };
            Some((fp, detail))
        }
        Event::TokenExpiring {
            fingerprint,
            first_deployed,
            expires_at,
            targets,
            ..
        } => Some((
            fingerprint.clone(),
            Detail::TokenExpiring {
                first_deployed: *first_deployed,
                expires_at: *expires_at,
                targets: targets.clone(),
            },
        )),
        _ => None,
    }
}

/// When the problems are told again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// How often an open problem is repeated (`None`: never).
    pub remind_every: Option<Duration>,
    /// How long a target may be out of sync before `drift` is announced.
    pub drift_after: Duration,
}

impl Schedule {
    /// How long a problem of `kind` waits before its first announcement.
    fn wait(&self, kind: Kind) -> Duration {
        match kind {
            Kind::Drift => self.drift_after,
            _ => Duration::ZERO,
        }
    }
}

/// Every open problem.
pub struct Problems {
    schedule: Schedule,
    open: Vec<Problem>,
    /// Changed since [`Problems::take_changed`] last said so.
    changed: bool,
}

impl Problems {
    /// None open.
    pub fn new(schedule: Schedule) -> Self {
        Problems {
            schedule,
            open: Vec::new(),
            changed: false,
        }
    }

    /// The open problems, as kept across a restart.
    pub fn kept(&self) -> Vec<Problem> {
        self.open.clone()
    }

    /// The open problems.
    pub fn open(&self) -> &[Problem] {
        &self.open
    }

    /// Takes back the problems kept before a restart (already announced: not announced
    /// again as new; their reminders keep their schedule).
    pub fn restore(&mut self, kept: Vec<Problem>) {
        for p in kept {
            if self.find(p.kind(), &p.fingerprint).is_none() {
                self.open.push(p);
                self.changed = true;
            }
        }
    }

    /// Whether a problem of `kind` about `fp` is open (announced or waiting).
    pub fn is_open(&self, kind: Kind, fp: &Fingerprint) -> bool {
        self.find(kind, fp).is_some()
    }

    fn find(&self, kind: Kind, fp: &Fingerprint) -> Option<usize> {
        self.open
            .iter()
            .position(|p| p.kind() == kind && &p.fingerprint == fp)
    }

    /// The policy is about to announce `event`: opens the problem it announces, if any.
    /// Returns whether to announce it: not when its problem is open and it says nothing
    /// new (the same problem found again, say after a restart).
    pub fn announced(&mut self, event: &Event, clock: Clock) -> bool {
        let Some((fp, detail)) = opened_by(event) else {
            return true;
        };
        match self.find(detail.kind(), &fp) {
            Some(i) if self.open[i].detail.same_news(&detail) => false,
            Some(i) => {
                let p = &mut self.open[i];
                p.detail = detail;
                p.announced_at = Some(clock.wall);
                self.changed = true;
                true
            }
            None => {
                self.open.push(Problem {
                    fingerprint: fp,
                    detail,
                    since: clock.wall,
                    announced_at: Some(clock.wall),
                    reminders: 0,
                });
                self.changed = true;
                true
            }
        }
    }

    /// Opens the problem `event` announces as announced already at `at` (by a build that
    /// kept no problems: see [`super::age::Ages::announced_before`]), unless it is open.
    pub fn restore_announced(&mut self, event: &Event, at: SystemTime) {
        let Some((fp, detail)) = opened_by(event) else {
            return;
        };
        if self.find(detail.kind(), &fp).is_none() {
            self.open.push(Problem {
                fingerprint: fp,
                detail,
                since: at,
                announced_at: Some(at),
                reminders: 0,
            });
            self.changed = true;
        }
    }

    /// A problem that is announced only once it has lasted its wait (`drift`), begun at
    /// `since`. Only one of its kind is open: a new token takes the open one over, which
    /// keeps its `since`.
    pub fn pending(&mut self, fp: Fingerprint, detail: Detail, since: SystemTime) {
        let kind = detail.kind();
        match self.open.iter_mut().find(|p| p.kind() == kind) {
            Some(p) if p.fingerprint == fp && p.detail == detail => return,
            Some(p) => {
                p.fingerprint = fp;
                p.detail = detail;
            }
            None => self.open.push(Problem {
                fingerprint: fp,
                detail,
                since,
                announced_at: None,
                reminders: 0,
            }),
        }
        self.changed = true;
    }

    /// Closes the problems for which `over` gives a reason: `resolved` for each one that
    /// was announced (one still waiting goes silently).
    pub fn close(
        &mut self,
        over: impl Fn(&Problem) -> Option<&'static str>,
        clock: Clock,
        out: &mut Out,
    ) {
        let mut i = 0;
        while i < self.open.len() {
            let Some(reason) = over(&self.open[i]) else {
                i += 1;
                continue;
            };
            let p = self.open.remove(i);
            self.changed = true;
            tracing::info!(problem = p.kind().event(), fingerprint = %p.fingerprint, reason, "the problem is over");
            if p.announced_at.is_some() {
                out.push(Action::Announce(Event::Resolved {
                    problem: p.kind().event(),
                    fingerprint: p.fingerprint,
                    since: p.since,
                    lasted: clock.wall.duration_since(p.since).unwrap_or_default(),
                    reason,
                }));
            }
        }
    }

    /// When `p` is next told (its first announcement or its next reminder), if ever.
    fn due_at(&self, p: &Problem) -> Option<SystemTime> {
        match p.announced_at {
            None => Some(p.since + self.schedule.wait(p.kind())),
            Some(last) => self.schedule.remind_every.map(|every| last + every),
        }
    }

    /// Announces every problem due: a waiting one for the first time, an announced one
    /// again as a reminder.
    pub fn due(&mut self, clock: Clock, out: &mut Out) {
        for i in 0..self.open.len() {
            if !self
                .due_at(&self.open[i])
                .is_some_and(|at| at <= clock.wall)
            {
                continue;
            }
            let p = &mut self.open[i];
            let event = match p.announced_at {
                None => first(p),
                Some(_) => {
                    p.reminders += 1;
                    Event::Reminder {
                        problem: Box::new(p.clone()),
                        at: clock.wall,
                    }
                }
            };
            tracing::warn!(problem = p.kind().event(), fingerprint = %p.fingerprint, reminder = p.reminders, "the problem still needs a person");
            p.announced_at = Some(clock.wall);
            self.changed = true;
            out.push(Action::Announce(event));
        }
    }

    /// Whether anything changed since this was last asked; then the reminder timer is set
    /// again (to the earliest due).
    pub fn take_changed(&mut self, clock: Clock, out: &mut Out) -> bool {
        if !std::mem::take(&mut self.changed) {
            return false;
        }
        let next = self.open.iter().filter_map(|p| self.due_at(p)).min();
        let at = next.map(|t| clock.now + t.duration_since(clock.wall).unwrap_or_default());
        out.push(Action::Schedule(Timer::Remind, at));
        true
    }
}

/// The first announcement of a problem that waited.
fn first(p: &Problem) -> Event {
    match &p.detail {
        Detail::Drift { targets } => Event::Drift {
            fingerprint: p.fingerprint.clone(),
            targets: targets.clone(),
            since: p.since,
        },
        // Only drift waits; the others were announced when they opened.
        _ => Event::Reminder {
            problem: Box::new(p.clone()),
            at: p.since,
        },
    }
}
