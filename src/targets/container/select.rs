//! Which containers are targets: the ones named (`--container`), and every container that
//! carries all the selector's labels (`--label KEY=VALUE`, and `token-rotator.scope=NAME`
//! with `--scope`), resolved again at every rotation. A target may name its own env var
//! with the label `token-rotator.env-var`.

use std::collections::HashMap;
use std::sync::Arc;

use bollard::Docker;

use super::{observe, ContainerConfig, ContainerTarget};
use crate::engine::names::Marker;
use crate::engine::{own_container_id, EngineError};
use crate::targets::TargetError;

/// The label that confines a rotator to its scope (`--scope`).
pub const SCOPE_LABEL: &str = "token-rotator.scope";
/// The label by which a target names its own env var for the token.
pub const ENV_VAR_LABEL: &str = "token-rotator.env-var";

/// What makes a container a target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    /// Names or IDs given with `--container`.
    pub names: Vec<String>,
    /// `--label KEY=VALUE` pairs: a container carrying all of them is a target.
    pub labels: Vec<(String, String)>,
    /// `--scope NAME`: only containers labelled `token-rotator.scope=NAME` are selected by label.
    pub scope: Option<String>,
    /// Swarm services given with `--service` (services carrying the labels join them).
    pub services: Vec<String>,
}

impl Selector {
    /// The label pairs a container must carry to be selected by label (none: no label
    /// selection).
    pub fn required(&self) -> Vec<(String, String)> {
        if self.labels.is_empty() {
            return Vec::new();
        }
        let mut all = self.labels.clone();
        if let Some(scope) = &self.scope {
            all.push((SCOPE_LABEL.to_string(), scope.clone()));
        }
        all
    }

    /// Whether a container with these labels (and this name) is a target.
    pub fn matches(&self, name: &str, labels: &HashMap<String, String>) -> bool {
        if Marker::parse(name).is_some() {
            return false; // the rotator's own temporary containers are never targets
        }
        if self.names.iter().any(|n| n == name) {
            return true;
        }
        let required = self.required();
        !required.is_empty()
            && required
                .iter()
                .all(|(k, v)| labels.get(k).is_some_and(|x| x == v))
    }

    /// The Swarm services that are targets now: those given, then those carrying the
    /// labels. An engine that is no Swarm manager has none to offer the labels.
    pub async fn service_names(&self, docker: &Docker) -> Result<Vec<String>, TargetError> {
        let mut out = self.services.clone();
        let required = self.required();
        if required.is_empty() {
            return Ok(out);
        }
        let filter: Vec<String> = required.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let filters = HashMap::from([("label".to_string(), filter)]);
        let opts = bollard::query_parameters::ListServicesOptionsBuilder::default()
            .filters(&filters)
            .build();
        let found = match docker.list_services(Some(opts)).await {
            Ok(found) => found,
            // 503: not a Swarm manager (no Swarm at all, the usual case).
            Err(e) if crate::engine::status_of(&e) == Some(503) => Vec::new(),
            Err(e) => {
                return Err(
                    EngineError::new("list the services the --label selector names", e).into(),
                )
            }
        };
        let mut by_label: Vec<String> = found.into_iter().filter_map(|s| s.spec?.name).collect();
        by_label.sort();
        for n in by_label {
            if !out.contains(&n) {
                out.push(n);
            }
        }
        Ok(out)
    }

    /// The names of the targets now: those given, then those carrying the labels (by name).
    pub async fn names(&self, docker: &Docker) -> Result<Vec<String>, TargetError> {
        Ok(self.by_label(docker).await?.0)
    }

    /// The names of the targets now, and how many of them (at the start) were given by
    /// name; the rest were found by label.
    async fn by_label(&self, docker: &Docker) -> Result<(Vec<String>, usize), TargetError> {
        let given = self.names.len();
        let mut out = self.names.clone();
        let required = self.required();
        if required.is_empty() {
            return Ok((out, given));
        }
        let found = super::interrupted::listed(docker, &required).await?;
        let own = own_container_id();
        let mut by_label: Vec<String> = found
            .into_iter()
            .filter(|c| c.id.is_none() || c.id != own)
            .filter_map(|c| {
                let name = crate::engine::names::listed_name(&c)?;
                // A leftover of an interrupted swap stands for its target, which has no
                // container under its name until the swap is finished or undone.
                match super::interrupted::swap_of(&name, &c.labels.unwrap_or_default()) {
                    Some((target, _)) => Some(target),
                    None => Marker::parse(&name).is_none().then_some(name),
                }
            })
            .collect();
        by_label.sort();
        by_label.dedup();
        for n in by_label {
            if !out.contains(&n) {
                out.push(n);
            }
        }
        Ok((out, given))
    }
}

