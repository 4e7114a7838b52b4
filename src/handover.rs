//! The moment of the swap where the bot is down: stop the old container, start the new one.
//!
//! The engine's `stop` returns only after it has cleaned up the stopped container
//! (unmounted its layer, released its network), about 50 ms on a small container, and
//! nothing about that cleanup matters to the replacement unless the two compete for the
//! same host port or static IP. So, when they cannot, the replacement is started as soon
//! as the old process has exited (the engine's `wait` with `not-running`), while the
//! cleanup and the `stop` call finish alongside.

use bollard::query_parameters::{StopContainerOptions, WaitContainerOptionsBuilder};
use bollard::Docker;
use futures_util::StreamExt;

use crate::docker::start;
use crate::plan::Target;

/// Which step of the handover failed, with the engine's error.
#[derive(Debug)]
pub enum HandoverError {
    /// Stopping the old container failed; the replacement was not started.
    Stop(bollard::errors::Error),
    /// The old container stopped, but the replacement did not start.
    Start(bollard::errors::Error),
}

/// Stops `target` (its own stop signal and timeout) and starts `new_id`. `stopped` is
/// called once the old process is known to have exited, before the start.
pub async fn stop_then_start<F: std::future::Future<Output = ()>>(
    docker: &Docker,
    target: &Target,
    new_id: &str,
    stopped: impl FnOnce() -> F,
) -> Result<(), HandoverError> {
    let stop = docker.stop_container(&target.id, None::<StopContainerOptions>);
    tokio::pin!(stop);
    let mut stop_done = false;
    if can_overlap(target) {
        tokio::select! {
            r = &mut stop => {
                r.map_err(HandoverError::Stop)?;
                stop_done = true;
            }
            () = exited(docker, &target.id) => {}
        }
    } else {
        (&mut stop).await.map_err(HandoverError::Stop)?;
        stop_done = true;
    }
    stopped().await;
    if stop_done {
        return start(docker, new_id).await.map_err(HandoverError::Start);
    }
    let (stop, started) = tokio::join!(stop, start(docker, new_id));
    // The old process has exited, so a late stop error (a timeout on a slow cleanup, say)
    // is not a failure of the swap: the start's result decides.
    if let Err(e) = stop {
        tracing::debug!(
            "stopping the old container reported after its exit: {}",
            crate::docker::describe(&e)
        );
    }
    started.map_err(HandoverError::Start)
}

/// Completes once the container is not running; never completes if that cannot be
/// learned (the stop call then decides).
async fn exited(docker: &Docker, id: &str) {
    let opts = WaitContainerOptionsBuilder::default()
        .condition("not-running")
        .build();
    match docker.wait_container(id, Some(opts)).next().await {
        // bollard reports a non-zero exit code (137 after a SIGKILL) as an error.
        Some(Ok(_)) | Some(Err(bollard::errors::Error::DockerContainerWaitError { .. })) => {}
        _ => std::future::pending().await,
    }
}

/// Whether the replacement may start while the engine still cleans up the old container:
/// not when they would compete for a host port or a static IP, or share a volume whose
/// driver is not the local one (which may allow one mount at a time).
fn can_overlap(target: &Target) -> bool {
    let info = &target.inspect;
    let host = info.host_config.as_ref();
    let publishes = host.is_some_and(|h| {
        h.publish_all_ports == Some(true)
            || h.port_bindings.as_ref().is_some_and(|b| {
                b.values()
                    .any(|v| v.as_ref().is_some_and(|v| !v.is_empty()))
            })
    });
    let static_ip = info
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.as_ref())
        .is_some_and(|nets| {
            nets.values().any(|e| {
                e.ipam_config.as_ref().is_some_and(|c| {
                    c.ipv4_address.as_deref().is_some_and(|a| !a.is_empty())
                        || c.ipv6_address.as_deref().is_some_and(|a| !a.is_empty())
                })
            })
        });
    let foreign_volume = info.mounts.as_ref().is_some_and(|m| {
        m.iter().any(|m| {
            m.driver
                .as_deref()
                .is_some_and(|d| !d.is_empty() && d != "local")
        })
    });
    !publishes && !static_ip && !foreign_volume
}
