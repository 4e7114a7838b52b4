//! What an engine's inspect output shows that its own create refuses or changes, put back
//! into the form create takes before the copy is made. Most of it is Podman's
//! Docker-compatible API (README, Compatibility): each function here is one line there.

use bollard::models::{Health, HealthStatusEnum, HostConfig};

use crate::engine::dialect::Dialect;

/// The first Engine API that creates a container on several networks at once and keeps
/// the MAC address on each endpoint.
pub const MULTI_NETWORK_API: (usize, usize) = (1, 44);

/// Podman's inspect names ulimits as the kernel does (`RLIMIT_NOFILE`), and every Podman
/// container carries two (`nofile` and `nproc`, from its defaults); its create accepts only
/// the names `docker run --ulimit` uses (`nofile`) and refuses the copy otherwise. Docker
/// shows the short names already, so the rename is a no-op there.
pub fn ulimit_names(host: &mut HostConfig) {
    for u in host.ulimits.iter_mut().flatten() {
        if let Some(name) = u.name.as_mut() {
            if let Some(short) = name.strip_prefix("RLIMIT_") {
                *name = short.to_ascii_lowercase();
            }
        }
    }
}

/// Podman shows the `HOSTNAME` it sets in the container's env among the user's; a copy
/// would carry the old container's hostname there while its own hostname is made anew. When
/// the hostname is the engine's (`generated`), its `HOSTNAME=` entry goes too; a hostname the
/// user chose, and its entry, stay.
pub fn generated_hostname_env(env: &mut Vec<String>, generated: Option<&str>) {
    if let Some(hostname) = generated.filter(|h| !h.is_empty()) {
        let entry = format!("HOSTNAME={hostname}");
        env.retain(|e| *e != entry);
    }
}

/// Whether the MAC address an endpoint shows may be the user's. Podman gives every
/// endpoint a random MAC at each start, and its inspect does not tell a user's apart, so
/// on Podman none is kept (the copy gets a new one, as a restart would); a kept random MAC
/// would also collide with the old container's while both run (`--order start-first`).
pub fn macs_are_kept(dialect: Dialect) -> bool {
    !dialect.is_podman()
}

/// Whether the copy is created on all its networks at once. API 1.44 and newer take them
/// all; so does Podman at any API version, whose `NetworkMode` says only `bridge` for any
/// set of bridge networks, the default one (`podman`) or the user's.
pub fn all_networks_at_create(dialect: Dialect) -> bool {
    dialect.api >= MULTI_NETWORK_API || dialect.is_podman()
}

/// The network a container's `NetworkMode` names, as its `NetworkSettings.Networks` key:
/// `default` is the engine's default network (`bridge`, or `podman` on Podman, whose
/// `bridge` mode is any bridge network).
pub fn primary_network(mode: &str, dialect: Dialect) -> &str {
    match mode {
        "default" => dialect.default_network(),
        "bridge" if dialect.is_podman() => dialect.default_network(),
        other => other,
    }
}

/// Whether a container's `State.Health` says it has no healthcheck. Docker leaves `Health`
/// out then; Podman shows one with an empty status (and no log), which is not a
/// healthcheck still starting.
pub fn without_healthcheck(health: &Health) -> bool {
    matches!(
        health.status,
        None | Some(HealthStatusEnum::EMPTY) | Some(HealthStatusEnum::NONE)
    ) && health.log.as_ref().map_or(true, |l| l.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::ResourcesUlimits;

    /// `HostConfig` of a container made by `docker run` on podman 4.3.1 (its compat API),
    /// trimmed to what these tests read.
    const PODMAN_HOST_CONFIG: &str = r#"{"NetworkMode": "bridge", "IpcMode": "shareable",
        "Ulimits": [{"Name": "RLIMIT_NOFILE", "Hard": 20000, "Soft": 20000},
                    {"Name": "RLIMIT_NPROC", "Hard": 20000, "Soft": 1024}]}"#;

    #[test]
    fn podmans_kernel_names_of_ulimits_become_the_names_create_takes() {
        let mut host: HostConfig = serde_json::from_str(PODMAN_HOST_CONFIG).unwrap();
        ulimit_names(&mut host);
        let got: Vec<(String, i64, i64)> = host
            .ulimits
            .unwrap()
            .into_iter()
            .map(|u| (u.name.unwrap(), u.soft.unwrap(), u.hard.unwrap()))
            .collect();
        assert_eq!(
            got,
            [
                ("nofile".into(), 20000, 20000),
                ("nproc".into(), 1024, 20000)
            ]
        );
        // Docker's names are left as they are.
        let mut docker = HostConfig {
            ulimits: Some(vec![ResourcesUlimits {
                name: Some("nofile".into()),
                soft: Some(1),
                hard: Some(2),
            }]),
            ..Default::default()
        };
        ulimit_names(&mut docker);
        assert_eq!(docker.ulimits.unwrap()[0].name.as_deref(), Some("nofile"));
    }

    #[test]
    fn the_hostname_podman_put_in_the_env_goes_with_the_generated_hostname() {
        // Config.Env of that container: Podman adds TERM, container and HOSTNAME.
        let env = || -> Vec<String> {
            [
                "TERM=xterm",
                "container=podman",
                "A=1",
                "HOSTNAME=fe0996a7caa0",
            ]
            .map(String::from)
            .to_vec()
        };
        let mut generated = env();
        generated_hostname_env(&mut generated, Some("fe0996a7caa0"));
        assert_eq!(generated, ["TERM=xterm", "container=podman", "A=1"]);
        let mut chosen = env();
        generated_hostname_env(&mut chosen, None);
        assert_eq!(chosen, env());
    }

    #[test]
    fn podmans_empty_health_status_means_no_healthcheck() {
        // State.Health of a container without a healthcheck on podman 4.3.1.
        let none: Health =
            serde_json::from_str(r#"{"Status": "", "FailingStreak": 0, "Log": null}"#).unwrap();
        assert!(without_healthcheck(&none));
        let starting: Health =
            serde_json::from_str(r#"{"Status": "starting", "FailingStreak": 0, "Log": []}"#)
                .unwrap();
        assert!(!without_healthcheck(&starting));
        let unhealthy: Health = serde_json::from_str(
            r#"{"Status": "unhealthy", "FailingStreak": 3,
            "Log": [{"ExitCode": 1, "Output": "no"}]}"#,
        )
        .unwrap();
        assert!(!without_healthcheck(&unhealthy));
    }

    #[test]
    fn podmans_bridge_mode_is_any_bridge_network_and_its_default_is_named_podman() {
        let podman = Dialect::podman((1, 41));
        let docker = Dialect::docker((1, 41));
        assert_eq!(primary_network("bridge", podman), "podman");
        assert_eq!(primary_network("default", podman), "podman");
        assert_eq!(primary_network("bridge", docker), "bridge");
        assert_eq!(primary_network("default", docker), "bridge");
        assert_eq!(primary_network("mynet", docker), "mynet");
        assert!(all_networks_at_create(podman));
        assert!(!all_networks_at_create(docker));
        assert!(all_networks_at_create(Dialect::docker((1, 44))));
        assert!(!macs_are_kept(podman) && macs_are_kept(docker));
    }
}
