//! Through a deny-by-default filtering socket proxy (Debian's HAProxy in HTTP mode, as the
//! docker-socket-proxy images are) that allows exactly the README's API table
//! (`src/engine/api.rs`), every mode works and calls nothing else; a proxy that does not
//! allow exec refuses `--verify-exec` as a configuration error, with nothing changed.

mod support;

use support::api::{Behaviour, StandInApi};
use support::haproxy::SocketProxy;
use support::{
    accepted, engine_socket, env_of, env_of_if_any, host_bot, inspect, run_binary, s, wait_until,
    HostDaemon, Scope, ENV_VAR,
};
use token_rotator::engine::api::{self, Endpoint};

fn rotate(
    proxy: &SocketProxy,
    file: &std::path::Path,
    api: &StandInApi,
    bot: &str,
    extra: &[&str],
) -> support::Run {
    let base = api.base_url();
    let mut args = vec![
        "rotate",
        "--json",
        "--secret-file",
        s(file),
        "--api-base-url",
        &base,
        "--settle",
        "0.5",
        "--container",
        bot,
    ];
    args.extend_from_slice(extra);
    let host = proxy.docker_host();
    run_binary(
        std::path::Path::new(env!("CARGO_BIN_EXE_token-rotator")),
        &args,
        &[("DOCKER_HOST", host.as_str())],
    )
}

fn id_of(name: &str) -> String {
    inspect(name)["Id"].as_str().unwrap().to_string()
}

fn assert_only_allowed(proxy: &SocketProxy) {
    assert!(!proxy.requests().is_empty(), "the proxy logged the calls");
    let outside = proxy.outside(&api::ALL);
    assert!(
        outside.is_empty(),
        "calls outside the list, or refused: {outside:?}"
    );
}

#[test]
fn a_rotation_verified_by_exec_a_rollback_and_a_canary_call_only_the_listed_endpoints() {
    let scope = Scope::new("proxy-rotate");
    let proxy = SocketProxy::start(scope.dir.path(), &engine_socket(), &api::ALL);
    let api = StandInApi::start();
    let (old, new) = (accepted(&api), accepted(&api));
    let bot = host_bot(&scope, "bot", &old, &api.base_url(), &[]);

    // A rotation verified by exec: the proxy does not pass the attach upgrade.
    let file = scope.secret_file(&new);
    let run = rotate(
        &proxy,
        &file,
        &api,
        &bot,
        &["--verify-exec", "/fake-bot check"],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.json()["outcome"], "rotated");
    assert_eq!(env_of(&bot, ENV_VAR).as_deref(), Some(new.as_str()));

    // A rollback: the bot's own API refuses the next token, so its exec check fails.
    let next = accepted(&api);
    let bot_api = StandInApi::start();
    bot_api.set(&new, Behaviour::Accept);
    let bot2 = host_bot(&scope, "bot2", &new, &bot_api.base_url(), &[]);
    let before = id_of(&bot2);
    std::fs::write(&file, &next).unwrap();
    let run = rotate(
        &proxy,
        &file,
        &api,
        &bot2,
        &["--verify-exec", "/fake-bot check", "--verify-timeout", "2"],
    );
    assert_eq!(run.code, 4, "{run:?}");
    let report = run.json();
    assert_eq!(report["outcome"], "rolled_back", "{report}");
    let error = report["targets"][0]["error"].as_str().unwrap();
    assert!(error.contains("verification command exited 1"), "{error}");
    assert_eq!(id_of(&bot2), before, "the very same container");

    // A canary before the swap.
    let run = rotate(
        &proxy,
        &file,
        &api,
        &bot,
        &["--canary", "--canary-exec", "/fake-bot check"],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.json()["outcome"], "rotated");
    assert_eq!(env_of(&bot, ENV_VAR).as_deref(), Some(next.as_str()));
    assert_only_allowed(&proxy);
}

