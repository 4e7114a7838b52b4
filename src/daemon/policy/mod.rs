//! The daemon's decisions, with no I/O: [`Policy::on`] takes one [`Input`] (a file read, a
//! target started, a suspicion from a bot's log, a probe's answer, a rotation's report, a
//! timer that fell due) and returns the [`Action`]s to run (read, probe, rotate, announce,
//! publish, schedule). No async, no engine, no clock of its own: the caller passes the time.
//! The loop in [`super::run`] only executes the actions and feeds their results back.
//!
//! What it decides, top to bottom:
//! - **when to look** at the targets: on start, after the secret file's token changed, when a
//!   target starts without the live token, when the engine's events come back, when a
//!   retry falls due, when a standby is to replace a rejected live token;
//! - **what to deploy** ([`tokens`]): the primary file's token while the API has not
//!   rejected it, else a validated standby, else nothing;
//! - **after a rotation**: retry with backoff (nothing says the token is bad), or remember the
//!   failure so that the same file content is not tried again until it is written again;
//!   which tokens the swaps retired ([`retired`]), and what is announced (once);
//! - **until it is fixed** ([`problems`], [`review`]): a problem that needs a person is
//!   repeated every `--remind-every` while it lasts, then closed with `resolved`; a target
//!   out of sync for `--drift-after` is announced as `drift`.
//! - **the live token's age** ([`age`]): when each token was first deployed (the earliest
//!   time known), and `token_expiring` when its estimated end is near (then a problem:
//!   reminded, and resolved once another token is live).

pub mod age;
mod look;
pub mod problems;
pub mod retired;
mod review;
pub mod state;
pub mod tokens;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use super::trigger::File;
use crate::engine::Backoff;
use crate::error::Outcome;
use crate::rotation::RotationReport;
use crate::secret::{Fingerprint, SecretError, Token};
use crate::validate::Verdict;
use tokens::Tokens;

pub use age::AgeConfig;
pub use retired::WatchPlan;
pub use state::State;
pub use tokens::{Health, Probe, StandbyState, Then};

/// First retry delay after an inconclusive validation; doubles up to [`RETRY_MAX`].
pub const RETRY_FIRST: Duration = Duration::from_secs(5);
/// Longest retry delay.
pub const RETRY_MAX: Duration = Duration::from_secs(600);

/// The time of one input: monotonic for deadlines, wall clock for what people read.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// For deadlines and ages.
    pub now: Instant,
    /// For timestamps shown in `/status` and events.
    pub wall: SystemTime,
}

impl Clock {
    /// The real time now.
    pub fn real() -> Self {
        Clock {
            now: Instant::now(),
            wall: SystemTime::now(),
        }
    }
}

/// What the secret file held when read: for a failed token, same fingerprint and same mtime
/// means "not written again".
#[derive(Debug, Clone, PartialEq)]
pub struct Content {
    /// The token's fingerprint (of any shape).
    pub fingerprint: Fingerprint,
    /// The file's modification time.
    pub mtime: Option<SystemTime>,
}

/// One read of the primary file.
#[derive(Debug)]
pub struct Read {
    /// The token, in the configured format.
    pub token: Result<Token, SecretError>,
    /// What the file held, whatever its shape (`None`: nothing readable).
    pub content: Option<Content>,
}

/// Why the primary file was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// A watcher saw an event on it: does its token differ from the last read?
    Event,
    /// To decide what the targets must carry.
    Look,
}

/// Why a token is probed; comes back with the answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Purpose {
    /// The live token: a suspicion from the logs, or the periodic backstop.
    Live(Probe),
    /// The standby token, validated before it may ever be deployed; then `Then`.
    Standby(Then),
    /// A retired token: is it dead yet?
    Retired,
}

/// What the targets are rotated to, and why; comes back with the report.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The token to deploy.
    pub token: Token,
    /// Which file it came from.
    pub file: File,
    /// The primary's rejected token a standby replaces, when it does.
    pub replacing: Option<Fingerprint>,
    /// What the primary file held when this was decided.
    pub content: Option<Content>,
    /// When the token was first deployed, as the state knows (the rotation may find an
    /// earlier time on the targets' labels).
    pub first_deployed: Option<SystemTime>,
}

