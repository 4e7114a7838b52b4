//! `token-rotator run`: rotate whenever the secret file changes, one rotation at a time.
//!
//! Reconciles on start (a rotation that finds nothing to do costs no API probe), then
//! waits for watcher ticks. A change that arrives during a rotation is handled right
//! after it, with whatever the file then holds (latest wins). Inconclusive validations
//! (and an unreachable engine, or a target another rotator holds) are retried with
//! backoff until the file changes. A token that was refused, or whose
//! swap was rolled back, is not tried again until the file is written again (its mtime
//! changes), so an unrelated event in the directory does not restart the bot.
//! On shutdown, a rotation in progress may finish or roll back within a bound, and
//! webhook deliveries in flight are drained within the same bound.

pub mod signal;
pub mod watch;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::engine::Backoff;
use crate::error::Outcome;
use crate::rotation::{RotationReport, Rotator};
use crate::secret::{read_token_async, Fingerprint, TokenFormat};
use crate::telemetry::webhook::Webhook;
use crate::telemetry::Shared;
use watch::WatchConfig;

/// First retry delay after an inconclusive validation; doubles up to [`RETRY_MAX`].
pub const RETRY_FIRST: Duration = Duration::from_secs(5);
/// Longest retry delay.
pub const RETRY_MAX: Duration = Duration::from_secs(600);

/// Settings of the daemon beyond one rotation's.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// How the file is watched.
    pub watch: WatchConfig,
    /// Bound for a rotation in progress at shutdown.
    pub shutdown_timeout: Duration,
    /// Where to post events.
    pub webhook: Option<Webhook>,
}

/// A content that failed: same fingerprint and same mtime means "not written again".
#[derive(Debug, Clone, PartialEq)]
struct Failed {
    fingerprint: Fingerprint,
    mtime: Option<SystemTime>,
}

/// Runs until `shutdown` completes.
pub async fn run(
    rotator: Rotator,
    cfg: DaemonConfig,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()>,
) {
    let mut ticks = watch::spawn(cfg.watch.clone());
    tokio::pin!(shutdown);
    let mut pending = true; // reconcile on start
    let mut retry_at: Option<Instant> = None;
    let mut backoff = Backoff::new(RETRY_FIRST, RETRY_MAX);
    let mut last_failed: Option<Failed> = None;
    let mut last_event: Option<(Option<String>, Outcome)> = None;
    tracing::info!(secret_file = %cfg.watch.path.display(), targets = ?rotator.containers, "watching for token changes");
    if let Some(problem) = crate::secret::single_file_mount_problem(&cfg.watch.path) {
        tracing::warn!("{problem}");
    }

    loop {
        if pending {
            pending = false;
            ticks.borrow_and_update();
            if let Some(f) = &last_failed {
                if current_content(&cfg.watch.path).await.as_ref() == Some(f) {
                    tracing::debug!(fingerprint = %f.fingerprint, "secret file not written again since its token failed; waiting");
                    retry_at = None;
                    continue;
                }
            }
            let rotation = rotator.rotate_file();
            tokio::pin!(rotation);
            let report = tokio::select! {
                r = &mut rotation => r,
                _ = &mut shutdown => {
                    tracing::info!(timeout_secs = cfg.shutdown_timeout.as_secs_f64(), "letting the rotation in progress finish before exiting");
                    let bound = Instant::now() + cfg.shutdown_timeout;
                    match tokio::time::timeout_at(bound, rotation).await {
                        Ok(r) if r.outcome == Outcome::Stopped => {
                            tracing::info!("stopped before the rotation changed anything");
                        }
                        Ok(r) => publish(&shared, &cfg, &r, &mut last_event),
                        Err(_) => tracing::error!("the rotation in progress did not finish in time; the next start will find where it stopped"),
                    }
                    drain(&cfg, bound).await;
                    return;
                }
            };
            publish(&shared, &cfg, &report, &mut last_event);
            // A failed rollback is retried too: the next run starts by recovering.
            if report.outcome.is_retryable() {
                let delay = backoff.next_delay();
                tracing::info!(retry_in_secs = delay.as_secs(), "will retry");
                retry_at = Some(Instant::now() + delay);
            } else {
                retry_at = None;
                backoff.reset();
                let failed = matches!(
                    report.outcome,
                    Outcome::Rejected | Outcome::RolledBack | Outcome::BadTarget
                );
                last_failed = if failed {
                    current_content(&cfg.watch.path).await
                } else {
                    None
                };
            }
            continue;
        }
        tokio::select! {
            _ = &mut shutdown => {
                drain(&cfg, Instant::now() + cfg.shutdown_timeout).await;
                return;
            }
            changed = ticks.changed() => {
                if changed.is_err() {
                    tracing::error!("the file watcher stopped");
                    return;
                }
                pending = true;
                if last_failed.is_some() && current_content(&cfg.watch.path).await != last_failed {
                    last_failed = None;
                }
            }
            _ = sleep_until(retry_at), if retry_at.is_some() => pending = true,
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

/// Waits for webhook deliveries in flight, until `until`.
async fn drain(cfg: &DaemonConfig, until: Instant) {
    if let Some(hook) = &cfg.webhook {
        hook.drain(until.saturating_duration_since(Instant::now()))
            .await;
    }
}

/// The file's token fingerprint and mtime, if it can be read at all.
async fn current_content(path: &Path) -> Option<Failed> {
    let token = read_token_async(path, TokenFormat::Any).await.ok()?;
    let mtime = tokio::fs::metadata(path)
        .await
        .and_then(|m| m.modified())
        .ok();
    Some(Failed {
        fingerprint: token.fingerprint().clone(),
        mtime,
    })
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
