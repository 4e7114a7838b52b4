//! `token-rotator run`: keep the targets on the live token, one rotation at a time.
//!
//! Every input is a [`trigger::Trigger`] on one channel: the secret files' watchers, the
//! engine's container events, the targets' logs. Only this loop decides which token is
//! live ([`live`]) and calls the pipeline. It reconciles on start (a rotation that finds
//! nothing to do costs no API probe), after a secret file changes, when a target starts
//! without the live token, and when the engine's event stream comes back. A change that
//! arrives during a rotation is handled right after it, with whatever the files then hold.
//! Inconclusive validations (and an unreachable engine, or a target another rotator holds)
//! are retried with backoff. A token that was refused, or whose swap was rolled back, is
//! not tried again until its file is written again, so an unrelated event does not
//! restart the bot. A live token the API rejects (noticed in a bot's log and confirmed by a
//! probe, or by the periodic probe) is replaced by a validated standby, or announced.
//! On shutdown, a rotation in progress may finish or roll back within a bound, and webhook
//! deliveries in flight are drained within the same bound.

pub mod events;
pub mod live;
pub mod logs;
pub mod retired;
pub mod signal;
pub mod trigger;
pub mod watch;

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::engine::Backoff;
use crate::error::{Error, Outcome};
use crate::rotation::{RotationReport, Rotator};
use crate::secret::{read_token_async, Fingerprint, TokenFormat};
use crate::telemetry::webhook::Webhook;
use crate::telemetry::Shared;
use live::{Live, Probe};
use trigger::{File, Trigger};
use watch::WatchConfig;

/// First retry delay after an inconclusive validation; doubles up to [`RETRY_MAX`].
pub const RETRY_FIRST: Duration = Duration::from_secs(5);
/// Longest retry delay.
pub const RETRY_MAX: Duration = Duration::from_secs(600);

/// Settings of the daemon beyond one rotation's.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// How the secret file is watched.
    pub watch: WatchConfig,
    /// How the standby file is watched, if there is one.
    pub standby: Option<WatchConfig>,
    /// Bound for a rotation in progress at shutdown.
    pub shutdown_timeout: Duration,
    /// Where to post events.
    pub webhook: Option<Webhook>,
    /// How often the live token is probed (`None`: never).
    pub live_probe_interval: Option<Duration>,
    /// Patterns of a rejected token in the targets' logs (`None`: logs are not followed).
    pub log_patterns: Option<Vec<regex::Regex>>,
    /// How retired tokens are watched.
    pub retired: retired::WatchPlan,
}

/// What the secret file held when read: for a failed token, same fingerprint and same
/// mtime means "not written again".
#[derive(Debug, Clone, PartialEq)]
struct Content {
    fingerprint: Fingerprint,
    mtime: Option<SystemTime>,
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
    tracing::info!(secret_file = %cfg.watch.path.display(), targets = ?rotator.targets, "watching for token changes");
    if let Some(problem) = crate::secret::single_file_mount_problem(&cfg.watch.path) {
        tracing::warn!("{problem}");
    }

    // Logs are followed by each target's own name, known from the first rotation on.
    let mut d = Daemon::new(rotator, cfg, shared, tx);
    let mut shutdown: Shutdown<'_> = Box::pin(shutdown);
    // Probes, reads and inspections change nothing: a stop cuts them short (only a swap
    // under way may delay the exit).
    if or_stop(d.live.check_standby(&ctx!(d), false), &mut shutdown)
        .await
        .is_none()
    {
        return d.stop().await;
    }
    let mut pending = true; // reconcile on start
    let mut next_probe = d.next_probe();
    loop {
        if pending {
            pending = false;
            if d.reconcile(&mut shutdown).await.is_break() {
                return;
            }
            continue;
        }
        tokio::select! {
            _ = &mut shutdown => return d.stop().await,
            t = rx.recv() => {
                let Some(t) = t else {
                    tracing::error!("the watchers stopped");
                    return;
                };
                let Some(look) = or_stop(d.on_trigger(t), &mut shutdown).await else {
                    return d.stop().await;
                };
                pending |= look;
                // Everything queued meanwhile (a burst, a change during a rotation) is one look.
                while let Ok(t) = rx.try_recv() {
                    let Some(look) = or_stop(d.on_trigger(t), &mut shutdown).await else {
                        return d.stop().await;
                    };
                    pending |= look;
                }
            }
            _ = sleep_until(d.retry_at), if d.retry_at.is_some() => pending = true,
            _ = sleep_until(next_probe), if next_probe.is_some() => {
                let Some(look) = or_stop(d.probe(Probe::Periodic), &mut shutdown).await else {
                    return d.stop().await;
                };
                pending |= look;
                next_probe = d.next_probe();
            }
            _ = sleep_until(d.retired.next_due()), if d.retired.next_due().is_some() => {
                let validator = d.rotator.pipeline.validator.as_ref();
                let probe = d.retired.probe_due(validator, &d.shared, d.cfg.webhook.as_ref());
                if or_stop(probe, &mut shutdown).await.is_none() {
                    return d.stop().await;
                }
            }
        }
    }
}

