//! A per-target lock the engine can see, so two rotators never interleave swaps (nor does
//! one "recover" a swap another is still making).
//!
//! The lock is a container created (never started) under the name `TARGET-tr-lock`: the
//! engine makes names unique atomically. Its labels say who holds it and since when. A
//! holder is taken to be dead when it ran in this PID namespace (same boot of this host)
//! and its process is gone, or when it ran in this very container before a restart, or
//! when the lock is older than the configured timeout. A host name or a PID alone proves
//! nothing: sidecars on the host network share the host's name, and every one is PID 1.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{CreateContainerOptionsBuilder, ListContainersOptionsBuilder};
use bollard::Docker;

use crate::engine::lenient::inspect_container;
use crate::engine::names::{listed_name, lock_name, new_rotation_id};
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
    /// The markers (by name) this process holds or is taking now: a marker of ours that is
    /// not among them is one whose release failed (the engine was away), taken over at once.
    held: Arc<Mutex<HashSet<String>>>,
}

/// A held lock; release it with [`Lock::release`].
pub struct Lock {
    /// `None`: a lock held in memory only (the pipeline's unit tests), nothing to remove.
    docker: Option<Docker>,
    id: String,
    name: String,
    /// The holder's set of held markers, which this one (`name`) leaves when released.
    held: Arc<Mutex<HashSet<String>>>,
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
            held: Arc::default(),
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
        self.holding().insert(name.clone());
        let result = self.take(docker, target, image, &name).await;
        if result.is_err() {
            self.holding().remove(&name);
        }
        result
    }

    /// [`Locker::acquire`]'s loop: create the marker, or wait for (or take over) its holder.
    async fn take(
        &self,
        docker: &Docker,
        target: &str,
        image: &str,
        name: &str,
    ) -> Result<Lock, LockError> {
        let fail = |source: bollard::errors::Error| LockError::Engine {
            target: target.to_string(),
            source,
        };
        let started = std::time::Instant::now();
        loop {
            match docker
                .create_container(
                    Some(CreateContainerOptionsBuilder::default().name(name).build()),
                    self.body(image),
                )
                .await
            {
                Ok(created) => {
                    self.holding().insert(name.to_string());
                    return Ok(Lock {
                        docker: Some(docker.clone()),
                        id: created.id,
                        name: name.to_string(),
                        held: self.held.clone(),
                    });
                }
                // The name is taken, so someone holds the lock.
                Err(e) if crate::engine::is_name_taken(&e) => {}
                Err(e) => return Err(fail(e)),
            }
            let held = match inspect_container(docker, name).await {
                Ok(c) => c,
                Err(e) if is_not_found(&e) => continue, // released meanwhile
                Err(e) => return Err(fail(e)),
            };
            let labels = held.config.and_then(|c| c.labels).unwrap_or_default();
            let age = age(&labels);
            if self.is_garbage(&labels, name) {
                tracing::warn!(
                    container = %target,
                    age_secs = age.as_secs(),
                    "taking over the lock of a rotator that is gone"
                );
                remove_keep_volumes(docker, held.id.as_deref().unwrap_or(name))
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

    /// Whether the marker `name` with `labels` is nobody's lock any more: its holder is
    /// dead, or it is older than the timeout, or it is ours but no longer held (its
    /// release failed).
    fn is_garbage(&self, labels: &HashMap<String, String>, name: &str) -> bool {
        let ours_unheld =
            labels.get(LABEL_INSTANCE) == Some(&self.instance) && !self.holding().contains(name);
        ours_unheld || self.holder_is_dead(labels) || age(labels) >= self.stale_after
    }

    fn holding(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Removes every lock marker on the engine that is nobody's lock any more (see
    /// [`Locker::is_garbage`]): those of a target that was removed by hand after its
    /// rotator died, which no rotation takes over, and those whose release failed. One
    /// filtered list; a marker another rotator takes over meanwhile is removed by its ID,
    /// so its new lock is never touched. Returns how many went.
    pub async fn sweep(&self, docker: &Docker) -> Result<usize, bollard::errors::Error> {
        let filters = HashMap::from([("label".to_string(), vec![LABEL_SINCE.to_string()])]);
        let opts = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let mut removed = 0;
        for c in crate::engine::lenient::list_containers(docker, opts).await? {
            let name = listed_name(&c).unwrap_or_default();
            let (id, labels) = (c.id.unwrap_or_default(), c.labels.unwrap_or_default());
            if id.is_empty() || !self.is_garbage(&labels, &name) {
                continue;
            }
            match remove_keep_volumes(docker, &id).await {
                Ok(()) => removed += 1,
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(e),
            }
            tracing::info!(marker = %short(&id), "removed the lock marker of a rotator that is gone");
        }
        Ok(removed)
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
            name: id.to_string(),
            held: Arc::default(),
        }
    }

    /// Removes the lock container.
    pub async fn release(self) {
        // Not held any more, whatever the engine says: a marker left behind is garbage.
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.name);
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
            held: Arc::default(),
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

    #[test]
    fn our_own_marker_is_garbage_only_once_we_no_longer_hold_it() {
        let me = me();
        let mut ours = holder("boot-1", "pid:[1]", "c-me", 1);
        ours.insert(LABEL_INSTANCE.into(), "i-me".into());
        ours.insert(LABEL_SINCE.into(), now_secs().to_string());
        me.holding().insert("bot-tr-lock".into());
        assert!(!me.is_garbage(&ours, "bot-tr-lock"), "held: a live lock");
        assert!(
            me.is_garbage(&ours, "other-tr-lock"),
            "ours, not held: its release failed"
        );
        let released = Lock {
            docker: None,
            id: "0123abcd".into(),
            name: "bot-tr-lock".into(),
            held: me.held.clone(),
        };
        futures_util::FutureExt::now_or_never(released.release()).unwrap();
        assert!(
            me.is_garbage(&ours, "bot-tr-lock"),
            "released: nobody's lock"
        );
    }

    #[test]
    fn a_live_holders_fresh_marker_is_never_garbage_an_old_one_is() {
        let me = me();
        let mut other = holder("boot-2", "pid:[1]", "c-other", 99);
        other.insert(LABEL_SINCE.into(), now_secs().to_string());
        assert!(!me.is_garbage(&other, "m"));
        other.insert(LABEL_SINCE.into(), (now_secs() - 601).to_string());
        assert!(me.is_garbage(&other, "m"), "older than the timeout");
    }

    fn now_secs() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }
}
