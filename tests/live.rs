//! The daemon watches what it deployed: a bot recreated without the live token gets it
//! back, and a live token the API rejects (seen in a bot's log and confirmed by a probe,
//! or caught by the periodic probe) is replaced by a validated standby, or announced.
//! One test per flow through the real engine and binary; the decisions themselves (false
//! alarms, 429s, a rejected standby, a new primary after a promotion, ...) are table tests
//! of the daemon's policy (`src/daemon/policy/tests.rs`).

mod support;

use serde_json::Value;
use support::api::{Behaviour, StandInApi};
use support::recorder::Recorder;
use support::{
    accepted, docker, env_of_if_any, fingerprint, host_bot, inspect, metric, s, wait_until,
    HostDaemon, Scope, ENV_VAR,
};

fn status(d: &HostDaemon) -> Value {
    serde_json::from_str(&d.get("/status").1).unwrap_or(Value::Null)
}

fn carries(name: &str, token: &str) -> bool {
    env_of_if_any(name, ENV_VAR).as_deref() == Some(token)
}

/// A bot on the host network, a primary secret file holding its token, a standby file.
struct Setup {
    scope: Scope,
    api: StandInApi,
    bot: String,
    live: String,
    primary: std::path::PathBuf,
    standby: std::path::PathBuf,
}

impl Setup {
    fn new(test: &str, bot_extra: &[&str]) -> Setup {
        let scope = Scope::new(test);
        let api = StandInApi::start();
        let live = accepted(&api);
        let bot = host_bot(&scope, "bot", &live, &api.base_url(), bot_extra);
        let dir = scope.dir.path();
        std::fs::create_dir_all(dir.join("primary")).unwrap();
        std::fs::create_dir_all(dir.join("standby")).unwrap();
        let primary = dir.join("primary/token");
        let standby = dir.join("standby/token");
        std::fs::write(&primary, &live).unwrap();
        Setup {
            scope,
            api,
            bot,
            live,
            primary,
            standby,
        }
    }

    fn daemon(&self, extra: &[&str], hook: Option<&Recorder>) -> HostDaemon {
        let base = self.api.base_url();
        let mut args = vec![
            "--secret-file",
            s(&self.primary),
            "--standby-file",
            s(&self.standby),
            "--container",
            &self.bot,
            "--api-base-url",
            &base,
            "--settle",
            "0.3",
            "--validate-deadline",
            "2",
        ];
        if let Some(h) = hook {
            args.extend(["--notify-webhook", h.url.as_str()]);
        }
        args.extend_from_slice(extra);
        let d = HostDaemon::start(&self.scope, &args, &[]);
        d.wait_for_first_rotation();
        d
    }
}

#[test]
fn a_bot_re_run_by_hand_without_its_token_gets_the_live_token_back_and_own_swaps_trigger_nothing() {
    let t = Setup::new("live-rerun", &[]);
    let d = t.daemon(&[], None);
    let m = d.get("/metrics").1;
    let current = "token_rotator_rotations_total{outcome=\"already_current\"}";
    assert_eq!(metric(&m, current), Some(1.0), "{m}");

    // The operator re-runs the bot by hand, without any token.
    support::rerun_without_token(&t.scope, &t.bot);
    assert!(
        wait_until(20.0, || carries(&t.bot, &t.live)),
        "{}",
        d.logs()
    );
    let rotated = "token_rotator_rotations_total{outcome=\"rotated\"}";
    assert!(wait_until(10.0, || metric(&d.get("/metrics").1, rotated) == Some(1.0)));
    // The rotator's own replacement started too: that must not start another rotation.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let m = d.get("/metrics").1;
    assert_eq!(metric(&m, rotated), Some(1.0), "{m}");
    assert_eq!(
        metric(&m, current),
        Some(1.0),
        "no look after its own swap: {m}"
    );
}

