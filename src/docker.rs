//! The connection to the Docker Engine, and the labels token-rotator writes on containers.
//!
//! The engine is found the standard way (`DOCKER_HOST`, else the local unix socket) and
//! the API version is negotiated down to what the engine speaks (1.41 and newer).

use std::time::Duration;

use bollard::Docker;

/// Label on a container created by token-rotator: fingerprint of the token it was given.
pub const LABEL_FINGERPRINT: &str = "token-rotator.fingerprint";
/// Label: id of the rotation that created the container.
pub const LABEL_ROTATION: &str = "token-rotator.rotation";
/// Label: when that rotation swapped it in (RFC 3339, UTC).
pub const LABEL_SWAPPED_AT: &str = "token-rotator.swapped-at";
/// Label: ID of the container this one replaced.
pub const LABEL_REPLACES: &str = "token-rotator.replaces";
/// Label: whether the replaced container was running (for recovery after a crash).
pub const LABEL_OLD_RUNNING: &str = "token-rotator.old-was-running";
/// Label: the name the container is meant to carry once the swap completes.
pub const LABEL_TARGET_NAME: &str = "token-rotator.target-name";

/// Lowest Engine API version supported.
pub const MIN_API: (usize, usize) = (1, 41);

/// The engine cannot be reached or is too old.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// No connection could be set up.
    #[error("cannot connect to the Docker engine ({host}): {reason}; is dockerd running and is DOCKER_HOST or the socket mount right?")]
    Connect {
        /// The address tried.
        host: String,
        /// Why.
        reason: String,
    },
    /// The engine speaks an API older than 1.41.
    #[error("the Docker engine speaks API {0}, older than the 1.41 this tool needs")]
    TooOld(String),
}

fn host() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into())
}

/// Connects and negotiates the API version.
pub async fn connect() -> Result<Docker, EngineError> {
    let fail = |reason: String| EngineError::Connect {
        host: host(),
        reason,
    };
    let docker = Docker::connect_with_defaults()
        .map_err(|e| fail(e.to_string()))?
        // A stop honours the container's own timeout, which may exceed bollard's 2-minute default.
        .with_timeout(Duration::from_secs(600));
    let docker = docker
        .negotiate_version()
        .await
        .map_err(|e| fail(e.to_string()))?;
    let v = docker.client_version();
    if (v.major_version, v.minor_version) < MIN_API {
        return Err(EngineError::TooOld(format!(
            "{}.{}",
            v.major_version, v.minor_version
        )));
    }
    Ok(docker)
}

/// Whether the negotiated API is at least `minor` (1.x).
pub fn api_at_least(docker: &Docker, minor: usize) -> bool {
    let v = docker.client_version();
    v.major_version > 1 || (v.major_version == 1 && v.minor_version >= minor)
}

/// An engine error in one line, e.g. `HTTP 404: No such container: bot`.
pub fn describe(e: &bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerResponseServerError {
            status_code,
            message,
        } => format!("engine answered {status_code}: {}", message.trim()),
        other if is_transport(other) => {
            // The innermost cause (e.g. "Connection refused") says more than hyper's wrapper.
            let mut cause: &dyn std::error::Error = other;
            while let Some(next) = cause.source() {
                cause = next;
            }
            format!("engine unreachable ({cause})")
        }
        other => other.to_string(),
    }
}

/// Whether an engine error is a 404.
pub fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// Whether an error means the engine could not be reached (as opposed to an answer from it).
pub fn is_transport(e: &bollard::errors::Error) -> bool {
    use bollard::errors::Error as E;
    matches!(
        e,
        E::RequestTimeoutError
            | E::IOError { .. }
            | E::HyperResponseError { .. }
            | E::HyperLegacyError { .. }
            | E::SocketNotFoundError(_)
    )
}

/// Runs `op`, retrying it with backoff while the engine cannot be reached, for up to
/// `window` (an engine restart takes seconds). Answers from the engine are returned as is.
pub async fn retrying<T, Fut>(
    window: Duration,
    what: &str,
    mut op: impl FnMut() -> Fut,
) -> Result<T, bollard::errors::Error>
where
    Fut: std::future::Future<Output = Result<T, bollard::errors::Error>>,
{
    let started = std::time::Instant::now();
    let mut delay = Duration::from_millis(250);
    loop {
        match op().await {
            Err(e) if is_transport(&e) && started.elapsed() < window => {
                tracing::warn!(
                    retry_in_ms = delay.as_millis() as u64,
                    "could not {what}, retrying: {}",
                    describe(&e)
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            other => return other,
        }
    }
}

/// Force-removes a container, keeping its volumes (another container may use them).
/// A container that is already gone counts as removed.
pub async fn remove_keep_volumes(docker: &Docker, id: &str) -> Result<(), bollard::errors::Error> {
    let opts = bollard::query_parameters::RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(false)
        .build();
    match docker.remove_container(id, Some(opts)).await {
        Err(e) if !is_not_found(&e) => Err(e),
        _ => Ok(()),
    }
}

/// Renames a container.
pub async fn rename(docker: &Docker, id: &str, name: &str) -> Result<(), bollard::errors::Error> {
    let opts = bollard::query_parameters::RenameContainerOptionsBuilder::default()
        .name(name)
        .build();
    docker.rename_container(id, opts).await
}

/// Starts a container; one already running counts as started.
pub async fn start(docker: &Docker, id: &str) -> Result<(), bollard::errors::Error> {
    match docker
        .start_container(id, None::<bollard::query_parameters::StartContainerOptions>)
        .await
    {
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 304, ..
        }) => Ok(()),
        other => other,
    }
}

/// First 12 characters of an ID.
pub fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// The ID of the container this process runs in, if any (found from the mount table).
pub fn own_container_id() -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    find_container_id(&text)
}

fn find_container_id(mountinfo: &str) -> Option<String> {
    // Docker bind-mounts /etc/hostname from /var/lib/docker/containers/<64 hex>/hostname.
    mountinfo.lines().find_map(|line| {
        let idx = line.find("/containers/")?;
        let rest = &line[idx + "/containers/".len()..];
        let id: String = rest.chars().take_while(|c| c.is_ascii_hexdigit()).collect();
        (id.len() == 64 && rest[64..].starts_with('/')).then_some(id)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_id_is_read_from_the_hostname_mount() {
        let id = "a".repeat(64);
        let line = format!("612 590 254:1 /var/lib/docker/containers/{id}/hostname /etc/hostname rw,relatime - ext4 /dev/vda rw");
        assert_eq!(
            find_container_id(&format!("1 2 3 / / rw\n{line}\n")),
            Some(id)
        );
        assert_eq!(find_container_id("1 2 3 / / rw\n"), None);
    }
}
