//! An operator's first hour: metrics that say what the engine shows, errors that name the
//! fix, a daemon that waits for the engine and stops at once when nothing was touched.

mod support;

use support::api::{Behaviour, StandInApi};
use support::proxy::EngineProxy;
use support::{
    accepted, fingerprint, host_bot, metric, new_token, remember_secret, rotator, rotator_env, s,
    wait_until, HostDaemon, Scope, ENV_VAR,
};

#[test]
fn metrics_show_what_the_engine_shows_even_after_someone_else_recreates_the_bot() {
    let scope = Scope::new("op-metrics");
    let api = StandInApi::start();
    let old = accepted(&api);
    let bot = host_bot(&scope, "bot", &old, &api.base_url(), &[]);
    let file = scope.secret_file(&old);
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
        ],
        &[],
    );
    d.wait_for_first_rotation();

    let m = d.get("/metrics").1;
    // Every outcome and verdict series exists from the start.
    for outcome in [
        "rotated",
        "rejected",
        "inconclusive",
        "bad_target",
        "engine_unavailable",
        "busy",
        "rolled_back",
        "rollback_failed",
        "canary_failed",
        "interrupted",
    ] {
        let series = format!("token_rotator_rotations_total{{outcome=\"{outcome}\"}}");
        assert_eq!(metric(&m, &series), Some(0.0), "{series}\n{m}");
    }
    let current = "token_rotator_rotations_total{outcome=\"already_current\"}";
    assert_eq!(metric(&m, current), Some(1.0), "{m}");
    for verdict in ["valid", "invalid", "inconclusive", "skipped"] {
        let series = format!("token_rotator_validations_total{{verdict=\"{verdict}\"}}");
        assert_eq!(metric(&m, &series), Some(0.0), "{series}\n{m}");
    }
    let version = env!("CARGO_PKG_VERSION");
    let build = format!("token_rotator_build_info{{version=\"{version}\"}}");
    assert_eq!(metric(&m, &build), Some(1.0), "{m}");
    let in_sync = format!("token_rotator_target_in_sync{{container=\"{bot}\"}}");
    assert_eq!(metric(&m, &in_sync), Some(1.0), "{m}");
    let deployed = format!(
        "token_rotator_deployed_token{{container=\"{bot}\",fingerprint=\"{}\"}}",
        fingerprint(&old)
    );
    assert_eq!(metric(&m, &deployed), Some(1.0), "{m}");

    // `docker compose up -d --force-recreate` without the token, in effect.
    support::rerun_without_token(&scope, &bot);
    let m = d.get("/metrics").1;
    assert_eq!(metric(&m, &in_sync), Some(0.0), "{m}");
    assert_eq!(metric(&m, &deployed), None, "no stale fingerprint: {m}");
    assert!(
        !m.contains(&format!("deployed_token{{container=\"{bot}\"")),
        "{m}"
    );

    // /readyz speaks JSON whether ready or not.
    let (code, body) = d.get("/readyz");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{body}"));
    assert_eq!((code, v["ready"].clone()), (200, true.into()), "{body}");
    assert_eq!(v["problems"], serde_json::json!([]));
}

#[test]
fn the_daemon_waits_for_an_engine_that_is_not_there_yet() {
    let scope = Scope::new("op-wait-engine");
    let api = StandInApi::start();
    let (old, new) = (accepted(&api), accepted(&api));
    let bot = host_bot(&scope, "bot", &old, &api.base_url(), &[]);
    let file = scope.secret_file(&new);
    let proxy = EngineProxy::start(scope.dir.path());
    proxy.cut();
    let host = proxy.docker_host();
    let base = api.base_url();
    let mut d = HostDaemon::start(
        &scope,
        &[
            "--secret-file",
            s(&file),
            "--container",
            &bot,
            "--api-base-url",
            &base,
            "--settle",
            "0.3",
        ],
        &[("DOCKER_HOST", &host)],
    );
    let (code, body) = d.get("/readyz");
    assert_eq!(code, 503, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["ready"], false);
    assert!(
        v["problems"][0]
            .as_str()
            .unwrap()
            .contains("engine: not connected yet"),
        "{body}"
    );

    proxy.restore();
    d.wait_for_first_rotation();
    assert!(
        wait_until(10.0, || support::env_of(&bot, ENV_VAR).as_deref()
            == Some(new.as_str())),
        "rotated once the engine answered: {}",
        d.logs()
    );
    assert!(d.logs().contains("waiting for the engine"), "{}", d.logs());
    assert_eq!(d.terminate(30.0), Some(0), "{}", d.logs());
}

