//! What each target carries now, read from the engine (so it works from any shell).
//!
//! Used by `token-rotator status` and the daemon's `/status` and `/readyz`.

use std::path::Path;

use bollard::Docker;
use serde::Serialize;

use crate::engine::lenient::inspect_container;
use crate::engine::{describe, labels};
use crate::secret::{read_token_async, Fingerprint, Token, TokenFormat};
use crate::targets::container::env_value;

/// One target as the engine describes it.
#[derive(Debug, Clone, Serialize)]
pub struct TargetStatus {
    /// The name as configured.
    pub name: String,
    /// `container` or `service` (a Swarm service).
    pub kind: &'static str,
    /// Container ID, if found.
    pub id: Option<String>,
    /// Engine state (`running`, `exited`, ...), or `missing`.
    pub state: String,
    /// Fingerprint of the token its env carries.
    pub fingerprint: Option<String>,
    /// Whether that is the secret file's token (`None` if the file is unusable).
    pub matches_secret: Option<bool>,
    /// Rotation that last swapped it (label).
    pub rotation: Option<String>,
    /// When that rotation swapped it (label).
    pub swapped_at: Option<String>,
    /// Why it could not be inspected.
    pub error: Option<String>,
}

/// The secret file and every target.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// The secret file's path.
    pub secret_file: String,
    /// Its token's fingerprint, if usable.
    pub secret_fingerprint: Option<String>,
    /// Why it is unusable.
    pub secret_error: Option<String>,
    /// Each target.
    pub targets: Vec<TargetStatus>,
}

impl Snapshot {
    /// Whether the secret is readable and every target was found.
    pub fn problems(&self) -> Vec<String> {
        let mut out: Vec<String> = self.secret_error.iter().cloned().collect();
        out.extend(
            self.targets
                .iter()
                .filter_map(|t| t.error.as_ref().map(|e| format!("{}: {e}", t.name))),
        );
        out
    }

    /// A table for people.
    pub fn render(&self) -> String {
        let mut out = format!(
            "secret file {}: {}\n",
            self.secret_file,
            match (&self.secret_fingerprint, &self.secret_error) {
                (Some(fp), _) => format!("token {fp}"),
                (None, Some(e)) => format!("unusable ({e})"),
                (None, None) => "unknown".into(),
            }
        );
        out.push_str(&format!(
            "{:<32} {:<10} {:<13} {:<8} {:<10} {}\n",
            "CONTAINER", "STATE", "TOKEN", "CURRENT", "ROTATION", "SWAPPED AT"
        ));
        for t in &self.targets {
            let current = match t.matches_secret {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "?",
            };
            out.push_str(&format!(
                "{:<32} {:<10} {:<13} {:<8} {:<10} {}\n",
                t.name,
                t.state,
                t.fingerprint.as_deref().unwrap_or("-"),
                current,
                t.rotation.as_deref().unwrap_or("-"),
                t.swapped_at
                    .as_deref()
                    .or(t.error.as_deref())
                    .unwrap_or("-"),
            ));
        }
        out
    }
}

/// Reads the secret file and inspects every target: the containers (each with the env var
/// that carries its token) and the Swarm services (their spec's env, with `env_var`).
pub async fn collect(
    docker: &Docker,
    containers: &[(String, String)],
    services: &[String],
    env_var: &str,
    secret_file: &Path,
    format: TokenFormat,
) -> Snapshot {
    let secret = read_token_async(secret_file, format).await;
    let secret_ref = secret.as_ref().ok();
    let mut targets = Vec::with_capacity(containers.len() + services.len());
    for (name, env_var) in containers {
        targets.push(container(docker, name, env_var, secret_ref).await);
    }
    for name in services {
        targets.push(service(docker, name, env_var, secret_ref).await);
    }
    Snapshot {
        secret_file: secret_file.display().to_string(),
        secret_fingerprint: secret.as_ref().ok().map(|t| t.fingerprint().to_string()),
        secret_error: secret.err().map(|e| e.to_string()),
        targets,
    }
}

/// What a target is known as before it is inspected.
fn unknown(name: &str, kind: &'static str) -> TargetStatus {
    TargetStatus {
        name: name.to_string(),
        kind,
        id: None,
        state: "missing".into(),
        fingerprint: None,
        matches_secret: None,
        rotation: None,
        swapped_at: None,
        error: None,
    }
}

/// Fills in what the token env value and the labels say.
fn carries(
    t: &mut TargetStatus,
    value: Option<&str>,
    labels: Option<&std::collections::HashMap<String, String>>,
    secret: Option<&Token>,
) {
    t.fingerprint = value.map(|v| Fingerprint::of(v).to_string());
    t.matches_secret = secret.map(|tok| value.is_some_and(|v| tok.matches(v)));
    t.rotation = labels.and_then(|l| l.get(labels::ROTATION).cloned());
    t.swapped_at = labels.and_then(|l| l.get(labels::SWAPPED_AT).cloned());
}

async fn container(
    docker: &Docker,
    name: &str,
    env_var: &str,
    secret: Option<&Token>,
) -> TargetStatus {
    let mut t = unknown(name, "container");
    match inspect_container(docker, name).await {
        Ok(info) => {
            t.id = info.id.clone();
            t.state = info
                .state
                .as_ref()
                .and_then(|s| s.status)
                .map(|s| s.to_string())
                .unwrap_or_else(|| "unknown".into());
            let labels = info.config.as_ref().and_then(|c| c.labels.as_ref());
            carries(&mut t, env_value(&info, env_var), labels, secret);
        }
        Err(e) => t.error = Some(describe(&e)),
    }
    t
}

/// A Swarm service: what its spec carries (the tasks follow it as Swarm rolls it out).
async fn service(
    docker: &Docker,
    name: &str,
    env_var: &str,
    secret: Option<&Token>,
) -> TargetStatus {
    let mut t = unknown(name, "service");
    match crate::targets::service::read(docker, name).await {
        Ok(Some((spec, update))) => {
            t.id = Some(spec.id.clone());
            t.state = match update {
                Some(u) => format!("update {u}"),
                None => "service".into(),
            };
            let value = crate::targets::service::env_value(&spec.spec, env_var);
            carries(&mut t, value, spec.spec.labels.as_ref(), secret);
        }
        Ok(None) => t.error = Some(format!("no such service: {name}")),
        Err(e) => t.error = Some(describe(&e)),
    }
    t
}
