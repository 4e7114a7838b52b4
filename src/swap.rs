//! Stage 4b: replace one container by its copy carrying the new token, or roll back.
//!
//! Order, as compose does it but with a way back: create the replacement under a
//! temporary name; stop the old one (its own stop signal and timeout); rename it aside;
//! give the replacement the original name; start it; verify it; only then remove the
//! old one. Any failure before verification passes removes the replacement and puts
//! the old container back under its name, running if it was. Volumes are never removed.

use bollard::models::{EndpointSettings, NetworkConnectRequest};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, InspectContainerOptions, StopContainerOptions,
};
use bollard::Docker;
use std::time::Duration;

pub use crate::docker::short;
use crate::docker::{
    describe, remove_keep_volumes, rename, retrying, start, LABEL_FINGERPRINT, LABEL_OLD_RUNNING,
    LABEL_REPLACES, LABEL_ROTATION, LABEL_SWAPPED_AT, LABEL_TARGET_NAME,
};
use crate::plan::Target;
use crate::recover::Marker;
use crate::secret::Token;
use crate::spec::{replacement, SpecError};
use crate::verify::{verify, verify_env_only, VerifyConfig, VerifyError};

/// A step of the swap, named in errors so an operator knows how far it got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Building the replacement's configuration.
    Prepare,
    /// `POST /containers/create`.
    Create,
    /// Connecting networks beyond the first.
    ConnectNetwork,
    /// Stopping the old container.
    StopOld,
    /// Renaming the old container aside.
    RenameOld,
    /// Giving the replacement the original name.
    RenameNew,
    /// Starting the replacement.
    StartNew,
    /// Verifying the replacement.
    Verify,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Step::Prepare => "prepare the replacement",
            Step::Create => "create the replacement",
            Step::ConnectNetwork => "connect the replacement's networks",
            Step::StopOld => "stop the old container",
            Step::RenameOld => "rename the old container aside",
            Step::RenameNew => "give the replacement the original name",
            Step::StartNew => "start the replacement",
            Step::Verify => "verify the replacement",
        })
    }
}

/// A swap that failed. `rollback` says whether the old container was restored.
#[derive(Debug, thiserror::Error)]
#[error("could not {step} of {name}: {reason}; {rollback}")]
pub struct SwapError {
    /// The target's name.
    pub name: String,
    /// Where it failed.
    pub step: Step,
    /// Why.
    pub reason: String,
    /// What the rollback did.
    pub rollback: Rollback,
    /// Whether it failed because the engine could not be reached (worth retrying later),
    /// rather than because of the replacement.
    pub engine_unreachable: bool,
}

/// The result of undoing a failed swap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rollback {
    /// Nothing had been changed yet.
    NothingToUndo,
    /// The old container is back under its name, in the state it was in.
    Restored,
    /// Undoing failed: an operator must look.
    Failed(String),
}

impl std::fmt::Display for Rollback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rollback::NothingToUndo => f.write_str("nothing was changed"),
            Rollback::Restored => f.write_str("rolled back: the old container is back as it was"),
            Rollback::Failed(e) => write!(f, "ROLLBACK FAILED: {e}"),
        }
    }
}

/// A completed swap.
#[derive(Debug, Clone)]
pub struct Swapped {
    /// The replaced container's ID (now removed).
    pub old_id: String,
    /// The new container's ID.
    pub new_id: String,
    /// Set if the old container could not be removed afterwards (it is stopped, renamed aside).
    pub cleanup_warning: Option<String>,
}

/// What one swap needs besides the target.
#[derive(Debug, Clone)]
pub struct SwapContext {
    /// The rotation this swap belongs to.
    pub rotation_id: String,
    /// Env var carrying the token.
    pub env_var: String,
    /// How to verify the replacement.
    pub verify: VerifyConfig,
    /// How long to ride out an unreachable engine while undoing or finishing a swap.
    pub engine_retry: Duration,
}

/// How far a swap got: what a rollback must undo.
#[derive(Debug, Default)]
struct Progress {
    new_id: Option<String>,
    old_stopped: bool,
    old_renamed: bool,
}