#[test]
fn sigterm_while_validation_retries_stops_at_once_touching_nothing() {
    let scope = Scope::new("op-stop-validating");
    let api = StandInApi::start();
    let old = accepted(&api);
    let flaky = new_token();
    remember_secret(&flaky);
    api.set(&flaky, Behaviour::Overloaded);
    let bot = host_bot(&scope, "bot", &old, &api.base_url(), &[]);
    let id = support::inspect(&bot)["Id"].clone();
    let file = scope.secret_file(&flaky);
    let base = api.base_url();
    let mut d = HostDaemon::start(
        &scope,
        &[
            "--secret-file",
            s(&file),
            "--container",
            &bot,
            "--api-base-url",
            &base,
            "--validate-deadline",
            "600",
            "--shutdown-timeout",
            "600",
        ],
        &[],
    );
    assert!(
        wait_until(20.0, || d
            .logs()
            .contains("validation inconclusive, retrying")),
        "{}",
        d.logs()
    );
    // Nothing has been touched: the exit must not wait for the validation deadline (or
    // the shutdown timeout), only for the lock to be released.
    assert_eq!(d.terminate(20.0), Some(0), "{}", d.logs());
    assert!(
        d.logs()
            .contains("stopped before the rotation changed anything"),
        "{}",
        d.logs()
    );
    assert_eq!(support::inspect(&bot)["Id"], id);
    assert_eq!(scope.containers(), vec![bot], "the lock was released");
}

#[test]
fn a_verify_command_that_cannot_run_fails_at_once_with_that_reason() {
    let scope = Scope::new("op-exec-127");
    let api = StandInApi::start();
    let (old, new) = (accepted(&api), accepted(&api));
    let bot = host_bot(&scope, "bot", &old, &api.base_url(), &[]);
    let file = scope.secret_file(&new);
    let run = rotator(&[
        "rotate",
        "--json",
        "--secret-file",
        s(&file),
        "--api-base-url",
        &api.base_url(),
        "--container",
        &bot,
        "--settle",
        "0.3",
        "--verify-exec",
        "/no-such-command",
        "--verify-timeout",
        "120",
    ]);
    assert_eq!(run.code, 4, "{run:?}");
    let report = run.json();
    let error = report["targets"][0]["error"].as_str().unwrap();
    assert!(error.contains("cannot run in the new container"), "{error}");
    assert!(
        !error.contains("not verified within"),
        "not waited out: {error}"
    );
    assert_eq!(
        support::env_of(&bot, ENV_VAR).as_deref(),
        Some(old.as_str())
    );
}

#[test]
fn a_bad_value_from_the_environment_names_the_variable_and_hides_a_webhook_url() {
    let run = rotator_env(
        &["rotate", "--container", "x"],
        &[("TOKEN_ROTATOR_SETTLE", "abc")],
    );
    assert_eq!(run.code, 64, "{run:?}");
    assert!(
        run.stderr.contains("--settle") && run.stderr.contains("TOKEN_ROTATOR_SETTLE=abc"),
        "{run:?}"
    );
    let url = "hxxps://hooks.example.com/services/T0/B0/SECRETPART";
    let run = rotator_env(
        &["run", "--container", "x"],
        &[("TOKEN_ROTATOR_NOTIFY_WEBHOOK", url)],
    );
    assert_eq!(run.code, 64, "{run:?}");
    assert!(
        run.stderr.contains("TOKEN_ROTATOR_NOTIFY_WEBHOOK"),
        "{run:?}"
    );
    assert!(
        !run.stderr.contains("SECRETPART"),
        "the URL is a credential: {run:?}"
    );
    // On the command line the flag alone is named.
    let run = rotator(&["rotate", "--container", "x", "--settle", "abc"]);
    assert!(
        run.stderr.contains("--settle") && !run.stderr.contains("TOKEN_ROTATOR_SETTLE"),
        "{run:?}"
    );
}

