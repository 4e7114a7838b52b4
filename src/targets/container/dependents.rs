//! Containers that share a target's namespaces (`--network`, `--pid` or `--ipc`
//! `container:TARGET`, compose `network_mode: service:bot`): the engine pins them to the
//! target's container ID, so a swap must recreate them onto the replacement, or they are
//! left pointing at a removed container (a network sidecar with only `lo`, a dead
//! PID-sharing one).
//!
//! A dependent is swapped like a target, with its env unchanged and its mode pointed at the
//! replacement, and it carries the label [`DEPENDENT_OF`]. Whether its swap is finished or
//! undone follows its target's: after the target's own settle, the container under the
//! target's name tells (the replacement of that rotation: finish; else: undo), the same
//! after a failed step and after a crash.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bollard::models::{ContainerInspectResponse, ContainerSummary, HostConfig};
use bollard::query_parameters::ListContainersOptionsBuilder;
use bollard::Docker;
use futures_util::future::{BoxFuture, FutureExt, Shared};
use futures_util::stream::{self, StreamExt};

use super::spec::{self, image_ref, now_rfc3339, replacement};
use super::step::{self, failed, undo_error, undoing, Redacted};
use super::volumes::shared_by_sources;
use crate::engine::lenient::list_containers;
use crate::engine::names::{listed_name, Marker};
use crate::engine::EngineError;
use crate::engine::{describe, dialect, inspect, is_transport, labels};
use crate::engine::{remove_keep_volumes as remove, rename, retrying, short, start, stop};
use crate::targets::{Ctx, DependentChange, StepError, TargetError, UndoError};

/// Label on a dependent's replacement: the name of the target whose namespaces it shares.
pub const DEPENDENT_OF: &str = "token-rotator.dependent-of";

/// How a container depends on another: the modes that can name one.
fn modes(h: &HostConfig) -> [Option<&str>; 3] {
    [
        h.network_mode.as_deref(),
        h.pid_mode.as_deref(),
        h.ipc_mode.as_deref(),
    ]
}

/// Whether `info` shares a namespace of the container `id` (or named `name`).
fn depends_on(info: &ContainerInspectResponse, id: &str, name: &str) -> bool {
    let Some(h) = info.host_config.as_ref() else {
        return false;
    };
    modes(h).into_iter().flatten().any(|m| {
        m.strip_prefix("container:").is_some_and(|other| {
            other == id || other == name || (other.len() >= 12 && id.starts_with(other))
        })
    })
}

/// One container that shares a target's namespaces, as it was before anything was touched.
#[derive(Debug, Clone)]
pub struct Dependent {
    /// Its name.
    pub name: String,
    /// Whether it ran (it may die once its target stops: a shared PID namespace).
    pub running: bool,
}

/// What one scan found: each target's dependents, by target name.
pub type Found = HashMap<String, Vec<Dependent>>;

/// How long an inspection of the scan is retried while the engine cannot be reached.
const SCAN_RETRY: Duration = Duration::from_secs(5);

/// One [`scan`] for all targets of a rotation, started when they are selected and shared by
/// them: the first lock runs it beside the lock marker's create, so it costs no round trip
/// of its own before the swap.
#[derive(Clone)]
pub struct SharedScan(Shared<BoxFuture<'static, Result<Arc<Found>, Arc<EngineError>>>>);

impl std::fmt::Debug for SharedScan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedScan")
    }
}

impl SharedScan {
    /// The scan of `targets` (name, ID), not started until first awaited.
    pub fn new(docker: Docker, targets: Vec<(String, String)>) -> SharedScan {
        let fut = async move {
            scan(&docker, &targets)
                .await
                .map(Arc::new)
                .map_err(Arc::new)
        };
        SharedScan(fut.boxed().shared())
    }

    /// The dependents of `target`, once the scan is done (an error is the scan's own, as a
    /// fresh value for each target that asks).
    pub async fn of(&self, target: &str) -> Result<Vec<Dependent>, TargetError> {
        match self.0.clone().await {
            Ok(found) => Ok(found.get(target).cloned().unwrap_or_default()),
            Err(e) => Err(TargetError::Scan(e)),
        }
    }
}