#[test]
fn the_daemon_rotates_reconciles_and_follows_logs_through_the_proxy() {
    let scope = Scope::new("proxy-daemon");
    let proxy = SocketProxy::start(scope.dir.path(), &engine_socket(), &api::ALL);
    let api = StandInApi::start();
    let live = accepted(&api);
    let bot = host_bot(&scope, "bot", &live, &api.base_url(), &[]);
    let dir = scope.dir.path();
    for d in ["primary", "standby"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    let (primary, standby) = (dir.join("primary/token"), dir.join("standby/token"));
    std::fs::write(&primary, &live).unwrap();
    let base = api.base_url();
    let host = proxy.docker_host();
    let args = [
        "--secret-file",
        s(&primary),
        "--standby-file",
        s(&standby),
        "--container",
        &bot,
        "--api-base-url",
        &base,
        "--settle",
        "0.3",
        "--validate-deadline",
        "2",
        "--live-probe-interval",
        "0",
    ];
    let d = HostDaemon::start(&scope, &args, &[("DOCKER_HOST", host.as_str())]);
    d.wait_for_first_rotation();
    let carries = |t: &str| env_of_if_any(&bot, ENV_VAR).as_deref() == Some(t);

    // A file change.
    let fresh = accepted(&api);
    std::fs::write(&primary, &fresh).unwrap();
    assert!(
        wait_until(30.0, || carries(&fresh)),
        "file change: {}",
        d.logs()
    );

    let rotated = "token_rotator_rotations_total{outcome=\"rotated\"}";
    assert!(wait_until(10.0, || support::metric(
        &d.get("/metrics").1,
        rotated
    ) == Some(1.0)));
    std::thread::sleep(std::time::Duration::from_secs(1));

    // A rejection in the bot's logs: the standby takes over.
    let spare = accepted(&api);
    std::fs::write(&standby, &spare).unwrap();
    let status =
        || serde_json::from_str::<serde_json::Value>(&d.get("/status").1).unwrap_or_default();
    assert!(
        wait_until(15.0, || status()["standby"]["state"] == "ready"),
        "{}",
        d.logs()
    );
    let streams = "token_rotator_log_streams";
    assert!(wait_until(10.0, || support::metric(
        &d.get("/metrics").1,
        streams
    ) == Some(1.0)));
    api.set(&fresh, Behaviour::Revoked);
    assert!(
        wait_until(40.0, || carries(&spare)),
        "log rejection: {}",
        d.logs()
    );
    assert!(
        wait_until(20.0, || status()["live"]["source"] == "standby"),
        "{}",
        d.logs()
    );
    // Let the promotion's swap finish (its old container removed) before the re-run.
    std::thread::sleep(std::time::Duration::from_secs(2));

    // The bot re-run by hand without its token (the events trigger).
    support::rerun_without_token(&scope, &bot);
    assert!(
        wait_until(30.0, || carries(&spare)),
        "recreated bot: {}",
        d.logs()
    );

    drop(d);
    assert_only_allowed(&proxy);
}

#[test]
fn a_proxy_that_refuses_exec_is_a_configuration_error_and_nothing_is_changed() {
    let scope = Scope::new("proxy-no-exec");
    let no_exec: Vec<Endpoint> = api::ALL
        .into_iter()
        .filter(|e| ![api::EXEC_CREATE, api::EXEC_START, api::EXEC_INSPECT].contains(e))
        .collect();
    let proxy = SocketProxy::start(scope.dir.path(), &engine_socket(), &no_exec);
    let api = StandInApi::start();
    let (old, new) = (accepted(&api), accepted(&api));
    let bot = host_bot(&scope, "bot", &old, &api.base_url(), &[]);
    let before = id_of(&bot);
    let file = scope.secret_file(&new);
    let started = std::time::Instant::now();
    let run = rotate(
        &proxy,
        &file,
        &api,
        &bot,
        &["--verify-exec", "/fake-bot check", "--verify-timeout", "20"],
    );
    assert_eq!(run.code, 4, "{run:?}");
    let report = run.json();
    assert_eq!(report["outcome"], "bad_target", "{report}");
    let error = report["targets"][0]["error"].as_str().unwrap();
    assert!(
        error.contains(
            "refused POST /containers/{id}/exec (403): allow exec, or run without --verify-exec"
        ),
        "{error}"
    );
    assert!(
        started.elapsed().as_secs() < 15,
        "not retried until the timeout"
    );
    assert_eq!(id_of(&bot), before, "the very same container");
    assert_eq!(env_of(&bot, ENV_VAR).as_deref(), Some(old.as_str()));
    let refused: Vec<_> = proxy
        .requests()
        .into_iter()
        .filter(|r| r.status == 403)
        .collect();
    assert_eq!(refused.len(), 1, "refused once, not retried: {refused:?}");
}
