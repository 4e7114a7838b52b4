//! The canary: the bot's own client, in the bot's own image, tries the new token before any
//! target is touched; a refusal leaves everything as it was, and no canary is ever left.

mod support;

use support::api::{Behaviour, StandInApi};
use support::recorder::Recorder;
use support::{
    accepted, env_of, host_bot, inspect, metric, new_token, remember_secret, rotator, rotator_env,
    s, wait_until, HostDaemon, Paused, Scope, ENV_VAR,
};

fn rotate(file: &std::path::Path, api: &StandInApi, bots: &[&str], extra: &[&str]) -> support::Run {
    let base = api.base_url();
    let mut args = vec![
        "rotate",
        "--json",
        "--secret-file",
        s(file),
        "--api-base-url",
        &base,
        "--settle",
        "0.3",
    ];
    for b in bots {
        args.extend(["--container", b]);
    }
    args.extend_from_slice(extra);
    rotator(&args)
}

/// A token the API accepts from token-rotator's probe but refuses from the bot's client.
fn probe_only(api: &StandInApi) -> String {
    let t = new_token();
    remember_secret(&t);
    api.set(&t, Behaviour::ProbeOnly);
    t
}

#[test]
fn a_token_only_our_probe_accepts_is_refused_by_the_canary_with_every_target_untouched() {
    let scope = Scope::new("canary-refused");
    let api = StandInApi::start();
    let old = accepted(&api);
    let (a, b) = (
        host_bot(&scope, "a", &old, &api.base_url(), &[]),
        host_bot(&scope, "b", &old, &api.base_url(), &[]),
    );
    let ids = (inspect(&a)["Id"].clone(), inspect(&b)["Id"].clone());
    let file = scope.secret_file(&probe_only(&api));
    let run = rotate(
        &file,
        &api,
        &[&a, &b],
        &["--canary", "--canary-exec", "/fake-bot check"],
    );
    assert_eq!(run.code, 1, "{run:?}");
    let report = run.json();
    assert_eq!(report["outcome"], "canary_failed", "{report}");
    assert_eq!(
        report["validation"], "valid",
        "our own probe accepted it: {report}"
    );
    let error = report["error"].as_str().unwrap();
    assert!(
        error.contains("canary") && error.contains("exited 1"),
        "{error}"
    );
    assert_eq!(report["targets"][0]["outcome"], "not_attempted");
    assert_eq!((inspect(&a)["Id"].clone(), inspect(&b)["Id"].clone()), ids);
    assert_eq!(env_of(&a, ENV_VAR).as_deref(), Some(old.as_str()));
    let mut left = scope.containers();
    left.sort();
    assert_eq!(left, vec![a, b], "no canary left");
}

#[test]
fn a_bot_whose_env_shadows_the_token_with_an_api_key_fails_the_canary() {
    let scope = Scope::new("canary-shadowed");
    let api = StandInApi::start();
    let old = accepted(&api);
    let key = new_token().replace("oat01", "api03");
    remember_secret(&key);
    let env_key = format!("ANTHROPIC_API_KEY={key}");
    let bot = host_bot(&scope, "bot", &old, &api.base_url(), &["-e", &env_key]);
    let file = scope.secret_file(&accepted(&api));
    let run = rotate(
        &file,
        &api,
        &[&bot],
        &["--canary", "--verify-exec", "/fake-bot check"],
    );
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(run.json()["outcome"], "canary_failed");
    assert_eq!(env_of(&bot, ENV_VAR).as_deref(), Some(old.as_str()));
    assert_eq!(scope.containers(), vec![bot]);
}

#[test]
fn a_canary_that_hangs_is_killed_at_the_timeout_and_removed() {
    let scope = Scope::new("canary-hang");
    let api = StandInApi::start();
    let old = accepted(&api);
    let bot = host_bot(&scope, "bot", &old, &api.base_url(), &[]);
    let file = scope.secret_file(&accepted(&api));
    let run = rotate(
        &file,
        &api,
        &[&bot],
        &[
            "--canary",
            "--canary-exec",
            "/fake-bot serve",
            "--verify-timeout",
            "3",
        ],
    );
    assert_eq!(run.code, 1, "{run:?}");
    let report = run.json();
    assert_eq!(report["outcome"], "canary_failed");
    assert!(
        report["error"]
            .as_str()
            .unwrap()
            .contains("did not exit within 3s"),
        "{report}"
    );
    assert_eq!(scope.containers(), vec![bot]);
}