/// For each target (by name, with its container ID), the containers that share one of
/// its namespaces. One listing and one inspection per other container, for the whole
/// rotation: the modes that matter are not in the listing.
pub async fn scan(docker: &Docker, targets: &[(String, String)]) -> Result<Found, EngineError> {
    let mut out: HashMap<String, Vec<Dependent>> = HashMap::new();
    if targets.is_empty() {
        return Ok(out);
    }
    let opts = ListContainersOptionsBuilder::default().all(true).build();
    let all = list_containers(docker, opts).await.map_err(|e| {
        EngineError::new(
            "list containers to find those sharing a target's namespaces",
            e,
        )
    })?;
    let candidates: Vec<String> = all
        .iter()
        .filter(|c| {
            !targets
                .iter()
                .any(|(_, id)| c.id.as_deref() == Some(id.as_str()))
        })
        .filter_map(listed_name)
        .filter(|n| Marker::parse(n).is_none())
        .collect();
    // A container that cannot be inspected may be a dependent: the scan fails (before
    // anything is touched) rather than leave one pointing at a removed container. One that
    // went away since the listing shares nothing any more.
    let inspected: Vec<Result<Option<ContainerInspectResponse>, EngineError>> =
        stream::iter(candidates)
            .map(|n| async move {
                let what =
                    format!("inspect container {n} to see whether it shares a target's namespaces");
                retrying(SCAN_RETRY, &what, || inspect(docker, &n))
                    .await
                    .map_err(|e| EngineError::new(what, e))
            })
            .buffer_unordered(8)
            .collect()
            .await;
    let inspected = inspected.into_iter().collect::<Result<Vec<_>, _>>()?;
    for info in inspected.into_iter().flatten() {
        let Some(dep) = info
            .name
            .as_deref()
            .map(|n| n.trim_start_matches('/').to_string())
        else {
            continue;
        };
        let running = info
            .state
            .as_ref()
            .is_some_and(|s| s.running == Some(true) || s.restarting == Some(true));
        for (name, id) in targets {
            if depends_on(&info, id, name) {
                out.entry(name.clone()).or_default().push(Dependent {
                    name: dep.clone(),
                    running,
                });
            }
        }
    }
    for deps in out.values_mut() {
        deps.sort_by(|a, b| a.name.cmp(&b.name));
    }
    Ok(out)
}

/// Points every `container:` mode of `host` at `new_id`.
fn repoint(host: &mut HostConfig, new_id: &str) {
    for mode in [
        &mut host.network_mode,
        &mut host.pid_mode,
        &mut host.ipc_mode,
    ] {
        if mode.as_deref().is_some_and(|m| m.starts_with("container:")) {
            *mode = Some(format!("container:{new_id}"));
        }
    }
}

/// Swaps the dependent `dep` of `target` onto the target's replacement `new_target`:
/// create its copy (labelled), set the old one aside, name the copy, stop the old one,
/// start the copy if the old one ran. Called after the target's own apply.
pub async fn apply(
    docker: &Docker,
    target: &str,
    dependent: &Dependent,
    new_target: &str,
    ctx: Ctx<'_>,
) -> Result<DependentChange, StepError> {
    let dep = dependent.name.as_str();
    let at = |step| at_step(target, dep, ctx, step);
    let old = inspect(docker, dep)
        .await
        .map_err(at(step::PREPARE))?
        .ok_or_else(|| {
            failed(
                target,
                step::PREPARE,
                false,
                Redacted::new(format!(
                    "the container {dep} sharing its namespaces is gone"
                )),
            )
        })?;
    let old_id = old.id.clone().unwrap_or_default();
    // As it was before the target stopped (a PID-sharing one has died with it since).
    let running = dependent.running;
    let still_running = old
        .state
        .as_ref()
        .is_some_and(|s| s.running == Some(true) || s.restarting == Some(true));
    let new_id = create_copy(docker, target, dependent, &old, new_target, ctx).await?;
    let aside = if running {
        Marker::Old
    } else {
        Marker::Stopped
    }
    .name(dep, ctx.rotation);
    if still_running {
        stop(docker, &old_id).await.map_err(at(step::STOP_OLD))?;
    }
    rename(docker, &old_id, &aside)
        .await
        .map_err(at(step::RENAME_OLD))?;
    rename(docker, &new_id, dep)
        .await
        .map_err(at(step::RENAME_NEW))?;
    if running {
        start(docker, &new_id).await.map_err(at(step::START_NEW))?;
    }
    tracing::debug!(
        container = %target,
        dependent = dep,
        old = short(&old_id),
        new = short(&new_id),
        "recreated a container sharing its namespaces onto the replacement"
    );
    Ok(DependentChange {
        name: dep.to_string(),
        old_id,
        new_id,
        running,
    })
}

/// An engine error while swapping the dependent `dep` of `target`, at `step` (its message
/// redacted, and naming the dependent).
fn at_step<'a>(
    target: &'a str,
    dep: &'a str,
    ctx: Ctx<'a>,
    step: &'static str,
) -> impl Fn(bollard::errors::Error) -> StepError + 'a {
    move |e| {
        let text = ctx.redactor.redact(&describe(&e));
        failed(
            target,
            step,
            is_transport(&e),
            Redacted::new(format!("{dep}: {text}")),
        )
    }
}

