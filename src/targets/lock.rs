//! A per-target lock the engine can see, so two rotators never interleave swaps (nor does
//! one "recover" a swap another is still making).
//!
//! The lock is a container created (never started) under the name `TARGET-tr-lock`: the
//! engine makes names unique atomically. Its labels say who holds it and since when. A
//! holder is taken to be dead when it ran in this PID namespace (same boot of this host)
//! and its process is gone, or when it ran in this very container before a restart, or
//! when the lock is older than the configured timeout. A host name or a PID alone proves
//! nothing: sidecars on the host network share the host's name, and every one is PID 1.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::CreateContainerOptionsBuilder;
use bollard::Docker;

use crate::engine::lenient::inspect_container;
use crate::engine::names::{lock_name, new_rotation_id};
use crate::engine::{describe, is_not_found, own_container_id, remove_keep_volumes, short};

const LABEL_HOST: &str = "token-rotator.lock.host";
const LABEL_PID: &str = "token-rotator.lock.pid";
const LABEL_INSTANCE: &str = "token-rotator.lock.instance";
const LABEL_SINCE: &str = "token-rotator.lock.since";
const LABEL_BOOT: &str = "token-rotator.lock.boot";
const LABEL_PIDNS: &str = "token-rotator.lock.pidns";
const LABEL_CONTAINER: &str = "token-rotator.lock.container";

/// Who this process is, and how long others' locks are honoured.
#[derive(Debug, Clone)]
pub struct Locker {
    host: String,
    boot: String,
    pidns: String,
    container: String,
    pid: u32,
    instance: String,
    /// A lock older than this is taken over.
    pub stale_after: Duration,
    /// How long to wait for a live holder before giving up.
    pub wait: Duration,
}

/// A held lock; release it with [`Lock::release`].
pub struct Lock {
    /// `None`: a lock held in memory only (the pipeline's unit tests), nothing to remove.
    docker: Option<Docker>,
    id: String,
}

impl std::fmt::Debug for Lock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Lock({})", short(&self.id))
    }
}

/// The lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another rotator holds it.
    #[error("target {target:?} is being rotated by another token-rotator (on {host}, pid {pid}, for {age_secs}s); waited {waited_secs}s. If that rotator is dead, its lock expires after {stale_secs}s, or remove the container {target}-tr-lock")]
    Held {
        /// The target.
        target: String,
        /// Holder's host name.
        host: String,
        /// Holder's PID.
        pid: String,
        /// Age of the lock.
        age_secs: u64,
        /// How long we waited.
        waited_secs: u64,
        /// When it would be taken over.
        stale_secs: u64,
    },
    /// The engine failed.
    #[error("cannot lock target {target:?}: {}", describe(source))]
    Engine {
        /// The target.
        target: String,
        /// The engine's answer.
        #[source]
        source: bollard::errors::Error,
    },
}

