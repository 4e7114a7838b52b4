//! The one undo: finish or undo a container swap from what the engine shows, used after a
//! failed step and by the next run after a crash alike. There is no state file: a swap
//! writes its progress into names and labels as it goes (see [`super::apply`]).
//!
//! - a `-tr-done-` container: the swap was verified; remove the old container;
//! - a `-tr-old-`/`-tr-stopped-` container: not verified; remove its replacements (found by
//!   their `replaces` label, whatever their name now), give it its name back, start it if
//!   it ran; if another container was run under the name meanwhile (compose, an
//!   operator), that one is the target now and the set-aside one is removed;
//! - a lone `-tr-new-` container next to the untouched original: remove it, and start the
//!   original again if the swap had stopped it.
//!
//! Committing a verified swap ([`super::commit`]) is one rename (old container to
//! `-tr-done-`), then the same [`settle`]. Every engine call rides out an unreachable engine for `--engine-retry`.
//! Volumes are never removed.

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::ContainerSummary;
use bollard::query_parameters::ListContainersOptionsBuilder;
use bollard::Docker;

use super::step::{undo_error, undoing};
use crate::engine::lenient::list_containers;
use crate::engine::names::Marker;
use crate::engine::{inspect, labels, remove_keep_volumes as remove, rename};
use crate::engine::{retrying, short, start, stop, EngineError};
use crate::targets::{fault, Change, Interrupted, Settled, TargetError, UndoError};

/// The unfinished swap of `target` the engine shows, if any: committed if a `-tr-done-`
/// container says the replacement was verified.
pub async fn interrupted(
    docker: &Docker,
    target: &str,
    window: Duration,
) -> Result<Option<Interrupted>, TargetError> {
    // Both listings at once: one round trip before the swap, not two.
    let (found, left) = tokio::join!(
        retrying(window, "list leftovers of a swap", || {
            list_markers(docker, target)
        }),
        super::dependents::leftovers(docker, target, window)
    );
    let found =
        found.map_err(|e| EngineError::new(format!("list the leftovers of {target:?}"), e))?;
    let pick = found
        .iter()
        .find(|(m, _)| *m == Marker::Done)
        .or_else(|| found.first());
    if pick.is_none() {
        // The target's swap settled, its dependents' not (a crash in between): undo()
        // settles them, finished or undone as their target's swap was.
        let left =
            left.map_err(|e| EngineError::new(format!("list the dependents of {target:?}"), e))?;
        return Ok(left.then(|| Interrupted {
            committed: false,
            change: Change {
                rotation: String::new(),
                old_id: String::new(),
                new_id: String::new(),
                old_running: false,
                order: "",
                order_note: None,
                note: None,
                dependents: Vec::new(),
                mark: None,
                spec_version: None,
            },
        }));
    }
    Ok(pick.map(|(marker, c)| {
        let labels = c.labels.clone().unwrap_or_default();
        let rotation = rotation_of(c);
        let old_id = match marker {
            Marker::New => labels.get(labels::REPLACES).cloned().unwrap_or_default(),
            _ => c.id.clone().unwrap_or_default(),
        };
        Interrupted {
            committed: *marker == Marker::Done,
            change: Change {
                rotation,
                old_id,
                new_id: String::new(),
                old_running: *marker == Marker::Old
                    || labels.get(labels::OLD_RUNNING).map(String::as_str) == Some("true"),
                order: "",
                order_note: None,
                note: None,
                dependents: Vec::new(),
                mark: None,
                spec_version: None,
            },
        }
    }))
}

/// Finishes a verified swap and undoes an unverified one, from the names and labels the
/// engine shows. Returns what it did; an error names the step that failed.
pub async fn settle(docker: &Docker, target: &str, window: Duration) -> Result<Settled, UndoError> {
    let found = retrying(window, "list leftovers of a swap", || {
        list_markers(docker, target)
    })
    .await
    .map_err(|e| undo_error(target, "list the leftovers of the swap", e))?;
    let mut s = Settling {
        docker,
        target,
        window,
        actions: Vec::new(),
        removed: Vec::new(),
    };
    for (marker, c) in &found {
        let id = c.id.clone().unwrap_or_default();
        if s.removed.contains(&id) {
            continue;
        }
        match marker {
            Marker::Done => s.finish(c, &id, &found).await?,
            Marker::Old | Marker::Stopped => s.restore(*marker, &id).await?,
            Marker::New => s.drop_unfinished(c, &id).await?,
            Marker::Canary => s.remove_canary(&id).await?,
            Marker::Lock => {}
        }
    }
    // The containers sharing its namespaces follow the target's swap, either way.
    // What it did is the caller's to log: a rollback, a recovery, or (from commit) the
    // end of a swap that succeeded, which must not read like an undo.
    let mut actions = s.actions;
    actions.extend(super::dependents::settle(docker, target, window).await?);
    Ok(Settled {
        actions,
        warning: None,
    })
}