/// Creates the copy of the dependent `old` as `DEP-tr-new-ROT`: its env unchanged, its
/// modes pointed at `new_target`, labelled with its target. Returns the copy's ID.
async fn create_copy(
    docker: &Docker,
    target: &str,
    dependent: &Dependent,
    old: &ContainerInspectResponse,
    new_target: &str,
    ctx: Ctx<'_>,
) -> Result<String, StepError> {
    let dep = dependent.name.as_str();
    let labels = [
        (labels::ROTATION, ctx.rotation.to_string()),
        (labels::SWAPPED_AT, now_rfc3339()),
        (labels::REPLACES, old.id.clone().unwrap_or_default()),
        (labels::TARGET_NAME, dep.to_string()),
        (labels::OLD_RUNNING, dependent.running.to_string()),
        (DEPENDENT_OF, target.to_string()),
    ];
    // The same image by name when the name still points at it, else by ID.
    let (image, _) = image_ref(docker, old).await;
    let dialect = dialect::of(docker).await;
    let shared = shared_by_sources(docker, old)
        .await
        .map_err(|e| e.at_prepare(target))?;
    let mut spec = replacement(old, &image, None, &labels, dialect, &shared)
        .map_err(|e| failed(target, step::PREPARE, false, e))?;
    if let Some(h) = spec.body.host_config.as_mut() {
        repoint(h, new_target);
    }
    let new_name = Marker::New.name(dep, ctx.rotation);
    let created = spec::create(docker, &new_name, spec.body, spec.legacy_mac.as_deref())
        .await
        .map_err(at_step(target, dep, ctx, step::CREATE))?;
    Ok(created.id)
}

/// A dependent that ran must run again, steadily (not restarting, not restarted).
pub async fn verify(docker: &Docker, target: &str, dep: &DependentChange) -> Result<(), StepError> {
    if !dep.running {
        return Ok(());
    }
    let info = inspect(docker, &dep.new_id).await.map_err(|e| {
        failed(
            target,
            step::VERIFY,
            is_transport(&e),
            EngineError::new("inspect a dependent", e),
        )
    })?;
    let state = info
        .as_ref()
        .and_then(|i| i.state.clone())
        .unwrap_or_default();
    let restarts = info.as_ref().and_then(|i| i.restart_count).unwrap_or(0);
    if state.running == Some(true) && state.restarting != Some(true) && restarts == 0 {
        return Ok(());
    }
    Err(failed(
        target,
        step::VERIFY,
        false,
        Redacted::new(format!(
            "{} (sharing its namespaces) did not stay up on the replacement (exit code {}, {restarts} restart(s))",
            dep.name,
            state.exit_code.unwrap_or(-1)
        )),
    ))
}

/// The copies of `target`'s dependents (labelled [`DEPENDENT_OF`]), current and past.
async fn copies(
    docker: &Docker,
    target: &str,
    window: Duration,
) -> Result<Vec<ContainerSummary>, bollard::errors::Error> {
    let filters = HashMap::from([(
        "label".to_string(),
        vec![format!("{DEPENDENT_OF}={target}")],
    )]);
    let opts = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    retrying(window, "list the dependents' replacements", || {
        list_containers(docker, opts.clone())
    })
    .await
}

