//! The engine's socket vanishing in the middle of a swap (connections dropped, socket file
//! gone), through a forwarder in front of the real engine so other tests are unaffected.
//! Either the rotator rides the outage out, or it stops with a clear error and the next
//! run recovers: the target ends up running under its own name, nothing left behind.

mod support;

use std::time::Duration;

use support::api::StandInApi;
use support::proxy::EngineProxy;
use support::{accepted, env_of, host_bot, inspect, rotator_env, s, Paused, Scope, ENV_VAR};

fn args<'a>(file: &'a str, api: &'a str, name: &'a str, retry: &'a str) -> Vec<&'a str> {
    vec![
        "rotate",
        "--secret-file",
        file,
        "--api-base-url",
        api,
        "--container",
        name,
        "--settle",
        "0.3",
        "--engine-retry",
        retry,
        "--verify-timeout",
        retry,
    ]
}

#[test]
fn an_engine_outage_during_verification_is_ridden_out_when_it_comes_back() {
    let scope = Scope::new("outage-back");
    let api = StandInApi::start();
    let (old, new) = (accepted(&api), accepted(&api));
    let name = host_bot(&scope, "bot", &old, &api.base_url(), &[]);
    let old_id = inspect(&name)["Id"].clone();
    let file = scope.secret_file(&new);
    let proxy = EngineProxy::start(scope.dir.path());
    let base = api.base_url();
    let host = proxy.docker_host();

    let paused = Paused::at(
        "after-start",
        &args(s(&file), &base, &name, "60"),
        &[("DOCKER_HOST", &host)],
    );
    proxy.cut();
    paused.release();
    std::thread::sleep(Duration::from_secs(3));
    proxy.restore();
    let run = paused.wait();

    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("engine unreachable"), "{run:?}");
    assert!(run.stdout.contains("swapped and verified"), "{run:?}");
    let after = inspect(&name);
    assert_ne!(after["Id"], old_id);
    assert_eq!(after["State"]["Running"], true);
    assert_eq!(env_of(&name, ENV_VAR).as_deref(), Some(new.as_str()));
    assert_eq!(scope.containers(), vec![name], "no leftovers");
}

#[test]
fn an_engine_gone_for_longer_than_the_retry_window_stops_clearly_and_the_next_run_recovers() {
    let scope = Scope::new("outage-gone");
    let api = StandInApi::start();
    let (old, new) = (accepted(&api), accepted(&api));
    let name = host_bot(&scope, "bot", &old, &api.base_url(), &[]);
    let file = scope.secret_file(&new);
    let proxy = EngineProxy::start(scope.dir.path());
    let base = api.base_url();
    let host = proxy.docker_host();

    // The old container has been stopped and set aside; the replacement has its name.
    let paused = Paused::at(
        "after-stop",
        &args(s(&file), &base, &name, "2"),
        &[("DOCKER_HOST", &host)],
    );
    proxy.cut();
    let run = paused.resume();
    assert_eq!(run.code, 6, "{run:?}");
    assert!(
        run.stdout.contains("could not start the replacement")
            && run.stdout.contains("ROLLBACK FAILED")
            && run
                .stdout
                .contains("the next `token-rotator rotate` or `run` finishes the recovery"),
        "{run:?}"
    );
    assert!(
        run.stderr
            .contains("could not remove the replacement, retrying: engine unreachable ("),
        "retried with backoff first: {run:?}"
    );
    assert_eq!(
        inspect(&name)["State"]["Running"],
        false,
        "the state the outage left: the replacement, not started, has the name"
    );

    proxy.restore();
    let again = rotator_env(
        &args(s(&file), &base, &name, "30"),
        &[("DOCKER_HOST", &host)],
    );
    assert_eq!(again.code, 0, "{again:?}");
    assert!(
        again.stdout.contains("removed unverified replacement")
            && again.stdout.contains("restored the old container"),
        "{again:?}"
    );
    assert_eq!(inspect(&name)["State"]["Running"], true);
    assert_eq!(env_of(&name, ENV_VAR).as_deref(), Some(new.as_str()));
    assert_eq!(scope.containers(), vec![name], "no leftovers");
}

#[test]
fn an_engine_outage_mid_swap_rolls_back_cleanly_and_is_reported_as_retryable() {
    let scope = Scope::new("outage-rollback");
    let api = StandInApi::start();
    let (old, new) = (accepted(&api), accepted(&api));
    let name = host_bot(&scope, "bot", &old, &api.base_url(), &[]);
    let old_id = inspect(&name)["Id"].clone();
    let file = scope.secret_file(&new);
    let proxy = EngineProxy::start(scope.dir.path());
    let base = api.base_url();
    let host = proxy.docker_host();

    // The forward step fails on the dropped connection; the rollback waits for the engine.
    let paused = Paused::at(
        "after-rename-old",
        &args(s(&file), &base, &name, "60"),
        &[("DOCKER_HOST", &host)],
    );
    proxy.cut();
    paused.release();
    std::thread::sleep(Duration::from_secs(2));
    proxy.restore();
    let run = paused.wait();

    assert_eq!(
        run.code, 5,
        "exit 5: engine unavailable, worth retrying: {run:?}"
    );
    assert!(
        run.stdout
            .contains("rolled back: the old container is back as it was"),
        "{run:?}"
    );
    let after = inspect(&name);
    assert_eq!(after["Id"], old_id, "the very same old container");
    assert_eq!(after["State"]["Running"], true);
    assert_eq!(env_of(&name, ENV_VAR).as_deref(), Some(old.as_str()));
    assert_eq!(scope.containers(), vec![name], "no leftovers");
}
