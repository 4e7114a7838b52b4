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
use bollard::query_parameters::CreateContainerOptionsBuilder;
use bollard::Docker;

use super::observe::Inspected;
use super::spec::replacement;
use super::{ContainerConfig, Order};
use crate::engine::labels;
use crate::engine::names::Marker;
use crate::engine::{api_version, describe, is_transport, legacy, rename, short, start, stop};
use crate::targets::{fault, Change, Ctx, Observed, StepError};

/// The steps of a swap, as named in errors.
pub mod step {
    /// Building the replacement's configuration.
    pub const PREPARE: &str = "prepare the replacement";
    /// `POST /containers/create`.
    pub const CREATE: &str = "create the replacement";
    /// Connecting networks beyond the first.
    pub const CONNECT: &str = "connect the replacement's networks";
    /// Stopping the old container.
    pub const STOP_OLD: &str = "stop the old container";
    /// Renaming the old container aside.
    pub const RENAME_OLD: &str = "rename the old container aside";
    /// Giving the replacement the original name.
    pub const RENAME_NEW: &str = "give the replacement the original name";
    /// Starting the replacement.
    pub const START_NEW: &str = "start the replacement";
    /// Verifying the replacement.
    pub const VERIFY: &str = "verify the replacement";
    /// Recording that the replacement was verified.
    pub const COMMIT: &str = "record the verified swap";
}

/// A failed step, its cause kept.
pub(crate) fn failed<E>(target: &str, step: &'static str, unreachable: bool, cause: E) -> StepError
where
    E: std::error::Error + Send + Sync + 'static,
{
    StepError {
        target: target.to_string(),
        step,
        unreachable,
        cause: Box::new(cause),
    }
}

/// An engine error at `step` (its message redacted: the engine may quote what it was given).
fn engine_at<'a>(
    target: &'a str,
    step: &'static str,
    ctx: Ctx<'a>,
) -> impl Fn(bollard::errors::Error) -> StepError + 'a {
    move |e| {
        let unreachable = is_transport(&e);
        let text = ctx.redactor.redact(&describe(&e));
        failed(target, step, unreachable, Redacted { text })
    }
}

/// An engine error whose message went through the redactor. The engine's own error is not
/// kept as the source: its text may quote what it was given (the env, with a token), and a
/// later `{:#}` of the chain would print it.
#[derive(Debug, thiserror::Error)]
#[error("{text}")]
pub struct Redacted {
    text: String,
}

impl Redacted {
    /// Text that has been through the redactor already (or holds nothing secret).
    pub fn new(text: String) -> Self {
        Redacted { text }
    }
}

/// The engine refused to create the replacement (it answered, with an error): the target
/// cannot be copied as it is configured (a bind mount's source is gone, its image or a
/// network no longer exists). Nothing was created.
#[derive(Debug, thiserror::Error)]
#[error("{text}; the container cannot be copied as it is configured")]
pub struct CopyRefused {
    text: String,
}

impl CopyRefused {
    /// The engine's answer, through the redactor already.
    pub fn new(text: String) -> Self {
        CopyRefused { text }
    }
}

async fn point(target: &str, step: &'static str, at: &'static str) -> Result<(), StepError> {
    fault::point(at)
        .await
        .map_err(|e| failed(target, step, false, e))
}

