//! A real engine restart in the middle of a rotation: each test runs a private Docker
//! Engine 26.1 of its own (scripts/engine26.sh), SIGKILLs it at a step of a swap and starts
//! it again. The end state is the one a crash of the rotator must leave: one target under
//! its name, running as its restart policy says, the new token only if it was verified,
//! nothing left over, no volume lost.

mod support;

use support::engine::PrivateEngine;
use support::{bot_image, new_token, remember_secret, run_binary, s, Paused, Scope, ENV_VAR};

/// A bot with an anonymous volume and `--restart always` on `e`; returns its name.
fn bot(e: &PrivateEngine, scope: &Scope, token: &str) -> String {
    let name = scope.name("bot");
    let env = format!("{ENV_VAR}={token}");
    e.docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--restart",
        "always",
        "-v",
        "/data",
        "-e",
        &env,
        bot_image(),
    ]);
    name
}

fn env_of(e: &PrivateEngine, name: &str) -> Option<String> {
    let v = e.inspect(name)?;
    v["Config"]["Env"]
        .as_array()?
        .iter()
        .filter_map(|x| x.as_str())
        .find_map(|x| x.strip_prefix(&format!("{ENV_VAR}=")).map(str::to_string))
}

fn volume_of(e: &PrivateEngine, name: &str) -> String {
    let v = e.inspect(name).expect("inspect");
    v["Mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["Destination"] == "/data")
        .and_then(|m| m["Name"].as_str())
        .unwrap()
        .to_string()
}

fn rotate_args(file: &str, name: &str) -> Vec<String> {
    [
        "rotate",
        "--json",
        "--secret-file",
        file,
        "--validate",
        "none",
        "--container",
        name,
        "--settle",
        "1",
        "--verify-timeout",
        "30",
        "--engine-retry",
        "60",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect()
}

/// Runs the real rotator against `e` until it reports `rotated` (a first run may only
/// finish a recovery), and checks the end state every rotation must reach.
fn converge(e: &PrivateEngine, name: &str, file: &str, new: &str, volume: &str) {
    let args = rotate_args(file, name);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = run_binary(
        std::path::Path::new(env!("CARGO_BIN_EXE_token-rotator")),
        &args,
        &[("DOCKER_HOST", &e.host)],
    );
    let report = run.json();
    assert!(
        matches!(
            report["outcome"].as_str(),
            Some("rotated" | "already_current")
        ),
        "{run:?}"
    );
    assert_eq!(e.containers(), vec![name.to_string()], "nothing left over");
    let after = e.inspect(name).unwrap();
    assert_eq!(
        after["State"]["Running"], true,
        "running, as --restart always says"
    );
    assert_eq!(env_of(e, name).as_deref(), Some(new));
    assert_eq!(volume_of(e, name), volume, "the same volume");
}

#[test]
fn an_engine_killed_mid_swap_and_back_within_the_retry_window_leaves_one_target() {
    let e = PrivateEngine::start(&[bot_image()]);
    for step in [
        "after-create",
        "after-rename-old",
        "after-stop",
        "after-start",
    ] {
        let scope = Scope::new(&format!("restart-back-{step}"));
        let (old, new) = (new_token(), new_token());
        remember_secret(&old);
        remember_secret(&new);
        let name = bot(&e, &scope, &old);
        let volume = volume_of(&e, &name);
        let file = scope.secret_file(&new);
        let args = rotate_args(s(&file), &name);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let p = Paused::at(step, &args, &[("DOCKER_HOST", &e.host)]);
        e.kill();
        p.release();
        // The rotator meets a dead engine at its next call and rides it out.
        std::thread::sleep(std::time::Duration::from_secs(1));
        e.restart();
        let run = p.wait();
        let outcome = run.json()["outcome"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            ["rotated", "engine_unavailable", "rolled_back"].contains(&outcome.as_str()),
            "{step}: {run:?}"
        );
        // Exactly one container under its name, with the new token only if verified.
        let now = e
            .inspect(&name)
            .expect("the target is there under its name");
        let expected = if outcome == "rotated" { &new } else { &old };
        assert_eq!(
            env_of(&e, &name).as_deref(),
            Some(expected.as_str()),
            "{step}: {run:?}"
        );
        assert_eq!(now["State"]["Running"], true, "{step}");
        assert_eq!(
            e.containers(),
            vec![name.clone()],
            "{step}: nothing left over"
        );
        converge(&e, &name, s(&file), &new, &volume);
        e.docker(&["rm", "-f", &name]);
    }
}

#[test]
fn a_host_crash_mid_swap_engine_and_rotator_killed_is_recovered_by_the_next_run() {
    let e = PrivateEngine::start(&[bot_image()]);
    for step in [
        "after-rename-old",
        "after-rename-new",
        "after-start",
        "before-remove",
    ] {
        let scope = Scope::new(&format!("restart-crash-{step}"));
        let (old, new) = (new_token(), new_token());
        remember_secret(&old);
        remember_secret(&new);
        let name = bot(&e, &scope, &old);
        let volume = volume_of(&e, &name);
        let file = scope.secret_file(&new);
        let args = rotate_args(s(&file), &name);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let p = Paused::at(step, &args, &[("DOCKER_HOST", &e.host)]);
        p.kill();
        e.kill();
        e.restart();
        converge(&e, &name, s(&file), &new, &volume);
        e.docker(&["rm", "-f", &name]);
    }
}