#[test]
fn a_token_revoked_while_the_bot_runs_is_seen_in_its_logs_and_the_standby_takes_over() {
    let t = Setup::new("live-promote", &[]);
    let standby = accepted(&t.api);
    std::fs::write(&t.standby, &standby).unwrap();
    let hook = Recorder::start();
    let d = t.daemon(&["--live-probe-interval", "0"], Some(&hook));
    assert!(
        wait_until(10.0, || status(&d)["standby"]["state"] == "ready"),
        "{}",
        d.logs()
    );
    assert!(wait_until(10.0, || metric(
        &d.get("/metrics").1,
        "token_rotator_log_streams"
    ) == Some(1.0)));

    // Revoked on the server: the bot's next call fails and it says so in its log.
    t.api.set(&t.live, Behaviour::Revoked);
    assert!(
        wait_until(30.0, || status(&d)["live"]["source"] == "standby"),
        "{}",
        d.logs()
    );
    assert!(carries(&t.bot, &standby));
    let st = status(&d);
    assert_eq!(
        st["live"]["fingerprint"],
        fingerprint(&standby).as_str(),
        "{st}"
    );
    assert_eq!(st["live"]["source"], "standby");
    assert_eq!(st["standby"]["state"], "promoted");
    let m = d.get("/metrics").1;
    assert_eq!(
        metric(
            &m,
            "token_rotator_live_token_rejections_total{source=\"logs\"}"
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(metric(&m, "token_rotator_standby_ready"), Some(0.0), "{m}");
    // The bot authenticates with the standby now.
    let authenticated = format!("authenticated with token {}", fingerprint(&standby));
    assert!(wait_until(10.0, || docker(&[
        "logs", "--tail", "3", &t.bot
    ])
    .contains(&authenticated)));
    assert!(wait_until(5.0, || hook
        .bodies()
        .iter()
        .any(|e| e["event"] == "standby_needed")));
    let events: Vec<String> = hook
        .events()
        .into_iter()
        .filter(|e| e != "rotation")
        .collect();
    // The standby is spent once promoted: a human is asked for a new spare.
    assert_eq!(
        events,
        ["live_token_rejected", "standby_promoted", "standby_needed"],
        "in order"
    );
    let rejected = hook
        .bodies()
        .into_iter()
        .find(|e| e["event"] == "live_token_rejected")
        .unwrap();
    assert_eq!(rejected["source"], "logs");
    assert_eq!(rejected["fingerprint"], fingerprint(&t.live).as_str());
    // The log stream followed the bot through the swap.
    assert!(wait_until(10.0, || metric(
        &d.get("/metrics").1,
        "token_rotator_log_streams"
    ) == Some(1.0)));
}

#[test]
fn an_idle_bot_whose_token_is_revoked_is_caught_by_the_periodic_probe_and_with_no_standby_it_is_announced(
) {
    // No ANTHROPIC_BASE_URL: the bot never calls the API, its log says nothing.
    let scope = Scope::new("live-idle");
    let api = StandInApi::start();
    let live = accepted(&api);
    let env_tok = format!("{ENV_VAR}={live}");
    let bot = scope.run(
        "bot",
        &["--network", "host", "-e", &env_tok, support::bot_image()],
    );
    let id = inspect(&bot)["Id"].clone();
    let file = scope.secret_file(&live);
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
            "--live-probe-interval",
            "1s",
            "--notify-webhook",
            &hook.url,
            "--validate-deadline",
            "2",
        ],
        &[],
    );
    d.wait_for_first_rotation();
    api.set(&live, Behaviour::Expired);
    assert!(
        wait_until(20.0, || hook
            .bodies()
            .iter()
            .any(|e| e["event"] == "standby_needed")),
        "{}",
        d.logs()
    );
    let rejected = hook
        .bodies()
        .into_iter()
        .find(|e| e["event"] == "live_token_rejected")
        .unwrap();
    assert_eq!(rejected["source"], "probe");
    assert_eq!(status(&d)["live"]["state"], "rejected");
    let m = d.get("/metrics").1;
    assert_eq!(
        metric(
            &m,
            "token_rotator_live_token_rejections_total{source=\"probe\"}"
        ),
        Some(1.0),
        "{m}"
    );
    assert!(
        metric(&m, "token_rotator_live_probe_timestamp_seconds").is_some_and(|t| t > 0.0),
        "{m}"
    );
    assert_eq!(
        inspect(&bot)["Id"],
        id,
        "left alone: replacing a dead token by nothing helps nobody"
    );
    assert_eq!(d.get("/readyz").0, 200, "the daemon itself is fine");
}

#[test]
fn after_an_engine_outage_the_event_stream_comes_back_and_a_bot_recreated_meanwhile_gets_the_token()
{
    let t = Setup::new("live-outage", &[]);
    let proxy = support::proxy::EngineProxy::start(t.scope.dir.path());
    let host = proxy.docker_host();
    let base = t.api.base_url();
    let d = HostDaemon::start(
        &t.scope,
        &[
            "--secret-file",
            s(&t.primary),
            "--container",
            &t.bot,
            "--api-base-url",
            &base,
            "--settle",
            "0.3",
            "--live-probe-interval",
            "0",
        ],
        &[("DOCKER_HOST", &host)],
    );
    d.wait_for_first_rotation();
    let streams = "token_rotator_log_streams";
    assert!(wait_until(10.0, || metric(&d.get("/metrics").1, streams) == Some(1.0)));

    proxy.cut();
    // Meanwhile, on the real engine, someone re-runs the bot without its token.
    support::rerun_without_token(&t.scope, &t.bot);
    std::thread::sleep(std::time::Duration::from_secs(2));
    proxy.restore();

    assert!(
        wait_until(30.0, || carries(&t.bot, &t.live)),
        "{}",
        d.logs()
    );
    assert!(d.logs().contains("event stream is back"), "{}", d.logs());
    assert!(
        wait_until(15.0, || metric(&d.get("/metrics").1, streams) == Some(1.0)),
        "the log stream reconnected: {}",
        d.get("/metrics").1
    );
}