/// Creates, sets aside, renames, stops and starts. Returns the change for verify and commit.
pub async fn apply(
    docker: &Docker,
    seen: &Observed<Inspected>,
    cfg: &ContainerConfig,
    has_dependents: bool,
    ctx: Ctx<'_>,
) -> Result<Change, StepError> {
    let name = seen.name.as_str();
    let old = &seen.state.0;
    let at = |step| engine_at(name, step, ctx);

    let (image, note) = image_ref(docker, old).await;
    let labels = [
        (labels::FINGERPRINT, ctx.token.fingerprint().to_string()),
        (labels::ROTATION, ctx.rotation.to_string()),
        (labels::SWAPPED_AT, now_rfc3339()),
        (labels::REPLACES, seen.id.clone()),
        (labels::TARGET_NAME, name.to_string()),
        (labels::OLD_RUNNING, seen.running.to_string()),
    ];
    point(name, step::CREATE, "before-create").await?;
    let api = api_version(docker);
    let env = Some((cfg.env_var.as_str(), ctx.token.expose()));
    let spec = replacement(old, &image, env, &labels, api)
        .map_err(|e| failed(name, step::PREPARE, false, e))?;
    let new_name = Marker::New.name(name, ctx.rotation);
    let created = match &spec.legacy_mac {
        // Only `Config.MacAddress` carries it on API < 1.44.
        Some(mac) => legacy::create_with_mac(docker, &new_name, &spec.body, mac).await,
        None => {
            docker
                .create_container(
                    Some(
                        CreateContainerOptionsBuilder::default()
                            .name(&new_name)
                            .build(),
                    ),
                    spec.body,
                )
                .await
        }
    }
    .map_err(|e| match crate::engine::status_of(&e) {
        // An answer, not an outage: the engine will not make this copy of the target.
        Some(_) => {
            let text = ctx.redactor.redact(&describe(&e));
            failed(name, step::CREATE, false, CopyRefused::new(text))
        }
        None => at(step::CREATE)(e),
    })?;
    let new_id = created.id;
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
    tracing::debug!(container = name, new_id = %short(&new_id), "replacement created");

    for (network, endpoint) in spec.extra_networks {
        connect(docker, &new_id, &network, endpoint)
            .await
            .map_err(at(step::CONNECT))?;
    }

    if order == Order::StartFirst {
        // Both run until the replacement is verified; commit then stops the old one.
        start(docker, &new_id).await.map_err(at(step::START_NEW))?;
        point(name, step::START_NEW, "after-start").await?;
        tracing::debug!(container = name, new_id = %short(&new_id), "replacement started beside the old container, verifying");
        return Ok(change);
    }

    // The aside name says whether the old container ran, so an undo knows whether to
    // start it again. A running container is renamed while it still runs; one between two
    // restarts has no network sandbox and cannot be renamed: it is stopped first.
    let aside = if seen.running {
        Marker::Old
    } else {
        Marker::Stopped
    }
    .name(name, ctx.rotation);
    let restarting = old.state.as_ref().and_then(|s| s.restarting) == Some(true);
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
        stop(docker, &seen.id).await.map_err(at(step::STOP_OLD))?;
        stopped = true;
        point(name, step::STOP_OLD, "after-stop").await?;
    }
    if !renamed {
        rename(docker, &seen.id, &aside)
            .await
            .map_err(at(step::RENAME_OLD))?;
    }
    point(name, step::RENAME_OLD, "after-rename-old").await?;
    rename(docker, &new_id, name)
        .await
        .map_err(at(step::RENAME_NEW))?;
    point(name, step::RENAME_NEW, "after-rename-new").await?;

    if !seen.running {
        // A stopped target gets a stopped replacement: starting it would override the operator.
        return Ok(change);
    }
    if !stopped {
        stop(docker, &seen.id).await.map_err(at(step::STOP_OLD))?;
        point(name, step::STOP_OLD, "after-stop").await?;
    }
    start(docker, &new_id).await.map_err(at(step::START_NEW))?;
    point(name, step::START_NEW, "after-start").await?;
    tracing::debug!(container = name, new_id = %short(&new_id), "replacement started, verifying");
    Ok(change)
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

/// Why two copies of this container cannot run at once, if they cannot.
pub fn start_first_blocker(old: &bollard::models::ContainerInspectResponse) -> Option<String> {
    let host = old.host_config.as_ref()?;
    if let Some(m) = host
        .network_mode
        .as_deref()
        .filter(|m| m.starts_with("container:"))
    {
        return Some(format!("it shares another container's network ({m})"));
    }
    let ports: Vec<&String> = host
        .port_bindings
        .iter()
        .flatten()
        .filter(|(_, b)| b.as_ref().is_some_and(|b| !b.is_empty()))
        .map(|(p, _)| p)
        .collect();
    if !ports.is_empty() {
        return Some(format!(
            "it publishes host ports ({})",
            ports
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let nets = old
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.as_ref());
    for (net, ep) in nets.into_iter().flatten() {
        let fixed = ep.ipam_config.as_ref().is_some_and(|c| {
            c.ipv4_address.as_deref().is_some_and(|a| !a.is_empty())
                || c.ipv6_address.as_deref().is_some_and(|a| !a.is_empty())
        });
        if fixed {
            return Some(format!("it has a static IP on network {net}"));
        }
    }
    if host.devices.as_ref().is_some_and(|d| !d.is_empty()) {
        return Some("it uses host devices".into());
    }
    None
}

/// The image by name if that name still points at the same image, else by ID with a
/// note saying why (`docker ps` then shows the ID; no name of the old image is left that
/// the engine could resolve, short of a tag token-rotator would have to invent).
pub(crate) async fn image_ref(
    docker: &Docker,
    old: &bollard::models::ContainerInspectResponse,
) -> (String, Option<String>) {
    let id = old.image.clone().unwrap_or_default();
    let name = old
        .config
        .as_ref()
        .and_then(|c| c.image.clone())
        .unwrap_or_default();
    if name.is_empty() || name == id || name.starts_with("sha256:") {
        return (id, None);
    }
    match docker.inspect_image(&name).await {
        Ok(img) if img.id.as_deref() == Some(id.as_str()) => (name, None), // keeps `docker ps` readable
        _ => {
            let note = format!(
                "the image name {name:?} no longer points at the image the container ran; the replacement runs that same image by its ID {} (docker ps shows the ID)",
                short(id.trim_start_matches("sha256:"))
            );
            tracing::warn!(container = ?old.name, "{note}");
            (id, Some(note))
        }
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

/// Current UTC time as RFC 3339 with second precision.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}
