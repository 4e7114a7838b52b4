//! Every Engine API call token-rotator makes, as a socket proxy's allowlist: method, path
//! and the modes that need it. This list is the one place: the README's "The Docker
//! socket" table is checked against it (a unit test below), the allowlist test builds its
//! deny-by-default HAProxy from it, and a refused call names the entry to allow.

/// One allowed call. `path` is written as an operator reads it (`{id}` for a name or ID);
/// a proxy matches it after the optional version prefix (`/v1.41`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    /// HTTP method.
    pub method: &'static str,
    /// Path without the version prefix, `{id}` standing for one path segment.
    pub path: &'static str,
    /// The section of a docker-socket-proxy style proxy that grants it.
    pub section: &'static str,
    /// Which modes call it (README wording).
    pub used_by: &'static str,
    /// What to do when it is refused.
    pub allow: &'static str,
}

const fn ep(
    method: &'static str,
    path: &'static str,
    section: &'static str,
    used_by: &'static str,
    allow: &'static str,
) -> Endpoint {
    Endpoint {
        method,
        path,
        section,
        used_by,
        allow,
    }
}

const CORE: &str = "allow the containers section (GET and POST)";

/// Pinging the engine (connection, `run`'s engine watch, `/readyz`).
pub const PING: Endpoint = ep("GET", "/_ping", "PING", "every mode", "allow /_ping");
/// API version negotiation.
pub const VERSION: Endpoint = ep("GET", "/version", "VERSION", "every mode", "allow /version");
/// Listing containers.
pub const LIST: Endpoint = ep(
    "GET",
    "/containers/json",
    "CONTAINERS",
    "`rotate`, `run`, `--label`, the lock, recovery",
    CORE,
);
/// Inspecting a container.
pub const INSPECT: Endpoint = ep(
    "GET",
    "/containers/{id}/json",
    "CONTAINERS",
    "`rotate`, `run`, the lock, `--canary`",
    CORE,
);
/// Inspecting the bot's image (its default env and healthcheck).
pub const IMAGE: Endpoint = ep(
    "GET",
    "/images/{id}/json",
    "IMAGES",
    "`rotate`, `run`, `--service`",
    "allow GET on the images section",
);
/// Creating the replacement, the lock marker or the canary.
pub const CREATE: Endpoint = ep(
    "POST",
    "/containers/create",
    "CONTAINERS + POST",
    "`rotate`, `run`, the lock, `--canary`",
    CORE,
);
/// Starting a container.
pub const START: Endpoint = ep(
    "POST",
    "/containers/{id}/start",
    "CONTAINERS + POST",
    "`rotate`, `run`, `--canary`, recovery",
    CORE,
);
/// Stopping a container.
pub const STOP: Endpoint = ep(
    "POST",
    "/containers/{id}/stop",
    "CONTAINERS + POST",
    "`rotate`, `run`, recovery",
    CORE,
);
/// Renaming a container.
pub const RENAME: Endpoint = ep(
    "POST",
    "/containers/{id}/rename",
    "CONTAINERS + POST",
    "`rotate`, `run`, recovery",
    CORE,
);
/// Removing a container (never its volumes).
pub const REMOVE: Endpoint = ep(
    "DELETE",
    "/containers/{id}",
    "CONTAINERS + DELETE",
    "`rotate`, `run`, the lock, `--canary`, recovery",
    "allow DELETE on the containers section",
);
/// Connecting the replacement to its second and further networks.
pub const CONNECT: Endpoint = ep(
    "POST",
    "/networks/{id}/connect",
    "NETWORKS + POST",
    "`rotate`, `run` (a bot on several networks)",
    "allow POST on the networks section",
);
/// Reading a container's log (the canary's output, `run`'s log trigger).
pub const LOGS: Endpoint = ep(
    "GET",
    "/containers/{id}/logs",
    "CONTAINERS",
    "`run` (log trigger), `--canary`",
    CORE,
);
/// Following the engine's events.
pub const EVENTS: Endpoint = ep(
    "GET",
    "/events",
    "EVENTS",
    "`run`",
    "allow the events section",
);
/// Creating the verification exec.
pub const EXEC_CREATE: Endpoint = ep(
    "POST",
    "/containers/{id}/exec",
    "EXEC + POST",
    "`--verify-exec`",
    "allow exec, or run without --verify-exec",
);
/// Starting it (attached; detached when the proxy does not pass the upgrade).
pub const EXEC_START: Endpoint = ep(
    "POST",
    "/exec/{id}/start",
    "EXEC + POST",
    "`--verify-exec`",
    "allow exec, or run without --verify-exec",
);
/// Reading its exit code.
pub const EXEC_INSPECT: Endpoint = ep(
    "GET",
    "/exec/{id}/json",
    "EXEC",
    "`--verify-exec`",
    "allow exec, or run without --verify-exec",
);
/// Listing Swarm services (`--label` also skips a service's tasks).
pub const SERVICES: Endpoint = ep(
    "GET",
    "/services",
    "SERVICES",
    "`--label`, `--service`",
    "allow GET on the services section",
);
/// Inspecting a service.
pub const SERVICE: Endpoint = ep(
    "GET",
    "/services/{id}",
    "SERVICES",
    "`--service`",
    "allow GET on the services section",
);
/// Updating a service.
pub const SERVICE_UPDATE: Endpoint = ep(
    "POST",
    "/services/{id}/update",
    "SERVICES + POST",
    "`--service`",
    "allow POST on the services section",
);
/// Listing a service's tasks.
pub const TASKS: Endpoint = ep(
    "GET",
    "/tasks",
    "TASKS",
    "`--service`",
    "allow GET on the tasks section",
);
/// Listing images (a service's image by digest).
pub const IMAGES: Endpoint = ep(
    "GET",
    "/images/json",
    "IMAGES",
    "`--service`",
    "allow GET on the images section",
);

