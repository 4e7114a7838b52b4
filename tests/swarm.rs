//! Docker Swarm services as targets, on a real single-node Swarm: a private Docker 26.1 of
//! this test binary's own (never the machine's engine, whose other tests must not see a
//! Swarm), started by the first test and purged after the last.

mod support;

use std::sync::{Arc, Mutex, Weak};

use serde_json::Value;
use support::api::StandInApi;
use support::engine::PrivateEngine;
use support::{
    accepted, bot_image, new_token, remember_secret, run_binary, s, Paused, Scope, ENV_VAR,
};

/// The Swarm engine, shared by the tests running at a time.
fn swarm() -> Arc<PrivateEngine> {
    static ENGINE: Mutex<Weak<PrivateEngine>> = Mutex::new(Weak::new());
    let mut slot = ENGINE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(e) = slot.upgrade() {
        return e;
    }
    let e = PrivateEngine::start(&[bot_image()]);
    e.docker(&[
        "swarm",
        "init",
        "--advertise-addr",
        "127.0.0.1",
        "--default-addr-pool",
        "10.250.0.0/16",
    ]);
    let e = Arc::new(e);
    *slot = Arc::downgrade(&e);
    e
}

/// A replicated service of the bot on the host network (it reaches the stand-in API on
/// loopback), carrying `token`; waits until its tasks run.
fn service(
    e: &PrivateEngine,
    scope: &Scope,
    replicas: u32,
    token: &str,
    base: &str,
    extra: &[&str],
) -> String {
    let name = scope.name("svc");
    let env = format!("{ENV_VAR}={token}");
    let api = format!("ANTHROPIC_BASE_URL={base}");
    let replicas = replicas.to_string();
    let mut args = vec![
        "service",
        "create",
        "-q",
        "--name",
        &name,
        "--replicas",
        &replicas,
        "--network",
        "host",
        "--update-delay",
        "0s",
        "--update-monitor",
        "1s",
        "-e",
        &env,
        "-e",
        &api,
    ];
    args.extend_from_slice(extra);
    args.extend([bot_image(), "serve"]);
    e.docker(&args);
    name
}

fn spec(e: &PrivateEngine, name: &str) -> Value {
    let v: Value = serde_json::from_str(&e.docker(&["service", "inspect", name])).unwrap();
    v[0].clone()
}

fn spec_token(e: &PrivateEngine, name: &str) -> Option<String> {
    spec(e, name)["Spec"]["TaskTemplate"]["ContainerSpec"]["Env"]
        .as_array()?
        .iter()
        .filter_map(|x| x.as_str())
        .find_map(|x| x.strip_prefix(&format!("{ENV_VAR}=")).map(str::to_string))
}

/// The tokens the service's running task containers carry.
fn running_tokens(e: &PrivateEngine, name: &str) -> Vec<String> {
    let filter = format!("label=com.docker.swarm.service.name={name}");
    e.docker(&["ps", "-q", "--filter", &filter])
        .lines()
        .filter_map(|id| e.inspect(id))
        .filter_map(|c| {
            c["Config"]["Env"]
                .as_array()?
                .iter()
                .filter_map(|x| x.as_str())
                .find_map(|x| x.strip_prefix(&format!("{ENV_VAR}=")).map(str::to_string))
        })
        .collect()
}

fn rotate(e: &PrivateEngine, file: &str, name: &str, base: &str, extra: &[&str]) -> Value {
    let mut args = vec![
        "rotate",
        "--json",
        "--secret-file",
        file,
        "--service",
        name,
        "--api-base-url",
        base,
        "--settle",
        "1",
        "--verify-timeout",
        "60",
    ];
    args.extend_from_slice(extra);
    let run = run_binary(
        std::path::Path::new(env!("CARGO_BIN_EXE_token-rotator")),
        &args,
        &[("DOCKER_HOST", &e.host)],
    );
    let v = run.json();
    assert_eq!(
        run.code == 0,
        v["outcome"] == "rotated" || v["outcome"] == "already_current",
        "exit code and outcome agree: {run:?}"
    );
    v
}