/// Everything the daemon reacts to.
#[derive(Debug)]
pub enum Input {
    /// The state kept before a restart (before [`Input::Started`]).
    Restored(State),
    /// The daemon started.
    Started,
    /// Nothing else is queued: the moment to look at the targets, if something asked for it.
    Drained,
    /// A secret file's watcher saw an event.
    FileChanged(File),
    /// The primary file, as read for `Why`.
    PrimaryRead(Why, Read),
    /// The standby file, as read (validated again only with `again`), then `Then`.
    StandbyRead {
        /// Validate even a token proved before.
        again: bool,
        /// What decides next.
        then: Then,
        /// What it held.
        token: Result<Token, SecretError>,
    },
    /// A target container started; `fingerprint` is its `token-rotator.fingerprint` label.
    TargetStarted {
        /// Its name.
        name: String,
        /// The label, if any.
        fingerprint: Option<String>,
    },
    /// Whether a target that started carries the live token in its env.
    TargetChecked {
        /// Its name.
        name: String,
        /// Whether it does.
        carries_live: bool,
    },
    /// The engine's event stream came back after a break.
    EventsReconnected,
    /// A target's log has a line that says its token was refused (a suspicion only).
    RejectedInLogs {
        /// The target.
        name: String,
    },
    /// A probe's answer.
    Probed {
        /// Why it was probed.
        purpose: Purpose,
        /// The token probed.
        fingerprint: Fingerprint,
        /// The API's answer.
        verdict: Verdict,
    },
    /// A rotation ended.
    Rotated(Plan, Box<RotationReport>),
    /// A timer fell due.
    Due(Timer),
}

/// The daemon's timers, one deadline each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    /// Retry a rotation that could not conclude.
    Retry,
    /// Read the primary file again after the quiet period (it was caught half-written).
    ReadAgain,
    /// The periodic probe of the live token.
    LiveProbe,
    /// The next retired token's probe.
    Retired,
    /// The earliest reminder (or waiting first announcement) of an open problem.
    Remind,
    /// The live token's age reaches `--token-lifetime` minus `--expiry-warning`.
    Expiry,
}

/// Something a person is told (webhook today).
#[derive(Debug, Clone)]
pub enum Event {
    /// A rotation's outcome (announced once per token and outcome).
    Rotation(Box<RotationReport>),
    /// The API rejected the live token.
    LiveTokenRejected {
        /// The live token.
        fingerprint: Fingerprint,
        /// `logs` or `probe`.
        source: &'static str,
        /// The API's answer.
        answer: String,
        /// The targets carrying it.
        targets: Vec<String>,
    },
    /// The standby replaced the rejected live token.
    StandbyPromoted {
        /// The rejected token.
        old: Fingerprint,
        /// The standby, live now.
        new: Fingerprint,
        /// The rotation that deployed it.
        report: Box<RotationReport>,
    },
    /// A person must write a new token: no valid standby is left.
    StandbyNeeded {
        /// The rejected token.
        fingerprint: Fingerprint,
        /// Why there is no spare.
        reason: String,
        /// The live token, when the standby went live.
        live: Option<Fingerprint>,
    },
    /// A retired token is rejected at last.
    RetiredTokenDead {
        /// The token.
        fingerprint: Fingerprint,
        /// When a swap retired it.
        retired_at: SystemTime,
        /// When it was seen rejected.
        dead_at: SystemTime,
        /// How long it kept working.
        alive_for: Duration,
    },
    /// A retired token still works long after its retirement.
    RetiredTokenAlive {
        /// The token.
        fingerprint: Fingerprint,
        /// When a swap retired it.
        retired_at: SystemTime,
        /// How long it has kept working.
        alive_for: Duration,
    },
    /// A target does not carry the token it should, for longer than `--drift-after`.
    Drift {
        /// The token the targets should carry.
        fingerprint: Fingerprint,
        /// The targets that do not.
        targets: Vec<String>,
        /// Since when.
        since: SystemTime,
    },
    /// An open problem, again (its event's name, with `reminder` and `since`).
    Reminder {
        /// The problem as it is now (`reminders` counts this one).
        problem: Box<problems::Problem>,
        /// Now.
        at: SystemTime,
    },
    /// A problem announced before is over.
    Resolved {
        /// The event that announced it (`standby_needed`, `drift`, ...).
        problem: &'static str,
        /// The token it was about.
        fingerprint: Fingerprint,
        /// When it began.
        since: SystemTime,
        /// How long it lasted.
        lasted: Duration,
        /// Why it is over (`standby_ready`, `token_dead`, `rotation_landed`, ...).
        reason: &'static str,
    },
    /// The live token nears its estimated end (first deployed + `--token-lifetime`).
    TokenExpiring {
        /// The live token.
        fingerprint: Fingerprint,
        /// When it was first deployed.
        first_deployed: SystemTime,
        /// Its estimated end.
        expires_at: SystemTime,
        /// Its age now.
        age: Duration,
        /// The targets carrying it.
        targets: Vec<String>,
    },
}

