//! The replacement keeps the old container's configuration: each test sets one group of
//! options with the docker CLI, rotates, and compares the engine's inspect output.

mod support;

use serde_json::Value;
use support::{
    bot_image, docker, docker_ok, env_of, inspect, new_token, remember_secret, rotator, s, Run,
    Scope, ENV_VAR,
};

/// Rotates `containers` to a fresh token with validation off (these tests are about the
/// copy), the report as JSON; returns the token and the run.
fn rotate_run(scope: &Scope, containers: &[&str]) -> (String, Run) {
    let token = new_token();
    remember_secret(&token);
    let file = scope.secret_file(&token);
    let mut args = vec![
        "rotate",
        "--json",
        "--secret-file",
        s(&file),
        "--validate",
        "none",
        "--settle",
        "0.3",
    ];
    for c in containers {
        args.extend(["--container", c]);
    }
    (token, rotator(&args))
}

/// Rotates `containers` to a fresh token, which they then carry; returns it.
fn rotate_all(scope: &Scope, containers: &[&str]) -> String {
    let (token, run) = rotate_run(scope, containers);
    assert_eq!(run.code, 0, "{run:?}");
    for c in containers {
        assert_eq!(env_of(c, ENV_VAR).as_deref(), Some(token.as_str()));
    }
    token
}

fn old_token(scope: &Scope) -> (String, String) {
    let t = new_token();
    remember_secret(&t);
    let _ = scope;
    (t.clone(), format!("{ENV_VAR}={t}"))
}

/// `Config` with the token entry and token-rotator's labels taken out.
fn config_without_token(v: &Value) -> Value {
    let mut c = v["Config"].clone();
    if let Some(env) = c["Env"].as_array_mut() {
        for e in env.iter_mut() {
            if e.as_str()
                .is_some_and(|s| s.starts_with(&format!("{ENV_VAR}=")))
            {
                *e = Value::from("<token>");
            }
        }
    }
    if let Some(labels) = c["Labels"].as_object_mut() {
        labels.retain(|k, _| !k.starts_with("token-rotator."));
    }
    c
}

