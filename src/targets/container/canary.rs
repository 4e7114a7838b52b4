//! The canary: before a target is touched, the bot's own client, in the bot's own image,
//! tries the new token. A throwaway container runs from the target's image ID with the
//! target's env (the new token in place), user, working dir and network, but no published
//! ports, no volumes or mounts, no restart policy and no healthcheck. Its command is the
//! canary command; it must exit 0 within the verify timeout. It is removed on every path;
//! a canary left by a crash is removed by the next run's undo (its name is a marker).

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::{ContainerCreateBody, HealthConfig, HostConfig};
use bollard::query_parameters::{CreateContainerOptionsBuilder, LogsOptions};
use bollard::Docker;
use futures_util::StreamExt;

use super::observe::Inspected;
use super::spec::replace_env;
use super::ContainerConfig;
use crate::engine::names::Marker;
use crate::engine::{describe, inspect, is_transport, labels, remove_keep_volumes, start};
use crate::targets::{fault, CanaryError, Ctx, Observed};

/// Runs the canary for `seen` with `exec`; `Ok` when it exited 0 in time.
pub async fn run(
    docker: &Docker,
    seen: &Observed<Inspected>,
    cfg: &ContainerConfig,
    exec: &[String],
    ctx: Ctx<'_>,
) -> Result<(), CanaryError> {
    let old = &seen.state.0;
    let image = old.image.clone().unwrap_or_default();
    let name = Marker::Canary.name(&seen.name, ctx.rotation);
    let engine = |e: bollard::errors::Error| CanaryError::Engine {
        target: seen.name.clone(),
        unreachable: is_transport(&e),
        reason: ctx.redactor.redact(&describe(&e)),
    };
    let created = docker
        .create_container(
            Some(CreateContainerOptionsBuilder::default().name(&name).build()),
            body(old, &image, cfg, exec, ctx),
        )
        .await
        .map_err(engine)?;
    let id = created.id;
    tracing::debug!(container = %seen.name, canary = %name, "canary created");
    let result = watch(docker, &id, seen, &image, cfg, ctx).await;
    // Removed on every path (a crash is left to the next run's undo).
    if let Err(e) = crate::engine::retrying(cfg.engine_retry, "remove the canary", || {
        remove_keep_volumes(docker, &id)
    })
    .await
    {
        tracing::warn!(
            "could not remove the canary {name}: {}; the next run removes it",
            describe(&e)
        );
    }
    result
}

async fn watch(
    docker: &Docker,
    id: &str,
    seen: &Observed<Inspected>,
    image: &str,
    cfg: &ContainerConfig,
    ctx: Ctx<'_>,
) -> Result<(), CanaryError> {
    let engine = |e: bollard::errors::Error| CanaryError::Engine {
        target: seen.name.clone(),
        unreachable: is_transport(&e),
        reason: ctx.redactor.redact(&describe(&e)),
    };
    start(docker, id).await.map_err(engine)?;
    if let Err(e) = fault::point("during-canary").await {
        return Err(CanaryError::Engine {
            target: seen.name.clone(),
            unreachable: false,
            reason: e.to_string(),
        });
    }
    let deadline = tokio::time::Instant::now() + cfg.verify_timeout;
    let code = loop {
        let info = inspect(docker, id).await.map_err(engine)?;
        let state = info.and_then(|i| i.state).unwrap_or_default();
        if state.running != Some(true) {
            break state.exit_code.unwrap_or(-1);
        }
        if tokio::time::Instant::now() >= deadline {
            let output = tail(docker, id, ctx).await;
            return Err(CanaryError::TimedOut {
                target: seen.name.clone(),
                image: crate::engine::short(image.trim_start_matches("sha256:")).to_string(),
                secs: cfg.verify_timeout.as_secs(),
                output,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    if code == 0 {
        tracing::info!(container = %seen.name, "the canary accepted the token with the bot's own client");
        return Ok(());
    }
    Err(CanaryError::Failed {
        target: seen.name.clone(),
        image: crate::engine::short(image.trim_start_matches("sha256:")).to_string(),
        code,
        output: tail(docker, id, ctx).await,
    })
}

/// The target's env (new token in place), user, working dir and network; nothing else.
fn body(
    old: &bollard::models::ContainerInspectResponse,
    image: &str,
    cfg: &ContainerConfig,
    exec: &[String],
    ctx: Ctx<'_>,
) -> ContainerCreateBody {
    let config = old.config.clone().unwrap_or_default();
    let host = old.host_config.clone().unwrap_or_default();
    let mut env = config.env.unwrap_or_default();
    replace_env(&mut env, &cfg.env_var, ctx.token.expose());
    // The target's network, but only its first: enough to reach what the bot reaches.
    let mode = host
        .network_mode
        .clone()
        .filter(|m| !m.starts_with("container:"));
    ContainerCreateBody {
        image: Some(image.to_string()),
        env: Some(env),
        user: config.user,
        working_dir: config.working_dir,
        entrypoint: Some(exec[..1].to_vec()),
        cmd: Some(exec[1..].to_vec()),
        labels: Some(HashMap::from([
            (labels::CANARY.to_string(), "true".to_string()),
            (labels::ROTATION.to_string(), ctx.rotation.to_string()),
        ])),
        healthcheck: Some(HealthConfig {
            test: Some(vec!["NONE".into()]),
            ..Default::default()
        }),
        host_config: Some(HostConfig {
            network_mode: mode,
            extra_hosts: host.extra_hosts,
            dns: host.dns,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Its last output lines, redacted, prefixed with ": " (empty when it printed nothing).
async fn tail(docker: &Docker, id: &str, ctx: Ctx<'_>) -> String {
    let opts = LogsOptions {
        stdout: true,
        stderr: true,
        tail: "10".into(),
        ..Default::default()
    };
    let mut out = Vec::new();
    let mut logs = docker.logs(id, Some(opts));
    while let Some(Ok(chunk)) = logs.next().await {
        out.extend_from_slice(&chunk.into_bytes());
        if out.len() > 16 * 1024 {
            break;
        }
    }
    let text = ctx.redactor.redact(&String::from_utf8_lossy(&out));
    let text: String = text
        .trim()
        .chars()
        .rev()
        .take(400)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    if text.is_empty() {
        String::new()
    } else {
        format!(": {}", text.replace('\n', " | "))
    }
}