/// A counter or a report to record (metrics, `/status`'s last report, the log).
#[derive(Debug, Clone)]
pub enum Record {
    /// A rotation's report.
    Rotation(Box<RotationReport>),
    /// The live token was probed.
    LiveProbed,
    /// The live token was rejected, noticed by `source`.
    LiveRejected(&'static str),
    /// A retired token died after this long.
    RetiredDead(Duration),
}

/// What the daemon must do.
#[derive(Debug)]
pub enum Action {
    /// Read the primary file.
    ReadPrimary(Why),
    /// Read the standby file (validate it even if proved before with `again`), then `then`.
    ReadStandby {
        /// Validate again.
        again: bool,
        /// What decides next.
        then: Then,
    },
    /// Inspect a target that started: does it carry this token?
    CheckTarget {
        /// The target.
        name: String,
        /// The live token.
        token: Token,
    },
    /// Ask the API about a token.
    Probe {
        /// Which token.
        token: Token,
        /// Why.
        purpose: Purpose,
    },
    /// Rotate the targets.
    Rotate(Plan),
    /// Tell a person.
    Announce(Event),
    /// Count or record.
    Record(Record),
    /// Show the tokens' state as it is when this runs ([`Policy::view`]: `/status`, gauges).
    Publish,
    /// Follow these targets' logs (and only these).
    Follow(Vec<String>),
    /// Set (or clear) a timer.
    Schedule(Timer, Option<Instant>),
    /// Keep the durable state as it is when this runs ([`Policy::state`]) across a restart:
    /// it changed. (As it is then, not as it was: a probe's answer may change it again
    /// before this runs.)
    Persist,
}

/// The settings the decisions depend on.
#[derive(Debug, Clone)]
pub struct Config {
    /// Whether tokens can be probed at all (`false` with `--validate none`).
    pub can_probe: bool,
    /// The standby file, if any.
    pub standby: Option<PathBuf>,
    /// The quiet period before a half-written file is read again.
    pub debounce: Duration,
    /// How often the live token is probed (`None`: never).
    pub live_probe_interval: Option<Duration>,
    /// How retired tokens are watched.
    pub retired: WatchPlan,
    /// When open problems are told again (`--remind-every`, `--drift-after`).
    pub remind: problems::Schedule,
    /// The targets named on the command line (label-selected ones join at the first rotation).
    pub targets: Vec<String>,
    /// Shortens a period at random, so that many sidecars do not probe in step.
    pub jitter: fn(Duration) -> Duration,
    /// `--token-lifetime` and `--expiry-warning`.
    pub age: AgeConfig,
}

/// Where the current look is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing under way.
    Idle,
    /// The look's read is under way (`second`: after the quiet period).
    Reading { second: bool },
    /// Waiting for the quiet period before the second read.
    Waiting,
    /// A rotation is under way.
    Rotating,
}

/// The daemon's state between inputs.
pub struct Policy {
    cfg: Config,
    tokens: Tokens,
    retired: retired::Watch,
    ages: age::Ages,
    phase: Phase,
    /// Something asked for a look at the targets.
    pending: bool,
    /// The read of a file event that asked for the look (the look needs no read of its own).
    fresh: Option<Read>,
    /// The primary file as last read: an event that leaves its token as it was costs nothing.
    last_read: Option<Content>,
    /// The content whose token was refused or rolled back: not tried until written again.
    last_failed: Option<Content>,
    backoff: Backoff,
    /// The last rotation announced: the same outcome for the same token is announced once.
    last_event: Option<(Option<String>, Outcome)>,
    /// The targets as of the last rotation.
    targets: Vec<String>,
    /// The durable state as last handed out (or restored): persisted again only if it changed.
    persisted: State,
    /// The problems that need a person.
    problems: problems::Problems,
    /// The token last decided for the targets, and since when (until a rotation lands it).
    wanted: Option<(Fingerprint, SystemTime)>,
    /// This input's rotation landed (every target carries its token).
    landed: bool,
}

