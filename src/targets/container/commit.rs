//! Commit a verified swap: one rename records it (the old container becomes `-tr-done-`),
//! then the one [`super::undo::settle`] finishes it. Every engine call rides out an
//! unreachable engine for `--engine-retry`.

use std::time::Duration;

use bollard::Docker;

use super::step::{self, failed};
use super::undo::settle;
use crate::engine::names::Marker;
use crate::engine::{inspect, is_transport, rename, retrying, EngineError};
use crate::targets::{fault, Change, Settled, StepError};

/// Records that `change` was verified (the old container becomes `-tr-done-`), then
/// finishes it with [`settle`]. An error means nothing was recorded.
pub async fn commit(
    docker: &Docker,
    target: &str,
    change: &Change,
    window: Duration,
) -> Result<Settled, StepError> {
    let done = Marker::Done.name(target, &change.rotation);
    let not_recorded = |e: bollard::errors::Error| {
        failed(
            target,
            step::COMMIT,
            is_transport(&e),
            EngineError::new(step::COMMIT, e),
        )
    };
    let named_done = |c: &Option<bollard::models::ContainerInspectResponse>| {
        c.as_ref()
            .and_then(|c| c.name.as_deref())
            .is_some_and(|n| n.trim_start_matches('/') == done)
    };
    // Renamed straight away (one round trip); only a refusal is looked into: the old
    // container gone, already marked (a commit finished again after a crash), or the
    // rename through with its answer lost.
    let renamed = retrying(window, "mark the old container done", || {
        rename(docker, &change.old_id, &done)
    })
    .await;
    if let Err(e) = renamed {
        let now = retrying(window, "inspect the old container", || {
            inspect(docker, &change.old_id)
        })
        .await
        .map_err(not_recorded)?;
        if now.is_some() && !named_done(&now) {
            return Err(not_recorded(e));
        }
    }
    // Committed from here on (or the old container is gone, and the verified replacement
    // is all there is): the same settle finishes it.
    let leftover = |e: &dyn std::fmt::Display| {
        Settled {
        actions: Vec::new(),
        warning: Some(format!(
            "the swap is recorded as verified but could not be finished: {e}; the next run finishes it"
        )),
    }
    };
    if let Err(e) = fault::point("before-remove").await {
        return Ok(leftover(&e));
    }
    match settle(docker, target, window).await {
        Ok(settled) => Ok(settled),
        // Start-first: the replacement may still have its temporary name beside the old
        // bot. Not a success: a retryable failure, which the next run finishes.
        Err(e) if change.order == "start-first" => {
            Err(failed(target, step::COMMIT, e.unreachable, e))
        }
        Err(e) => Ok(leftover(&e)),
    }
}