/// One settle under way: what it did so far, and the replacements it dealt with already
/// (removed, or given the name), which the listing still shows.
struct Settling<'a> {
    docker: &'a Docker,
    target: &'a str,
    window: Duration,
    actions: Vec<String>,
    removed: Vec<String>,
}

impl Settling<'_> {
    /// An engine call, retried while the engine is unreachable; a failure says `what`.
    async fn call<T, Fut>(&self, what: &str, op: impl FnMut() -> Fut) -> Result<T, UndoError>
    where
        Fut: std::future::Future<Output = Result<T, bollard::errors::Error>>,
    {
        undoing(self.target, self.window, what, op).await
    }

    /// `-tr-done-`: the swap was verified. The old container (`old`, ID `id`) is stopped
    /// with its own signal and timeout (it still runs after a start-first swap), then
    /// removed, never its volumes.
    async fn finish(
        &mut self,
        old: &ContainerSummary,
        id: &str,
        found: &[(Marker, ContainerSummary)],
    ) -> Result<(), UndoError> {
        // Start-first: the verified replacement still has its temporary name. It gets the
        // name first, so that a crash from here on leaves only the old container to remove.
        let rotation = rotation_of(old);
        let verified = found
            .iter()
            .find(|(m, n)| *m == Marker::New && rotation_of(n) == rotation);
        if let Some((_, n)) = verified {
            self.name_verified(n.id.clone().unwrap_or_default()).await?;
        }
        let docker = self.docker;
        // One the listing shows not running (stop-first) needs no stop.
        use bollard::models::ContainerSummaryStateEnum as S;
        if !matches!(old.state, Some(S::CREATED | S::EXITED | S::DEAD)) {
            self.call("stop the old container", || stop(docker, id))
                .await?;
        }
        self.call("remove the old container", || remove(docker, id))
            .await?;
        self.actions.push(format!(
            "removed {} (replaced by a verified container)",
            short(id)
        ));
        Ok(())
    }

    /// Start-first: gives the verified replacement `new_id` the target's name.
    async fn name_verified(&mut self, new_id: String) -> Result<(), UndoError> {
        let (docker, target) = (self.docker, self.target);
        let what = "give the verified replacement the name";
        self.call(what, || rename(docker, &new_id, target)).await?;
        self.actions.push(format!(
            "gave the verified replacement {} the name",
            short(&new_id)
        ));
        self.removed.push(new_id);
        if let Err(e) = fault::point("start-first-named").await {
            return Err(UndoError {
                target: target.to_string(),
                what: "finish the start-first swap".into(),
                unreachable: false,
                cause: Box::new(e),
            });
        }
        Ok(())
    }

    /// `-tr-old-`/`-tr-stopped-` (`marker`): not verified. The replacements of the old
    /// container `id` go (found by their `replaces` label, whatever their name now), it gets
    /// its name back, and it starts again if it ran.
    async fn restore(&mut self, marker: Marker, id: &str) -> Result<(), UndoError> {
        let (docker, target) = (self.docker, self.target);
        let replacements = self
            .call("find the replacements", || replacements_of(docker, id))
            .await?;
        for n in replacements {
            self.call("remove the replacement", || remove(docker, &n))
                .await?;
            self.actions
                .push(format!("removed unverified replacement {}", short(&n)));
            self.removed.push(n);
        }
        if let Some(holder) = self.holder().await? {
            return self.drop_superseded(id, &holder).await;
        }
        // Renamed while stopped, then started: the engine renames a running container's
        // network sandbox too, and one with a restart policy may be between two restarts
        // then (20.10 answers 404 "sandbox not found"), which failed the undo.
        self.call("rename the old container back", || {
            rename(docker, id, target)
        })
        .await?;
        if marker == Marker::Old {
            self.call("start the old container again", || start(docker, id))
                .await?;
        }
        self.actions.push(format!(
            "restored the old container {} under its name",
            short(id)
        ));
        Ok(())
    }

    /// The ID of the container holding the target's name, if any. Called once the swap's
    /// own replacements are gone, so a holder is not ours: compose or an operator ran the
    /// bot again while the original was set aside.
    async fn holder(&self) -> Result<Option<String>, UndoError> {
        let (docker, target) = (self.docker, self.target);
        let holder = self
            .call("see who holds the name", || inspect(docker, target))
            .await?;
        // `inspect` also matches ID prefixes: only a container of that very name counts.
        Ok(holder
            .filter(|h| h.name.as_deref().map(|n| n.trim_start_matches('/')) == Some(target))
            .and_then(|h| h.id))
    }

    /// The set-aside original `id` was superseded by `holder`, a container run under the
    /// target's name while the swap was interrupted (as `docker compose up -d` or an operator
    /// re-running the bot does): that one is the target now, and gets the live token by the
    /// next rotation. The original is stopped (it may still run) and removed, as a finished
    /// swap removes it; its volumes stay.
    async fn drop_superseded(&mut self, id: &str, holder: &str) -> Result<(), UndoError> {
        let docker = self.docker;
        self.call("stop the superseded old container", || stop(docker, id))
            .await?;
        self.call("remove the superseded old container", || remove(docker, id))
            .await?;
        self.actions.push(format!(
            "removed the set-aside old container {}: {} was run under the name meanwhile",
            short(id),
            short(holder)
        ));
        Ok(())
    }

    /// A lone `-tr-new-` replacement `c` (ID `id`) next to the untouched original: the swap
    /// stopped before setting the original aside. The replacement goes, and the original
    /// starts again if the swap had stopped it.
    async fn drop_unfinished(&mut self, c: &ContainerSummary, id: &str) -> Result<(), UndoError> {
        let docker = self.docker;
        let labels = c.labels.clone().unwrap_or_default();
        let ran = labels.get(labels::OLD_RUNNING).map(String::as_str) == Some("true");
        let old_id = labels.get(labels::REPLACES).cloned().unwrap_or_default();
        let old = if old_id.is_empty() {
            Some(Default::default()) // no record of what it replaces: remove it
        } else {
            self.call("inspect the old container", || inspect(docker, &old_id))
                .await?
        };
        let Some(old): Option<bollard::models::ContainerInspectResponse> = old else {
            if self.holder().await?.is_none() {
                return self.take_over_name(id, ran).await;
            }
            // Both gone and run again under the name (compose, an operator): the
            // newcomer is the target now; this unverified replacement goes.
            self.call("remove an unfinished replacement", || remove(docker, id))
                .await?;
            self.actions.push(format!(
                "removed unfinished replacement {}: another container was run under the name",
                short(id)
            ));
            return Ok(());
        };
        // The original still has its name: the swap stopped before setting it aside.
        self.call("remove an unfinished replacement", || remove(docker, id))
            .await?;
        self.actions
            .push(format!("removed unfinished replacement {}", short(id)));
        let stopped = old.state.and_then(|s| s.running) != Some(true);
        if ran && stopped && !old_id.is_empty() {
            self.call("start the old container again", || start(docker, &old_id))
                .await?;
            self.actions.push(format!(
                "started the old container {} again",
                short(&old_id)
            ));
        }
        Ok(())
    }

    /// The container the replacement `id` replaces is gone (an `--rm` one that exited, or
    /// removed by hand): removing the replacement would leave no bot at all, so it takes
    /// the name (and starts, if the old one ran).
    async fn take_over_name(&mut self, id: &str, ran: bool) -> Result<(), UndoError> {
        let (docker, target) = (self.docker, self.target);
        let what = "give the replacement the name of the container that is gone";
        self.call(what, || rename(docker, id, target)).await?;
        if ran {
            self.call("start the replacement", || start(docker, id))
                .await?;
        }
        self.actions.push(format!(
            "the container it replaced is gone: gave the replacement {} the name",
            short(id)
        ));
        Ok(())
    }

    /// A canary never outlives its rotation: this one's process died.
    async fn remove_canary(&mut self, id: &str) -> Result<(), UndoError> {
        let docker = self.docker;
        self.call("remove a leftover canary", || remove(docker, id))
            .await?;
        self.actions
            .push(format!("removed leftover canary {}", short(id)));
        Ok(())
    }
}

