//! `token-rotator run`: keep the targets on the live token, one rotation at a time.
//!
//! The decisions are one state machine with no I/O, [`policy::Policy`]; this loop only
//! executes what it decides ([`execute`]) and feeds the results back. Every outside input
//! is a [`trigger::Trigger`] on one channel: the secret files' watchers ([`watch`]), the
//! engine's container events ([`events`]), the targets' logs ([`logs`]); timers and signals
//! ([`signal`]) join them here.
//!
//! The loop runs every action of an input (each result, fed back, may bring more), then
//! everything queued meanwhile (a burst, a change during a rotation), and only then tells
//! the policy that it is quiet ([`policy::Input::Drained`]): the moment for one look at the
//! targets. On shutdown, work that changes nothing (reads, probes, inspections) is cut
//! short; a rotation in progress may finish or roll back within `--shutdown-timeout`, and
//! notifications in flight are drained within the same bound.

pub mod events;
mod execute;
pub mod logs;
pub mod notice;
pub mod policy;
pub mod signal;
pub mod store;
pub mod trigger;
pub mod watch;

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::rotation::Rotator;
use crate::telemetry::notify::Notifiers;
use crate::telemetry::Shared;
use execute::{Shell, Step};
use policy::{Action, Clock, Input, Policy};
use trigger::{File, Trigger};
use watch::WatchConfig;

pub use policy::{AgeConfig, WatchPlan, RETRY_FIRST, RETRY_MAX};

/// Settings of the daemon beyond one rotation's.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// How the secret file is watched.
    pub watch: WatchConfig,
    /// How the standby file is watched, if there is one.
    pub standby: Option<WatchConfig>,
    /// Bound for a rotation in progress at shutdown.
    pub shutdown_timeout: Duration,
    /// Where events are announced (`--notify-webhook`, `--notify`).
    pub notifiers: Notifiers,
    /// How often the live token is probed (`None`: never).
    pub live_probe_interval: Option<Duration>,
    /// Patterns of a rejected token in the targets' logs (`None`: logs are not followed).
    pub log_patterns: Option<Vec<regex::Regex>>,
    /// How retired tokens are watched.
    pub retired: WatchPlan,
    /// When open problems are told again (`--remind-every`, `--drift-after`).
    pub remind: policy::problems::Schedule,
    /// Where the state that survives a restart is kept (`None`: in memory only).
    pub store: Option<store::Store>,
    /// The state read from it at start.
    pub restored: Option<policy::State>,
    /// `--token-lifetime` and `--expiry-warning`.
    pub age: policy::AgeConfig,
}

type Shutdown<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Runs until `shutdown` completes.
pub async fn run(
    rotator: Rotator,
    cfg: DaemonConfig,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()> + Send,
) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    watch::spawn_triggers(cfg.watch.clone(), File::Primary, tx.clone());
    if let Some(standby) = &cfg.standby {
        watch::spawn_triggers(standby.clone(), File::Standby, tx.clone());
    }
    events::spawn(rotator.docker.clone(), rotator.targets.clone(), tx.clone());
    tracing::info!(secret_file = %cfg.watch.path.display(), targets = %describe(&rotator.targets), "watching for token changes");
    if let Some(problem) = crate::secret::single_file_mount_problem(&cfg.watch.path) {
        tracing::warn!("{problem}");
    }
    let mut policy = Policy::new(policy_config(&rotator, &cfg));
    let mut queue: VecDeque<Action> = match cfg.restored.clone() {
        Some(state) => policy.on(Input::Restored(state), Clock::real()).into(),
        None => VecDeque::new(),
    };
    queue.extend(policy.on(Input::Started, Clock::real()));
    let mut shell = Shell::new(rotator, cfg, shared, tx);
    let mut shutdown: Shutdown<'_> = Box::pin(shutdown);
    loop {
        // Every action, each result fed back at once (what it brings comes first).
        while let Some(action) = queue.pop_front() {
            if let Action::Publish = action {
                shell.publish(policy.view(Clock::real())); // as it is now, not as it was
                continue;
            }
            if let Action::Persist = action {
                shell.persist(&policy.state()); // likewise
                continue;
            }
            match shell.execute(action, &mut shutdown).await {
                Step::Done => {}
                Step::Fed(input) => {
                    for a in policy.on(input, Clock::real()).into_iter().rev() {
                        queue.push_front(a);
                    }
                }
                Step::Stop(last) => {
                    let last = last.map(|i| policy.on(i, Clock::real()));
                    return shell.stop(last, policy.view(Clock::real())).await;
                }
            }
        }
        // Everything queued meanwhile, then one look if anything asked for it.
        let input = match rx.try_recv() {
            Ok(t) => input_of(t),
            Err(_) => Input::Drained,
        };
        let drained = matches!(input, Input::Drained);
        queue.extend(policy.on(input, Clock::real()));
        if !drained || !queue.is_empty() {
            continue;
        }
        tokio::select! {
            _ = &mut shutdown => return shell.stop(None, policy.view(Clock::real())).await,
            t = rx.recv() => match t {
                Some(t) => queue.extend(policy.on(input_of(t), Clock::real())),
                None => {
                    tracing::error!("the watchers stopped");
                    return;
                }
            },
            timer = shell.timers.next() => queue.extend(policy.on(Input::Due(timer), Clock::real())),
        }
    }
}

/// What the policy needs of the configuration.
fn policy_config(rotator: &Rotator, cfg: &DaemonConfig) -> policy::Config {
    policy::Config {
        can_probe: rotator.pipeline.validator.is_some(),
        standby: cfg.standby.as_ref().map(|w| w.path.clone()),
        debounce: cfg.watch.debounce,
        live_probe_interval: cfg.live_probe_interval,
        retired: cfg.retired.clone(),
        remind: cfg.remind,
        // Those named; label-selected targets join at the first rotation.
        targets: rotator.targets.names.clone(),
        jitter: crate::engine::jittered,
        age: cfg.age,
    }
}

/// A trigger as the policy's input.
fn input_of(t: Trigger) -> Input {
    match t {
        Trigger::File(f) => Input::FileChanged(f),
        Trigger::TargetStarted { name, fingerprint } => Input::TargetStarted { name, fingerprint },
        Trigger::EventsReconnected => Input::EventsReconnected,
        Trigger::RejectedInLogs { name } => Input::RejectedInLogs { name },
    }
}

/// What the selector picks, for a person: `bot-1, bot-2, label bot=claude (scope prod), service bots_bot`.
fn describe(s: &crate::targets::container::Selector) -> String {
    let mut parts: Vec<String> = s.names.clone();
    parts.extend(s.labels.iter().map(|(k, v)| format!("label {k}={v}")));
    if let Some(scope) = &s.scope {
        parts.push(format!("scope {scope}"));
    }
    parts.extend(s.services.iter().map(|n| format!("service {n}")));
    parts.join(", ")
}
