//! Stage 3a: finish or undo a swap that a crash interrupted, from what the engine shows.
//!
//! No state file: a swap's progress is written into container names and labels as it
//! goes. The replacement is created as `NAME-tr-new-ROT` with labels naming the container
//! it replaces and whether that one was running. The old container is renamed aside to
//! `NAME-tr-old-ROT` (it was running) or `NAME-tr-stopped-ROT`, and only after the
//! replacement was verified to `NAME-tr-done-ROT`. So:
//!
//! - a `-tr-done-` container: the swap was verified; remove the old container;
//! - a `-tr-old-`/`-tr-stopped-` container: not verified; remove its replacement, give it
//!   its name back, start it if it was running;
//! - a `-tr-new-` container next to the untouched original: remove it, and start the
//!   original if the swap had already stopped it.
//!
//! Volumes are never removed.

use bollard::models::{ContainerInspectResponse, ContainerSummary};
use bollard::query_parameters::{InspectContainerOptions, ListContainersOptionsBuilder};
use bollard::Docker;

use crate::docker::{
    describe, is_not_found, remove_keep_volumes as remove, rename, retrying, short, start,
    LABEL_OLD_RUNNING, LABEL_REPLACES,
};

/// The kinds of temporary name a swap gives containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    /// The replacement before it takes the name.
    New,
    /// The old container, set aside, was running.
    Old,
    /// The old container, set aside, was stopped.
    Stopped,
    /// The old container after the replacement was verified.
    Done,
}

impl Marker {
    fn tag(self) -> &'static str {
        match self {
            Marker::New => "new",
            Marker::Old => "old",
            Marker::Stopped => "stopped",
            Marker::Done => "done",
        }
    }

    /// `TARGET-tr-TAG-ROTATION`.
    pub fn name(self, target: &str, rotation: &str) -> String {
        format!("{target}-tr-{}-{rotation}", self.tag())
    }

    /// Splits a marker name into its target name and marker.
    pub fn parse(name: &str) -> Option<(&str, Marker)> {
        let name = name.trim_start_matches('/');
        let idx = name.rfind("-tr-")?;
        let (target, rest) = (&name[..idx], &name[idx + 4..]);
        let (tag, rotation) = rest.split_once('-')?;
        if target.is_empty()
            || rotation.len() != 8
            || !rotation.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return None;
        }
        let marker = [Marker::New, Marker::Old, Marker::Stopped, Marker::Done]
            .into_iter()
            .find(|m| m.tag() == tag)?;
        Some((target, marker))
    }
}

/// Recovery could not put things right; nothing further is attempted on this target.
#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    /// The engine failed.
    #[error("cannot recover the interrupted swap of {target:?}: {reason}")]
    Engine {
        /// The target name.
        target: String,
        /// The engine's answer.
        reason: String,
    },
    /// Another container holds the name the old one must get back.
    #[error("cannot give {target:?} its old container back: the name is taken by {holder}, which is not a token-rotator replacement; rename or remove it")]
    NameTaken {
        /// The target name.
        target: String,
        /// Short ID of the container holding the name.
        holder: String,
    },
}

