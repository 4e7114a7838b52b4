//! The replacement container's configuration, derived from the old one's, and the image
//! reference and timestamp label it gets.
//!
//! Everything the user configured is copied; exactly one env entry changes. What the
//! engine generated for the old container is left out so the engine generates it anew:
//! its MAC addresses, a hostname equal to its short ID or to the host's (host UTS mode),
//! its short-ID network alias. A MAC address the user chose is kept: the engine derives
//! its own as `02:42:` and the endpoint's IPv4 bytes (Engine 20.10 and 26.1 alike), so
//! any other MAC was set by hand. On API 1.44 and newer the replacement is created on all
//! its networks in one call, each endpoint with its MAC; older engines take one network
//! at create (the rest are connected before start) and a MAC only in `Config.MacAddress`.
//! Anonymous volumes are re-attached by name (those from `--volumes-from` are left to it:
//! see [`super::volumes`]), and engine-chosen host ports are pinned to the ports the old
//! container had, so clients keep reaching the bot.

use std::collections::{HashMap, HashSet};

use bollard::models::{
    ContainerConfig, ContainerCreateBody, ContainerCreateResponse, ContainerInspectResponse,
    EndpointSettings, HostConfig, NetworkingConfig, PortBinding,
};
use bollard::query_parameters::CreateContainerOptionsBuilder;
use bollard::Docker;

use super::compat;
use super::volumes::reattach_anonymous_volumes;
use crate::engine::dialect::Dialect;
use crate::engine::{legacy, short};

/// The create body of the replacement, and the networks to connect before it starts.
/// Its `Debug` shows neither: the body's env holds the new token.
#[derive(Clone)]
pub struct Replacement {
    /// The `POST /containers/create` body.
    pub body: ContainerCreateBody,
    /// Networks beyond the first, connected after create and before start
    /// (API < 1.44 accepts only one network at create; empty on 1.44 and newer).
    pub extra_networks: Vec<(String, EndpointSettings)>,
    /// A MAC address the user set on the primary network, for `Config.MacAddress` on API
    /// < 1.44 (which reads it nowhere else, and which bollard's create body lacks).
    pub legacy_mac: Option<String>,
}

impl std::fmt::Debug for Replacement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let nets: Vec<&str> = self
            .extra_networks
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        write!(
            f,
            "Replacement(image {:?}, extra networks {nets:?})",
            self.body.image
        )
    }
}

/// The old container's inspect output lacks something the replacement needs.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// No `Config` or `HostConfig` in the inspect output.
    #[error("the engine's description of container {0} has no {1}")]
    Incomplete(String, &'static str),
}

/// Builds the replacement of `old`: same configuration from image `image`, with
/// `env = (VAR, value)` replaced (or appended; `None`: the env unchanged, for a container
/// that shares a target's namespaces) and `labels` added, for the engine `dialect` names.
/// `shared`: the mount destinations `old`'s `--volumes-from` sources provide now
/// ([`super::volumes::shared_by_sources`]).
pub fn replacement(
    old: &ContainerInspectResponse,
    image: &str,
    env: Option<(&str, &str)>,
    labels: &[(&str, String)],
    dialect: Dialect,
    shared: &HashSet<String>,
) -> Result<Replacement, SpecError> {
    let id = old.id.clone().unwrap_or_default();
    let short_id: String = id.chars().take(12).collect();
    let mut config = old
        .config
        .clone()
        .ok_or_else(|| SpecError::Incomplete(id.clone(), "Config"))?;
    let mut host = old
        .host_config
        .clone()
        .ok_or_else(|| SpecError::Incomplete(id.clone(), "HostConfig"))?;

    let mut env_list = config.env.take().unwrap_or_default();
    if let Some((var, value)) = env {
        replace_env(&mut env_list, var, value);
    }

    let mut all_labels = config.labels.take().unwrap_or_default();
    for (k, v) in labels {
        all_labels.insert((*k).to_string(), v.clone());
    }

    let hostname = config.hostname.clone();
    leave_out_generated(&mut config, &host, &short_id);
    if config.hostname.is_none() {
        compat::generated_hostname_env(&mut env_list, hostname.as_deref());
    }
    compat::ulimit_names(&mut host);
    host.links = host
        .links
        .map(|l| l.iter().map(|s| create_link(s)).collect());
    reattach_anonymous_volumes(old, &mut host, shared);
    pin_ephemeral_ports(old, &mut host);

    let (networking_config, extra_networks, legacy_mac) = networks(old, &host, &short_id, dialect);

    let body = create_body(config, image, env_list, all_labels, host, networking_config);
    Ok(Replacement {
        body,
        extra_networks,
        legacy_mac,
    })
}

