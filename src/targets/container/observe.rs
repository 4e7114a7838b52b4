//! Resolve a container's own name and inspect it: what token it carries, whether it runs,
//! and whether it can be swapped safely at all.

use std::collections::HashMap;

use bollard::models::ContainerInspectResponse;
use bollard::query_parameters::ListContainersOptionsBuilder;
use bollard::Docker;

use super::undo::list_markers;
use super::Order;
use crate::engine::lenient::list_containers;
use crate::engine::names::Marker;
use crate::engine::{inspect, is_transport, own_container_id, EngineError};
use crate::secret::Token;
use crate::targets::{Observed, TargetError};

/// Env vars that take precedence over an OAuth token in Claude Code.
pub const SHADOWING_VARS: [&str; 2] = ["ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"];

/// A container's inspect output. Its `Debug` never prints it: the env holds a token.
#[derive(Clone)]
pub struct Inspected(pub Box<ContainerInspectResponse>);

impl std::fmt::Debug for Inspected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Inspected({})",
            crate::engine::short(self.0.id.as_deref().unwrap_or(""))
        )
    }
}

/// What [`canonical`] found.
pub struct Canonical {
    /// The container's own name.
    pub name: String,
    /// An image to anchor its lock on.
    pub anchor_image: String,
    /// Its labels.
    pub labels: HashMap<String, String>,
    /// Its ID, when the container found is the target itself (not a leftover of a swap).
    pub id: Option<String>,
}

/// The container's own name for `requested` (an ID, a name, or a name mid-swap), an image
/// to anchor its lock on, its labels, and its ID when it was found as itself.
pub async fn canonical(docker: &Docker, requested: &str) -> Result<Canonical, TargetError> {
    if let Some(info) = lookup(docker, requested).await? {
        let n = info
            .name
            .as_deref()
            .unwrap_or(requested)
            .trim_start_matches('/');
        let (n, itself) = match Marker::parse(n) {
            Some((target, m)) if m != Marker::Lock => (target, false),
            _ => (n, true),
        };
        return Ok(Canonical {
            name: n.to_string(),
            anchor_image: info.image.unwrap_or_default(),
            labels: info.config.and_then(|c| c.labels).unwrap_or_default(),
            id: info.id.filter(|_| itself),
        });
    }
    // Not found under that name: a crash may have left it set aside mid-swap.
    let leftovers = list_markers(docker, requested)
        .await
        .map_err(|e| EngineError::new(format!("list the leftovers of {requested:?}"), e))?;
    match leftovers
        .into_iter()
        .find_map(|(_, c)| c.image_id.map(|i| (i, c.labels)))
    {
        Some((image, labels)) => Ok(Canonical {
            name: requested.to_string(),
            anchor_image: image,
            labels: labels.unwrap_or_default(),
            id: None,
        }),
        None => Err(TargetError::NotFound(requested.to_string())),
    }
}

/// Inspects `name`; `None` if it does not exist. An ID prefix that matches several
/// containers is told apart by listing them, not by the engine's wording.
async fn lookup(
    docker: &Docker,
    name: &str,
) -> Result<Option<ContainerInspectResponse>, TargetError> {
    match inspect(docker, name).await {
        Ok(found) => Ok(found),
        Err(e) if !is_transport(&e) && matches_several(docker, name).await => {
            Err(TargetError::Ambiguous(name.to_string()))
        }
        Err(e) => Err(EngineError::new(format!("inspect target container {name:?}"), e).into()),
    }
}

async fn matches_several(docker: &Docker, prefix: &str) -> bool {
    if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
        return false;
    }
    // The engine's `id` filter resolves the prefix itself (and finds nothing when it is
    // ambiguous): count the IDs here, on this rare error path only.
    let opts = ListContainersOptionsBuilder::default().all(true).build();
    list_containers(docker, opts)
        .await
        .map(|l| {
            l.iter()
                .filter(|c| c.id.as_deref().is_some_and(|id| id.starts_with(prefix)))
                .count()
                > 1
        })
        .unwrap_or(false)
}

