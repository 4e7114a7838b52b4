//! The token appears nowhere the rotator writes: logs at the most verbose level, in both
//! formats, summaries and errors, metrics, status JSON and webhook bodies, over success,
//! rollback, refusal, inconclusive and crash-recovery runs, of `rotate` and of the daemon.
//! (Every other test's runs are scanned too: `support::rotator` checks all output.)

mod support;

use std::process::{Command, Stdio};

use support::api::{Behaviour, StandInApi};
use support::recorder::Recorder;
use support::{
    assert_no_secret, free_port, http_get, inspect, new_token, remember_secret, rotator,
    rotator_env, s, wait_until, Paused, Scope,
};

/// The flags every scenario runs with: the stand-in API, the bot, an exec check that a
/// token the bot's API refuses fails quickly, no retrying of inconclusive answers.
fn scenario_flags<'a>(api: &'a str, target: &'a str) -> [&'a str; 12] {
    [
        "--api-base-url",
        api,
        "--container",
        target,
        "--verify-exec",
        "/fake-bot check",
        "--verify-timeout",
        "2",
        "--settle",
        "0.2",
        "--validate-deadline",
        "0",
    ]
}

#[test]
fn no_output_of_any_scenario_contains_the_token_even_at_trace_level() {
    let scope = Scope::new("hygiene");
    let api = StandInApi::start();
    let bot_api = StandInApi::start();
    let token = |b: Behaviour| {
        let t = new_token();
        remember_secret(&t);
        api.set(&t, b);
        t
    };
    let old = token(Behaviour::Accept);
    bot_api.set(&old, Behaviour::Accept);
    let name = support::host_bot(&scope, "bot", &old, &bot_api.base_url(), &[]);

    let good_for_bot = token(Behaviour::Accept);
    bot_api.set(&good_for_bot, Behaviour::Accept);
    let fails_in_bot = token(Behaviour::Accept); // validated, but the bot's API refuses it
    let rate_limited = token(Behaviour::RateLimited);
    bot_api.set(&rate_limited, Behaviour::Accept);
    let scenarios = [
        ("success", good_for_bot.clone(), 0),
        ("already current", good_for_bot, 0),
        ("rollback", fails_in_bot, 4),
        ("revoked", token(Behaviour::Revoked), 1),
        ("expired", token(Behaviour::Expired), 1),
        ("rate limited", rate_limited, 0),
        ("inconclusive", token(Behaviour::Overloaded), 3),
    ];
    let mut everything = String::new();
    for format in ["json", "text"] {
        for (what, tok, code) in &scenarios {
            // Each run starts from a bot that does not carry `tok`, except the no-op case.
            let file = scope.secret_file(tok);
            let base = api.base_url();
            let head = ["--log-format", format, "rotate", "--secret-file", s(&file)];
            let run = rotator_env(
                &[&head[..], &scenario_flags(&base, &name)].concat(),
                &[("TOKEN_ROTATOR_LOG", "trace")],
            );
            assert_eq!(run.code, *code, "{what} ({format}): {run:?}");
            everything.push_str(&run.all());
            let labels = inspect(&name)["Config"]["Labels"].to_string();
            assert_no_secret(&labels);
        }
        // Put the bot back on the old token for the second round.
        let reset = scope.secret_file(&old);
        let base = api.base_url();
        rotator_env(
            &[
                "rotate",
                "--secret-file",
                s(&reset),
                "--api-base-url",
                &base,
                "--container",
                &name,
                "--settle",
                "0",
            ],
            &[],
        );
    }
    assert!(
        everything.contains("\"level\":\"DEBUG\""),
        "verbose logs were captured"
    );
    assert_no_secret(&everything);
}

#[test]
fn debug_output_of_a_token_shows_only_its_fingerprint() {
    let scope = Scope::new("hygiene-debug");
    let t = new_token();
    remember_secret(&t);
    let file = scope.secret_file(&t);
    let token = token_rotator::secret::read_token(&file, token_rotator::secret::TokenFormat::Oauth)
        .unwrap();
    let text = format!("{token:?} {:?}", token.fingerprint());
    assert_no_secret(&text);
    assert!(text.contains(&support::fingerprint(&t)));
}