/// Runs `work` unless the daemon is asked to stop first (`None` then); only for work that
/// changes nothing, so that cutting it short is safe.
async fn or_stop<F: Future>(work: F, shutdown: &mut Shutdown<'_>) -> Option<F::Output> {
    tokio::select! {
        out = work => Some(out),
        _ = shutdown.as_mut() => None,
    }
}

/// What the live-token logic needs, borrowed from the daemon's fields (not all of it, so
/// that its `live` can be borrowed mutably beside).
macro_rules! ctx {
    ($d:expr) => {
        live::Ctx {
            validator: $d.rotator.pipeline.validator.as_ref(),
            shared: &$d.shared,
            webhook: $d.cfg.webhook.as_ref(),
            targets: &$d.targets,
        }
    };
}
use ctx;

/// The daemon's state between triggers.
struct Daemon {
    rotator: Rotator,
    cfg: DaemonConfig,
    shared: Arc<Shared>,
    live: Live,
    retired: retired::Watch,
    retry_at: Option<Instant>,
    backoff: Backoff,
    last_failed: Option<Content>,
    /// The primary file as last read: a file event that leaves its token as it was
    /// touches neither the engine nor the log.
    last_read: Option<Content>,
    last_event: Option<(Option<String>, Outcome)>,
    /// The targets' names as of the last rotation (label selection changes them).
    targets: Vec<String>,
    /// The targets whose logs are followed.
    followers: Arc<logs::Followers>,
    /// The log patterns, shared by the followers.
    patterns: Option<Arc<Vec<regex::Regex>>>,
    tx: trigger::Sender,
}

impl Daemon {
    fn new(rotator: Rotator, cfg: DaemonConfig, shared: Arc<Shared>, tx: trigger::Sender) -> Self {
        // Those named; label-selected targets join at the first rotation.
        let names = rotator.targets.names.clone();
        let patterns = cfg.log_patterns.clone().map(Arc::new);
        let standby = cfg.standby.as_ref().map(|w| w.path.clone());
        Daemon {
            live: Live::new(standby, rotator.secret.format),
            retired: retired::Watch::new(cfg.retired.clone()),
            rotator,
            cfg,
            shared,
            retry_at: None,
            backoff: Backoff::new(RETRY_FIRST, RETRY_MAX),
            last_failed: None,
            last_read: None,
            last_event: None,
            targets: names,
            followers: Default::default(),
            patterns,
            tx,
        }
    }

    /// When the next periodic probe is due (jittered by up to 10%), if probes are on.
    fn next_probe(&self) -> Option<Instant> {
        let every = self.cfg.live_probe_interval.filter(|d| !d.is_zero())?;
        Some(Instant::now() + live::jittered(every))
    }

    /// Acts on one trigger; returns whether the targets must be looked at.
    async fn on_trigger(&mut self, t: Trigger) -> bool {
        match t {
            Trigger::File(File::Primary) => {
                let seen = current_content(&self.cfg.watch.path).await;
                let same_token = matches!((&seen, &self.last_read), (Some(a), Some(b)) if a.fingerprint == b.fingerprint);
                // A failed token written again (same content, new mtime) is tried again.
                let rewritten = self.last_failed.is_some() && seen != self.last_failed;
                if rewritten {
                    self.last_failed = None;
                }
                self.last_read = seen;
                if same_token && !rewritten {
                    tracing::trace!("secret file event, same token: nothing to do");
                }
                !same_token || rewritten
            }
            Trigger::File(File::Standby) => {
                self.live.check_standby(&ctx!(self), false).await;
                // A standby that became ready while the live token is dead is deployed now.
                self.live.live_rejected() && self.live.standby_ready()
            }
            Trigger::TargetStarted { name, fingerprint } => {
                let ours = fingerprint.is_some() && fingerprint == self.live.fingerprint();
                // One that carries the live token already (the old container an undo
                // started again, say) needs nothing.
                if ours || self.carries_live(&name).await {
                    return false;
                }
                tracing::info!(container = %name, "a target started without the live token: rotating it");
                true
            }
            Trigger::EventsReconnected => true,
            Trigger::RejectedInLogs { name } => {
                tracing::debug!(container = %name, "suspicion from the logs");
                self.probe(Probe::Logs).await
            }
        }
    }