#[test]
fn config_and_host_config_are_copied_exactly() {
    let scope = Scope::new("preserve-config");
    let (_, tok) = old_token(&scope);
    let name = scope.run(
        "bot",
        &[
            "-e",
            "FIRST=1",
            "-e",
            &tok,
            "-e",
            "LAST=with spaces = and equals",
            "--entrypoint",
            "/fake-bot",
            "--user",
            "1000:1000",
            "--workdir",
            "/tmp",
            "--hostname",
            "bot-host",
            "--domainname",
            "example.internal",
            "--label",
            "com.example.team=bots",
            "--label",
            "com.example.empty=",
            "--restart",
            "unless-stopped",
            "--health-interval",
            "1s",
            "--health-timeout",
            "2s",
            "--health-retries",
            "4",
            "--health-start-period",
            "1s",
            "--stop-signal",
            "SIGINT",
            "--stop-timeout",
            "7",
            "--log-driver",
            "json-file",
            "--log-opt",
            "max-size=1m",
            "--log-opt",
            "max-file=2",
            "--memory",
            "64m",
            "--memory-reservation",
            "32m",
            "--cpus",
            "0.5",
            "--cpu-shares",
            "512",
            "--pids-limit",
            "64",
            "--ulimit",
            "nofile=1024:2048",
            "--shm-size",
            "16m",
            "--cap-drop",
            "ALL",
            "--cap-add",
            "NET_BIND_SERVICE",
            "--security-opt",
            "no-new-privileges",
            "--read-only",
            "--tmpfs",
            "/scratch:size=1m,mode=1777",
            "--add-host",
            "db.example.internal:192.0.2.10",
            "--dns",
            "192.0.2.53",
            "--dns-search",
            "example.internal",
            "--dns-option",
            "ndots:2",
            "--sysctl",
            "net.ipv4.ip_unprivileged_port_start=80",
            support::bot_image_with_healthcheck(),
            "serve",
        ],
    );
    let before = inspect(&name);

    rotate_all(&scope, &[&name]);

    let after = inspect(&name);
    assert_ne!(before["Id"], after["Id"]);
    assert_eq!(
        after["HostConfig"], before["HostConfig"],
        "HostConfig differs"
    );
    assert_eq!(
        config_without_token(&after),
        config_without_token(&before),
        "Config differs"
    );
    // Same entries in the same order as the old container had them (the docker CLI itself
    // does not keep `-e` order), the token entry in the position it held.
    let names = |v: &Value| -> Vec<String> {
        v["Config"]["Env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap().split('=').next().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&after), names(&before), "env order kept");
    assert_eq!(
        after["State"]["Health"]["Status"], "healthy",
        "healthcheck ran and passed"
    );
}

#[test]
fn token_var_is_added_when_the_target_lacks_it() {
    let scope = Scope::new("preserve-add-var");
    let name = scope.run("bot", &["-e", "A=1", bot_image()]);
    let before = inspect(&name);
    let token = rotate_all(&scope, &[&name]);
    let env = inspect(&name)["Config"]["Env"].clone();
    let mut expected = before["Config"]["Env"].as_array().unwrap().clone();
    expected.push(Value::from(format!("{ENV_VAR}={token}")));
    assert_eq!(env, Value::from(expected));
}

fn mount_at<'a>(v: &'a Value, dest: &str) -> &'a Value {
    v["Mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["Destination"] == dest)
        .unwrap_or_else(|| panic!("no mount at {dest}: {}", v["Mounts"]))
}

#[test]
fn volumes_bind_mounts_and_anonymous_volumes_are_reattached() {
    let scope = Scope::new("preserve-volumes");
    let (_, tok) = old_token(&scope);
    let named = scope.volume("named");
    let host_dir = scope.dir.path().join("bind");
    std::fs::create_dir(&host_dir).unwrap();
    let bind = format!("{}:/bind:ro", host_dir.display());
    let named_spec = format!("{named}:/named");
    let name = scope.run(
        "bot",
        &[
            "-e",
            &tok,
            "-v",
            &named_spec,
            "-v",
            &bind,
            "-v",
            "/anon",
            "--mount",
            "type=volume,target=/anon-mount",
            "--tmpfs",
            "/scratch",
            bot_image(),
        ],
    );
    let before = inspect(&name);
    for dest in ["/anon", "/anon-mount"] {
        scope.forget_volume_later(mount_at(&before, dest)["Name"].as_str().unwrap());
    }

    rotate_all(&scope, &[&name]);

    let after = inspect(&name);
    for dest in ["/named", "/anon", "/anon-mount"] {
        assert_eq!(
            mount_at(&after, dest)["Name"],
            mount_at(&before, dest)["Name"],
            "volume at {dest}"
        );
        assert_eq!(mount_at(&after, dest)["RW"], true);
    }
    assert_eq!(
        mount_at(&after, "/bind")["Source"],
        mount_at(&before, "/bind")["Source"]
    );
    assert_eq!(
        mount_at(&after, "/bind")["RW"],
        false,
        "read-only bind stays read-only"
    );
    assert_eq!(after["HostConfig"]["Tmpfs"], before["HostConfig"]["Tmpfs"]);
    assert_eq!(
        after["Mounts"].as_array().unwrap().len(),
        before["Mounts"].as_array().unwrap().len()
    );
    // No new (empty) volume: the replacement's volumes are all the old container's (a
    // count of the engine's volumes would race with the other tests making theirs).
    let volumes = |v: &Value| -> Vec<String> {
        let mut names: Vec<String> = v["Mounts"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["Name"].as_str().map(str::to_string))
            .collect();
        names.sort();
        names
    };
    assert_eq!(volumes(&after), volumes(&before), "no new (empty) volume");
    assert!(
        docker(&["volume", "ls", "-q"]).contains(&named),
        "named volume kept"
    );
}

/// The name of the volume at `dest` in container `name`, removed with the scope (a volume
/// re-attached by name outlives `docker rm -v`).
fn volume_at(scope: &Scope, name: &str, dest: &str) -> String {
    let vol = mount_at(&inspect(name), dest)["Name"]
        .as_str()
        .unwrap()
        .to_string();
    scope.forget_volume_later(&vol);
    vol
}

fn volume_exists(name: &str) -> bool {
    docker_ok(&["volume", "inspect", name])
}

#[test]
fn volumes_from_volumes_from_are_left_to_it_so_a_recreated_source_is_followed() {
    let scope = Scope::new("preserve-volumes-from");
    let (_, tok) = old_token(&scope);
    let src = scope.run("src", &["-v", "/shared", bot_image()]);
    let first = volume_at(&scope, &src, "/shared");
    let from = format!("{src}:ro");
    let args = [
        "-e",
        &tok,
        "--volumes-from",
        &from,
        "-v",
        "/anon",
        bot_image(),
    ];
    let bot = scope.run("bot", &args);
    let own = volume_at(&scope, &bot, "/anon");
    let before = inspect(&bot);
    assert_eq!(mount_at(&before, "/shared")["Name"], first.as_str());

    rotate_all(&scope, &[&bot]);

    let after = inspect(&bot);
    assert_eq!(
        after["HostConfig"]["VolumesFrom"],
        before["HostConfig"]["VolumesFrom"]
    );
    let binds: Vec<&str> = after["HostConfig"]["Binds"]
        .as_array()
        .map(|b| b.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert!(
        !binds.iter().any(|b| b.contains("/shared")),
        "the source's volume is not pinned: {binds:?}"
    );
    assert_eq!(binds, [format!("{own}:/anon:rw")], "its own one is");
    assert_eq!(mount_at(&after, "/shared")["Name"], first.as_str());
    assert_eq!(mount_at(&after, "/shared")["RW"], false, ":ro kept");

    // The source recreated with a fresh volume: the bot's next copy takes that one.
    docker(&["rm", "-f", &src]);
    scope.run("src", &["-v", "/shared", bot_image()]);
    let second = volume_at(&scope, &src, "/shared");
    assert_ne!(second, first);
    rotate_all(&scope, &[&bot]);
    let again = inspect(&bot);
    assert_eq!(mount_at(&again, "/shared")["Name"], second.as_str());
    assert_eq!(mount_at(&again, "/anon")["Name"], own.as_str());
}

#[test]
fn a_bot_whose_volumes_from_source_is_gone_is_refused_and_left_as_it_was() {
    let scope = Scope::new("preserve-volumes-from-gone");
    let (old, tok) = old_token(&scope);
    let src = scope.run("src", &["-v", "/shared", bot_image()]);
    volume_at(&scope, &src, "/shared");
    let bot = scope.run("bot", &["-e", &tok, "--volumes-from", &src, bot_image()]);
    docker(&["rm", "-f", &src]);
    let before = inspect(&bot);

    let (_, run) = rotate_run(&scope, &[&bot]);

    assert_eq!(run.code, 4, "{run:?}");
    let report = run.json();
    assert_eq!(report["outcome"], "bad_target", "{report}");
    let error = format!("{} {}", report["error"], report["targets"][0]["error"]);
    assert!(
        error.contains(&src) && error.contains("--volumes-from"),
        "names the missing source: {report}"
    );
    assert_eq!(inspect(&bot)["Id"], before["Id"], "the bot is untouched");
    assert_eq!(env_of(&bot, ENV_VAR).as_deref(), Some(old.as_str()));
    assert_eq!(scope.containers(), vec![bot], "nothing left over");
}

/// The engine's major version (`20`, `26`).
fn engine_major() -> u32 {
    let v = docker(&["version", "--format", "{{.Server.Version}}"]);
    v.trim().split('.').next().unwrap().parse().unwrap()
}

#[test]
fn an_anonymous_volume_keeps_its_data_and_outlives_rm_v_of_the_rotated_bot() {
    let scope = Scope::new("preserve-anon-rm-v");
    let (_, tok) = old_token(&scope);
    let bot = scope.run("bot", &["-e", &tok, "-v", "/anon", bot_image()]);
    let vol = volume_at(&scope, &bot, "/anon");
    let marker = scope.dir.path().join("marker");
    let data = format!("written-before-rotation-{}", scope.prefix);
    std::fs::write(&marker, &data).unwrap();
    docker(&["cp", s(&marker), &format!("{bot}:/anon/marker")]);

    rotate_all(&scope, &[&bot]);

    assert_eq!(mount_at(&inspect(&bot), "/anon")["Name"], vol.as_str());
    let seen = docker(&["cp", &format!("{bot}:/anon/marker"), "-"]);
    assert!(seen.contains(&data), "the replacement sees the old data");
    // Re-attached by name, which no create option can mark anonymous: `rm -v` keeps it
    // (README, "What the replacement keeps"), where it removes a never-rotated one's.
    docker(&["rm", "-f", "-v", &bot]);
    assert!(volume_exists(&vol), "rm -v of the rotated bot keeps it");
    let plain = scope.run("plain", &["-v", "/anon", bot_image()]);
    let plain_vol = volume_at(&scope, &plain, "/anon");
    docker(&["rm", "-f", "-v", &plain]);
    assert!(
        !volume_exists(&plain_vol),
        "rm -v of a never-rotated one removes it"
    );
    if engine_major() >= 23 {
        // Still labelled anonymous: `docker volume prune` (anonymous only) removes it.
        let labels = docker(&["volume", "inspect", "-f", "{{json .Labels}}", &vol]);
        let labels: Value = serde_json::from_str(&labels).unwrap();
        assert!(
            labels.get("com.docker.volume.anonymous").is_some(),
            "{labels}"
        );
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn fixed_and_engine_chosen_host_ports_are_kept() {
    let scope = Scope::new("preserve-ports");
    let (_, tok) = old_token(&scope);
    let fixed = format!("127.0.0.1:{}:9090", free_port());
    let name = scope.run(
        "bot",
        &[
            "-e",
            &tok,
            "-p",
            &fixed,
            "-p",
            "127.0.0.1::8080/tcp",
            "--expose",
            "7070",
            bot_image(),
        ],
    );
    let before = inspect(&name);
    rotate_all(&scope, &[&name]);
    let after = inspect(&name);
    assert_eq!(
        after["NetworkSettings"]["Ports"],
        before["NetworkSettings"]["Ports"]
    );
    assert_eq!(
        after["Config"]["ExposedPorts"],
        before["Config"]["ExposedPorts"]
    );
}

/// Creates a network with a subnet no other network uses (tests run in parallel).
fn network_with_subnet(scope: &Scope, what: &str) -> (String, String) {
    let mut seed = std::process::id() as usize;
    for attempt in 0..20 {
        seed = seed.wrapping_mul(31).wrapping_add(attempt + 7);
        let subnet = format!("10.{}.{}.0/24", 200 + seed % 50, (seed / 50) % 250);
        let name = scope.name(&format!("{what}{attempt}"));
        if support::docker_ok(&["network", "create", "--subnet", &subnet, &name]) {
            scope.adopt_network(&name);
            return (name, subnet);
        }
    }
    panic!("no free subnet for a test network");
}

#[test]
fn user_defined_networks_keep_aliases_and_static_ips_without_the_old_short_id() {
    let scope = Scope::new("preserve-nets");
    let (_, tok) = old_token(&scope);
    let (net_a, subnet_a) = network_with_subnet(&scope, "a");
    let net_b = scope.network("b", &[]);
    let ip = subnet_a.replace(".0/24", ".77");
    let name = scope.run(
        "bot",
        &[
            "-e",
            &tok,
            "--network",
            &net_a,
            "--ip",
            &ip,
            "--network-alias",
            "alpha",
            bot_image(),
        ],
    );
    docker(&["network", "connect", "--alias", "beta", &net_b, &name]);
    let before = inspect(&name);
    let old_short = &before["Id"].as_str().unwrap()[..12];

    rotate_all(&scope, &[&name]);

    let after = inspect(&name);
    let new_short = &after["Id"].as_str().unwrap()[..12];
    let nets = &after["NetworkSettings"]["Networks"];
    assert_eq!(nets.as_object().unwrap().len(), 2, "{nets}");
    assert_eq!(nets[&net_a]["IPAddress"], ip.as_str());
    assert_eq!(nets[&net_a]["IPAMConfig"]["IPv4Address"], ip.as_str());
    assert_eq!(after["HostConfig"]["NetworkMode"], net_a.as_str());
    for (net, alias) in [(&net_a, "alpha"), (&net_b, "beta")] {
        // Engine 25 and newer keep the short ID in `DNSNames` rather than in `Aliases`.
        let aliases: Vec<&str> = ["Aliases", "DNSNames"]
            .iter()
            .filter_map(|k| nets[net][*k].as_array())
            .flatten()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert!(aliases.contains(&alias), "{net}: {aliases:?}");
        assert!(
            !aliases.contains(&old_short),
            "old short-id alias carried over on {net}: {aliases:?}"
        );
        assert!(
            aliases.contains(&new_short),
            "engine adds the new short id on {net}: {aliases:?}"
        );
    }
}

#[test]
fn host_none_and_container_network_modes_are_kept() {
    let scope = Scope::new("preserve-modes");
    let (_, tok) = old_token(&scope);
    let anchor = scope.run("anchor", &[bot_image()]);
    let anchor_id = inspect(&anchor)["Id"].as_str().unwrap().to_string();
    let joined = format!("container:{anchor_id}");
    let host = scope.run("host", &["-e", &tok, "--network", "host", bot_image()]);
    let none = scope.run("none", &["-e", &tok, "--network", "none", bot_image()]);
    let shared = scope.run("shared", &["-e", &tok, "--network", &joined, bot_image()]);
    let before: Vec<Value> = [&host, &none, &shared].iter().map(|n| inspect(n)).collect();

    rotate_all(&scope, &[&host, &none, &shared]);

    for (n, b) in [&host, &none, &shared].iter().zip(before) {
        let a = inspect(n);
        assert_ne!(a["Id"], b["Id"]);
        assert_eq!(
            a["HostConfig"]["NetworkMode"], b["HostConfig"]["NetworkMode"],
            "{n}"
        );
        assert_eq!(a["State"]["Running"], true, "{n}");
    }
    assert_eq!(
        inspect(&shared)["HostConfig"]["NetworkMode"],
        joined.as_str()
    );
}

#[test]
fn engine_generated_hostname_is_not_copied() {
    let scope = Scope::new("preserve-hostname");
    let (_, tok) = old_token(&scope);
    let name = scope.run("bot", &["-e", &tok, bot_image()]);
    let before = inspect(&name);
    assert_eq!(
        before["Config"]["Hostname"],
        &before["Id"].as_str().unwrap()[..12]
    );
    rotate_all(&scope, &[&name]);
    let after = inspect(&name);
    assert_eq!(
        after["Config"]["Hostname"],
        &after["Id"].as_str().unwrap()[..12],
        "a hostname of its own"
    );
}

#[test]
fn compose_still_sees_the_rotated_container() {
    let scope = Scope::new("preserve-compose");
    let (token, _) = old_token(&scope);
    let project = scope.prefix.clone();
    let compose_file = scope.dir.path().join("compose.yaml");
    std::fs::write(
        &compose_file,
        format!(
            "version: '3.7'\nservices:\n  bot:\n    image: {}\n    environment:\n      {ENV_VAR}: \"{token}\"\n    labels:\n      {}: \"{project}\"\n",
            bot_image(),
            support::SCOPE_LABEL
        ),
    )
    .unwrap();
    scope.adopt_network(&format!("{project}_default"));
    let compose = |args: &[&str]| support::compose(&project, &compose_file, args);
    compose(&["up", "-d"]);
    let old_id = compose(&["ps", "-q", "bot"]).trim().to_string();
    let name = inspect(&old_id)["Name"]
        .as_str()
        .unwrap()
        .trim_start_matches('/')
        .to_string();

    let new_token = rotate_all(&scope, &[&name]);

    let new_id = compose(&["ps", "-q", "bot"]).trim().to_string();
    assert!(
        !new_id.is_empty() && new_id != old_id,
        "compose ps lists the replacement: {new_id}"
    );
    assert!(compose(&["ps"]).contains("Up"), "and it is up");
    let logs = compose(&["logs", "--no-color", "bot"]);
    assert!(
        logs.contains(&support::fingerprint(&new_token)),
        "compose logs reach it: {logs}"
    );
    // An `up -d` of the unchanged file keeps the rotated container: compose's config
    // hash label was copied, so it does not recreate it back to the file's old token.
    compose(&["up", "-d"]);
    assert_eq!(
        compose(&["ps", "-q", "bot"]).trim(),
        new_id,
        "up -d left the rotated container in place"
    );
    assert_eq!(
        support::env_of(&new_id, ENV_VAR).as_deref(),
        Some(new_token.as_str()),
        "still carrying the new token"
    );
    compose(&["down"]);
    assert!(
        !support::docker_ok(&["inspect", &new_id]),
        "compose down removed it"
    );
}
