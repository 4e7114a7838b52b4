//! Configurations that differ between engines, run on each engine of the test lanes
//! (scripts/test.sh: the machine's 20.10, API 1.41, and a private 26.1, API 1.45): a MAC
//! address the user set, host UTS mode, a crash-looping `--restart always` bot, a paused
//! bot, an empty token value, a bot sharing its IPC namespace, and many networks at once.

mod support;

use serde_json::Value;
use support::api::StandInApi;
use support::{accepted, docker, env_of, host_bot, inspect, rotator, s, Scope, ENV_VAR};

/// The engine's API version, as `(major, minor)`.
fn api() -> (u32, u32) {
    let v = docker(&["version", "--format", "{{.Server.APIVersion}}"]);
    let (a, b) = v.split_once('.').expect("API version");
    (a.parse().unwrap(), b.parse().unwrap())
}

/// `rotate --json` of the secret file's token into `name`, validated by `api`.
fn rotate_json(scope: &Scope, api: &StandInApi, token: &str, name: &str, extra: &[&str]) -> Value {
    let file = scope.secret_file(token);
    let base = api.base_url();
    let mut args = vec![
        "rotate",
        "--json",
        "--secret-file",
        s(&file),
        "--api-base-url",
        &base,
        "--container",
        name,
    ];
    args.extend_from_slice(extra);
    if !extra.contains(&"--settle") {
        args.extend(["--settle", "0.3"]);
    }
    let run = rotator(&args);
    let v = run.json();
    assert_eq!(
        run.code,
        v["outcome"]
            .as_str()
            .map(|o| match o {
                "rotated" | "already_current" => 0,
                "rejected" | "canary_failed" => 1,
                "bad_target" | "rolled_back" => 4,
                _ => -1,
            })
            .unwrap_or(-1),
        "{run:?}"
    );
    v
}

/// Creates and starts `what` on `network` with MAC `mac`, the way each API allows it: on
/// 1.44+ the CLI puts it on the endpoint; older engines take it only in
/// `Config.MacAddress`, which the current CLI no longer sends to them.
fn run_with_mac(scope: &Scope, what: &str, network: &str, mac: &str, env: &[String]) -> String {
    let name = scope.name(what);
    if api() >= (1, 44) {
        let mut args: Vec<&str> = vec!["--network", network, "--mac-address", mac];
        for e in env {
            args.extend(["-e", e]);
        }
        args.push(support::bot_image());
        return scope.run(what, &args);
    }
    let body = serde_json::json!({
        "Image": support::bot_image(),
        "MacAddress": mac,
        "Env": env,
        "Labels": { support::SCOPE_LABEL: scope.prefix },
        "HostConfig": { "NetworkMode": network },
    });
    let sock = support::engine_socket();
    let out = std::process::Command::new("curl")
        .args([
            "-sf",
            "--unix-socket",
            s(&sock),
            "-H",
            "Content-Type: application/json",
        ])
        .args(["-X", "POST", "-d", &body.to_string()])
        .arg(format!(
            "http://localhost/v1.41/containers/create?name={name}"
        ))
        .output()
        .expect("curl");
    assert!(out.status.success(), "create with MacAddress: {out:?}");
    docker(&["start", &name]);
    name
}

