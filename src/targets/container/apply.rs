//! Replace a container by its copy carrying the new token, writing progress into names
//! and labels as it goes so that [`super::undo`] can finish or undo it from the engine.
//!
//! Order: create the replacement as `NAME-tr-new-ROT` (labelled with the ID it replaces
//! and whether that one ran); rename the old container, still running, aside to
//! `NAME-tr-old-ROT` (`-tr-stopped-` if it was stopped); give the replacement the name;
//! stop the old container (its own stop signal and timeout); start the replacement.
//! Renaming first leaves only the engine's own stop and start between the old process's
//! exit and the new one's start. (Starting the replacement at the old process's `die`,
//! during the engine's clean-up after it, was measured slower: the two contend for the
//! engine's CPU; see docs/BENCHMARKS.md.) A container between two restarts of a crash
//! loop cannot be renamed: it is stopped first. Verification and commit come after, from
//! the pipeline.

use bollard::models::{EndpointSettings, NetworkConnectRequest};
use bollard::Docker;

use super::observe::Inspected;
use super::order::start_first_blocker;
use super::spec::{self, image_ref, now_rfc3339, replacement};
use super::step::{self, engine_at, failed, point};
use super::volumes::shared_by_sources;
use super::{ContainerConfig, Order};
use crate::engine::labels;
use crate::engine::names::Marker;
use crate::engine::{describe, dialect, rename, short, start, stop};
use crate::targets::{Change, Ctx, Observed, StepError};

/// Creates, sets aside, renames, stops and starts. Returns the change for verify and commit.
pub async fn apply(
    docker: &Docker,
    seen: &Observed<Inspected>,
    cfg: &ContainerConfig,
    has_dependents: bool,
    ctx: Ctx<'_>,
) -> Result<Change, StepError> {
    let name = seen.name.as_str();
    let (new_id, extra_networks, note) = create(docker, seen, cfg, ctx).await?;
    let (order, order_note) = order_for(seen, cfg, has_dependents);
    let change = Change {
        rotation: ctx.rotation.to_string(),
        old_id: seen.id.clone(),
        new_id: new_id.clone(),
        old_running: seen.running,
        order: order.label(),
        order_note,
        note,
        dependents: Vec::new(),
        mark: None,
        spec_version: None,
    };
    point(name, step::CREATE, "after-create").await?;
    tracing::debug!(container = %name, new_id = %short(&new_id), "replacement created");
    for (network, endpoint) in extra_networks {
        connect(docker, &new_id, &network, endpoint)
            .await
            .map_err(engine_at(name, step::CONNECT, ctx))?;
    }
    if order == Order::StartFirst {
        // Both run until the replacement is verified; commit then stops the old one.
        start_new(docker, name, &new_id, ctx).await?;
        tracing::debug!(container = %name, new_id = %short(&new_id), "replacement started beside the old container, verifying");
        return Ok(change);
    }
    let stopped = set_aside(docker, seen, ctx).await?;
    rename(docker, &new_id, name)
        .await
        .map_err(engine_at(name, step::RENAME_NEW, ctx))?;
    point(name, step::RENAME_NEW, "after-rename-new").await?;
    if !seen.running {
        // A stopped target gets a stopped replacement: starting it would override the operator.
        return Ok(change);
    }
    if !stopped {
        stop_old(docker, seen, ctx).await?;
    }
    start_new(docker, name, &new_id, ctx).await?;
    tracing::debug!(container = %name, new_id = %short(&new_id), "replacement started, verifying");
    Ok(change)
}