/// Puts `target` right after an interrupted swap. Returns what was done, for the report.
/// Engine operations ride out an unreachable engine for up to `window`.
pub async fn recover(
    docker: &Docker,
    target: &str,
    window: std::time::Duration,
) -> Result<Vec<String>, RecoverError> {
    let fail = |e: bollard::errors::Error| RecoverError::Engine {
        target: target.to_string(),
        reason: describe(&e),
    };
    let mut done = Vec::new();
    let mut removed: Vec<String> = Vec::new();
    let leftovers = retrying(window, "list leftovers of a swap", || {
        list_markers(docker, target)
    })
    .await
    .map_err(fail)?;
    for (marker, c) in &leftovers {
        let id = c.id.clone().unwrap_or_default();
        if removed.contains(&id) {
            continue;
        }
        match marker {
            Marker::Done => {
                remove(docker, &id).await.map_err(fail)?;
                done.push(format!(
                    "removed {} (replaced by a verified container)",
                    short(&id)
                ));
            }
            Marker::Old | Marker::Stopped => {
                let replacements =
                    retrying(window, "find replacements", || replacements_of(docker, &id))
                        .await
                        .map_err(fail)?;
                for n in replacements {
                    retrying(window, "remove an unverified replacement", || {
                        remove(docker, &n)
                    })
                    .await
                    .map_err(fail)?;
                    done.push(format!("removed unverified replacement {}", short(&n)));
                    removed.push(n);
                }
                if let Some(holder) = name_holder(docker, target).await.map_err(fail)? {
                    return Err(RecoverError::NameTaken {
                        target: target.to_string(),
                        holder: short(&holder).to_string(),
                    });
                }
                retrying(window, "give the old container its name back", || {
                    rename(docker, &id, target)
                })
                .await
                .map_err(fail)?;
                if *marker == Marker::Old {
                    retrying(window, "start the old container", || start(docker, &id))
                        .await
                        .map_err(fail)?;
                }
                done.push(format!(
                    "restored the old container {} under its name",
                    short(&id)
                ));
            }
            Marker::New => {
                // The original still has its name: the crash came before it was set aside.
                retrying(window, "remove an unfinished replacement", || {
                    remove(docker, &id)
                })
                .await
                .map_err(fail)?;
                done.push(format!("removed unfinished replacement {}", short(&id)));
                let labels = c.labels.clone().unwrap_or_default();
                let was_running = labels.get(LABEL_OLD_RUNNING).map(String::as_str) == Some("true");
                if let Some(old_id) = labels.get(LABEL_REPLACES) {
                    if was_running && is_stopped(docker, old_id).await.map_err(fail)? {
                        retrying(window, "start the old container", || start(docker, old_id))
                            .await
                            .map_err(fail)?;
                        done.push(format!("started the old container {} again", short(old_id)));
                    }
                }
            }
        }
    }
    for line in &done {
        tracing::warn!(container = target, "recovered an interrupted swap: {line}");
    }
    Ok(done)
}

/// Containers named `TARGET-tr-*-ROT`, old ones first so their replacements go with them.
pub async fn list_markers(
    docker: &Docker,
    target: &str,
) -> Result<Vec<(Marker, ContainerSummary)>, bollard::errors::Error> {
    let filter =
        std::collections::HashMap::from([("name".to_string(), vec![format!("{target}-tr-")])]);
    let opts = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filter)
        .build();
    let mut found: Vec<(Marker, ContainerSummary)> = docker
        .list_containers(Some(opts))
        .await?
        .into_iter()
        .filter_map(|c| {
            let name = c.names.as_ref()?.first()?.clone();
            match Marker::parse(&name) {
                Some((t, m)) if t == target => Some((m, c)),
                _ => None,
            }
        })
        .collect();
    found.sort_by_key(|(m, _)| *m == Marker::New);
    Ok(found)
}

/// IDs of the replacements created for `old_id` (whatever their name now).
async fn replacements_of(
    docker: &Docker,
    old_id: &str,
) -> Result<Vec<String>, bollard::errors::Error> {
    let filter = std::collections::HashMap::from([(
        "label".to_string(),
        vec![format!("{LABEL_REPLACES}={old_id}")],
    )]);
    let opts = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filter)
        .build();
    Ok(docker
        .list_containers(Some(opts))
        .await?
        .into_iter()
        .filter_map(|c| c.id)
        .collect())
}

/// The container holding `name` now, if any.
async fn name_holder(
    docker: &Docker,
    name: &str,
) -> Result<Option<String>, bollard::errors::Error> {
    match docker
        .inspect_container(name, None::<InspectContainerOptions>)
        .await
    {
        Ok(c) => Ok(Some(c.id.unwrap_or_default())),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

async fn is_stopped(docker: &Docker, id: &str) -> Result<bool, bollard::errors::Error> {
    let c: ContainerInspectResponse = match docker
        .inspect_container(id, None::<InspectContainerOptions>)
        .await
    {
        Ok(c) => c,
        Err(e) if is_not_found(&e) => return Ok(false),
        Err(e) => return Err(e),
    };
    Ok(!c.state.and_then(|s| s.running).unwrap_or(false))
}

#[cfg(test)]
mod tests {
    use super::Marker;

    #[test]
    fn marker_names_round_trip_and_odd_names_are_not_markers() {
        for m in [Marker::New, Marker::Old, Marker::Stopped, Marker::Done] {
            let name = m.name("my-bot-tr-x", "0a1b2c3d");
            assert_eq!(Marker::parse(&format!("/{name}")), Some(("my-bot-tr-x", m)));
        }
        assert_eq!(Marker::parse("bot-tr-old-xyz"), None);
        assert_eq!(Marker::parse("bot-tr-weird-0a1b2c3d"), None);
        assert_eq!(Marker::parse("bot"), None);
    }
}