#[test]
fn a_two_replica_service_is_rotated_by_swarm_and_verified_in_every_task() {
    let e = swarm();
    let scope = Scope::new("swarm-rotate");
    let api = StandInApi::start();
    let (old, new) = (accepted(&api), accepted(&api));
    let base = api.base_url();
    let name = service(&e, &scope, 2, &old, &base, &[]);
    let file = scope.secret_file(&new);
    let v = rotate(
        &e,
        s(&file),
        &name,
        &base,
        &["--verify-exec", "/fake-bot check"],
    );
    assert_eq!(v["outcome"], "rotated", "{v}");
    assert_eq!(v["targets"][0]["name"], name.as_str());
    assert_eq!(spec_token(&e, &name).as_deref(), Some(new.as_str()));
    assert!(
        support::wait_until(10.0, || {
            let t = running_tokens(&e, &name);
            t.len() == 2 && t.iter().all(|t| *t == new)
        }),
        "two tasks run, each with the new token: {:?}",
        running_tokens(&e, &name)
    );
    let sv = spec(&e, &name);
    // The label-only commit is an update Swarm has nothing to roll out for.
    assert!(
        sv["UpdateStatus"].is_null() || sv["UpdateStatus"]["State"] == "completed",
        "{sv}"
    );
    assert_eq!(
        sv["Spec"]["Labels"]["token-rotator.verified"],
        v["rotation"]
    );
    // The spec carries when its token was first deployed, as the report says.
    let first = &sv["Spec"]["Labels"]["token-rotator.first-deployed"];
    assert!(first.is_string(), "{sv}");
    assert_eq!(*first, v["first_deployed_at"], "{v}");
    // Nothing else of the spec changed: the replicas and the update policy are the user's.
    assert_eq!(sv["Spec"]["Mode"]["Replicated"]["Replicas"], 2);
    assert_eq!(sv["Spec"]["UpdateConfig"]["Monitor"], 1_000_000_000u64);
    // Again with the same token: nothing to do, no update.
    let version = sv["Version"]["Index"].clone();
    let again = rotate(&e, s(&file), &name, &base, &[]);
    assert_eq!(again["outcome"], "already_current", "{again}");
    assert_eq!(
        again["first_deployed_at"], v["first_deployed_at"],
        "read back from the spec's label"
    );
    assert_eq!(spec(&e, &name)["Version"]["Index"], version);
    // `status` shows the service as a target, carrying the file's token.
    let st = run_binary(
        std::path::Path::new(env!("CARGO_BIN_EXE_token-rotator")),
        &[
            "status",
            "--json",
            "--secret-file",
            s(&file),
            "--service",
            &name,
        ],
        &[("DOCKER_HOST", &e.host)],
    );
    assert_eq!(st.code, 0, "every target current: {st:?}");
    let target = &st.json()["targets"][0];
    assert_eq!(target["name"], name.as_str(), "{target}");
    assert_eq!(target["kind"], "service", "{target}");
    assert_eq!(target["matches_secret"], true, "{target}");
    assert_eq!(target["fingerprint"], support::fingerprint(&new).as_str());
    assert_eq!(target["rotation"], v["rotation"], "{target}");
    e.docker(&["service", "rm", &name]);
}

#[test]
fn a_service_whose_new_tasks_fail_verification_is_rolled_back_to_its_previous_spec() {
    let e = swarm();
    let scope = Scope::new("swarm-undo");
    let api = StandInApi::start();
    let (old, new) = (accepted(&api), accepted(&api));
    let base = api.base_url();
    let name = service(&e, &scope, 1, &old, &base, &[]);
    let file = scope.secret_file(&new);
    let v = rotate(
        &e,
        s(&file),
        &name,
        &base,
        &["--verify-exec", "/no-such-command"],
    );
    assert_eq!(v["outcome"], "rolled_back", "{v}");
    assert_eq!(
        spec_token(&e, &name).as_deref(),
        Some(old.as_str()),
        "the previous spec is back"
    );
    let sv = spec(&e, &name);
    assert_eq!(sv["UpdateStatus"]["State"], "rollback_completed", "{sv}");
    assert!(
        support::wait_until(30.0, || {
            let t = running_tokens(&e, &name);
            !t.is_empty() && t.iter().all(|t| *t == old)
        }),
        "its task runs the old token again"
    );
    e.docker(&["service", "rm", &name]);
}