/// Leaves out of `config` what the engine generated or refuses at create, given `host`.
fn leave_out_generated(config: &mut ContainerConfig, host: &HostConfig, short_id: &str) {
    // A hostname equal to the short ID was generated by the engine; a new one will be.
    // In host UTS mode the hostname is the host's, which the engine refuses at create.
    if config.hostname.as_deref() == Some(short_id) || host.uts_mode.as_deref() == Some("host") {
        config.hostname = None;
        if host.uts_mode.as_deref() == Some("host") {
            config.domainname = None;
        }
    }
    // `container:` mode takes hostname and ports from the other container; the engine
    // refuses them at create (ports exposed by the image are merged back in by the engine).
    if host
        .network_mode
        .as_deref()
        .is_some_and(|m| m.starts_with("container:"))
    {
        config.hostname = None;
        config.domainname = None;
        config.exposed_ports = None;
    }
}

/// The create body: `config` as it is, with `image`, the env, the labels, `host` and the
/// networks for create.
fn create_body(
    config: ContainerConfig,
    image: &str,
    env: Vec<String>,
    labels: HashMap<String, String>,
    host: HostConfig,
    networking_config: Option<NetworkingConfig>,
) -> ContainerCreateBody {
    ContainerCreateBody {
        hostname: config.hostname,
        domainname: config.domainname,
        user: config.user,
        attach_stdin: config.attach_stdin,
        attach_stdout: config.attach_stdout,
        attach_stderr: config.attach_stderr,
        exposed_ports: config.exposed_ports,
        tty: config.tty,
        open_stdin: config.open_stdin,
        stdin_once: config.stdin_once,
        env: Some(env),
        cmd: config.cmd,
        healthcheck: config.healthcheck,
        args_escaped: config.args_escaped,
        image: Some(image.to_string()),
        volumes: config.volumes,
        working_dir: config.working_dir,
        entrypoint: config.entrypoint,
        network_disabled: config.network_disabled,
        on_build: config.on_build,
        labels: Some(labels),
        stop_signal: config.stop_signal,
        stop_timeout: config.stop_timeout,
        shell: config.shell,
        host_config: Some(host),
        networking_config,
    }
}

/// Replaces every `var=` entry in place (keeping order), or appends one.
pub fn replace_env(env: &mut Vec<String>, var: &str, value: &str) {
    let prefix = format!("{var}=");
    let mut seen = false;
    env.retain_mut(|entry| {
        if !entry.starts_with(&prefix) {
            return true;
        }
        if seen {
            return false; // a duplicate: the first position carries the value
        }
        seen = true;
        *entry = format!("{prefix}{value}");
        true
    });
    if !seen {
        env.push(format!("{prefix}{value}"));
    }
}

/// Inspect shows links as `/other:/self/alias`; create wants `other:alias`.
fn create_link(link: &str) -> String {
    match link.split_once(':') {
        Some((target, alias)) => format!(
            "{}:{}",
            target.trim_start_matches('/'),
            alias.rsplit('/').next().unwrap_or(alias)
        ),
        None => link.trim_start_matches('/').to_string(),
    }
}

