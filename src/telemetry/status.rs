//! What each target carries now, read from the engine (so it works from any shell).
//!
//! Used by `token-rotator status` and the daemon's `/status` and `/readyz`.

use std::path::Path;

use bollard::Docker;
use serde::Serialize;

use crate::engine::lenient::inspect_container;
use crate::engine::names::Marker;
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
    /// When the token it carries was first deployed (label `token-rotator.first-deployed`,
    /// only when its fingerprint label names that token).
    pub first_deployed_at: Option<String>,
    /// Why it could not be inspected.
    pub error: Option<String>,
    /// A swap of it a crash interrupted, until the next rotation finishes or undoes it:
    /// its rotation and leftover containers (state `interrupted` when none holds its name).
    pub interrupted: Option<Interrupted>,
}

/// A swap the engine shows unfinished: what a crash left under temporary names.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Interrupted {
    /// The rotation(s) whose swap it was.
    pub rotations: Vec<String>,
    /// The leftover containers, each `NAME (STATE)`.
    pub containers: Vec<String>,
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
            if let Some(i) = &t.interrupted {
                out.push_str(&format!(
                    "  interrupted swap of {}, left as: {}\n",
                    t.name,
                    i.containers.join(", ")
                ));
            }
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
    let left = leftovers(docker).await;
    for (name, env_var) in containers {
        let mut t = container(docker, name, env_var, secret_ref).await;
        mark_interrupted(&mut t, &left, secret_ref.is_some());
        targets.push(t);
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
        first_deployed_at: None,
        error: None,
        interrupted: None,
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
    let ours = labels.and_then(|l| l.get(labels::FINGERPRINT)) == t.fingerprint.as_ref();
    t.first_deployed_at = labels
        .and_then(|l| l.get(labels::FIRST_DEPLOYED).cloned())
        .filter(|_| ours && t.fingerprint.is_some());
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

/// Every container named as a swap leftover (`NAME-tr-TAG-ROT`, no lock): its target,
/// name, rotation and state. Empty when the listing fails (the targets' own inspection
/// says what is wrong with the engine).
async fn leftovers(docker: &Docker) -> Vec<(String, String, String, String)> {
    let filters = std::collections::HashMap::from([("name".to_string(), vec!["-tr-".to_string()])]);
    let opts = bollard::query_parameters::ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    let Ok(found) = docker.list_containers(Some(opts)).await else {
        return Vec::new();
    };
    found
        .into_iter()
        .filter_map(|c| {
            let name = c.names?.first()?.trim_start_matches('/').to_string();
            let (target, marker) = Marker::parse(&name)?;
            if marker == Marker::Lock {
                return None;
            }
            let target = target.to_string();
            let rotation = name.rsplit('-').next().unwrap_or_default().to_string();
            let state = c.state.map(|s| s.to_string()).unwrap_or_default();
            Some((target, name, rotation, state))
        })
        .collect()
}

/// Shows the leftovers of `t`'s interrupted swap, if any: then it is not current (its
/// swap must first be finished or undone), and `interrupted` when none holds its name.
pub fn mark_interrupted(
    t: &mut TargetStatus,
    left: &[(String, String, String, String)],
    secret_known: bool,
) {
    let mine: Vec<_> = left
        .iter()
        .filter(|(target, ..)| *target == t.name)
        .collect();
    if mine.is_empty() {
        return;
    }
    let mut rotations: Vec<String> = mine.iter().map(|l| l.2.clone()).collect();
    rotations.sort();
    rotations.dedup();
    let containers = mine
        .iter()
        .map(|(_, name, _, state)| format!("{name} ({state})"))
        .collect();
    if t.id.is_none() {
        t.state = "interrupted".into();
        t.error = Some(format!(
            "its swap ({}) was interrupted and it has no container under its name; the next rotation finishes or undoes it",
            rotations.join(", ")
        ));
    }
    t.matches_secret = secret_known.then_some(false);
    t.interrupted = Some(Interrupted {
        rotations,
        containers,
    });
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

#[cfg(test)]
mod tests {
    use super::*;

    fn left(target: &str, tag: &str, state: &str) -> (String, String, String, String) {
        let name = format!("{target}-tr-{tag}-0d4336df");
        (target.into(), name, "0d4336df".into(), state.into())
    }

    #[test]
    fn a_target_with_leftovers_is_interrupted_until_settled() {
        let found = [
            left("bot-3", "old", "running"),
            left("bot-3", "new", "created"),
            left("bot-1", "done", "exited"),
        ];
        // No container under its name: its state says so, and it is a problem.
        let mut lost = unknown("bot-3", "container");
        lost.matches_secret = Some(false);
        mark_interrupted(&mut lost, &found, true);
        assert_eq!(lost.state, "interrupted");
        assert!(lost.error.is_some());
        let i = lost.interrupted.unwrap();
        assert_eq!(i.rotations, ["0d4336df"]);
        assert_eq!(
            i.containers,
            [
                "bot-3-tr-old-0d4336df (running)",
                "bot-3-tr-new-0d4336df (created)"
            ]
        );
        // Under its name with the token, but a verified swap not finished: not current.
        let mut done = unknown("bot-1", "container");
        done.id = Some("c0ffee".into());
        done.state = "running".into();
        done.matches_secret = Some(true);
        mark_interrupted(&mut done, &found, true);
        assert_eq!(done.state, "running");
        assert_eq!(done.matches_secret, Some(false));
        assert!(done.interrupted.is_some() && done.error.is_none());
        // Nothing left: as it was.
        let mut fine = unknown("bot-2", "container");
        mark_interrupted(&mut fine, &found, true);
        assert!(fine.interrupted.is_none() && fine.state == "missing");
    }
}
