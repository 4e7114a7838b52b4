//! Prove the replacement is up and uses the new credential.
//!
//! It must stay running for the settle period, be healthy if it has a healthcheck,
//! carry the new token in its env, and, if asked, pass a command run inside it through
//! the exec API (no shell needed in the image). Failures are retried until the timeout
//! because the bot may still be starting; the pipeline undoes the swap on error. All text
//! that comes from the container (exec and healthcheck output, the engine's `State.Error`)
//! passes through the redactor before it is kept anywhere.

use std::time::Duration;

use bollard::models::{ContainerInspectResponse, HealthStatusEnum};
use bollard::Docker;
use tokio::time::Instant;

use super::exec::{self, ExecError};
use super::observe::env_value;
use super::step::{self, failed};
use super::ContainerConfig;
use crate::engine::lenient::inspect_container;
use crate::engine::{describe, is_transport, Refused};
use crate::secret::{Redactor, Token};
use crate::targets::{fault, Change, Ctx, StepError};

/// Verifies the replacement of `change`: a stopped target's only by its env, a running
/// one's by every check until the timeout.
pub async fn verify_change(
    docker: &Docker,
    target: &str,
    change: &Change,
    cfg: &ContainerConfig,
    ctx: Ctx<'_>,
) -> Result<(), StepError> {
    let as_step = |e: VerifyError| {
        let unreachable = e.is_engine_unreachable();
        failed(target, step::VERIFY, unreachable, e)
    };
    if !change.old_running {
        return verify_env_only(docker, &change.new_id, ctx.token, &cfg.env_var)
            .await
            .map_err(as_step);
    }
    fault::point("during-verify")
        .await
        .map_err(|e| failed(target, step::VERIFY, false, e))?;
    verify(docker, &change.new_id, ctx.token, cfg, ctx.redactor)
        .await
        .map_err(as_step)
}