/// `-p 8080` lets the engine pick a host port; keep the one it picked so clients still connect.
fn pin_ephemeral_ports(old: &ContainerInspectResponse, host: &mut HostConfig) {
    let actual = old.network_settings.as_ref().and_then(|n| n.ports.as_ref());
    let (Some(bindings), Some(actual)) = (host.port_bindings.as_mut(), actual) else {
        return;
    };
    for (port, wanted) in bindings.iter_mut() {
        let (Some(wanted), Some(Some(live))) = (wanted.as_mut(), actual.get(port)) else {
            continue;
        };
        for w in wanted.iter_mut() {
            let ephemeral = matches!(w.host_port.as_deref(), None | Some("") | Some("0"));
            if !ephemeral {
                continue;
            }
            let want_ip = w.host_ip.clone().unwrap_or_default();
            let found = live.iter().find(|l: &&PortBinding| {
                let ip = l.host_ip.clone().unwrap_or_default();
                want_ip.is_empty() || ip == want_ip
            });
            if let Some(l) = found {
                w.host_port = l.host_port.clone();
            }
        }
    }
}

/// The endpoints for create, the others to connect before start (API < 1.44), and the
/// user's MAC on the primary network where only `Config.MacAddress` can carry it.
fn networks(
    old: &ContainerInspectResponse,
    host: &HostConfig,
    short_id: &str,
    dialect: Dialect,
) -> (
    Option<NetworkingConfig>,
    Vec<(String, EndpointSettings)>,
    Option<String>,
) {
    let mode = host.network_mode.as_deref().unwrap_or("default");
    if mode == "host" || mode == "none" || mode.starts_with("container:") {
        return (None, Vec::new(), None); // no endpoints of its own
    }
    let Some(nets) = old
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.as_ref())
    else {
        return (None, Vec::new(), None);
    };
    let mut names: Vec<&String> = nets.keys().collect();
    names.sort();
    let primary_name = compat::primary_network(mode, dialect);
    // network_mode may hold a network ID rather than its name.
    let primary = names
        .iter()
        .find(|n| n.as_str() == primary_name)
        .or_else(|| {
            names.iter().find(|n| {
                nets[n.as_str()]
                    .network_id
                    .as_deref()
                    .is_some_and(|id| !primary_name.is_empty() && id.starts_with(primary_name))
            })
        })
        .copied();
    let multi = compat::all_networks_at_create(dialect);
    let mut endpoints = HashMap::new();
    let mut extra = Vec::new();
    let mut legacy_mac = None;
    for name in names {
        let old_ep = &nets[name.as_str()];
        let mut ep = endpoint(old_ep, short_id);
        let mac = user_mac(old_ep).filter(|_| compat::macs_are_kept(dialect));
        if multi {
            ep.mac_address = mac;
            endpoints.insert(name.clone(), ep);
        } else if Some(name) == primary {
            legacy_mac = mac;
            endpoints.insert(name.clone(), ep);
        } else {
            extra.push((name.clone(), ep));
        }
    }
    let cfg = (!endpoints.is_empty()).then_some(NetworkingConfig {
        endpoints_config: Some(endpoints),
    });
    (cfg, extra, legacy_mac)
}

/// The endpoint's MAC address if the user chose it: not empty, and not the one the engine
/// derives from the endpoint's IPv4 address (`02:42:` and its four bytes).
pub fn user_mac(ep: &EndpointSettings) -> Option<String> {
    let mac = ep.mac_address.as_deref().filter(|m| !m.is_empty())?;
    let derived = ep
        .ip_address
        .as_deref()
        .and_then(|ip| ip.parse::<std::net::Ipv4Addr>().ok())
        .map(|ip| {
            let [a, b, c, d] = ip.octets();
            format!("02:42:{a:02x}:{b:02x}:{c:02x}:{d:02x}")
        });
    match derived {
        Some(d) if d.eq_ignore_ascii_case(mac) => None,
        // Not running (no IP yet): the MAC shows only when the user set it.
        _ => Some(mac.to_string()),
    }
}

/// What the user set on an endpoint; the engine fills in the rest at start.
fn endpoint(old: &EndpointSettings, short_id: &str) -> EndpointSettings {
    let aliases: Option<Vec<String>> = old.aliases.as_ref().map(|a| {
        a.iter()
            .filter(|alias| alias.as_str() != short_id)
            .cloned()
            .collect()
    });
    EndpointSettings {
        ipam_config: old.ipam_config.clone(),
        links: old.links.clone(),
        aliases: aliases.filter(|a| !a.is_empty()),
        driver_opts: old.driver_opts.clone(),
        ..Default::default()
    }
}

