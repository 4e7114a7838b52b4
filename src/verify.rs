//! Stage 5: prove the new container is up and uses the new credential.
//!
//! It must stay running for the settle period, be healthy if it has a healthcheck,
//! carry the new token in its env, and, if asked, pass a command run inside it through
//! the exec API (no shell needed in the image). Failures are retried until the timeout
//! because the bot may still be starting; the caller rolls back on error.

use std::time::Duration;

use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{ContainerInspectResponse, HealthStatusEnum};
use bollard::query_parameters::InspectContainerOptions;
use bollard::Docker;
use futures_util::StreamExt;
use tokio::time::Instant;

use crate::docker::describe;
use crate::plan::env_value;
use crate::secret::Token;

/// How a new container is verified.
#[derive(Debug, Clone)]
pub struct VerifyConfig {
    /// Env var carrying the token.
    pub env_var: String,
    /// How long it must stay running.
    pub settle: Duration,
    /// Give up (and roll back) after this long.
    pub timeout: Duration,
    /// Command to run inside it, already split into words.
    pub exec: Option<Vec<String>>,
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
    /// The engine failed.
    #[error("engine error while verifying: {0}")]
    Engine(String),
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
    cfg: &VerifyConfig,
) -> Result<(), VerifyError> {
    let deadline = Instant::now() + cfg.timeout.max(cfg.settle);
    // Measure the settle period from the first time we see this run of the container.
    let mut seen_start: Option<(String, Instant)> = None;
    let mut was_unreachable = false;
    loop {
        let (pending, unreachable) = match check_once(docker, id, token, cfg, &mut seen_start).await
        {
            Ok(()) => return Ok(()),
            Err(Check::Failed(e)) => return Err(e),
            Err(Check::Pending(why)) => (why, false),
            Err(Check::Unreachable(why)) => (why, true),
        };
        if Instant::now() >= deadline {
            let secs = cfg.timeout.as_secs_f64();
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
    let info = docker
        .inspect_container(id, None::<InspectContainerOptions>)
        .await
        .map_err(|e| VerifyError::Engine(describe(&e)))?;
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
    cfg: &VerifyConfig,
    seen_start: &mut Option<(String, Instant)>,
) -> Result<(), Check> {
    let info = docker
        .inspect_container(id, None::<InspectContainerOptions>)
        .await
        .map_err(engine_check)?;
    if !env_value(&info, &cfg.env_var).is_some_and(|v| token.matches(v)) {
        return Err(Check::Failed(VerifyError::WrongToken(cfg.env_var.clone())));
    }
    running_for_settle(&info, cfg.settle, seen_start)?;
    healthy(&info)?;
    if let Some(cmd) = &cfg.exec {
        run_exec(docker, id, cmd, token).await?;
    }
    Ok(())
}

fn running_for_settle(
    info: &ContainerInspectResponse,
    settle: Duration,
    seen_start: &mut Option<(String, Instant)>,
) -> Result<(), Check> {
    let state = info.state.clone().unwrap_or_default();
    if state.restarting.unwrap_or(false) {
        *seen_start = None;
        return Err(Check::Pending(format!(
            "restarting (exit code {})",
            state.exit_code.unwrap_or(0)
        )));
    }
    if !state.running.unwrap_or(false) {
        let restarts = info
            .host_config
            .as_ref()
            .and_then(|h| h.restart_policy.as_ref())
            .and_then(|p| p.name)
            .is_some_and(|n| {
                !matches!(
                    n,
                    bollard::models::RestartPolicyNameEnum::NO
                        | bollard::models::RestartPolicyNameEnum::EMPTY
                )
            });
        let exited = VerifyError::Exited {
            code: state.exit_code.unwrap_or(-1),
            detail: state
                .error
                .filter(|e| !e.is_empty())
                .map(|e| format!(": {e}"))
                .unwrap_or_default(),
        };
        // With a restart policy the engine may bring it back: wait for the timeout.
        return Err(if restarts {
            *seen_start = None;
            Check::Pending(exited.to_string())
        } else {
            Check::Failed(exited)
        });
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

fn healthy(info: &ContainerInspectResponse) -> Result<(), Check> {
    let Some(health) = info.state.as_ref().and_then(|s| s.health.as_ref()) else {
        return Ok(()); // no healthcheck
    };
    match health.status {
        Some(HealthStatusEnum::HEALTHY) | Some(HealthStatusEnum::NONE) | None => Ok(()),
        Some(HealthStatusEnum::UNHEALTHY) => {
            let last = health
                .log
                .as_ref()
                .and_then(|l| l.last())
                .map(|r| {
                    let output = r.output.as_deref().unwrap_or("").trim();
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
    if crate::docker::is_transport(&e) {
        Check::Unreachable(describe(&e))
    } else {
        Check::Failed(VerifyError::Engine(describe(&e)))
    }
}

async fn run_exec(docker: &Docker, id: &str, cmd: &[String], token: &Token) -> Result<(), Check> {
    let engine = engine_check;
    let exec = docker
        .create_exec(
            id,
            CreateExecOptions {
                cmd: Some(cmd.to_vec()),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            },
        )
        .await
        .map_err(engine)?;
    let mut output = Vec::new();
    if let StartExecResults::Attached {
        output: mut stream, ..
    } = docker.start_exec(&exec.id, None).await.map_err(engine)?
    {
        while let Some(chunk) = stream.next().await {
            let Ok(chunk) = chunk else { break };
            output.extend_from_slice(&chunk.into_bytes());
            if output.len() > 64 * 1024 {
                output.drain(..output.len() - 64 * 1024);
            }
        }
    }
    let inspect = docker.inspect_exec(&exec.id).await.map_err(engine)?;
    let code = inspect.exit_code.unwrap_or(-1);
    if code == 0 {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&output).replace(token.expose(), "<redacted>");
    let tail: String = text
        .trim()
        .chars()
        .rev()
        .take(300)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let output = if tail.is_empty() {
        String::new()
    } else {
        format!(": {}", tail.replace('\n', " | "))
    };
    // An exec failure is retried: the bot may still be starting.
    Err(Check::Pending(
        VerifyError::ExecFailed { code, output }.to_string(),
    ))
}
