//! Stage 3: resolve the target containers and decide which need the new token.
//!
//! Every target is inspected and checked before any is touched, so a typo in one name
//! or a target that cannot be swapped safely leaves all of them as they were.

use bollard::models::ContainerInspectResponse;
use bollard::query_parameters::InspectContainerOptions;
use bollard::Docker;
use std::time::Duration;

use crate::docker::{describe, is_not_found, own_container_id};
use crate::lock::{Lock, LockError, Locker};
use crate::recover::{list_markers, recover, Marker, RecoverError};
use crate::secret::{Fingerprint, Token};

/// One resolved target container.
#[derive(Debug, Clone)]
pub struct Target {
    /// The name as the user gave it.
    pub requested: String,
    /// The container's name (without the leading `/`).
    pub name: String,
    /// Full container ID.
    pub id: String,
    /// Fingerprint of the token its env carries now, if the variable is set.
    pub current: Option<Fingerprint>,
    /// Whether it already carries the new token (full SHA-256 comparison).
    pub up_to_date: bool,
    /// Whether it was running (or restarting) when inspected.
    pub running: bool,
    /// The complete inspect output, the source of the replacement's configuration.
    pub inspect: ContainerInspectResponse,
}

/// Why the targets cannot be rotated. Nothing has been touched when this is returned.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// No such container.
    #[error("target container {0:?} does not exist: check the name with `docker ps -a`")]
    NotFound(String),
    /// An ID prefix that matches several containers.
    #[error("target container {0:?} matches more than one container (an ID prefix?): use its full name or ID")]
    Ambiguous(String),
    /// The engine refused or failed the inspect.
    #[error("cannot inspect target container {name:?}: {reason}")]
    Inspect {
        /// The name as given.
        name: String,
        /// Engine error.
        reason: String,
    },
    /// The target is the rotator's own container.
    #[error(
        "target container {0:?} is the container token-rotator runs in: it cannot replace itself"
    )]
    IsSelf(String),
    /// The target is removed by the engine as soon as it stops.
    #[error("target container {0:?} has AutoRemove (--rm) set: stopping it would delete it, so it cannot be swapped safely; recreate it without --rm")]
    AutoRemove(String),
    /// Another rotator is working on the target.
    #[error(transparent)]
    Locked(#[from] LockError),
    /// An interrupted swap could not be put right.
    #[error(transparent)]
    Recover(#[from] RecoverError),
    /// The target is mid-swap or a leftover of an interrupted swap.
    #[error("target container {0:?} is a temporary container of an unfinished token-rotator swap; name the original container instead")]
    SwapLeftover(String),
}

/// The result of planning: targets locked, recovered and inspected.
#[derive(Debug)]
pub struct Planned {
    /// The targets, in the order given, without duplicates.
    pub targets: Vec<Target>,
    /// What recovery did.
    pub recovered: Vec<String>,
    /// The targets' locks, to release when the rotation ends.
    pub locks: Vec<Lock>,
}

/// Locks every target (in name order, so two rotators cannot deadlock), recovers any
/// interrupted swap, and inspects it. On error, the locks taken are released.
pub async fn plan(
    docker: &Docker,
    names: &[String],
    env_var: &str,
    token: &Token,
    locker: &Locker,
    engine_retry: Duration,
) -> Result<Planned, PlanError> {
    let mut locks = Vec::new();
    let result = plan_locked(
        docker,
        names,
        env_var,
        token,
        locker,
        engine_retry,
        &mut locks,
    )
    .await;
    match result {
        Ok((targets, recovered)) => Ok(Planned {
            targets,
            recovered,
            locks,
        }),
        Err(e) => {
            for l in locks {
                l.release(docker).await;
            }
            Err(e)
        }
    }
}

async fn plan_locked(
    docker: &Docker,
    names: &[String],
    env_var: &str,
    token: &Token,
    locker: &Locker,
    engine_retry: Duration,
    locks: &mut Vec<Lock>,
) -> Result<(Vec<Target>, Vec<String>), PlanError> {
    // The target's own name even when given by ID or found mid-swap, and an image for its lock.
    let mut canonical: Vec<(String, String)> = Vec::with_capacity(names.len());
    for requested in names {
        let (name, image) = match inspect(docker, requested).await? {
            Some(info) => {
                let n = info
                    .name
                    .as_deref()
                    .unwrap_or(requested)
                    .trim_start_matches('/');
                let n = Marker::parse(n).map_or(n, |(target, _)| target).to_string();
                (n, info.image.unwrap_or_default())
            }
            None => {
                let image = leftover_image(docker, requested).await?;
                (
                    requested.clone(),
                    image.ok_or_else(|| PlanError::NotFound(requested.clone()))?,
                )
            }
        };
        canonical.push((name, image));
    }
    let mut order: Vec<&(String, String)> = canonical.iter().collect();
    order.sort();
    order.dedup_by(|a, b| a.0 == b.0);
    for (name, image) in order {
        locks.push(locker.acquire(docker, name, image).await?);
    }

    let own_id = own_container_id();
    let mut targets: Vec<Target> = Vec::with_capacity(names.len());
    let mut recovered = Vec::new();
    for (requested, (name, _)) in names.iter().zip(&canonical) {
        // A crash may have left the target mid-swap; put it right before looking closer.
        let actions = recover(docker, name, engine_retry).await?;
        recovered.extend(actions.into_iter().map(|a| format!("{name}: {a}")));
        let Some(inspect) = inspect(docker, name).await? else {
            return Err(PlanError::NotFound(requested.clone()));
        };
        let target = resolve(requested, inspect, env_var, token)?;
        if own_id.as_deref() == Some(target.id.as_str()) {
            return Err(PlanError::IsSelf(requested.clone()));
        }
        if !targets.iter().any(|t| t.id == target.id) {
            targets.push(target);
        }
    }
    Ok((targets, recovered))
}

/// The image of a container left by an interrupted swap of `name`, if there is one.
async fn leftover_image(docker: &Docker, name: &str) -> Result<Option<String>, PlanError> {
    let leftovers = list_markers(docker, name)
        .await
        .map_err(|e| PlanError::Inspect {
            name: name.to_string(),
            reason: describe(&e),
        })?;
    Ok(leftovers.into_iter().find_map(|(_, c)| c.image_id))
}

/// Inspects a container; `None` if it does not exist.
async fn inspect(
    docker: &Docker,
    name: &str,
) -> Result<Option<ContainerInspectResponse>, PlanError> {
    match docker
        .inspect_container(name, None::<InspectContainerOptions>)
        .await
    {
        Ok(info) => Ok(Some(info)),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) if describe(&e).contains("Multiple IDs found") => {
            Err(PlanError::Ambiguous(name.to_string()))
        }
        Err(e) => Err(PlanError::Inspect {
            name: name.to_string(),
            reason: describe(&e),
        }),
    }
}

