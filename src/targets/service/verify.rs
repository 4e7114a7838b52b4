//! Proving a service update: Swarm's rollout completes, every running task carries the
//! token, and each task container on this node passes the same checks as a swapped
//! container (running for `--settle`, not restarted, healthy, `--verify-exec`).

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use bollard::models::{ServiceUpdateStatusStateEnum as UpdateState, TaskState};
use bollard::query_parameters::{ListImagesOptions, ListTasksOptionsBuilder};
use bollard::Docker;
use tokio::time::Instant;

use super::{env_value, read};
use crate::engine::{describe, is_transport};
use crate::targets::container::verify::{verify, VerifyError};
use crate::targets::container::ContainerConfig;
use crate::targets::Ctx;

/// Why a service update did not prove itself.
#[derive(Debug, thiserror::Error)]
pub enum ServiceVerifyError {
    /// Swarm stopped the rollout itself (its failure action, or it rolled back).
    #[error("Swarm ended the rollout as {state}{}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Rollout {
        /// The update state Swarm reports.
        state: String,
        /// Its message, if any.
        message: Option<String>,
    },
    /// The rollout or the checks did not finish in time.
    #[error("not verified within {secs:.0}s: {last}")]
    Timeout {
        /// The timeout.
        secs: f64,
        /// What was still missing.
        last: String,
    },
    /// A running task does not carry the new token.
    #[error("task {0} runs without the new token")]
    WrongToken(String),
    /// A task container on this node failed the container checks.
    #[error("task container {task}: {source}")]
    Task {
        /// The task's name or ID.
        task: String,
        /// The container check that failed.
        #[source]
        source: VerifyError,
    },
    /// The engine failed.
    #[error("engine error while verifying: {}", describe(.0))]
    Engine(#[source] bollard::errors::Error),
}

impl ServiceVerifyError {
    /// Whether the engine could not be reached (not a verdict on the service).
    pub fn is_engine_unreachable(&self) -> bool {
        match self {
            ServiceVerifyError::Engine(e) => is_transport(e),
            ServiceVerifyError::Task { source, .. } => source.is_engine_unreachable(),
            _ => false,
        }
    }
}

fn label(s: Option<UpdateState>) -> String {
    s.map_or("none".into(), |s| format!("{s:?}").to_lowercase())
}

/// Waits until Swarm's `UpdateStatus` says `completed`, then checks the running tasks.
/// `before`: when the update status before ours started (empty: there was none), so that
/// a status still telling of an earlier update is not taken for ours.
pub async fn rollout(
    docker: &Docker,
    name: &str,
    before: Option<&str>,
    cfg: &ContainerConfig,
    ctx: Ctx<'_>,
) -> Result<(), ServiceVerifyError> {
    let deadline = Instant::now() + cfg.verify_timeout.max(cfg.settle);
    wait_for_rollout(docker, name, before, cfg, deadline).await?;
    tracing::debug!(
        service = name,
        "Swarm completed the rollout; checking the tasks"
    );
    // Every task that is meant to run, and runs, carries the token.
    let filters = HashMap::from([
        ("service".to_string(), vec![name.to_string()]),
        ("desired-state".to_string(), vec!["running".to_string()]),
    ]);
    let tasks = docker
        .list_tasks(Some(
            ListTasksOptionsBuilder::default().filters(&filters).build(),
        ))
        .await
        .map_err(ServiceVerifyError::Engine)?;
    let left = deadline.saturating_duration_since(Instant::now());
    let local_cfg = ContainerConfig {
        verify_timeout: left.max(cfg.settle + Duration::from_secs(1)),
        ..cfg.clone()
    };
    for t in tasks {
        check_task(docker, t, &local_cfg, ctx).await?;
    }
    Ok(())
}