/// The daemon's `rotations_total` for `outcome`, read from its metrics text.
fn rotations(metrics: &str, outcome: &str) -> u64 {
    let key = format!("token_rotator_rotations_total{{outcome=\"{outcome}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&key).and_then(|n| n.trim().parse().ok()))
        .unwrap_or(0)
}

#[test]
fn nothing_the_daemon_writes_contains_the_token_across_every_scenario() {
    let scope = Scope::new("hygiene-daemon");
    let api = StandInApi::start(); // what the rotator validates against
    let bot_api = StandInApi::start(); // what the bot's own check asks
    let hook = Recorder::start();
    let token = |validation: Behaviour, in_bot: bool| {
        let t = new_token();
        remember_secret(&t);
        api.set(&t, validation);
        if in_bot {
            bot_api.set(&t, Behaviour::Accept);
        }
        t
    };
    let old = token(Behaviour::Accept, true);
    let name = support::host_bot(&scope, "bot", &old, &bot_api.base_url(), &[]);
    let secrets = tempfile::tempdir().unwrap();
    let file = secrets.path().join("token");
    let base = api.base_url();
    let common = scenario_flags(&base, &name);
    let mut everything = String::new();

    // Crash recovery: a rotation SIGKILLed after starting the replacement...
    let crashed = token(Behaviour::Accept, true);
    std::fs::write(&file, &crashed).unwrap();
    let rotate = [&["rotate", "--secret-file", s(&file)][..], &common[..]].concat();
    everything.push_str(&Paused::at("after-start", &rotate, &[]).kill());

    // ...is recovered by the daemon when it starts, at trace level, in JSON.
    let listen = format!("127.0.0.1:{}", free_port());
    let logs = tempfile::tempdir().unwrap();
    let (out, err) = (logs.path().join("out"), logs.path().join("err"));
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_token-rotator"))
        .args(["--log-format", "json", "run", "--secret-file", s(&file)])
        .args(common)
        .args(["--listen", &listen, "--notify-webhook", &hook.url])
        .args(["--debounce", "0.1"])
        .env("TOKEN_ROTATOR_LOG", "trace")
        .stdout(Stdio::from(std::fs::File::create(&out).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(&err).unwrap()))
        .spawn()
        .unwrap();
    let metrics = || http_get(&listen, "/metrics").1;
    let settled = |outcome: &str, n: u64| {
        let ok = wait_until(30.0, || rotations(&metrics(), outcome) >= n);
        assert!(
            ok,
            "no {outcome} #{n}: {}",
            std::fs::read_to_string(&err).unwrap()
        );
    };
    settled("rotated", 1);
    assert!(
        http_get(&listen, "/status")
            .1
            .contains("restored the old container"),
        "the start recovered the crash"
    );

    let write = |t: &str| {
        let tmp = secrets.path().join(".token.tmp");
        std::fs::write(&tmp, t).unwrap();
        std::fs::rename(&tmp, &file).unwrap();
    };
    write(&token(Behaviour::Accept, true));
    settled("rotated", 2);
    write(&token(Behaviour::Accept, false)); // valid, but the bot's check refuses it
    settled("rolled_back", 1);
    write(&token(Behaviour::Revoked, false));
    settled("rejected", 1);
    write(&token(Behaviour::Expired, false));
    settled("rejected", 2);
    write(&token(Behaviour::Overloaded, false));
    settled("inconclusive", 1);
    write(&token(Behaviour::RateLimited, true));
    settled("rotated", 3);

    let status = http_get(&listen, "/status").1;
    everything.push_str(&status);
    everything.push_str(&metrics());
    everything.push_str(&http_get(&listen, "/readyz").1);
    let bodies = hook.bodies();
    assert!(bodies.len() >= 6, "webhooks for each outcome: {bodies:?}");
    for b in &bodies {
        everything.push_str(&b.to_string());
    }
    // The other commands, against the same state.
    for cmd in ["status", "check"] {
        let mut args = vec![cmd, "--secret-file", s(&file)];
        if cmd == "status" {
            args.extend(["--container", &name]);
        } else {
            args.extend(["--api-base-url", &base]);
        }
        everything.push_str(&rotator(&args).all());
    }

    sigterm(daemon.id());
    assert!(daemon.wait().unwrap().success());
    let stdout = std::fs::read_to_string(&out).unwrap();
    let stderr = std::fs::read_to_string(&err).unwrap();
    assert!(stderr.contains("\"level\":\"TRACE\"") || stderr.contains("\"level\":\"DEBUG\""));
    everything.push_str(&stdout);
    everything.push_str(&stderr);
    for what in [
        "rolled back",
        "revoked",
        "expired",
        "overloaded",
        "rate-limited",
    ] {
        assert!(
            everything.to_lowercase().contains(what),
            "the scenario {what:?} was captured"
        );
    }
    assert_no_secret(&everything);
}

fn sigterm(pid: u32) {
    let ok = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}