/// Replaces `target` by a copy carrying `token`.
pub async fn swap(
    docker: &Docker,
    target: &Target,
    token: &Token,
    ctx: &SwapContext,
) -> Result<Swapped, SwapError> {
    let mut progress = Progress::default();
    match run_steps(docker, target, token, ctx, &mut progress).await {
        Ok(new_id) => {
            // Renamed first: `-tr-done-` tells a recovery the swap was verified.
            let done = Marker::Done.name(&target.name, &ctx.rotation_id);
            let w = ctx.engine_retry;
            let renamed = retrying(w, "mark the old container done", || {
                rename(docker, &target.id, &done)
            })
            .await;
            fault_point("before-remove").await;
            let removed = match renamed {
                Ok(()) => {
                    retrying(w, "remove the old container", || {
                        remove_keep_volumes(docker, &target.id)
                    })
                    .await
                }
                Err(e) => Err(e),
            };
            let cleanup_warning = removed.err().map(|e| describe(&e)).map(|e| {
                format!(
                    "the old container {} could not be removed: {e}",
                    short(&target.id)
                )
            });
            Ok(Swapped {
                old_id: target.id.clone(),
                new_id,
                cleanup_warning,
            })
        }
        Err(Failed {
            step,
            reason,
            engine_unreachable,
        }) => {
            let rollback = roll_back(docker, target, &progress, ctx.engine_retry).await;
            Err(SwapError {
                name: target.name.clone(),
                step,
                reason,
                engine_unreachable,
                rollback,
            })
        }
    }
}

fn temp_name(target: &Target, ctx: &SwapContext) -> String {
    Marker::New.name(&target.name, &ctx.rotation_id)
}

/// The aside name says whether the old container was running, so a recovery after a
/// crash knows whether to start it again.
fn aside_name(target: &Target, ctx: &SwapContext) -> String {
    let marker = if target.running {
        Marker::Old
    } else {
        Marker::Stopped
    };
    marker.name(&target.name, &ctx.rotation_id)
}