#[test]
fn a_good_token_passes_one_canary_per_image_and_is_rotated() {
    let scope = Scope::new("canary-pass");
    let api = StandInApi::start();
    let old = accepted(&api);
    let (a, b) = (
        host_bot(&scope, "a", &old, &api.base_url(), &[]),
        host_bot(&scope, "b", &old, &api.base_url(), &[]),
    );
    let new = accepted(&api);
    let file = scope.secret_file(&new);
    let run = rotate(
        &file,
        &api,
        &[&a, &b],
        &["--canary", "--canary-exec", "/fake-bot check"],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.json()["outcome"], "rotated");
    assert!(
        run.stderr.matches("the canary accepted the token").count() == 1,
        "one image, one canary: {run:?}"
    );
    assert_eq!(env_of(&a, ENV_VAR).as_deref(), Some(new.as_str()));
    assert_eq!(env_of(&b, ENV_VAR).as_deref(), Some(new.as_str()));
}

#[test]
fn a_canary_killed_with_the_rotator_is_removed_by_the_next_run() {
    let scope = Scope::new("canary-crash");
    let api = StandInApi::start();
    let old = accepted(&api);
    let bot = host_bot(&scope, "bot", &old, &api.base_url(), &[]);
    let new = accepted(&api);
    let file = scope.secret_file(&new);
    let base = api.base_url();
    let args = [
        "rotate",
        "--json",
        "--secret-file",
        s(&file),
        "--api-base-url",
        &base,
        "--container",
        &bot,
        "--settle",
        "0.3",
        "--canary",
        "--canary-exec",
        "/fake-bot check",
    ];
    Paused::at("during-canary", &args, &[]).kill();
    assert!(
        scope.containers().iter().any(|c| c.contains("-tr-canary-")),
        "{:?}",
        scope.containers()
    );
    let run = rotator(&args);
    assert_eq!(run.code, 0, "{run:?}");
    let report = run.json();
    assert!(
        report["recovered"]
            .to_string()
            .contains("removed leftover canary"),
        "{report}"
    );
    assert_eq!(report["outcome"], "rotated");
    assert_eq!(scope.containers(), vec![bot]);
}

#[test]
fn canary_without_a_command_is_a_usage_error_naming_the_flags() {
    let run = rotator_env(
        &["rotate", "--container", "x"],
        &[("TOKEN_ROTATOR_CANARY", "true")],
    );
    assert_eq!(run.code, 64, "{run:?}");
    assert!(
        run.stderr.contains("--canary-exec") && run.stderr.contains("--verify-exec"),
        "{run:?}"
    );
}

#[test]
fn in_the_daemon_a_failed_canary_is_a_refused_token_announced_once_and_not_retried() {
    let scope = Scope::new("canary-daemon");
    let api = StandInApi::start();
    let old = accepted(&api);
    let bot = host_bot(&scope, "bot", &old, &api.base_url(), &[]);
    let file = scope.secret_file(&old);
    let hook = Recorder::start();
    let base = api.base_url();
    let d = HostDaemon::start(
        &scope,
        &[
            "--secret-file",
            s(&file),
            "--container",
            &bot,
            "--api-base-url",
            &base,
            "--notify-webhook",
            &hook.url,
            "--canary-exec",
            "/fake-bot check",
            "--live-probe-interval",
            "0",
        ],
        &[("TOKEN_ROTATOR_CANARY", "true")],
    );
    d.wait_for_first_rotation();
    std::fs::write(&file, probe_only(&api)).unwrap();
    let series = "token_rotator_rotations_total{outcome=\"canary_failed\"}";
    assert!(
        wait_until(30.0, || metric(&d.get("/metrics").1, series) == Some(1.0)),
        "{}",
        d.logs()
    );
    assert!(wait_until(5.0, || hook
        .bodies()
        .iter()
        .any(|e| e["event"] == "canary_failed")));
    std::thread::sleep(std::time::Duration::from_secs(6)); // longer than the first retry delay
    assert_eq!(
        metric(&d.get("/metrics").1, series),
        Some(1.0),
        "not retried"
    );
    assert_eq!(env_of(&bot, ENV_VAR).as_deref(), Some(old.as_str()));
}