/// Whether a dependent's swap of `target` is unfinished: a copy whose old container is
/// still there.
pub async fn leftovers(
    docker: &Docker,
    target: &str,
    window: Duration,
) -> Result<bool, bollard::errors::Error> {
    let found = copies(docker, target, window).await?;
    for c in found {
        if let Some(old) = c.labels.as_ref().and_then(|l| l.get(labels::REPLACES)) {
            if retrying(window, "inspect a dependent", || inspect(docker, old))
                .await?
                .is_some()
            {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Finishes or undoes the dependents' swaps of `target`, after the target's own settle:
/// the swap of rotation R is finished when the container under the target's name is R's
/// replacement, else undone. Returns what it did.
pub async fn settle(
    docker: &Docker,
    target: &str,
    window: Duration,
) -> Result<Vec<String>, UndoError> {
    let found = copies(docker, target, window)
        .await
        .map_err(|e| undo_error(target, "list the dependents' replacements", e))?;
    let mut actions = Vec::new();
    if found.is_empty() {
        return Ok(actions);
    }
    let current = undoing(target, window, "inspect the target", || {
        inspect(docker, target)
    })
    .await?;
    let current_rotation = current
        .and_then(|c| c.config)
        .and_then(|c| c.labels)
        .and_then(|l| l.get(labels::ROTATION).cloned());
    for c in found {
        let l = c.labels.clone().unwrap_or_default();
        let (Some(rotation), Some(dep), Some(old_id)) = (
            l.get(labels::ROTATION),
            l.get(labels::TARGET_NAME),
            l.get(labels::REPLACES),
        ) else {
            continue;
        };
        let old = undoing(target, window, "inspect a dependent", || {
            inspect(docker, old_id)
        })
        .await?;
        let Some(old) = old else {
            continue; // finished long ago: the old one is gone, the copy is the dependent
        };
        let left = Leftover {
            docker,
            target,
            window,
            dep,
            old_id,
            new_id: c.id.clone().unwrap_or_default(),
            old_name: old
                .name
                .as_deref()
                .unwrap_or("")
                .trim_start_matches('/')
                .to_string(),
            new_name: listed_name(&c).unwrap_or_default(),
            ran: l.get(labels::OLD_RUNNING).map(String::as_str) == Some("true"),
        };
        actions.push(if current_rotation.as_deref() == Some(rotation.as_str()) {
            left.finish(rotation).await?
        } else {
            left.undo().await?
        });
    }
    Ok(actions)
}

/// A dependent's swap that settle finds with both containers there: the old one and its
/// copy (either may have the dependent's name).
struct Leftover<'a> {
    docker: &'a Docker,
    target: &'a str,
    window: Duration,
    /// The dependent's name.
    dep: &'a str,
    old_id: &'a str,
    new_id: String,
    old_name: String,
    new_name: String,
    /// Whether the old one ran before the swap.
    ran: bool,
}

impl Leftover<'_> {
    /// An engine call, retried while the engine is unreachable; a failure says `what`.
    async fn call<T, Fut>(&self, what: &str, op: impl FnMut() -> Fut) -> Result<T, UndoError>
    where
        Fut: std::future::Future<Output = Result<T, bollard::errors::Error>>,
    {
        undoing(self.target, self.window, what, op).await
    }

    /// Finish the swap of `rotation`: the copy takes the name (if a crash came first), the
    /// old one goes.
    async fn finish(&self, rotation: &str) -> Result<String, UndoError> {
        let (docker, dep, old_id, new_id) = (self.docker, self.dep, self.old_id, &self.new_id);
        if self.old_name == dep {
            let aside = Marker::Old.name(dep, rotation);
            self.call("set the old dependent aside", || {
                rename(docker, old_id, &aside)
            })
            .await?;
        }
        self.call("stop the old dependent", || stop(docker, old_id))
            .await?;
        if self.new_name != dep {
            self.call("name the dependent's copy", || rename(docker, new_id, dep))
                .await?;
        }
        if self.ran {
            self.call("start the dependent's copy", || start(docker, new_id))
                .await?;
        }
        self.call("remove the old dependent", || remove(docker, old_id))
            .await?;
        Ok(format!(
            "{dep} (shares its namespaces): recreated onto the replacement ({} → {})",
            short(old_id),
            short(new_id)
        ))
    }

    /// Undo the swap: the copy goes, the old one gets its name back and runs again (its
    /// target, the old container, is back).
    async fn undo(&self) -> Result<String, UndoError> {
        let (docker, dep, old_id, new_id) = (self.docker, self.dep, self.old_id, &self.new_id);
        self.call("remove the dependent's copy", || remove(docker, new_id))
            .await?;
        if self.old_name != dep {
            self.call("give the old dependent its name back", || {
                rename(docker, old_id, dep)
            })
            .await?;
        }
        if self.ran {
            self.call("start the old dependent again", || start(docker, old_id))
                .await?;
        }
        Ok(format!(
            "{dep} (shares its namespaces): restored the old container {}",
            short(old_id)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_container_mode_naming_the_target_by_id_or_name_is_a_dependency() {
        let id = "9e1c9424730461671008e90a24bccddc74203f22c3abdfb63082450a8e7f5866";
        let with = |net: &str, pid: &str| ContainerInspectResponse {
            host_config: Some(HostConfig {
                network_mode: Some(net.into()),
                pid_mode: Some(pid.into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(depends_on(&with(&format!("container:{id}"), ""), id, "bot"));
        assert!(depends_on(&with("bridge", "container:bot"), id, "bot"));
        assert!(!depends_on(&with("bridge", "host"), id, "bot"));
        assert!(!depends_on(&with("container:other", ""), id, "bot"));
        let mut h = with(&format!("container:{id}"), "container:bot")
            .host_config
            .unwrap();
        repoint(&mut h, "new");
        assert_eq!(h.network_mode.as_deref(), Some("container:new"));
        assert_eq!(h.pid_mode.as_deref(), Some("container:new"));
    }
}