/// The image by name if that name still points at the same image, else by ID with a
/// note saying why (`docker ps` then shows the ID; no name of the old image is left that
/// the engine could resolve, short of a tag token-rotator would have to invent).
pub(crate) async fn image_ref(
    docker: &Docker,
    old: &bollard::models::ContainerInspectResponse,
) -> (String, Option<String>) {
    let id = old.image.clone().unwrap_or_default();
    let name = old
        .config
        .as_ref()
        .and_then(|c| c.image.clone())
        .unwrap_or_default();
    if name.is_empty() || name == id || name.starts_with("sha256:") {
        return (id, None);
    }
    match docker.inspect_image(&name).await {
        Ok(img) if img.id.as_deref() == Some(id.as_str()) => (name, None), // keeps `docker ps` readable
        _ => {
            let note = format!(
                "the image name {name:?} no longer points at the image the container ran; the replacement runs that same image by its ID {} (docker ps shows the ID)",
                short(id.trim_start_matches("sha256:"))
            );
            let container = old.name.as_deref().unwrap_or("").trim_start_matches('/');
            tracing::warn!(container, "{note}");
            (id, Some(note))
        }
    }
}

/// Creates `body` as the container `name`: on API < 1.44 with the user's MAC address
/// `legacy_mac`, through the create that carries it (only `Config.MacAddress` does there).
pub async fn create(
    docker: &Docker,
    name: &str,
    body: ContainerCreateBody,
    legacy_mac: Option<&str>,
) -> Result<ContainerCreateResponse, bollard::errors::Error> {
    match legacy_mac {
        Some(mac) => legacy::create_with_mac(docker, name, &body, mac).await,
        None => {
            let opts = CreateContainerOptionsBuilder::default().name(name).build();
            docker.create_container(Some(opts), body).await
        }
    }
}

/// Current UTC time as RFC 3339 with second precision.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_entry_is_replaced_in_place_and_others_keep_their_order() {
        let mut env = vec![
            "A=1".into(),
            "TOK=old".into(),
            "B=2".into(),
            "TOK=dup".into(),
        ];
        replace_env(&mut env, "TOK", "new");
        assert_eq!(env, ["A=1", "TOK=new", "B=2"]);
        let mut env = vec!["A=1".into(), "TOKEN_X=1".into()];
        replace_env(&mut env, "TOK", "new");
        assert_eq!(env, ["A=1", "TOKEN_X=1", "TOK=new"]);
    }

    #[test]
    fn debug_of_a_replacement_never_shows_its_env() {
        let old = ContainerInspectResponse {
            id: Some("0123456789abcdef".into()),
            config: Some(Default::default()),
            host_config: Some(Default::default()),
            ..Default::default()
        };
        let r = replacement(
            &old,
            "img",
            Some(("TOK", "sk-ant-oat01-SECRETSECRETSECRET")),
            &[],
            Dialect::docker((1, 41)),
            &HashSet::new(),
        )
        .unwrap();
        let dbg = format!("{r:?}");
        assert!(!dbg.contains("SECRET"), "{dbg}");
    }

    #[test]
    fn a_mac_derived_from_the_ip_is_the_engines_and_any_other_the_users() {
        let ep = |mac: &str, ip: &str| EndpointSettings {
            mac_address: Some(mac.into()),
            ip_address: Some(ip.into()),
            ..Default::default()
        };
        assert_eq!(user_mac(&ep("02:42:ac:15:00:02", "172.21.0.2")), None);
        assert_eq!(
            user_mac(&ep("02:aa:bb:cc:dd:ee", "172.21.0.3")).as_deref(),
            Some("02:aa:bb:cc:dd:ee")
        );
        assert_eq!(user_mac(&ep("", "172.21.0.3")), None);
    }

    #[test]
    fn links_are_turned_back_into_create_form() {
        assert_eq!(create_link("/db:/bot/database"), "db:database");
    }
}