#[test]
fn a_service_update_interrupted_by_sigkill_is_rolled_back_by_the_next_run_then_rotated() {
    let e = swarm();
    let scope = Scope::new("swarm-crash");
    let api = StandInApi::start();
    let (old, new) = (accepted(&api), accepted(&api));
    let base = api.base_url();
    let name = service(&e, &scope, 1, &old, &base, &[]);
    let file = scope.secret_file(&new);
    let args = [
        "rotate",
        "--json",
        "--secret-file",
        s(&file),
        "--service",
        &name,
        "--api-base-url",
        &base,
        "--settle",
        "1",
    ];
    Paused::at("service-updated", &args, &[("DOCKER_HOST", &e.host)]).kill();
    assert_eq!(
        spec_token(&e, &name).as_deref(),
        Some(new.as_str()),
        "the update went in"
    );
    let v = rotate(&e, s(&file), &name, &base, &[]);
    assert_eq!(v["outcome"], "rotated", "{v}");
    assert!(
        v["recovered"]
            .to_string()
            .contains("rolled the service back"),
        "the unverified update was undone first: {v}"
    );
    assert_eq!(spec_token(&e, &name).as_deref(), Some(new.as_str()));
    assert_eq!(
        spec(&e, &name)["Spec"]["Labels"]["token-rotator.verified"],
        v["rotation"]
    );
    e.docker(&["service", "rm", &name]);
}

#[test]
fn start_first_rolls_a_service_out_with_swarms_start_first_order() {
    let e = swarm();
    let scope = Scope::new("swarm-start-first");
    let api = StandInApi::start();
    let (old, new) = (accepted(&api), accepted(&api));
    let base = api.base_url();
    let name = service(&e, &scope, 1, &old, &base, &[]);
    let file = scope.secret_file(&new);
    let v = rotate(&e, s(&file), &name, &base, &["--order", "start-first"]);
    assert_eq!(v["outcome"], "rotated", "{v}");
    assert_eq!(
        spec(&e, &name)["Spec"]["UpdateConfig"]["Order"],
        "start-first"
    );
    // The old task is shut down after its replacement started.
    assert!(support::wait_until(10.0, || {
        let t = running_tokens(&e, &name);
        t.len() == 1 && t[0] == new
    }));
    e.docker(&["service", "rm", &name]);
}

#[test]
fn a_missing_service_is_refused_by_name_touching_nothing() {
    let e = swarm();
    let scope = Scope::new("swarm-missing");
    let token = new_token();
    remember_secret(&token);
    let file = scope.secret_file(&token);
    let run = run_binary(
        std::path::Path::new(env!("CARGO_BIN_EXE_token-rotator")),
        &[
            "rotate",
            "--json",
            "--secret-file",
            s(&file),
            "--service",
            "no-such-service",
            "--validate",
            "none",
        ],
        &[("DOCKER_HOST", &e.host)],
    );
    assert_eq!(run.code, 4, "{run:?}");
    let v = run.json();
    assert_eq!(v["outcome"], "bad_target");
    assert!(
        v["error"].as_str().unwrap().contains("no-such-service"),
        "{v}"
    );
}

#[test]
fn a_service_carrying_the_selector_labels_is_a_target_and_one_without_is_not() {
    let e = swarm();
    let scope = Scope::new("swarm-label");
    let api = StandInApi::start();
    let (old, new) = (accepted(&api), accepted(&api));
    let base = api.base_url();
    let label = format!("bench.pick={}", scope.prefix);
    let picked = service(&e, &scope, 1, &old, &base, &["--label", &label]);
    let other = format!("{}-other", scope.prefix);
    let env = format!("{ENV_VAR}={old}");
    e.docker(&[
        "service",
        "create",
        "-q",
        "--name",
        &other,
        "--network",
        "host",
        "-e",
        &env,
        bot_image(),
        "serve",
    ]);
    let file = scope.secret_file(&new);
    let run = run_binary(
        std::path::Path::new(env!("CARGO_BIN_EXE_token-rotator")),
        &[
            "rotate",
            "--json",
            "--secret-file",
            s(&file),
            "--label",
            &label,
            "--api-base-url",
            &base,
            "--settle",
            "1",
        ],
        &[("DOCKER_HOST", &e.host)],
    );
    let v = run.json();
    assert_eq!(v["outcome"], "rotated", "{run:?}");
    assert_eq!(v["targets"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["targets"][0]["name"], picked.as_str());
    assert_eq!(spec_token(&e, &picked).as_deref(), Some(new.as_str()));
    assert_eq!(
        spec_token(&e, &other).as_deref(),
        Some(old.as_str()),
        "untouched"
    );
    e.docker(&["service", "rm", &picked, &other]);
}