impl Locker {
    /// This process as a lock holder.
    pub fn new(stale_after: Duration, wait: Duration) -> Locker {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|b| b.trim().to_string())
            .unwrap_or_default();
        let pidns = std::fs::read_link("/proc/self/ns/pid")
            .map(|l| l.display().to_string())
            .unwrap_or_default();
        Locker {
            host,
            boot,
            pidns,
            container: own_container_id().unwrap_or_default(),
            pid: std::process::id(),
            instance: new_rotation_id(),
            stale_after,
            wait,
        }
    }

    /// Takes the lock of `target`, creating the marker from `image` (any local image will do).
    pub async fn acquire(
        &self,
        docker: &Docker,
        target: &str,
        image: &str,
    ) -> Result<Lock, LockError> {
        let name = lock_name(target);
        let fail = |source: bollard::errors::Error| LockError::Engine {
            target: target.to_string(),
            source,
        };
        let started = std::time::Instant::now();
        loop {
            match docker
                .create_container(
                    Some(CreateContainerOptionsBuilder::default().name(&name).build()),
                    self.body(image),
                )
                .await
            {
                Ok(created) => {
                    return Ok(Lock {
                        docker: Some(docker.clone()),
                        id: created.id,
                    })
                }
                // 409: the name is taken, so someone holds the lock.
                Err(e) if crate::engine::status_of(&e) == Some(409) => {}
                Err(e) => return Err(fail(e)),
            }
            let held = match inspect_container(docker, &name).await {
                Ok(c) => c,
                Err(e) if is_not_found(&e) => continue, // released meanwhile
                Err(e) => return Err(fail(e)),
            };
            let labels = held.config.and_then(|c| c.labels).unwrap_or_default();
            let age = age(&labels);
            if self.holder_is_dead(&labels) || age >= self.stale_after {
                tracing::warn!(
                    container = %target,
                    age_secs = age.as_secs(),
                    "taking over the lock of a rotator that is gone"
                );
                remove_keep_volumes(docker, held.id.as_deref().unwrap_or(&name))
                    .await
                    .map_err(fail)?;
                continue;
            }
            if started.elapsed() >= self.wait {
                return Err(LockError::Held {
                    target: target.to_string(),
                    host: labels.get(LABEL_HOST).cloned().unwrap_or_default(),
                    pid: labels.get(LABEL_PID).cloned().unwrap_or_default(),
                    age_secs: age.as_secs(),
                    waited_secs: started.elapsed().as_secs(),
                    stale_secs: self.stale_after.as_secs(),
                });
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    fn body(&self, image: &str) -> ContainerCreateBody {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        ContainerCreateBody {
            image: Some(image.to_string()),
            // Never started: the entrypoint only satisfies create's need for a command.
            entrypoint: Some(vec!["/token-rotator-lock".into()]),
            labels: Some(HashMap::from([
                (LABEL_HOST.to_string(), self.host.clone()),
                (LABEL_PID.to_string(), self.pid.to_string()),
                (LABEL_INSTANCE.to_string(), self.instance.clone()),
                (LABEL_SINCE.to_string(), since.to_string()),
                (LABEL_BOOT.to_string(), self.boot.clone()),
                (LABEL_PIDNS.to_string(), self.pidns.clone()),
                (LABEL_CONTAINER.to_string(), self.container.clone()),
            ])),
            host_config: Some(HostConfig {
                network_mode: Some("none".into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn holder_is_dead(&self, labels: &HashMap<String, String>) -> bool {
        let same = |key: &str, ours: &str| {
            !ours.is_empty() && labels.get(key).map(String::as_str) == Some(ours)
        };
        if !same(LABEL_BOOT, &self.boot) || labels.get(LABEL_INSTANCE) == Some(&self.instance) {
            return false; // another host (only the timeout can tell), or ours
        }
        if same(LABEL_PIDNS, &self.pidns) {
            // Its PID means something here; our own PID means it is gone.
            return match labels.get(LABEL_PID).and_then(|p| p.parse::<u32>().ok()) {
                Some(pid) if pid == self.pid => true,
                Some(pid) => !std::path::Path::new(&format!("/proc/{pid}")).exists(),
                None => false,
            };
        }
        // Another PID namespace of this container: it restarted, and the holder with it.
        same(LABEL_CONTAINER, &self.container)
    }
}

fn age(labels: &HashMap<String, String>) -> Duration {
    let since = labels
        .get(LABEL_SINCE)
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Duration::from_secs(now.saturating_sub(since))
}

impl Lock {
    /// A lock that no engine sees, for targets that live in a test only.
    #[cfg(test)]
    pub(crate) fn in_memory(id: &str) -> Lock {
        Lock {
            docker: None,
            id: id.to_string(),
        }
    }

    /// Removes the lock container.
    pub async fn release(self) {
        let Some(docker) = &self.docker else {
            return;
        };
        if let Err(e) = remove_keep_volumes(docker, &self.id).await {
            tracing::warn!(
                "cannot release a target lock ({}): {}",
                short(&self.id),
                describe(&e)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> Locker {
        Locker {
            host: "vm".into(),
            boot: "boot-1".into(),
            pidns: "pid:[1]".into(),
            container: "c-me".into(),
            pid: 1,
            instance: "i-me".into(),
            stale_after: Duration::from_secs(600),
            wait: Duration::from_secs(0),
        }
    }

    fn holder(boot: &str, pidns: &str, container: &str, pid: u32) -> HashMap<String, String> {
        HashMap::from([
            (LABEL_HOST.into(), "vm".into()),
            (LABEL_BOOT.into(), boot.into()),
            (LABEL_PIDNS.into(), pidns.into()),
            (LABEL_CONTAINER.into(), container.into()),
            (LABEL_PID.into(), pid.to_string()),
            (LABEL_INSTANCE.into(), "i-other".into()),
        ])
    }

    #[test]
    fn another_sidecar_on_the_host_network_is_alive_though_both_are_pid_1() {
        assert!(!me().holder_is_dead(&holder("boot-1", "pid:[2]", "c-other", 1)));
    }

    #[test]
    fn this_container_restarted_means_the_holder_died_with_it() {
        assert!(me().holder_is_dead(&holder("boot-1", "pid:[2]", "c-me", 1)));
    }

    #[test]
    fn in_the_same_pid_namespace_the_process_decides() {
        let gone = u32::MAX - 7; // above pid_max: no such process
        assert!(me().holder_is_dead(&holder("boot-1", "pid:[1]", "", gone)));
        let alive = std::process::id();
        assert!(!me().holder_is_dead(&holder("boot-1", "pid:[1]", "", alive)));
    }

    #[test]
    fn another_host_or_our_own_lock_is_never_dead() {
        assert!(!me().holder_is_dead(&holder("boot-2", "pid:[1]", "c-me", 99)));
        let mut ours = holder("boot-1", "pid:[1]", "c-me", 1);
        ours.insert(LABEL_INSTANCE.into(), "i-me".into());
        assert!(!me().holder_is_dead(&ours));
    }
}