#[test]
fn a_bot_recreated_by_compose_without_its_token_gets_the_live_token() {
    let t = Setup::new("live-compose", &[]);
    let project = t.scope.prefix.clone();
    let compose_file = t.scope.dir.path().join("compose.yaml");
    std::fs::write(
        &compose_file,
        format!(
            "version: '3.7'\nservices:\n  bot:\n    image: {}\n    network_mode: host\n    labels:\n      {}: \"{project}\"\n",
            support::bot_image(),
            support::SCOPE_LABEL
        ),
    )
    .unwrap();
    let compose = |args: &[&str]| {
        support::compose(&project, &compose_file, args);
    };
    compose(&["up", "-d"]);
    let bot = support::compose_container(&project, &compose_file, "bot");
    let base = t.api.base_url();
    let d = HostDaemon::start(
        &t.scope,
        &[
            "--secret-file",
            s(&t.primary),
            "--container",
            &bot,
            "--api-base-url",
            &base,
            "--settle",
            "0.3",
            "--live-probe-interval",
            "0",
        ],
        &[],
    );
    d.wait_for_first_rotation();
    assert!(
        wait_until(20.0, || carries(&bot, &t.live)),
        "reconciled on start: {}",
        d.logs()
    );
    // `up -d --force-recreate` puts back the compose file's container: no token.
    compose(&["up", "-d", "--force-recreate"]);
    assert!(wait_until(30.0, || carries(&bot, &t.live)), "{}", d.logs());
    // The replacement has the name before its swap is committed: let the daemon finish
    // (the old container, which carries compose's labels too, is removed then), or
    // `down` would race it for that container.
    let leftovers = format!("name={bot}-tr-");
    assert!(
        wait_until(30.0, || docker(&["ps", "-aq", "--filter", &leftovers])
            .is_empty()),
        "{}",
        d.logs()
    );
    compose(&["down"]);
}

#[test]
fn a_bot_that_prints_its_token_in_its_log_leaks_nothing_of_it() {
    let scope = Scope::new("live-leaky-log");
    let api = StandInApi::start();
    let live = accepted(&api);
    let env_tok = format!("{ENV_VAR}={live}");
    // Prints the token whole and cut, exits, is restarted: over and over.
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
            "leak",
        ],
    );
    let file = scope.secret_file(&live);
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
            "--live-probe-interval",
            "0",
            "--reject-pattern",
            "auth failed",
        ],
        &[],
    );
    assert!(
        wait_until(30.0, || status(&d)["live"]["false_alarms"].as_u64()
            >= Some(1)),
        "the custom pattern matched the bot's line: {}",
        d.logs()
    );
    for path in ["/status", "/metrics", "/readyz"] {
        support::assert_no_secret(&d.get(path).1);
    }
    // HostDaemon's drop checks every line the daemon logged.
}

#[test]
fn a_target_whose_swap_keeps_failing_is_not_rotated_again_and_again() {
    let t = Setup::new("live-no-loop", &[]);
    let d = t.daemon(&["--verify-exec", "/no-such-command"], None);
    // The file now holds a token the bot's replacement cannot be verified with: one
    // rollback, which starts the old container again (a start event), and no loop.
    let new = accepted(&t.api);
    std::fs::write(&t.primary, &new).unwrap();
    let rolled = "token_rotator_rotations_total{outcome=\"rolled_back\"}";
    assert!(
        wait_until(20.0, || metric(&d.get("/metrics").1, rolled) == Some(1.0)),
        "{}",
        d.logs()
    );
    // Start events keep coming (the undo's restart, a restart by hand): the same failed
    // token is not tried again until the file changes.
    docker(&["restart", &t.bot]);
    std::thread::sleep(std::time::Duration::from_secs(5));
    let m = d.get("/metrics").1;
    assert_eq!(metric(&m, rolled), Some(1.0), "{m}");
    assert!(carries(&t.bot, &t.live), "the bot keeps its working token");
}
