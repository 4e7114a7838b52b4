//! The replacement's volumes: an anonymous volume of the old container is re-attached by
//! name (else the replacement would get a new empty one), but one that came from another
//! container through `--volumes-from` is left to `VolumesFrom`, so the replacement takes
//! what that container holds when it is created, as the old one did.
//!
//! Measured on Engine 20.10 and 26.1: a volume given by name (in `Binds` or in
//! `HostConfig.Mounts` with a `Source`) is never removed by `docker rm -v`; only one the
//! engine made for the container at create, or took with its spec through `VolumesFrom`,
//! is. Only `VolumesFrom` the old container would keep it anonymous, leaving in the copy's
//! configuration a container that is then removed (any later copy from the inspect output
//! would be refused), so the rotated container's `rm -v` leaves it behind (Compose v2.26
//! recreates the same way). On Engine 23 and newer the volume keeps its
//! `com.docker.volume.anonymous` label, so `docker volume prune` removes it once no
//! container uses it. The README says how to clean up.

use std::collections::{HashMap, HashSet};

use bollard::models::{ContainerInspectResponse, HostConfig, MountType};
use bollard::Docker;

use super::step::{failed, CopyRefused, PREPARE};
use crate::engine::{inspect, is_transport, Failure};
use crate::targets::StepError;

/// The mount destinations the containers named in `old`'s `HostConfig.VolumesFrom`
/// provide now: the replacement takes them from there, never pinned by name.
pub async fn shared_by_sources(
    docker: &Docker,
    old: &ContainerInspectResponse,
) -> Result<HashSet<String>, VolumesFromError> {
    let container = old
        .name
        .as_deref()
        .unwrap_or_default()
        .trim_start_matches('/');
    let sources = old
        .host_config
        .as_ref()
        .and_then(|h| h.volumes_from.as_ref());
    let mut shared = HashSet::new();
    for entry in sources.into_iter().flatten() {
        let source = source_of(entry);
        let found = inspect(docker, source)
            .await
            .map_err(|e| VolumesFromError::Inspect {
                container: container.to_string(),
                source_name: source.to_string(),
                cause: Failure(e),
            })?;
        let Some(src) = found else {
            return Err(VolumesFromError::Gone {
                container: container.to_string(),
                source_name: source.to_string(),
            });
        };
        let dests = src.mounts.iter().flatten();
        shared.extend(dests.filter_map(|m| m.destination.clone()));
    }
    Ok(shared)
}

/// `NAME[:ro|:rw]` → `NAME` (a container's name or ID holds no `:`).
fn source_of(entry: &str) -> &str {
    entry.split_once(':').map_or(entry, |(name, _)| name)
}

/// A container named in `--volumes-from` cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum VolumesFromError {
    /// The source container no longer exists: the engine would refuse the copy.
    #[error("container {container} takes volumes from container {source_name} (--volumes-from), which no longer exists, so the engine would refuse to create its copy; recreate {container} with --volumes-from naming the container that holds those volumes now (with Compose: docker compose up -d --force-recreate SERVICE)")]
    Gone {
        /// The container being copied.
        container: String,
        /// The name or ID in its `HostConfig.VolumesFrom`.
        source_name: String,
    },
    /// Inspecting the source failed.
    #[error(
        "inspecting container {source_name}, which {container} takes volumes from (--volumes-from)"
    )]
    Inspect {
        /// The container being copied.
        container: String,
        /// The name or ID in its `HostConfig.VolumesFrom`.
        source_name: String,
        /// The engine's error.
        #[source]
        cause: Failure,
    },
}

impl VolumesFromError {
    /// The failed step of `target`'s swap, before anything was created. A source that is
    /// gone is the engine's refusal to come ([`CopyRefused`]: the target cannot be copied
    /// as it is, like any create the engine refuses); an inspect the engine could not
    /// answer is an outage, retried.
    pub(super) fn at_prepare(self, target: &str) -> StepError {
        match self {
            gone @ VolumesFromError::Gone { .. } => {
                failed(target, PREPARE, false, CopyRefused::new(gone.to_string()))
            }
            other => {
                let unreachable = matches!(&other, VolumesFromError::Inspect { cause, .. } if is_transport(&cause.0));
                failed(target, PREPARE, unreachable, other)
            }
        }
    }
}

