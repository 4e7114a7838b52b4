//! The Docker Engine: the connection, the few container operations every step uses, how
//! engine errors are read, the names and labels token-rotator writes, and one backoff.
//!
//! The engine is found the standard way (`DOCKER_HOST`, else the local unix socket) and
//! the API version is negotiated down to what the engine speaks (1.41 and newer).

pub mod api;
pub mod backoff;
pub mod dialect;
pub mod labels;
pub mod legacy;
pub mod lenient;
pub mod names;
pub mod refused;
pub mod version;

use std::time::Duration;

use bollard::query_parameters::{
    RemoveContainerOptionsBuilder, RenameContainerOptionsBuilder, StartContainerOptions,
    StopContainerOptions,
};
use bollard::Docker;

pub use backoff::{jittered, retrying, Backoff};
pub use refused::Refused;

/// Lowest Engine API version supported.
pub const MIN_API: (usize, usize) = (1, 41);

/// The engine cannot be reached or is too old.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// No connection could be set up.
    #[error("cannot connect to the Docker engine ({host}): {}; is dockerd running and is DOCKER_HOST or the socket mount right?", describe(source))]
    Connect {
        /// The address tried.
        host: String,
        /// Why.
        #[source]
        source: bollard::errors::Error,
    },
    /// The socket exists but this process may not open it.
    #[error("permission denied on {socket}: token-rotator runs as uid {uid}, which may not open the Docker socket; add the socket's group (compose: `group_add: [\"${{DOCKER_GID}}\"]` with DOCKER_GID=$(stat -c %g {socket}); docker run: --group-add)")]
    PermissionDenied {
        /// The socket path.
        socket: String,
        /// The uid this process runs as.
        uid: u32,
        /// The connection error.
        #[source]
        source: bollard::errors::Error,
    },
    /// The engine speaks an API older than 1.41.
    #[error("the Docker engine speaks API {0}, older than the 1.41 this tool needs")]
    TooOld(String),
}

/// One engine operation that failed, with the engine's error kept as the cause.
#[derive(Debug, thiserror::Error)]
#[error("could not {what}: {}", describe(source))]
pub struct EngineError {
    /// What was being done, e.g. "inspect container bot".
    pub what: String,
    /// The engine's (or the transport's) error.
    #[source]
    pub source: bollard::errors::Error,
}

impl EngineError {
    /// Wraps `source` as the failure of `what`.
    pub fn new(what: impl Into<String>, source: bollard::errors::Error) -> Self {
        EngineError {
            what: what.into(),
            source,
        }
    }
}

/// An engine error as a cause, shown the way [`describe`] says it.
#[derive(Debug, thiserror::Error)]
#[error("{}", describe(.0))]
pub struct Failure(#[source] pub bollard::errors::Error);

pub(crate) fn host() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into())
}

/// Connects and negotiates the API version.
pub async fn connect() -> Result<Docker, ConnectError> {
    let fail = |source: bollard::errors::Error| {
        let host = host();
        match host.strip_prefix("unix://") {
            Some(socket) if is_permission_denied(&source) => ConnectError::PermissionDenied {
                socket: socket.to_string(),
                // SAFETY: geteuid has no preconditions and cannot fail.
                uid: unsafe { libc::geteuid() },
                source,
            },
            _ => ConnectError::Connect { host, source },
        }
    };
    // A stop honours the container's own timeout, which may exceed bollard's 2-minute default.
    const TIMEOUT: u64 = 600;
    let docker = match by_ping(TIMEOUT).await {
        Some(docker) => docker,
        // Not a unix socket, or no version in the ping: bollard's own negotiation (it also
        // says what went wrong).
        None => Docker::connect_with_defaults()
            .map_err(fail)?
            .with_timeout(Duration::from_secs(TIMEOUT))
            .negotiate_version()
            .await
            .map_err(fail)?,
    };
    let v = docker.client_version();
    if (v.major_version, v.minor_version) < MIN_API {
        return Err(ConnectError::TooOld(format!(
            "{}.{}",
            v.major_version, v.minor_version
        )));
    }
    Ok(docker)
}

/// Connects over the unix socket at the version the engine's ping names (bollard's own
/// if the engine speaks a newer one), if it answers.
async fn by_ping(timeout_secs: u64) -> Option<Docker> {
    let host = host();
    let socket = host.strip_prefix("unix://")?;
    let (major, minor) = version::ping_version(socket).await?;
    let ours = bollard::API_DEFAULT_VERSION;
    let v = if (major, minor) < (ours.major_version, ours.minor_version) {
        bollard::ClientVersion {
            major_version: major,
            minor_version: minor,
        }
    } else {
        *ours
    };
    Docker::connect_with_unix(socket, timeout_secs, &v).ok()
}

/// The API version agreed with the engine, as `(major, minor)`.
pub fn api_version(docker: &Docker) -> (usize, usize) {
    let v = docker.client_version();
    (v.major_version, v.minor_version)
}