/// Polls the service until its `UpdateStatus` says our update `completed` (a status that
/// started before `before` tells of an earlier update), or fails at `deadline`.
async fn wait_for_rollout(
    docker: &Docker,
    name: &str,
    before: Option<&str>,
    cfg: &ContainerConfig,
    deadline: Instant,
) -> Result<(), ServiceVerifyError> {
    // Swarm starts rolling an update out a moment after it was accepted: until then its
    // `UpdateStatus` still tells of the update before. Only a status that started later
    // than that one is ours.
    let before = before.filter(|b| !b.is_empty()).and_then(parse_time);
    loop {
        let s = docker
            .inspect_service(name, None)
            .await
            .map_err(ServiceVerifyError::Engine)?;
        let status = s.update_status.unwrap_or_default();
        let started = status.started_at.as_deref().and_then(parse_time);
        let current = match (started, before) {
            (Some(t), Some(b)) => t > b,
            (Some(_), None) => true,
            (None, _) => false,
        };
        match status.state {
            Some(UpdateState::COMPLETED) if current => return Ok(()),
            Some(UpdateState::UPDATING) | None => {}
            _ if !current => {} // the status of an earlier update: ours has not begun
            other => {
                return Err(ServiceVerifyError::Rollout {
                    state: label(other),
                    message: status.message,
                })
            }
        }
        if Instant::now() >= deadline {
            return Err(ServiceVerifyError::Timeout {
                secs: cfg.verify_timeout.as_secs_f64(),
                last: format!(
                    "Swarm is still rolling out service {name} (v{})",
                    s.version.and_then(|v| v.index).unwrap_or_default()
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// One task that is meant to run: it carries the token, and its container (on this node)
/// passes every container check, or (on another node) its task runs.
async fn check_task(
    docker: &Docker,
    t: bollard::models::Task,
    cfg: &ContainerConfig,
    ctx: Ctx<'_>,
) -> Result<(), ServiceVerifyError> {
    let task = t.name.clone().or(t.id.clone()).unwrap_or_default();
    let spec = t.spec.as_ref().map(|s| bollard::models::ServiceSpec {
        task_template: Some(s.clone()),
        ..Default::default()
    });
    let carries = spec
        .as_ref()
        .and_then(|s| env_value(s, &cfg.env_var))
        .is_some_and(|v| ctx.token.matches(v));
    if !carries {
        return Err(ServiceVerifyError::WrongToken(task));
    }
    let status = t.status.unwrap_or_default();
    let container = status.container_status.and_then(|c| c.container_id);
    // A task container on this node gets every container check; one on another node
    // is known only by its task state.
    match container {
        Some(id)
            if crate::engine::inspect(docker, &id)
                .await
                .ok()
                .flatten()
                .is_some() =>
        {
            verify(docker, &id, ctx.token, cfg, ctx.redactor)
                .await
                .map_err(|source| ServiceVerifyError::Task { task, source })
        }
        _ if status.state == Some(TaskState::RUNNING) => Ok(()),
        _ => Err(ServiceVerifyError::Rollout {
            state: format!("task {task} {}", label_task(status.state)),
            message: status.err,
        }),
    }
}

/// An engine timestamp (RFC 3339, nanoseconds).
fn parse_time(t: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(t).ok()
}

fn label_task(s: Option<TaskState>) -> String {
    s.map_or("unknown".into(), |s| format!("{s:?}").to_lowercase())
}

/// Waits until Swarm says the rollback is complete (or there is nothing to roll back).
pub async fn rolled_back(
    docker: &Docker,
    name: &str,
    window: Duration,
) -> Result<(), ServiceVerifyError> {
    let deadline = Instant::now() + window;
    loop {
        let state = read(docker, name)
            .await
            .map_err(ServiceVerifyError::Engine)?
            .and_then(|(_, s)| s);
        match state {
            Some(UpdateState::ROLLBACK_COMPLETED) | None => return Ok(()),
            other if Instant::now() >= deadline => {
                return Err(ServiceVerifyError::Timeout {
                    secs: window.as_secs_f64(),
                    last: format!("Swarm's rollback is {}", label(other)),
                })
            }
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// A local image for the service's lock marker: the service's own if this node has it,
/// else any.
pub async fn anchor_image(docker: &Docker, name: &str) -> String {
    let wanted = read(docker, name)
        .await
        .ok()
        .flatten()
        .and_then(|(s, _)| s.spec.task_template?.container_spec?.image);
    if let Some(image) = wanted {
        if let Ok(img) = docker.inspect_image(&image).await {
            if let Some(id) = img.id {
                return id;
            }
        }
    }
    docker
        .list_images(None::<ListImagesOptions>)
        .await
        .ok()
        .and_then(|l| l.into_iter().next())
        .map(|i| i.id)
        .unwrap_or_default()
}