/// Why the new container failed verification.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// It stopped.
    #[error("the new container exited (code {code}){detail}")]
    Exited {
        /// Exit code.
        code: i64,
        /// The engine's error, if any.
        detail: String,
    },
    /// The engine restarted it (or is about to): it crashed at least once.
    #[error("the new container crashed and was restarted by its restart policy ({restarts} restart(s){detail})")]
    Restarted {
        /// The engine's restart count (0 while it is between two restarts).
        restarts: i64,
        /// Its last exit code and the engine's error, if any.
        detail: String,
    },
    /// Its healthcheck failed.
    #[error("the new container is unhealthy: {0}")]
    Unhealthy(String),
    /// Its env does not hold the new token.
    #[error("the new container's env does not carry the new token in {0}")]
    WrongToken(String),
    /// The exec command failed.
    #[error("verification command exited {code}{output}")]
    ExecFailed {
        /// Exit code (or -1 if none).
        code: i64,
        /// Tail of its output, prefixed with ": ".
        output: String,
    },
    /// The exec command cannot run at all in the container (126: not executable,
    /// 127: not found): waiting will not help.
    #[error("the verification command cannot run in the new container (exit {code}: {why}); check --verify-exec{output}")]
    ExecCannotRun {
        /// 126 or 127.
        code: i64,
        /// What the code means.
        why: &'static str,
        /// Tail of its output, prefixed with ": ".
        output: String,
    },
    /// The socket proxy refused an exec call: allow it, or run without --verify-exec.
    #[error("{0}")]
    Refused(#[source] Box<Refused>),
    /// The engine failed.
    #[error("engine error while verifying: {}", describe(.0))]
    Engine(#[source] bollard::errors::Error),
    /// The timeout ran out while it was still not ready.
    #[error("not verified within {secs:.0}s: {last}")]
    Timeout {
        /// The timeout.
        secs: f64,
        /// The last thing still missing.
        last: String,
    },
    /// The engine could not be reached until the timeout ran out.
    #[error("not verified within {secs:.0}s: {reason}")]
    EngineUnreachable {
        /// The timeout.
        secs: f64,
        /// The last connection error.
        reason: String,
    },
}

impl VerifyError {
    /// Whether it failed because the engine was gone, not because of the container.
    pub fn is_engine_unreachable(&self) -> bool {
        matches!(self, VerifyError::EngineUnreachable { .. })
    }
}

/// A condition still pending (retry) or failed for good (roll back now).
enum Check {
    Pending(String),
    /// Pending because the engine cannot be reached (a restart): also retried.
    Unreachable(String),
    Failed(VerifyError),
}

/// Waits until `id` passes every check, or fails.
pub async fn verify(
    docker: &Docker,
    id: &str,
    token: &Token,
    cfg: &ContainerConfig,
    redactor: &Redactor,
) -> Result<(), VerifyError> {
    let deadline = Instant::now() + cfg.verify_timeout.max(cfg.settle);
    // Measure the settle period from the first time we see this run of the container.
    let mut seen_start: Option<(String, Instant)> = None;
    let mut was_unreachable = false;
    let mut mode = exec::Mode::default();
    loop {
        let checked =
            check_once(docker, id, token, cfg, redactor, &mut seen_start, &mut mode).await;
        let (pending, unreachable) = match checked {
            Ok(()) => return Ok(()),
            Err(Check::Failed(e)) => return Err(e),
            Err(Check::Pending(why)) => (why, false),
            Err(Check::Unreachable(why)) => (why, true),
        };
        if Instant::now() >= deadline {
            let secs = cfg.verify_timeout.as_secs_f64();
            return Err(if unreachable {
                VerifyError::EngineUnreachable {
                    secs,
                    reason: pending,
                }
            } else {
                VerifyError::Timeout {
                    secs,
                    last: pending,
                }
            });
        }
        if unreachable != was_unreachable {
            if unreachable {
                tracing::warn!(
                    container = id,
                    "{pending}; waiting for it until the verify timeout"
                );
            } else {
                tracing::info!(container = id, "the engine answers again");
            }
            was_unreachable = unreachable;
        }
        tracing::debug!(container = id, pending = %pending, "verification pending");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Checks only that a (stopped) container's env carries the token.
pub async fn verify_env_only(
    docker: &Docker,
    id: &str,
    token: &Token,
    env_var: &str,
) -> Result<(), VerifyError> {
    let info = inspect_container(docker, id)
        .await
        .map_err(VerifyError::Engine)?;
    if env_value(&info, env_var).is_some_and(|v| token.matches(v)) {
        Ok(())
    } else {
        Err(VerifyError::WrongToken(env_var.to_string()))
    }
}

async fn check_once(
    docker: &Docker,
    id: &str,
    token: &Token,
    cfg: &ContainerConfig,
    redactor: &Redactor,
    seen_start: &mut Option<(String, Instant)>,
    mode: &mut exec::Mode,
) -> Result<(), Check> {
    let info = inspect_container(docker, id).await.map_err(engine_check)?;
    if !env_value(&info, &cfg.env_var).is_some_and(|v| token.matches(v)) {
        return Err(Check::Failed(VerifyError::WrongToken(cfg.env_var.clone())));
    }
    running_for_settle(&info, cfg.settle, seen_start, redactor)?;
    healthy(&info, redactor)?;
    if let Some(cmd) = &cfg.verify_exec {
        run_exec(docker, id, cmd, cfg, mode, redactor).await?;
    }
    Ok(())
}

// A check's failure is built once per verification, not in a hot path.
#[allow(clippy::result_large_err)]
fn running_for_settle(
    info: &ContainerInspectResponse,
    settle: Duration,
    seen_start: &mut Option<(String, Instant)>,
    redactor: &Redactor,
) -> Result<(), Check> {
    let state = info.state.clone().unwrap_or_default();
    let detail = |state: &bollard::models::ContainerState| {
        state
            .error
            .as_deref()
            .filter(|e| !e.is_empty())
            .map(|e| format!(": {}", redactor.redact(e)))
            .unwrap_or_default()
    };
    // A new container that the engine restarted, or is restarting, crashed: on 20.10 a
    // crash loop can look running (exit 0, restart count 3) at the moment of a check, so
    // the count decides, whatever the settle, on every engine.
    let restarts = info.restart_count.unwrap_or(0);
    if restarts > 0 || state.restarting.unwrap_or(false) {
        *seen_start = None;
        return Err(Check::Failed(VerifyError::Restarted {
            restarts,
            detail: format!(
                ", last exit code {}{}",
                state.exit_code.unwrap_or(0),
                detail(&state)
            ),
        }));
    }
    if !state.running.unwrap_or(false) {
        // Exited: with or without a restart policy, it did not stay up.
        return Err(Check::Failed(VerifyError::Exited {
            code: state.exit_code.unwrap_or(-1),
            detail: detail(&state),
        }));
    }
    let started = state.started_at.unwrap_or_default();
    let since = match seen_start {
        Some((s, at)) if *s == started => *at,
        _ => {
            let now = Instant::now();
            *seen_start = Some((started, now));
            now
        }
    };
    let up = since.elapsed();
    if up < settle {
        return Err(Check::Pending(format!(
            "running for {:.1}s of the {:.1}s settle period",
            up.as_secs_f64(),
            settle.as_secs_f64()
        )));
    }
    Ok(())
}

#[allow(clippy::result_large_err)]
fn healthy(info: &ContainerInspectResponse, redactor: &Redactor) -> Result<(), Check> {
    let Some(health) = info.state.as_ref().and_then(|s| s.health.as_ref()) else {
        return Ok(()); // no healthcheck
    };
    if super::compat::without_healthcheck(health) {
        return Ok(());
    }
    match health.status {
        Some(HealthStatusEnum::HEALTHY) | Some(HealthStatusEnum::NONE) | None => Ok(()),
        Some(HealthStatusEnum::UNHEALTHY) => {
            let last = health
                .log
                .as_ref()
                .and_then(|l| l.last())
                .map(|r| {
                    let output = redactor.redact(r.output.as_deref().unwrap_or("").trim());
                    let output: String = output.chars().take(200).collect();
                    format!("healthcheck exited {}: {output}", r.exit_code.unwrap_or(-1))
                })
                .unwrap_or_else(|| "healthcheck failing".into());
            Err(Check::Failed(VerifyError::Unhealthy(last)))
        }
        Some(_) => Err(Check::Pending("healthcheck still starting".into())),
    }
}

/// An unreachable engine (a restart) is waited out until the timeout; an answer is final.
fn engine_check(e: bollard::errors::Error) -> Check {
    if is_transport(&e) {
        Check::Unreachable(describe(&e))
    } else {
        Check::Failed(VerifyError::Engine(e))
    }
}

async fn run_exec(
    docker: &Docker,
    id: &str,
    cmd: &[String],
    cfg: &ContainerConfig,
    mode: &mut exec::Mode,
    redactor: &Redactor,
) -> Result<(), Check> {
    let finished = match exec::run(docker, id, cmd, mode, cfg.verify_timeout).await {
        Ok(f) => f,
        Err(ExecError::Engine(e)) => return Err(engine_check(e)),
        Err(ExecError::Refused(r)) => return Err(Check::Failed(VerifyError::Refused(Box::new(r)))),
        Err(still @ ExecError::StillRunning(_)) => return Err(Check::Pending(still.to_string())),
    };
    let code = finished.code;
    if code == 0 {
        return Ok(());
    }
    let output = tail(&finished.output, redactor);
    // 126 and 127 are the runtime saying the command cannot be run: fail now. Any other
    // failure is retried: the bot may still be starting.
    let why = match code {
        126 => "not executable",
        127 => "not found",
        _ => {
            return Err(Check::Pending(
                VerifyError::ExecFailed { code, output }.to_string(),
            ))
        }
    };
    Err(Check::Failed(VerifyError::ExecCannotRun {
        code,
        why,
        output,
    }))
}

/// The redacted tail of an exec's output, prefixed with ": " (empty when there is none).
fn tail(output: &[u8], redactor: &Redactor) -> String {
    // The buffer limit may have cut a token in half: the redactor removes pieces too.
    let text = redactor.redact(&String::from_utf8_lossy(output));
    let tail: String = text
        .trim()
        .chars()
        .rev()
        .take(300)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    if tail.is_empty() {
        String::new()
    } else {
        format!(": {}", tail.replace('\n', " | "))
    }
}