/// The targets' names now, each with the env var that carries its token (its
/// `token-rotator.env-var` label as written, else `default_env`).
pub async fn names_with_env_vars(
    docker: &Docker,
    selector: &Selector,
    default_env: &str,
) -> Result<Vec<(String, String)>, TargetError> {
    let names = selector.names(docker).await?;
    let mut out = Vec::with_capacity(names.len());
    for n in names {
        let var = match crate::engine::inspect(docker, &n).await {
            Ok(Some(info)) => env_var_of(&info, default_env),
            _ => default_env.to_string(),
        };
        out.push((n, var));
    }
    Ok(out)
}

/// The env var that carries a container's token: its `token-rotator.env-var` label as
/// written, else `default_env`.
pub fn env_var_of(info: &bollard::models::ContainerInspectResponse, default_env: &str) -> String {
    info.config
        .as_ref()
        .and_then(|c| c.labels.as_ref())
        .and_then(|l| l.get(ENV_VAR_LABEL))
        .cloned()
        .unwrap_or_else(|| default_env.to_string())
}

/// A valid environment variable name (`[A-Za-z_][A-Za-z0-9_]*`).
pub fn env_var_name(s: &str) -> Result<String, String> {
    let mut chars = s.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!(
            "{s:?} is not a valid environment variable name ([A-Za-z_][A-Za-z0-9_]*)"
        ));
    }
    Ok(s.to_string())
}

/// Resolves the selector into targets, in order, without duplicates. Nothing is touched; a
/// name that matches nothing (not even a swap in progress) is refused, and so is a
/// malformed `token-rotator.env-var` label.
pub async fn select(
    docker: &Docker,
    selector: &Selector,
    cfg: Arc<ContainerConfig>,
) -> Result<Vec<ContainerTarget>, TargetError> {
    let (names, given) = selector.by_label(docker).await?;
    // (as requested, own name, anchor image, config), then the targets once the IDs for
    // their shared scan are known.
    let mut found_targets: Vec<(String, String, String, Arc<ContainerConfig>)> = Vec::new();
    let mut ids = Vec::with_capacity(names.len());
    for (i, requested) in names.iter().enumerate() {
        let found = match observe::canonical(docker, requested).await {
            Ok(found) => found,
            // Found by label a moment ago and gone now (a replica scaled down): not a target.
            Err(TargetError::NotFound(_)) if i >= given => continue,
            Err(e) => return Err(e),
        };
        let observe::Canonical {
            name,
            anchor_image,
            labels,
            id,
        } = found;
        if found_targets.iter().any(|t| t.1 == name) {
            continue;
        }
        // Its ID for the dependents' scan (found under a leftover's name: look it up).
        let id = match id {
            Some(id) => Some(id),
            None => crate::engine::inspect(docker, &name)
                .await
                .ok()
                .flatten()
                .and_then(|i| i.id),
        };
        if let Some(id) = id {
            ids.push((name.clone(), id));
        }
        let cfg = match labels.get(ENV_VAR_LABEL) {
            None => cfg.clone(),
            Some(var) => {
                let var = env_var_name(var).map_err(|why| TargetError::BadLabel {
                    name: name.clone(),
                    label: ENV_VAR_LABEL,
                    why,
                })?;
                let mut own = (*cfg).clone();
                own.env_var = var;
                Arc::new(own)
            }
        };
        found_targets.push((requested.clone(), name, anchor_image, cfg));
    }
    // Who shares their namespaces, for all targets at once: run beside the first lock.
    let scan = super::dependents::SharedScan::new(docker.clone(), ids);
    Ok(found_targets
        .into_iter()
        .map(|(requested, name, anchor_image, cfg)| ContainerTarget {
            docker: docker.clone(),
            requested,
            name,
            anchor_image,
            cfg,
            scan: scan.clone(),
            dependents: Default::default(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_selection_needs_every_label_and_the_scope_and_never_takes_a_marker() {
        let sel = Selector {
            names: vec!["named".into()],
            labels: vec![("app".into(), "bot".into())],
            scope: Some("eu".into()),
            services: Vec::new(),
        };
        let labels = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(sel.matches("x", &labels(&[("app", "bot"), (SCOPE_LABEL, "eu")])));
        assert!(!sel.matches("x", &labels(&[("app", "bot"), (SCOPE_LABEL, "us")])));
        assert!(!sel.matches("x", &labels(&[("app", "bot")])));
        assert!(sel.matches("named", &labels(&[])));
        assert!(!sel.matches(
            "x-tr-new-0a1b2c3d",
            &labels(&[("app", "bot"), (SCOPE_LABEL, "eu")])
        ));
        assert!(!Selector::default().matches("x", &labels(&[("app", "bot")])));
    }
}