/// The rotation ID in a marker container's name.
fn rotation_of(c: &ContainerSummary) -> String {
    let name = c
        .names
        .as_ref()
        .and_then(|n| n.first())
        .cloned()
        .unwrap_or_default();
    name.rsplit('-').next().unwrap_or_default().to_string()
}

/// Containers named `TARGET-tr-TAG-ROT`, set-aside old ones first so their replacements
/// go with them.
pub async fn list_markers(
    docker: &Docker,
    target: &str,
) -> Result<Vec<(Marker, ContainerSummary)>, bollard::errors::Error> {
    let filter = HashMap::from([("name".to_string(), vec![format!("{target}-tr-")])]);
    let opts = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filter)
        .build();
    let mut found: Vec<(Marker, ContainerSummary)> = list_containers(docker, opts)
        .await?
        .into_iter()
        .filter_map(|c| {
            let name = c.names.as_ref()?.first()?.clone();
            match Marker::parse(&name) {
                Some((t, m)) if t == target && m != Marker::Lock => Some((m, c)),
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
    let filter = HashMap::from([(
        "label".to_string(),
        vec![format!("{}={old_id}", labels::REPLACES)],
    )]);
    let opts = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filter)
        .build();
    Ok(list_containers(docker, opts)
        .await?
        .into_iter()
        .filter_map(|c| c.id)
        .collect())
}