/// Why a target with AutoRemove (`--rm`) cannot be swapped in `order`, if it has it:
/// stopping it deletes it, so only a start-first swap, which stops it after its
/// replacement is verified, is safe.
fn auto_remove_problem(info: &ContainerInspectResponse, order: Order) -> Option<String> {
    if info.host_config.as_ref().and_then(|h| h.auto_remove) != Some(true) {
        return None;
    }
    match (order, super::order::start_first_blocker(info)) {
        (Order::StartFirst, None) => None,
        (Order::StartFirst, Some(b)) => Some(format!("start-first is not possible: {b}")),
        (Order::StopFirst, _) => Some(
            "with --order stop-first it would be gone before its replacement is verified; \
             --order start-first rotates it safely"
                .to_string(),
        ),
    }
}

/// Inspects the target under its own name and checks it can be swapped safely.
pub async fn observe(
    docker: &Docker,
    requested: &str,
    name: &str,
    env_var: &str,
    order: Order,
    token: &Token,
) -> Result<Observed<Inspected>, TargetError> {
    let Some(info) = lookup(docker, name).await? else {
        return Err(TargetError::NotFound(requested.to_string()));
    };
    let id = info.id.clone().unwrap_or_default();
    if own_container_id().as_deref() == Some(id.as_str()) {
        return Err(TargetError::IsSelf(requested.to_string()));
    }
    let own_name = info
        .name
        .as_deref()
        .unwrap_or(name)
        .trim_start_matches('/')
        .to_string();
    if let Some(why) = auto_remove_problem(&info, order) {
        return Err(TargetError::AutoRemove {
            name: requested.to_string(),
            why,
        });
    }
    if info.state.as_ref().and_then(|s| s.paused) == Some(true) {
        return Err(TargetError::Paused(requested.to_string()));
    }
    // Only the rotator's own names count: a target called `app-tr-eu` is an ordinary target.
    if Marker::parse(&own_name).is_some() {
        return Err(TargetError::SwapLeftover(requested.to_string()));
    }
    let missing = match (&info.config, &info.host_config) {
        (None, _) => Some("Config"),
        (_, None) => Some("HostConfig"),
        _ => None,
    };
    if let Some(what) = missing {
        return Err(TargetError::Uncopyable {
            name: own_name,
            reason: format!("the engine's description has no {what}"),
        });
    }
    let running = info
        .state
        .as_ref()
        .map(|s| s.running == Some(true) || s.restarting == Some(true))
        .unwrap_or(false);
    let shadowed_by = SHADOWING_VARS
        .into_iter()
        .filter(|v| env_value(&info, v).is_some_and(|x| !x.is_empty()))
        .collect();
    let current = env_value(&info, env_var).map(str::to_string);
    let own_labels = info.config.as_ref().and_then(|c| c.labels.clone());
    let mut seen = Observed::new(
        own_name,
        id,
        running,
        current.as_deref(),
        token,
        Inspected(Box::new(info)),
    )
    .deployed_since(own_labels.as_ref());
    seen.shadowed_by = shadowed_by;
    Ok(seen)
}

/// The value of `var` in a container's env, if set.
pub fn env_value<'a>(inspect: &'a ContainerInspectResponse, var: &str) -> Option<&'a str> {
    inspect
        .config
        .as_ref()?
        .env
        .as_ref()?
        .iter()
        .rev() // the engine keeps the last of duplicate entries
        .find_map(|e| e.strip_prefix(var)?.strip_prefix('='))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::ContainerConfig;

    #[test]
    fn debug_of_an_observed_target_never_shows_its_env() {
        let secret = "sk-ant-oat01-SECRETSECRETSECRETSECRETSECRETSECRETSECRET0123";
        let info = ContainerInspectResponse {
            id: Some("abc".into()),
            config: Some(ContainerConfig {
                env: Some(vec![format!("TOK={secret}")]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let token = crate::secret::normalize(
            std::path::Path::new("/s"),
            secret.as_bytes(),
            crate::secret::TokenFormat::Oauth,
        )
        .unwrap();
        let value = env_value(&info, "TOK").map(str::to_string);
        let seen = Observed::new(
            "bot".into(),
            "abc".into(),
            true,
            value.as_deref(),
            &token,
            Inspected(Box::new(info)),
        );
        let dbg = format!("{seen:?} {:?}", seen.state);
        assert!(!dbg.contains("SECRETSECRET"), "{dbg}");
        assert!(seen.up_to_date);
    }
}