#[test]
fn help_lists_the_exit_codes_of_every_command() {
    for cmd in ["check", "rotate", "run", "status", "healthcheck"] {
        let run = rotator(&[cmd, "--help"]);
        assert_eq!(run.code, 0, "{run:?}");
        assert!(run.stdout.contains("Exit codes"), "{cmd}: {run:?}");
    }
    let rotate = rotator(&["rotate", "--help"]).stdout;
    for code in ["rotated", "rolled_back", "rollback_failed", "busy", "64"] {
        assert!(rotate.contains(code), "{code}: {rotate}");
    }
}

#[test]
fn an_api_key_is_told_apart_with_what_it_is_for_and_logs_have_no_colour_off_a_terminal() {
    let scope = Scope::new("op-api-key");
    let key = new_token().replace("oat01", "api03");
    remember_secret(&key);
    let file = scope.secret_file(&key);
    let run = rotator(&["check", "--secret-file", s(&file)]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout.contains("holds an API key") && run.stdout.contains("ANTHROPIC_API_KEY"),
        "{run:?}"
    );
    let run = rotator(&["rotate", "--secret-file", s(&file), "--container", "x"]);
    assert!(!run.stderr.is_empty(), "{run:?}");
    assert!(
        !run.all().contains('\u{1b}'),
        "no ANSI escapes in a pipe: {run:?}"
    );
}

/// Runs the rotator under a pseudo-terminal (util-linux `script`), with `env` set; returns
/// what the terminal showed.
fn on_a_terminal(args: &str, env: &[(&str, &str)]) -> String {
    let cmd = format!("{} {args}", env!("CARGO_BIN_EXE_token-rotator"));
    let out = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env_remove("NO_COLOR")
        .envs(env.iter().copied())
        .output()
        .expect("script (util-linux) runs a command on a pseudo-terminal");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    support::assert_no_secret(&text);
    text
}

#[test]
fn logs_are_coloured_on_a_terminal_unless_no_color_is_set() {
    let scope = Scope::new("op-no-color");
    let file = scope.secret_file("not-a-token");
    let args = format!("rotate --secret-file {} --container x", s(&file));
    let coloured = on_a_terminal(&args, &[]);
    assert!(
        coloured.contains('\u{1b}'),
        "colour on a terminal: {coloured:?}"
    );
    let plain = on_a_terminal(&args, &[("NO_COLOR", "1")]);
    assert!(!plain.contains('\u{1b}'), "NO_COLOR: {plain:?}");
    assert!(plain.contains("secret"), "it did log: {plain:?}");
}

#[test]
fn sigterm_between_swaps_publishes_what_was_swapped_as_interrupted() {
    let scope = Scope::new("op-stop-between");
    let api = StandInApi::start();
    let (old, new) = (accepted(&api), accepted(&api));
    let a = host_bot(&scope, "a", &old, &api.base_url(), &[]);
    let b = host_bot(&scope, "b", &old, &api.base_url(), &[]);
    let file = scope.secret_file(&new);
    let hook = support::recorder::Recorder::start();
    let base = api.base_url();
    let listen = format!("127.0.0.1:{}", support::free_port());
    let p = support::Paused::at(
        "after-start",
        &[
            "run",
            "--listen",
            &listen,
            "--secret-file",
            s(&file),
            "--container",
            &a,
            "--container",
            &b,
            "--parallel",
            "1",
            "--api-base-url",
            &base,
            "--settle",
            "0.3",
            "--notify-webhook",
            &hook.url,
            "--live-probe-interval",
            "0",
            "--log-watch",
            "off",
        ],
        &[],
    );
    // SIGTERM while the first swap is under way: it finishes, the second never starts.
    // SAFETY: kill(2) on our own child's PID.
    unsafe { libc::kill(p.child.id() as libc::pid_t, libc::SIGTERM) };
    p.release();
    let run = p.wait();
    assert_eq!(run.code, 0, "{}", run.all());
    let carries_new: Vec<bool> = [&a, &b]
        .iter()
        .map(|n| support::env_of(n, ENV_VAR).as_deref() == Some(new.as_str()))
        .collect();
    assert_eq!(
        carries_new.iter().filter(|c| **c).count(),
        1,
        "exactly one target was swapped: {}",
        run.all()
    );
    let bodies = hook.bodies();
    let last = bodies.last().expect("a webhook event");
    assert_eq!(last["outcome"], "interrupted", "{bodies:?}");
    let outcomes: Vec<&str> = last["report"]["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        {
            let mut o = outcomes.clone();
            o.sort();
            o
        },
        ["not_attempted", "swapped"],
        "{bodies:?}"
    );
}