/// An engine error in one line, e.g. `engine answered 404: No such container: bot`.
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

/// Whether an error was caused by an OS "permission denied" (EACCES).
pub fn is_permission_denied(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::PermissionDenied {
                return true;
            }
        }
        cause = c.source();
    }
    false
}

/// The HTTP status the engine answered with, if it answered.
pub fn status_of(e: &bollard::errors::Error) -> Option<u16> {
    match e {
        bollard::errors::Error::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// Whether an engine error says a container name is taken: Docker answers 409; Podman 4.3's
/// compat API answers 500 with libpod's "is already in use".
pub fn is_name_taken(e: &bollard::errors::Error) -> bool {
    match e {
        bollard::errors::Error::DockerResponseServerError {
            status_code,
            message,
        } => *status_code == 409 || (*status_code == 500 && message.contains("is already in use")),
        _ => false,
    }
}

/// Whether an engine error is a 404.
pub fn is_not_found(e: &bollard::errors::Error) -> bool {
    status_of(e) == Some(404)
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

/// Inspects a container; `None` if it does not exist.
pub async fn inspect(
    docker: &Docker,
    id: &str,
) -> Result<Option<bollard::models::ContainerInspectResponse>, bollard::errors::Error> {
    match lenient::inspect_container(docker, id).await {
        Ok(c) => Ok(Some(c)),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Force-removes a container, keeping its volumes (another container may use them).
/// A container that is already gone counts as removed.
pub async fn remove_keep_volumes(docker: &Docker, id: &str) -> Result<(), bollard::errors::Error> {
    let opts = RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(false)
        .build();
    match docker.remove_container(id, Some(opts)).await {
        // 409 on a forced remove: the engine is removing it already (an `--rm` container
        // that just stopped). Wait until it is gone.
        Err(e) if status_of(&e) == Some(409) => {
            for _ in 0..100 {
                match inspect(docker, id).await {
                    Ok(None) => return Ok(()),
                    Ok(Some(_)) => tokio::time::sleep(Duration::from_millis(100)).await,
                    Err(e) => return Err(e),
                }
            }
            Err(e)
        }
        Err(e) if !is_not_found(&e) => Err(e),
        _ => Ok(()),
    }
}

/// Renames a container.
pub async fn rename(docker: &Docker, id: &str, name: &str) -> Result<(), bollard::errors::Error> {
    let opts = RenameContainerOptionsBuilder::default().name(name).build();
    docker.rename_container(id, opts).await
}

/// Starts a container; one already running counts as started.
pub async fn start(docker: &Docker, id: &str) -> Result<(), bollard::errors::Error> {
    match docker
        .start_container(id, None::<StartContainerOptions>)
        .await
    {
        Err(e) if status_of(&e) == Some(304) => Ok(()),
        other => other,
    }
}

/// Stops a container. No options: the engine applies the container's own stop signal and
/// timeout.
pub async fn stop(docker: &Docker, id: &str) -> Result<(), bollard::errors::Error> {
    match docker
        .stop_container(id, None::<StopContainerOptions>)
        .await
    {
        Err(e) if status_of(&e) == Some(304) => Ok(()),
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
    // Docker bind-mounts /etc/hostname (and resolv.conf, hosts) from
    // <data-root>/containers/<64 hex>/. Only those mount points say whose container this
    // is: on the host, another container's `--ipc shareable` shm mount also holds a
    // `/containers/<id>/` path, and it is not ours.
    mountinfo.lines().find_map(|line| {
        let mut fields = line.split(' ');
        let root = fields.nth(3)?;
        let mount_point = fields.next()?;
        if !matches!(
            mount_point,
            "/etc/hostname" | "/etc/resolv.conf" | "/etc/hosts"
        ) {
            return None;
        }
        let idx = root.find("/containers/")?;
        let rest = &root[idx + "/containers/".len()..];
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

    #[test]
    fn another_containers_shm_mount_on_the_host_is_not_ours() {
        let id = "b".repeat(64);
        let shm = format!(
            "700 29 0:60 / /var/lib/docker/containers/{id}/mounts/shm rw,nosuid - tmpfs shm rw"
        );
        assert_eq!(find_container_id(&format!("1 2 3 / / rw\n{shm}\n")), None);
    }

    #[test]
    fn a_taken_name_is_told_by_docker_and_by_podman() {
        let answer =
            |status_code: u16, message: &str| bollard::errors::Error::DockerResponseServerError {
                status_code,
                message: message.to_string(),
            };
        assert!(is_name_taken(&answer(
            409,
            "Conflict. The container name is already in use"
        )));
        assert!(is_name_taken(&answer(
            500,
            "container create: creating container storage: the container name \"x-tr-lock\" is already in use by 63ff7d2185c9"
        )));
        assert!(!is_name_taken(&answer(500, "no space left on device")));
        assert!(!is_name_taken(&answer(404, "no such container")));
    }
}