    /// Whether the container `name` carries the live token (in its own env var).
    async fn carries_live(&self, name: &str) -> bool {
        let Some(live) = self.live.token() else {
            return false;
        };
        let Ok(Some(info)) = crate::engine::inspect(&self.rotator.docker, name).await else {
            return false;
        };
        let var =
            crate::targets::container::select::env_var_of(&info, &self.rotator.container.env_var);
        crate::targets::container::env_value(&info, &var).is_some_and(|v| live.matches(v))
    }

    /// Probes the live token; returns whether the targets must be looked at (a standby
    /// is to be deployed).
    async fn probe(&mut self, how: Probe) -> bool {
        self.live.probe(&ctx!(self), how).await
    }

    /// Decides which token the targets must carry and rotates them to it. Breaks when the
    /// daemon must stop.
    async fn reconcile(&mut self, shutdown: &mut Shutdown<'_>) -> std::ops::ControlFlow<()> {
        let path = self.cfg.watch.path.clone();
        let format = self.rotator.secret.format;
        let (mut primary, mut content) = read_primary(&path, format).await;
        if primary.is_err() {
            // An in-place write caught half-way (truncated, not yet written) reads as empty
            // or cut short: look again once the writer has had the quiet period to finish.
            let quiet = tokio::time::sleep(self.cfg.watch.debounce);
            if or_stop(quiet, shutdown).await.is_none() {
                self.stop().await;
                return std::ops::ControlFlow::Break(());
            }
            (primary, content) = read_primary(&path, format).await;
        }
        self.last_read = content;
        let (token, file) = match self.live.choose(primary) {
            live::Choice::Deploy(token, file) => (token, file),
            live::Choice::Unusable(e) => {
                // As before any standby logic: an unusable secret file is a refused token.
                tracing::error!(rule = e.rule(), "secret rejected: {e}");
                let report = RotationReport::failed_before(
                    crate::engine::names::new_rotation_id(),
                    None,
                    &Error::Secret(e),
                );
                self.publish(&report);
                self.after(&report).await;
                return std::ops::ControlFlow::Continue(());
            }
            live::Choice::Nothing => {
                // Nothing to deploy until a file changes: no retry either.
                self.retry_at = None;
                self.backoff.reset();
                return std::ops::ControlFlow::Continue(());
            }
        };
        if file == File::Primary {
            if let Some(f) = &self.last_failed {
                if current_content(&path).await.as_ref() == Some(f) {
                    tracing::debug!(fingerprint = %f.fingerprint, "secret file not written again since its token failed; waiting");
                    self.retry_at = None;
                    return std::ops::ControlFlow::Continue(());
                }
            }
        }
        tracing::info!(fingerprint = %token.fingerprint(), from = file.label(), "read token");
        let report = {
            let rotation = self.rotator.rotate_token(&token);
            tokio::pin!(rotation);
            tokio::select! {
                r = &mut rotation => r,
                _ = shutdown.as_mut() => {
                    tracing::info!(timeout_secs = self.cfg.shutdown_timeout.as_secs_f64(), "letting the rotation in progress finish before exiting");
                    let bound = Instant::now() + self.cfg.shutdown_timeout;
                    match tokio::time::timeout_at(bound, rotation).await {
                        Ok(r) if r.outcome == Outcome::Stopped => {
                            tracing::info!("stopped before the rotation changed anything");
                        }
                        Ok(r) => publish(&self.shared, &self.cfg, &r, &mut self.last_event),
                        Err(_) => tracing::error!("the rotation in progress did not finish in time; the next start will find where it stopped"),
                    }
                    self.drain(bound).await;
                    return std::ops::ControlFlow::Break(());
                }
            }
        };
        self.publish(&report);
        if file == File::Standby
            && !report.outcome.is_retryable()
            && !matches!(report.outcome, Outcome::Rotated | Outcome::AlreadyCurrent)
        {
            // A standby whose swap failed is not deployed again until its file changes.
            self.live
                .standby_failed(&format!("its swap ended {}", report.outcome.label()));
        }
        if !report.targets.is_empty() {
            self.targets = report.targets.iter().map(|t| t.name.clone()).collect();
            self.follow_logs();
        }
        if matches!(report.outcome, Outcome::Rotated | Outcome::AlreadyCurrent) {
            // What the swaps replaced may still work: watch it until the API rejects it.
            let probing = self.rotator.pipeline.validator.is_some();
            for old in &report.retired_tokens {
                // Not a token the API rejected already, not the standby kept as a spare, and
                // only when it can be probed at all.
                if probing && !self.live.is_rejected(old) && !self.live.is_standby(old) {
                    self.retired.retire(old.clone(), &self.shared);
                }
            }
            self.retired.unretire(&token, &self.shared);
            for event in self.live.deployed(&ctx!(self), token, file, &report).await {
                self.notify(event);
            }
        }
        self.after(&report).await;
        std::ops::ControlFlow::Continue(())
    }