fn mac_on(name: &str, network: &str) -> String {
    inspect(name)["NetworkSettings"]["Networks"][network]["MacAddress"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_mac_address_the_user_set_is_kept_and_one_the_engine_made_is_made_anew() {
    let scope = Scope::new("eng-mac");
    let api = StandInApi::start();
    let (old, new) = (accepted(&api), accepted(&api));
    let net = scope.network("net", &[]);
    let env = vec![format!("{ENV_VAR}={old}")];
    let mac = "02:aa:bb:cc:dd:0e";
    let fixed = run_with_mac(&scope, "fixed", &net, mac, &env);
    let engine_made = scope.run(
        "made",
        &["--network", &net, "-e", &env[0], support::bot_image()],
    );
    assert_eq!(mac_on(&fixed, &net), mac);

    for name in [&fixed, &engine_made] {
        let v = rotate_json(&scope, &api, &new, name, &["--validate", "none"]);
        assert_eq!(v["outcome"], "rotated", "{v}");
        assert_eq!(env_of(name, ENV_VAR).as_deref(), Some(new.as_str()));
    }
    assert_eq!(mac_on(&fixed, &net), mac, "the user's MAC is kept");
    // The engine's own MAC follows the endpoint's new IP: 02:42 and its four bytes.
    let after = inspect(&engine_made);
    let ep = &after["NetworkSettings"]["Networks"][net.as_str()];
    let ip: std::net::Ipv4Addr = ep["IPAddress"].as_str().unwrap().parse().unwrap();
    let [a, b, c, d] = ip.octets();
    assert_eq!(
        ep["MacAddress"].as_str().unwrap(),
        format!("02:42:{a:02x}:{b:02x}:{c:02x}:{d:02x}"),
        "an engine-made MAC is not pinned"
    );
}

#[test]
fn a_bot_on_the_hosts_network_and_uts_namespace_is_rotated() {
    let scope = Scope::new("eng-uts-host");
    let api = StandInApi::start();
    let (old, new) = (accepted(&api), accepted(&api));
    let bot = host_bot(&scope, "bot", &old, &api.base_url(), &["--uts", "host"]);
    let v = rotate_json(&scope, &api, &new, &bot, &[]);
    assert_eq!(v["outcome"], "rotated", "{v}");
    let after = inspect(&bot);
    assert_eq!(after["HostConfig"]["UTSMode"], "host");
    assert_eq!(after["State"]["Running"], true);
    assert_eq!(env_of(&bot, ENV_VAR).as_deref(), Some(new.as_str()));
}

#[test]
fn a_crash_looping_always_restart_bot_fails_verification_whatever_the_settle() {
    let scope = Scope::new("eng-crashloop");
    let api = StandInApi::start();
    let (old, new) = (accepted(&api), accepted(&api));
    // Exits 0 at once, again and again: a restart loop whose exit code looks fine.
    let env_tok = format!("{ENV_VAR}={old}");
    let bot = scope.run(
        "bot",
        &[
            "--network",
            "host",
            "--restart",
            "always",
            "-e",
            &env_tok,
            "--entrypoint",
            "/fake-bot",
            support::bot_image(),
            "health",
        ],
    );
    let id = inspect(&bot)["Id"].clone();
    // Not `--settle 0`: a check the instant after the start may see it up before its first
    // exit, and nothing has risen yet. From the first restart on, any settle fails it.
    for settle in ["0.5", "2"] {
        let v = rotate_json(
            &scope,
            &api,
            &new,
            &bot,
            &["--settle", settle, "--verify-timeout", "20"],
        );
        assert_eq!(v["outcome"], "rolled_back", "settle {settle}: {v}");
        assert!(
            v["targets"][0]["error"]
                .as_str()
                .is_some_and(|e| e.contains("restarted")),
            "{v}"
        );
        assert_eq!(inspect(&bot)["Id"], id, "the old container is back");
        assert_eq!(env_of(&bot, ENV_VAR).as_deref(), Some(old.as_str()));
        assert_eq!(scope.containers(), vec![bot.clone()], "nothing left over");
    }
}

#[test]
fn a_paused_bot_is_refused_and_stays_paused() {
    let scope = Scope::new("eng-paused");
    let api = StandInApi::start();
    let (old, new) = (accepted(&api), accepted(&api));
    let bot = host_bot(&scope, "bot", &old, &api.base_url(), &[]);
    docker(&["pause", &bot]);
    let id = inspect(&bot)["Id"].clone();
    let v = rotate_json(&scope, &api, &new, &bot, &[]);
    assert_eq!(v["outcome"], "bad_target", "{v}");
    assert!(
        v["error"].as_str().is_some_and(|e| e.contains("paused")),
        "{v}"
    );
    let after = inspect(&bot);
    assert_eq!(after["Id"], id);
    assert_eq!(after["State"]["Paused"], true, "still paused");
    docker(&["unpause", &bot]);
}

#[test]
fn an_empty_token_value_is_reported_as_empty_not_as_a_fingerprint() {
    let scope = Scope::new("eng-empty");
    let api = StandInApi::start();
    let new = accepted(&api);
    let bot = host_bot(&scope, "bot", "", &api.base_url(), &[]);
    assert_eq!(env_of(&bot, ENV_VAR).as_deref(), Some(""));
    let v = rotate_json(&scope, &api, &new, &bot, &[]);
    assert_eq!(v["outcome"], "rotated", "{v}");
    assert_eq!(v["targets"][0]["previous"], "empty", "{v}");
    assert_eq!(v["retired"], serde_json::json!([]), "nothing to retire");
}

#[test]
fn a_bot_with_a_shareable_ipc_namespace_is_not_taken_for_the_rotator_itself() {
    let scope = Scope::new("eng-ipc");
    let api = StandInApi::start();
    let (old, new) = (accepted(&api), accepted(&api));
    // Its /dev/shm is a mount under the engine's containers/<id>/ on the host, where this
    // rotator runs.
    let bot = host_bot(
        &scope,
        "bot",
        &old,
        &api.base_url(),
        &["--ipc", "shareable"],
    );
    let v = rotate_json(&scope, &api, &new, &bot, &[]);
    assert_eq!(v["outcome"], "rotated", "{v}");
    assert_eq!(inspect(&bot)["HostConfig"]["IpcMode"], "shareable");
}

#[test]
fn a_bot_on_three_networks_keeps_every_endpoint() {
    let scope = Scope::new("eng-nets");
    let api = StandInApi::start();
    let (old, new) = (accepted(&api), accepted(&api));
    let nets: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|n| scope.network(n, &[]))
        .collect();
    let env_tok = format!("{ENV_VAR}={old}");
    let alias = format!("--network-alias={}-alias", scope.prefix);
    let bot = scope.run(
        "bot",
        &[
            "--network",
            &nets[0],
            &alias,
            "-e",
            &env_tok,
            support::bot_image(),
        ],
    );
    docker(&["network", "connect", "--alias", "second", &nets[1], &bot]);
    docker(&["network", "connect", "--alias", "third", &nets[2], &bot]);
    let v = rotate_json(&scope, &api, &new, &bot, &["--validate", "none"]);
    assert_eq!(v["outcome"], "rotated", "{v}");
    let after = inspect(&bot);
    let eps = after["NetworkSettings"]["Networks"].as_object().unwrap();
    let mut names: Vec<&String> = eps.keys().collect();
    names.sort();
    assert_eq!(names, nets.iter().collect::<Vec<_>>());
    for (net, alias) in [(&nets[1], "second"), (&nets[2], "third")] {
        let aliases = eps[net.as_str()]["Aliases"].to_string();
        assert!(aliases.contains(alias), "{net}: {aliases}");
    }
}

/// A bot (shareable IPC, its own network) and three containers sharing its network, PID
/// and IPC namespaces; returns (bot, [dependents]).
fn bot_with_dependents(scope: &Scope, token: &str) -> (String, Vec<String>) {
    let env_tok = format!("{ENV_VAR}={token}");
    let bot = scope.run(
        "bot",
        &["--ipc", "shareable", "-e", &env_tok, support::bot_image()],
    );
    let deps = [("net", "--network"), ("pid", "--pid"), ("ipc", "--ipc")]
        .iter()
        .map(|(what, flag)| {
            let mode = format!("container:{bot}");
            scope.run(what, &[flag, &mode, support::bot_image()])
        })
        .collect();
    (bot, deps)
}

/// Each dependent runs, pointed at `bot`'s current container.
fn assert_follow(bot: &str, deps: &[String]) {
    let bot_id = inspect(bot)["Id"].as_str().unwrap().to_string();
    for (dep, key) in deps.iter().zip(["NetworkMode", "PidMode", "IpcMode"]) {
        let d = inspect(dep);
        assert_eq!(d["HostConfig"][key], format!("container:{bot_id}"), "{dep}");
        assert_eq!(d["State"]["Running"], true, "{dep} runs");
    }
}

#[test]
fn containers_sharing_the_bots_namespaces_follow_it_onto_the_replacement() {
    let scope = Scope::new("eng-deps");
    let api = StandInApi::start();
    let (old, new) = (accepted(&api), accepted(&api));
    let (bot, deps) = bot_with_dependents(&scope, &old);
    let dep_ids: Vec<Value> = deps.iter().map(|d| inspect(d)["Id"].clone()).collect();
    let v = rotate_json(&scope, &api, &new, &bot, &["--validate", "none"]);
    assert_eq!(v["outcome"], "rotated", "{v}");
    let mut named: Vec<&str> = v["targets"][0]["dependents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    named.sort();
    let mut expected: Vec<&str> = deps.iter().map(String::as_str).collect();
    expected.sort();
    assert_eq!(named, expected, "the report names each dependent: {v}");
    assert_follow(&bot, &deps);
    for (dep, before) in deps.iter().zip(&dep_ids) {
        assert_ne!(&inspect(dep)["Id"], before, "{dep} was recreated");
    }
    let mut all = scope.containers();
    all.sort();
    let mut want = vec![bot.clone()];
    want.extend(deps.iter().cloned());
    want.sort();
    assert_eq!(all, want, "nothing left over");
}

#[test]
fn a_failed_swap_restores_the_bot_and_every_container_sharing_its_namespaces() {
    let scope = Scope::new("eng-deps-undo");
    let api = StandInApi::start();
    let (old, new) = (accepted(&api), accepted(&api));
    let (bot, deps) = bot_with_dependents(&scope, &old);
    let bot_id = inspect(&bot)["Id"].clone();
    let dep_ids: Vec<Value> = deps.iter().map(|d| inspect(d)["Id"].clone()).collect();
    let v = rotate_json(
        &scope,
        &api,
        &new,
        &bot,
        &["--validate", "none", "--verify-exec", "/no-such-command"],
    );
    assert_eq!(v["outcome"], "rolled_back", "{v}");
    assert_eq!(inspect(&bot)["Id"], bot_id, "the very same bot");
    for (dep, before) in deps.iter().zip(&dep_ids) {
        assert_eq!(&inspect(dep)["Id"], before, "the very same {dep}");
    }
    assert_follow(&bot, &deps);
    assert_eq!(scope.containers().len(), 4, "nothing left over");
}

#[test]
fn a_crash_while_the_dependents_follow_is_recovered_by_the_next_run() {
    let scope = Scope::new("eng-deps-crash");
    let api = StandInApi::start();
    let (old, new) = (accepted(&api), accepted(&api));
    let (bot, deps) = bot_with_dependents(&scope, &old);
    let file = scope.secret_file(&new);
    let args = [
        "rotate",
        "--secret-file",
        s(&file),
        "--validate",
        "none",
        "--container",
        &bot,
        "--settle",
        "0.3",
    ];
    support::Paused::at("during-verify", &args, &[]).kill();
    let v = rotate_json(&scope, &api, &new, &bot, &["--validate", "none"]);
    assert_eq!(v["outcome"], "rotated", "{v}");
    assert_eq!(env_of(&bot, ENV_VAR).as_deref(), Some(new.as_str()));
    assert_follow(&bot, &deps);
    assert_eq!(scope.containers().len(), 4, "nothing left over");
}