/// Every call, in the README's order.
pub const ALL: [Endpoint; 21] = [
    PING,
    VERSION,
    LIST,
    INSPECT,
    IMAGE,
    CREATE,
    START,
    STOP,
    RENAME,
    REMOVE,
    CONNECT,
    LOGS,
    EVENTS,
    EXEC_CREATE,
    EXEC_START,
    EXEC_INSPECT,
    SERVICES,
    SERVICE,
    SERVICE_UPDATE,
    TASKS,
    IMAGES,
];

/// Every endpoint.
pub fn every() -> impl Iterator<Item = &'static Endpoint> {
    ALL.iter()
}

impl Endpoint {
    /// A regular expression (POSIX ERE, as HAProxy's `path_reg` takes it) matching the
    /// path with or without the version prefix, the query string excluded.
    pub fn path_regex(&self) -> String {
        let body = self.path.replace("{id}", "[^/]+").replace('.', "\\.");
        format!("^(/v[0-9]+\\.[0-9]+)?{body}$")
    }

    /// The README's table row for it.
    pub fn readme_row(&self) -> String {
        format!(
            "| `{}` | `{}` | {} | {} |",
            self.method, self.path, self.section, self.used_by
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_table_lists_exactly_these_calls() {
        let readme = include_str!("../../README.md");
        let rows: Vec<&str> = readme
            .lines()
            .filter(|l| {
                l.starts_with("| `GET`") || l.starts_with("| `POST`") || l.starts_with("| `DELETE`")
            })
            .collect();
        let expected: Vec<String> = every().map(Endpoint::readme_row).collect();
        assert_eq!(
            rows, expected,
            "README's API table matches src/engine/api.rs"
        );
    }

    #[test]
    fn a_path_regex_takes_one_segment_per_id_and_an_optional_version() {
        assert_eq!(
            INSPECT.path_regex(),
            "^(/v[0-9]+\\.[0-9]+)?/containers/[^/]+/json$"
        );
        assert_eq!(PING.path_regex(), "^(/v[0-9]+\\.[0-9]+)?/_ping$");
        let paths: std::collections::HashSet<_> = every().map(|e| (e.method, e.path)).collect();
        assert_eq!(paths.len(), ALL.len(), "no call is listed twice");
    }
}