    /// Retry, back off, or remember a failure, after a rotation.
    async fn after(&mut self, report: &RotationReport) {
        // A failed rollback is retried too: the next run starts by recovering.
        if report.outcome.is_retryable() {
            let delay = self.backoff.next_delay();
            tracing::info!(retry_in_secs = delay.as_secs(), "will retry");
            self.retry_at = Some(Instant::now() + delay);
        } else {
            self.retry_at = None;
            self.backoff.reset();
            let failed = matches!(
                report.outcome,
                // Not `bad_target`: a broken target says nothing about the token.
                Outcome::Rejected | Outcome::RolledBack | Outcome::CanaryFailed
            );
            self.last_failed = if failed {
                current_content(&self.cfg.watch.path).await
            } else {
                None
            };
        }
    }

    /// Follows the logs of the targets of the last rotation (label selection adds and
    /// removes targets).
    fn follow_logs(&mut self) {
        if let Some(patterns) = &self.patterns {
            let docker = &self.rotator.docker;
            self.followers
                .follow(docker, &self.targets, patterns, &self.tx, &self.shared);
        }
    }

    fn notify(&self, event: serde_json::Value) {
        if let Some(hook) = &self.cfg.webhook {
            hook.send_json(event);
        }
    }

    fn publish(&mut self, report: &RotationReport) {
        publish(&self.shared, &self.cfg, report, &mut self.last_event);
    }

    /// The exit on a stop: webhook deliveries in flight get the shutdown timeout.
    async fn stop(&self) {
        tracing::info!("stopping");
        self.drain(Instant::now() + self.cfg.shutdown_timeout).await;
    }

    /// Waits for webhook deliveries in flight, until `until`.
    async fn drain(&self, until: Instant) {
        if let Some(hook) = &self.cfg.webhook {
            hook.drain(until.saturating_duration_since(Instant::now()))
                .await;
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

/// The file's token fingerprint and mtime, if it can be read at all.
async fn current_content(path: &Path) -> Option<Content> {
    let token = read_token_async(path, TokenFormat::Any).await.ok()?;
    Some(content_of(path, &token).await)
}

/// The primary file's token in `format`, and its content as [`current_content`] sees it
/// (read once when the token has the right shape).
async fn read_primary(
    path: &Path,
    format: TokenFormat,
) -> (
    Result<crate::secret::Token, crate::secret::SecretError>,
    Option<Content>,
) {
    let read = read_token_async(path, format).await;
    let content = match &read {
        Ok(token) => Some(content_of(path, token).await),
        Err(_) => current_content(path).await,
    };
    (read, content)
}

async fn content_of(path: &Path, token: &crate::secret::Token) -> Content {
    let mtime = tokio::fs::metadata(path)
        .await
        .and_then(|m| m.modified())
        .ok();
    Content {
        fingerprint: token.fingerprint().clone(),
        mtime,
    }
}

fn publish(
    shared: &Shared,
    cfg: &DaemonConfig,
    report: &RotationReport,
    last_event: &mut Option<(Option<String>, Outcome)>,
) {
    shared.metrics.observe(report);
    tracing::info!(
        outcome = report.outcome.label(),
        duration_secs = report.duration_secs,
        "rotation finished"
    );
    *shared
        .last_report
        .write()
        .unwrap_or_else(|e| e.into_inner()) = Some(report.clone());
    // The same outcome for the same token (a retry, a reconcile) is announced once.
    let key = (report.fingerprint.clone(), report.outcome);
    if report.outcome != Outcome::AlreadyCurrent && last_event.as_ref() != Some(&key) {
        if let Some(hook) = &cfg.webhook {
            hook.send(report);
        }
    }
    *last_event = Some(key);
}
