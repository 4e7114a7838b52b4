//! Which engine answers, as far as a copy of a container depends on it: the API version,
//! and whether it is Docker or Podman's Docker-compatible API (`podman system service`),
//! whose inspect output and create differ from Docker's in ways listed in
//! `targets::container::compat`.

use bollard::Docker;

/// The engine behind the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Docker Engine (Moby).
    Docker,
    /// Podman's Docker-compatible API.
    Podman,
}

/// What a copy of a container depends on: the engine and the API version agreed with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dialect {
    /// Docker or Podman.
    pub kind: Kind,
    /// The API version agreed, `(major, minor)`.
    pub api: (usize, usize),
}

impl Dialect {
    /// Docker at API `api`.
    pub fn docker(api: (usize, usize)) -> Dialect {
        Dialect {
            kind: Kind::Docker,
            api,
        }
    }

    /// Podman at API `api`.
    pub fn podman(api: (usize, usize)) -> Dialect {
        Dialect {
            kind: Kind::Podman,
            api,
        }
    }

    /// Whether the engine is Podman.
    pub fn is_podman(self) -> bool {
        self.kind == Kind::Podman
    }

    /// The name the default network has in a container's `NetworkSettings.Networks`.
    pub fn default_network(self) -> &'static str {
        match self.kind {
            Kind::Docker => "bridge",
            Kind::Podman => "podman",
        }
    }
}

/// The dialect of the engine `docker` talks to. Its `/version` names its components:
/// Podman's says `Podman Engine`. If `/version` cannot be read, the engine counts as Docker
/// (the create that follows reports what the engine says).
pub async fn of(docker: &Docker) -> Dialect {
    let api = super::api_version(docker);
    match docker.version().await {
        Ok(v) if is_podman(&v) => Dialect::podman(api),
        _ => Dialect::docker(api),
    }
}

fn is_podman(v: &bollard::models::SystemVersion) -> bool {
    v.components
        .iter()
        .flatten()
        .any(|c| c.name.to_ascii_lowercase().contains("podman"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn podmans_version_names_a_podman_engine_component() {
        // Trimmed from podman 4.3.1's `GET /version` and Docker 20.10's.
        let podman: bollard::models::SystemVersion = serde_json::from_str(
            r#"{"Components":[{"Name":"Podman Engine","Version":"4.3.1","Details":{"APIVersion":"4.3.1"}}],
                "Version":"4.3.1","ApiVersion":"1.41","MinAPIVersion":"1.24"}"#,
        )
        .unwrap();
        let docker: bollard::models::SystemVersion = serde_json::from_str(
            r#"{"Components":[{"Name":"Engine","Version":"20.10.24+dfsg1","Details":{}},
                {"Name":"containerd","Version":"1.6.20~ds1","Details":{}}],
                "Version":"20.10.24+dfsg1","ApiVersion":"1.41"}"#,
        )
        .unwrap();
        assert!(is_podman(&podman));
        assert!(!is_podman(&docker));
        assert_eq!(Dialect::podman((1, 41)).default_network(), "podman");
        assert_eq!(Dialect::docker((1, 41)).default_network(), "bridge");
    }
}