/// Pauses at `step` when built with the `fault-injection` feature and
/// `TOKEN_ROTATOR_PAUSE_AT=step`, so a test can SIGKILL the process exactly there.
/// With `TOKEN_ROTATOR_RESUME_FILE` set, it resumes once that file exists.
#[cfg(feature = "fault-injection")]
async fn fault_point(step: &str) {
    if std::env::var("TOKEN_ROTATOR_PAUSE_AT").as_deref() == Ok(step) {
        eprintln!("FAULT-POINT {step}");
        let resume = std::env::var_os("TOKEN_ROTATOR_RESUME_FILE");
        loop {
            if resume
                .as_ref()
                .is_some_and(|f| std::path::Path::new(f).exists())
            {
                eprintln!("FAULT-RESUMED {step}");
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[cfg(not(feature = "fault-injection"))]
async fn fault_point(_step: &str) {}

/// Where and why a step failed.
struct Failed {
    step: Step,
    reason: String,
    engine_unreachable: bool,
}

impl Failed {
    fn verify(e: VerifyError) -> Failed {
        Failed {
            step: Step::Verify,
            engine_unreachable: e.is_engine_unreachable(),
            reason: e.to_string(),
        }
    }
}

async fn run_steps(
    docker: &Docker,
    target: &Target,
    token: &Token,
    ctx: &SwapContext,
    progress: &mut Progress,
) -> Result<String, Failed> {
    let at = |step: Step| {
        move |e: bollard::errors::Error| Failed {
            step,
            reason: describe(&e),
            engine_unreachable: crate::docker::is_transport(&e),
        }
    };

    let image = image_ref(docker, target).await;
    let labels = [
        (LABEL_FINGERPRINT, token.fingerprint().to_string()),
        (LABEL_ROTATION, ctx.rotation_id.clone()),
        (LABEL_SWAPPED_AT, now_rfc3339()),
        (LABEL_REPLACES, target.id.clone()),
        (LABEL_TARGET_NAME, target.name.clone()),
        (LABEL_OLD_RUNNING, target.running.to_string()),
    ];
    fault_point("before-create").await;
    let spec = replacement(
        &target.inspect,
        &image,
        &ctx.env_var,
        token.expose(),
        &labels,
    )
    .map_err(|e: SpecError| Failed {
        step: Step::Prepare,
        reason: e.to_string(),
        engine_unreachable: false,
    })?;

    let created = docker
        .create_container(
            Some(
                CreateContainerOptionsBuilder::default()
                    .name(&temp_name(target, ctx))
                    .build(),
            ),
            spec.body,
        )
        .await
        .map_err(at(Step::Create))?;
    let new_id = created.id;
    progress.new_id = Some(new_id.clone());
    fault_point("after-create").await;
    tracing::debug!(container = %target.name, new_id = %short(&new_id), "replacement created");

    for (network, endpoint) in spec.extra_networks {
        connect(docker, &new_id, &network, endpoint)
            .await
            .map_err(at(Step::ConnectNetwork))?;
    }

    // A running container is renamed while it still runs, so that nothing but the engine's
    // stop and start stands between the old process's exit and the new one's start. One
    // between two restarts has no network sandbox and cannot be renamed: it is stopped first.
    let aside = aside_name(target, ctx);
    let restarting = target.inspect.state.as_ref().and_then(|s| s.restarting) == Some(true);
    let mut renamed = false;
    if target.running && !restarting {
        match rename(docker, &target.id, &aside).await {
            Ok(()) => renamed = true,
            Err(e) => tracing::debug!(
                "renaming the running container failed ({}); stopping it first",
                describe(&e)
            ),
        }
    }
    if target.running && !renamed {
        stop_old(docker, target).await.map_err(at(Step::StopOld))?;
        progress.old_stopped = true;
        fault_point("after-stop").await;
    }
    if !renamed {
        rename(docker, &target.id, &aside)
            .await
            .map_err(at(Step::RenameOld))?;
    }
    progress.old_renamed = true;
    fault_point("after-rename-old").await;
    rename(docker, &new_id, &target.name)
        .await
        .map_err(at(Step::RenameNew))?;
    fault_point("after-rename-new").await;

    if !target.running {
        // A stopped target gets a stopped replacement: starting it would override the operator.
        verify_env_only(docker, &new_id, token, &ctx.env_var)
            .await
            .map_err(Failed::verify)?;
        return Ok(new_id);
    }
    if !progress.old_stopped {
        stop_old(docker, target).await.map_err(at(Step::StopOld))?;
        progress.old_stopped = true;
        fault_point("after-stop").await;
    }
    start(docker, &new_id).await.map_err(at(Step::StartNew))?;
    fault_point("after-start").await;
    tracing::debug!(container = %target.name, new_id = %short(&new_id), "replacement started, verifying");

    fault_point("during-verify").await;
    verify(docker, &new_id, token, &ctx.verify)
        .await
        .map_err(Failed::verify)?;
    Ok(new_id)
}

/// Stops the old container. No options: the engine applies its own stop signal and timeout.
async fn stop_old(docker: &Docker, target: &Target) -> Result<(), bollard::errors::Error> {
    docker
        .stop_container(&target.id, None::<StopContainerOptions>)
        .await
}

/// The image by name if that name still points at the same image, else by ID.
async fn image_ref(docker: &Docker, target: &Target) -> String {
    let id = target.inspect.image.clone().unwrap_or_default();
    let name = target
        .inspect
        .config
        .as_ref()
        .and_then(|c| c.image.clone())
        .unwrap_or_default();
    if !name.is_empty() && name != id {
        if let Ok(img) = docker.inspect_image(&name).await {
            if img.id.as_deref() == Some(id.as_str()) {
                return name; // keeps `docker ps` readable
            }
        }
    }
    id
}

/// Undoes whatever `progress` says was done, riding out an engine restart for up to
/// `window`. Never removes volumes.
async fn roll_back(
    docker: &Docker,
    target: &Target,
    progress: &Progress,
    window: Duration,
) -> Rollback {
    let Some(new_id) = &progress.new_id else {
        return Rollback::NothingToUndo;
    };
    let mut problems = Vec::new();
    // Removing the replacement (forced, which stops it) frees the original name.
    let removed = retrying(window, "remove the replacement", || {
        remove_keep_volumes(docker, new_id)
    })
    .await;
    if let Err(e) = removed {
        problems.push(format!(
            "removing the replacement {}: {}",
            short(new_id),
            describe(&e)
        ));
    }
    if progress.old_renamed {
        let renamed = retrying(window, "rename the old container back", || {
            rename(docker, &target.id, &target.name)
        })
        .await;
        if let Err(e) = renamed {
            problems.push(format!(
                "renaming {} back to {}: {}",
                short(&target.id),
                target.name,
                describe(&e)
            ));
        }
    }
    // A stop that failed may still have stopped it; starting a running one is a no-op.
    if progress.old_stopped || (target.running && progress.old_renamed) {
        let started = retrying(window, "start the old container again", || {
            start(docker, &target.id)
        })
        .await;
        if let Err(e) = started {
            problems.push(format!("restarting the old container: {}", describe(&e)));
        }
    }
    if problems.is_empty() {
        Rollback::Restored
    } else {
        Rollback::Failed(format!(
            "{}; the next `token-rotator rotate` or `run` finishes the recovery from the names \
             and labels in the engine (or check the container by hand)",
            problems.join("; ")
        ))
    }
}

async fn connect(
    docker: &Docker,
    id: &str,
    network: &str,
    endpoint: EndpointSettings,
) -> Result<(), bollard::errors::Error> {
    docker
        .connect_network(
            network,
            NetworkConnectRequest {
                container: id.to_string(),
                endpoint_config: Some(endpoint),
            },
        )
        .await
}

/// Whether a container exists (used by callers after a failed rollback).
pub async fn exists(docker: &Docker, id: &str) -> bool {
    docker
        .inspect_container(id, None::<InspectContainerOptions>)
        .await
        .is_ok()
}

/// Current UTC time as RFC 3339 with second precision.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}