/// Anonymous volumes appear only in `Mounts`: without this the replacement would get new
/// empty ones. Destinations in `shared` come from `VolumesFrom` and are left to it.
pub(super) fn reattach_anonymous_volumes(
    old: &ContainerInspectResponse,
    host: &mut HostConfig,
    shared: &HashSet<String>,
) {
    let Some(mounts) = old.mounts.as_ref() else {
        return;
    };
    let volume_by_dest: HashMap<&str, &str> = mounts
        .iter()
        .filter(|m| m.typ.as_deref() == Some("volume"))
        .filter_map(|m| Some((m.destination.as_deref()?, m.name.as_deref()?)))
        .collect();

    // Set explicitly (binds, `--mount`) or taken from a `--volumes-from` source.
    let mut covered: HashSet<String> = shared.clone();
    for bind in host.binds.iter().flatten() {
        if let Some(dest) = bind_destination(bind) {
            covered.insert(dest.to_string());
        }
    }
    // `--mount type=volume` without a source is anonymous too: give it its old volume's name.
    for m in host.mounts.iter_mut().flatten() {
        if let Some(target) = m.target.clone() {
            if m.typ == Some(MountType::VOLUME) && m.source.as_deref().unwrap_or("").is_empty() {
                if let Some(name) = volume_by_dest.get(target.as_str()) {
                    m.source = Some((*name).to_string());
                }
            }
            covered.insert(target);
        }
    }
    for m in mounts {
        if m.typ.as_deref() != Some("volume") {
            continue;
        }
        let (Some(dest), Some(name)) = (m.destination.as_deref(), m.name.as_deref()) else {
            continue;
        };
        if covered.contains(dest) {
            continue;
        }
        let mode = if m.rw == Some(false) { "ro" } else { "rw" };
        host.binds
            .get_or_insert_with(Vec::new)
            .push(format!("{name}:{dest}:{mode}"));
    }
}

/// `src:dest[:opts]` → `dest`.
fn bind_destination(bind: &str) -> Option<&str> {
    let mut parts = bind.split(':');
    let _src = parts.next()?;
    parts.next()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::MountPoint;

    fn volume(name: &str, dest: &str) -> MountPoint {
        MountPoint {
            typ: Some("volume".into()),
            name: Some(name.into()),
            destination: Some(dest.into()),
            rw: Some(true),
            ..Default::default()
        }
    }

    #[test]
    fn a_volume_from_a_volumes_from_source_is_not_pinned_and_an_own_one_is() {
        let old = ContainerInspectResponse {
            mounts: Some(vec![volume("own", "/anon"), volume("srcs", "/shared")]),
            ..Default::default()
        };
        let mut host = HostConfig {
            volumes_from: Some(vec!["src:ro".into()]),
            ..Default::default()
        };
        let shared = HashSet::from(["/shared".to_string()]);
        reattach_anonymous_volumes(&old, &mut host, &shared);
        assert_eq!(host.binds, Some(vec!["own:/anon:rw".to_string()]));
        assert_eq!(host.volumes_from, Some(vec!["src:ro".to_string()]));
    }

    #[test]
    fn a_gone_source_is_a_refused_copy_and_an_unanswered_inspect_an_outage() {
        let gone = VolumesFromError::Gone {
            container: "bot".into(),
            source_name: "src".into(),
        }
        .at_prepare("bot");
        assert!(gone.copy_refused() && !gone.unreachable);
        assert_eq!(gone.step, PREPARE);
        assert!(gone.to_string().contains("container src (--volumes-from)"));
        let outage = VolumesFromError::Inspect {
            container: "bot".into(),
            source_name: "src".into(),
            cause: Failure(bollard::errors::Error::RequestTimeoutError),
        }
        .at_prepare("bot");
        assert!(outage.unreachable && !outage.copy_refused());
    }

    #[test]
    fn a_volumes_from_entry_names_its_container_without_the_mode() {
        assert_eq!(source_of("src:ro"), "src");
        assert_eq!(source_of("0123abcd"), "0123abcd");
    }
}