/// Creates the replacement as `NAME-tr-new-ROT`, labelled with the ID it replaces and
/// whether that one ran. Returns its ID, the networks to connect before it starts, and a
/// note if it runs the old image by ID.
async fn create(
    docker: &Docker,
    seen: &Observed<Inspected>,
    cfg: &ContainerConfig,
    ctx: Ctx<'_>,
) -> Result<(String, Vec<(String, EndpointSettings)>, Option<String>), StepError> {
    let name = seen.name.as_str();
    let old = &seen.state.0;
    let (image, note) = image_ref(docker, old).await;
    let labels = [
        (labels::FINGERPRINT, ctx.token.fingerprint().to_string()),
        (labels::ROTATION, ctx.rotation.to_string()),
        (labels::SWAPPED_AT, now_rfc3339()),
        (labels::REPLACES, seen.id.clone()),
        (labels::TARGET_NAME, name.to_string()),
        (labels::OLD_RUNNING, seen.running.to_string()),
        (
            labels::FIRST_DEPLOYED,
            humantime::format_rfc3339_seconds(ctx.first_deployed).to_string(),
        ),
    ];
    point(name, step::CREATE, "before-create").await?;
    let dialect = dialect::of(docker).await;
    let env = Some((cfg.env_var.as_str(), ctx.token.expose()));
    let shared = shared_by_sources(docker, old)
        .await
        .map_err(|e| e.at_prepare(name))?;
    let spec = replacement(old, &image, env, &labels, dialect, &shared)
        .map_err(|e| failed(name, step::PREPARE, false, e))?;
    let new_name = Marker::New.name(name, ctx.rotation);
    let created = spec::create(docker, &new_name, spec.body, spec.legacy_mac.as_deref())
        .await
        .map_err(|e| match crate::engine::status_of(&e) {
            // An answer, not an outage: the engine will not make this copy of the target.
            Some(_) => {
                let text = ctx.redactor.redact(&describe(&e));
                failed(name, step::CREATE, false, step::CopyRefused::new(text))
            }
            None => engine_at(name, step::CREATE, ctx)(e),
        })?;
    Ok((created.id, spec.extra_networks, note))
}

/// Renames the old container aside: `-tr-old-` if it ran, `-tr-stopped-` if not, so an
/// undo knows whether to start it again. A running container is renamed while it still
/// runs; one between two restarts has no network sandbox and cannot be renamed: it is
/// stopped first. Returns whether it was stopped.
async fn set_aside(
    docker: &Docker,
    seen: &Observed<Inspected>,
    ctx: Ctx<'_>,
) -> Result<bool, StepError> {
    let name = seen.name.as_str();
    let aside = if seen.running {
        Marker::Old
    } else {
        Marker::Stopped
    }
    .name(name, ctx.rotation);
    let restarting = seen.state.0.state.as_ref().and_then(|s| s.restarting) == Some(true);
    let mut renamed = false;
    if seen.running && !restarting {
        match rename(docker, &seen.id, &aside).await {
            Ok(()) => renamed = true,
            Err(e) => tracing::debug!(
                "renaming the running container failed ({}); stopping it first",
                describe(&e)
            ),
        }
    }
    let mut stopped = false;
    if seen.running && !renamed {
        stop_old(docker, seen, ctx).await?;
        stopped = true;
    }
    if !renamed {
        rename(docker, &seen.id, &aside)
            .await
            .map_err(engine_at(name, step::RENAME_OLD, ctx))?;
    }
    point(name, step::RENAME_OLD, "after-rename-old").await?;
    Ok(stopped)
}

/// Stops the old container (its own stop signal and timeout).
async fn stop_old(
    docker: &Docker,
    seen: &Observed<Inspected>,
    ctx: Ctx<'_>,
) -> Result<(), StepError> {
    let name = seen.name.as_str();
    stop(docker, &seen.id)
        .await
        .map_err(engine_at(name, step::STOP_OLD, ctx))?;
    point(name, step::STOP_OLD, "after-stop").await
}

/// Starts the replacement `new_id`.
async fn start_new(
    docker: &Docker,
    name: &str,
    new_id: &str,
    ctx: Ctx<'_>,
) -> Result<(), StepError> {
    start(docker, new_id)
        .await
        .map_err(engine_at(name, step::START_NEW, ctx))?;
    point(name, step::START_NEW, "after-start").await
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

/// The order this target can take: `start-first` needs two copies to run at once, which
/// fixed host ports, a static IP, another container's network or host devices forbid.
pub fn order_for(
    seen: &Observed<Inspected>,
    cfg: &ContainerConfig,
    has_dependents: bool,
) -> (Order, Option<String>) {
    if cfg.order == Order::StopFirst || !seen.running {
        return (Order::StopFirst, None);
    }
    let blocker = start_first_blocker(&seen.state.0).or_else(|| {
        has_dependents.then(|| {
            "other containers share its namespaces, and they follow it onto the replacement"
                .to_string()
        })
    });
    match blocker {
        None => (Order::StartFirst, None),
        Some(why) => {
            tracing::warn!(container = %seen.name, "start-first is not possible ({why}): falling back to stop-first");
            (
                Order::StopFirst,
                Some(format!("start-first not possible: {why}")),
            )
        }
    }
}