fn resolve(
    requested: &str,
    inspect: ContainerInspectResponse,
    env_var: &str,
    token: &Token,
) -> Result<Target, PlanError> {
    let id = inspect.id.clone().unwrap_or_default();
    let name = inspect
        .name
        .as_deref()
        .unwrap_or(requested)
        .trim_start_matches('/')
        .to_string();
    let host = inspect.host_config.as_ref();
    if host.and_then(|h| h.auto_remove).unwrap_or(false) {
        return Err(PlanError::AutoRemove(requested.to_string()));
    }
    let labels = inspect.config.as_ref().and_then(|c| c.labels.as_ref());
    if labels.is_some_and(|l| l.contains_key(crate::docker::LABEL_TARGET_NAME))
        && name.contains("-tr-")
    {
        return Err(PlanError::SwapLeftover(requested.to_string()));
    }
    let value = env_value(&inspect, env_var);
    let state = inspect.state.as_ref();
    let running = state
        .map(|s| s.running.unwrap_or(false) || s.restarting.unwrap_or(false))
        .unwrap_or(false);
    Ok(Target {
        requested: requested.to_string(),
        name,
        id,
        current: value.map(Fingerprint::of),
        up_to_date: value.is_some_and(|v| token.matches(v)),
        running,
        inspect,
    })
}

/// The value of `var` in a container's env, if set.
pub fn env_value<'a>(inspect: &'a ContainerInspectResponse, var: &str) -> Option<&'a str> {
    inspect
        .config
        .as_ref()?
        .env
        .as_ref()?
        .iter()
        .rev() // the engine keeps the last of duplicate entries
        .find_map(|e| e.strip_prefix(var)?.strip_prefix('='))
}
