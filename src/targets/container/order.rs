//! Whether a swap can run start-first: that needs two copies of the container to run at
//! once, which fixed host ports, a static IP, another container's network or host devices
//! forbid.

/// Why two copies of this container cannot run at once, if they cannot.
pub fn start_first_blocker(old: &bollard::models::ContainerInspectResponse) -> Option<String> {
    let host = old.host_config.as_ref()?;
    if let Some(m) = host
        .network_mode
        .as_deref()
        .filter(|m| m.starts_with("container:"))
    {
        return Some(format!("it shares another container's network ({m})"));
    }
    let ports: Vec<&String> = host
        .port_bindings
        .iter()
        .flatten()
        .filter(|(_, b)| b.as_ref().is_some_and(|b| !b.is_empty()))
        .map(|(p, _)| p)
        .collect();
    if !ports.is_empty() {
        return Some(format!(
            "it publishes host ports ({})",
            ports
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let nets = old
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.as_ref());
    for (net, ep) in nets.into_iter().flatten() {
        let fixed = ep.ipam_config.as_ref().is_some_and(|c| {
            c.ipv4_address.as_deref().is_some_and(|a| !a.is_empty())
                || c.ipv6_address.as_deref().is_some_and(|a| !a.is_empty())
        });
        if fixed {
            return Some(format!("it has a static IP on network {net}"));
        }
    }
    if host.devices.as_ref().is_some_and(|d| !d.is_empty()) {
        return Some("it uses host devices".into());
    }
    None
}