impl Policy {
    /// The state before anything happened.
    pub fn new(cfg: Config) -> Self {
        Policy {
            tokens: Tokens::new(cfg.can_probe),
            retired: retired::Watch::new(cfg.retired.clone(), cfg.jitter),
            ages: age::Ages::new(cfg.age),
            targets: cfg.targets.clone(),
            problems: problems::Problems::new(cfg.remind),
            cfg,
            phase: Phase::Idle,
            pending: false,
            fresh: None,
            last_read: None,
            last_failed: None,
            backoff: Backoff::new(RETRY_FIRST, RETRY_MAX),
            last_event: None,
            persisted: State::default(),
            wanted: None,
            landed: false,
        }
    }

    /// The durable state now.
    pub fn state(&self) -> State {
        State {
            retired: self.retired.kept(),
            rejected: self.tokens.rejected(),
            problems: self.problems.kept(),
            deployed: (self.ages)
                .kept(|fp| self.problems.is_open(problems::Kind::TokenExpiring, fp)),
        }
    }

    /// What the tokens' state looks like now.
    pub fn view(&self, clock: Clock) -> tokens::View {
        let mut view = self.tokens.view(&self.retired, clock);
        let live = self.tokens.live().map(|t| t.fingerprint());
        if let Some(l) = view.status.live.as_mut() {
            l.age = self.ages.status(live, clock.wall);
        }
        view
    }

    /// Decides what to do about `input`.
    pub fn on(&mut self, input: Input, clock: Clock) -> Vec<Action> {
        let mut out = Out::default();
        match input {
            Input::Restored(state) => {
                self.retired.restore(state.retired, clock, &mut out);
                self.tokens.restore_rejected(state.rejected);
                self.problems.restore(state.problems);
                self.restore_ages(&state.deployed, clock);
                self.persisted = self.state();
            }
            Input::Started => self.started(clock, &mut out),
            Input::Drained => self.drained(clock, &mut out),
            Input::FileChanged(File::Primary) => out.push(Action::ReadPrimary(Why::Event)),
            Input::FileChanged(File::Standby) => out.push(Action::ReadStandby {
                again: false,
                then: Then::PromoteIfLiveRejected,
            }),
            Input::PrimaryRead(Why::Event, read) => self.file_event(read),
            Input::PrimaryRead(Why::Look, read) => {
                self.fresh = None;
                self.decide(read, clock, &mut out);
            }
            Input::StandbyRead { again, then, token } => {
                let next = self.tokens.standby_read(token, again, then, &mut out);
                self.then(next);
            }
            Input::TargetStarted { name, fingerprint } => {
                self.started_target(name, fingerprint, &mut out)
            }
            Input::TargetChecked { name, carries_live } => {
                if !carries_live {
                    tracing::info!(container = %name, "a target started without the live token: rotating it");
                    self.pending = true;
                }
            }
            Input::EventsReconnected => self.pending = true,
            Input::RejectedInLogs { name } => {
                tracing::debug!(container = %name, "suspicion from the logs");
                self.tokens.probe_live(Probe::Logs, clock, &mut out);
            }
            Input::Probed {
                purpose,
                fingerprint,
                verdict,
            } => self.probed(purpose, fingerprint, verdict, clock, &mut out),
            Input::Rotated(plan, report) => self.rotated(plan, *report, clock, &mut out),
            Input::Due(timer) => self.due(timer, clock, &mut out),
        }
        self.review(clock, &mut out);
        if out.changed {
            let now = self.state();
            if now != self.persisted {
                self.persisted = now;
                out.push(Action::Persist);
            }
        }
        out.publish_if_changed()
    }

    fn started(&mut self, clock: Clock, out: &mut Out) {
        self.pending = true; // reconcile on start
        if self.cfg.standby.is_some() {
            out.push(Action::ReadStandby {
                again: false,
                then: Then::Nothing,
            });
        }
        out.changed = true;
        if let Some(every) = self.probe_every() {
            out.push(Action::Schedule(
                Timer::LiveProbe,
                Some(clock.now + (self.cfg.jitter)(every)),
            ));
        }
    }

    fn probe_every(&self) -> Option<Duration> {
        self.cfg.live_probe_interval.filter(|d| !d.is_zero())
    }
}

/// A wall-clock time as RFC 3339, to the second.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// The actions of one input, and whether the tokens' state changed (then it is published).
#[derive(Default)]
pub struct Out {
    actions: Vec<Action>,
    changed: bool,
}

impl Out {
    /// One more action.
    pub fn push(&mut self, a: Action) {
        self.actions.push(a);
    }

    /// The tokens' state changed: publish it after the other actions.
    pub fn changed(&mut self) {
        self.changed = true;
    }

    fn publish_if_changed(mut self) -> Vec<Action> {
        if self.changed {
            self.actions.push(Action::Publish);
        }
        self.actions
    }
}
