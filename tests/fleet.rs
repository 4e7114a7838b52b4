//! Fleets: targets chosen by label (and scope), resolved at every rotation, swapped several
//! at a time with a bound on failures, and new labelled containers picked up by the daemon.

mod support;

use support::api::{Behaviour, StandInApi};
use support::{
    accepted, env_of, env_of_if_any, host_bot, rotator, s, wait_until, HostDaemon, Scope, ENV_VAR,
};

/// The engine's events of a scope, followed live (the engine keeps only the last 256 for
/// a replay, too few for a fleet): start before the work, read after it.
struct EventLog {
    child: std::process::Child,
    path: std::path::PathBuf,
}

impl EventLog {
    fn start(scope: &Scope) -> EventLog {
        let path = scope.dir.path().join("events.log");
        let label = format!("label={}={}", support::SCOPE_LABEL, scope.prefix);
        let child = std::process::Command::new("docker")
            .args([
                "events",
                "--filter",
                &label,
                "--filter",
                "type=container",
                "--format",
                "{{.TimeNano}} {{.Action}} {{index .Actor.Attributes \"name\"}}",
            ])
            .stdout(std::fs::File::create(&path).unwrap())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(500)); // subscribed
        EventLog { child, path }
    }

    fn stop(mut self) -> String {
        std::thread::sleep(std::time::Duration::from_millis(500));
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::fs::read_to_string(&self.path).unwrap_or_default()
    }
}

/// How many swaps were under way at once at most: a swap of X runs from the create of
/// `X-tr-new-*` to the destroy of `X-tr-done-*`.
fn max_in_flight(events: &str) -> usize {
    let mut edges: Vec<(u128, i32)> = Vec::new();
    for line in events.lines() {
        let mut p = line.split_whitespace();
        let (Some(t), Some(action), Some(name)) = (p.next(), p.next(), p.next()) else {
            continue;
        };
        let Ok(t) = t.parse::<u128>() else { continue };
        if action == "create" && name.contains("-tr-new-") {
            edges.push((t, 1));
        } else if action == "destroy" && name.contains("-tr-done-") {
            edges.push((t, -1));
        }
    }
    edges.sort();
    let (mut now, mut max) = (0i32, 0i32);
    for (_, d) in edges {
        now += d;
        max = max.max(now);
    }
    max as usize
}

#[test]
fn twenty_containers_chosen_by_label_are_rotated_five_at_a_time() {
    let scope = Scope::new("fleet-20");
    let api = StandInApi::start();
    let (old, new) = (accepted(&api), accepted(&api));
    let label = format!("fleet={}", scope.prefix);
    let bots: Vec<String> = (0..20)
        .map(|i| {
            host_bot(
                &scope,
                &format!("b{i:02}"),
                &old,
                &api.base_url(),
                &["--label", &label],
            )
        })
        .collect();
    let other = host_bot(&scope, "unlabelled", &old, &api.base_url(), &[]);
    let file = scope.secret_file(&new);
    let base = api.base_url();
    let events = EventLog::start(&scope);
    let run = rotator(&[
        "rotate",
        "--json",
        "--secret-file",
        s(&file),
        "--api-base-url",
        &base,
        "--label",
        &label,
        "--parallel",
        "5",
        "--settle",
        "0.5",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    let report = run.json();
    let targets = report["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 20, "{report}");
    assert!(
        targets.iter().all(|t| t["outcome"] == "swapped"),
        "{report}"
    );
    for b in &bots {
        assert_eq!(env_of(b, ENV_VAR).as_deref(), Some(new.as_str()), "{b}");
    }
    assert_eq!(
        env_of(&other, ENV_VAR).as_deref(),
        Some(old.as_str()),
        "not selected"
    );
    let most = max_in_flight(&events.stop());
    assert!((2..=5).contains(&most), "swaps under way at once: {most}");
}

#[test]
fn after_more_than_max_failures_no_new_swap_starts_and_the_report_says_which() {
    let scope = Scope::new("fleet-failures");
    let api = StandInApi::start();
    let bot_api = StandInApi::start(); // knows only the old token: the new one fails inside
    let (old, new) = (accepted(&api), accepted(&api));
    bot_api.set(&old, Behaviour::Accept);
    let label = format!("fleet={}", scope.prefix);
    let good = |n: &str| host_bot(&scope, n, &old, &api.base_url(), &["--label", &label]);
    let bad = |n: &str| host_bot(&scope, n, &old, &bot_api.base_url(), &["--label", &label]);
    let (a, b, c, d) = (good("a"), bad("b"), bad("c"), good("d"));
    let file = scope.secret_file(&new);
    let base = api.base_url();
    let run = rotator(&[
        "rotate",
        "--json",
        "--secret-file",
        s(&file),
        "--api-base-url",
        &base,
        "--label",
        &label,
        "--max-failures",
        "1",
        "--verify-exec",
        "/fake-bot check",
        "--verify-timeout",
        "2",
        "--settle",
        "0.3",
    ]);
    assert_eq!(run.code, 4, "{run:?}");
    let report = run.json();
    assert_eq!(report["outcome"], "rolled_back");
    let outcome = |name: &str| {
        report["targets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .unwrap()["outcome"]
            .clone()
    };
    assert_eq!(outcome(&a), "swapped");
    assert_eq!(outcome(&b), "rolled_back");
    assert_eq!(
        outcome(&c),
        "rolled_back",
        "one failure is tolerated: c was tried"
    );
    assert_eq!(
        outcome(&d),
        "not_attempted",
        "after two, nothing new starts"
    );
    assert_eq!(env_of(&d, ENV_VAR).as_deref(), Some(old.as_str()));
    assert_eq!(env_of(&b, ENV_VAR).as_deref(), Some(old.as_str()));
}

#[test]
fn two_scopes_on_one_engine_do_not_touch_each_other() {
    let scope = Scope::new("fleet-scopes");
    let api = StandInApi::start();
    let (old, new) = (accepted(&api), accepted(&api));
    let app = format!("app={}", scope.prefix);
    let eu = host_bot(
        &scope,
        "eu",
        &old,
        &api.base_url(),
        &["--label", &app, "--label", "token-rotator.scope=eu"],
    );
    let us = host_bot(
        &scope,
        "us",
        &old,
        &api.base_url(),
        &["--label", &app, "--label", "token-rotator.scope=us"],
    );
    // Two rotators at once, one per scope, each with its own token.
    let us_token = accepted(&api);
    let eu_file = scope.dir.path().join("eu-token");
    let us_file = scope.dir.path().join("us-token");
    std::fs::write(&eu_file, &new).unwrap();
    std::fs::write(&us_file, &us_token).unwrap();
    let base = api.base_url();
    let run_scope = |file: &std::path::Path, name: &str| {
        rotator(&[
            "rotate",
            "--json",
            "--secret-file",
            s(file),
            "--api-base-url",
            &base,
            "--label",
            &app,
            "--scope",
            name,
            "--settle",
            "0.3",
        ])
    };
    let (eu_run, us_run) = std::thread::scope(|t| {
        let eu_run = t.spawn(|| run_scope(&eu_file, "eu"));
        let us_run = t.spawn(|| run_scope(&us_file, "us"));
        (eu_run.join().unwrap(), us_run.join().unwrap())
    });
    for (run, name) in [(&eu_run, &eu), (&us_run, &us)] {
        assert_eq!(run.code, 0, "{run:?}");
        let targets = run.json()["targets"].clone();
        assert_eq!(targets.as_array().unwrap().len(), 1, "{targets}");
        assert_eq!(targets[0]["name"], name.as_str(), "only its own scope");
    }
    assert_eq!(env_of(&eu, ENV_VAR).as_deref(), Some(new.as_str()));
    assert_eq!(env_of(&us, ENV_VAR).as_deref(), Some(us_token.as_str()));
    let _ = old;
}

#[test]
fn a_target_names_its_own_env_var_by_label_and_a_malformed_one_is_refused_by_name() {
    let scope = Scope::new("fleet-env-label");
    let api = StandInApi::start();
    let (old, new) = (accepted(&api), accepted(&api));
    let app = format!("app={}", scope.prefix);
    let env_old = format!("MY_TOKEN={old}");
    let own = scope.run(
        "own",
        &[
            "--network",
            "host",
            "--label",
            &app,
            "--label",
            "token-rotator.env-var=MY_TOKEN",
            "-e",
            &env_old,
            "-e",
            "FAKE_BOT_TOKEN_VAR=MY_TOKEN",
            support::bot_image(),
        ],
    );
    let file = scope.secret_file(&new);
    let base = api.base_url();
    let args = [
        "rotate",
        "--json",
        "--secret-file",
        s(&file),
        "--api-base-url",
        &base,
        "--label",
        &app,
        "--settle",
        "0.3",
    ];
    let run = rotator(&args);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(env_of(&own, "MY_TOKEN").as_deref(), Some(new.as_str()));
    assert_eq!(
        env_of(&own, ENV_VAR),
        None,
        "the default variable was not added"
    );

    let bad = scope.run(
        "bad",
        &[
            "--network",
            "host",
            "--label",
            &app,
            "--label",
            "token-rotator.env-var=1-BAD",
            support::bot_image(),
        ],
    );
    let run = rotator(&args);
    assert_eq!(run.code, 4, "{run:?}");
    let report = run.json();
    assert_eq!(report["outcome"], "bad_target");
    let error = report["error"].as_str().unwrap();
    assert!(
        error.contains(&bad) && error.contains("token-rotator.env-var"),
        "{error}"
    );
}

#[test]
fn a_labelled_container_started_after_the_daemon_gets_the_live_token() {
    let scope = Scope::new("fleet-new");
    let api = StandInApi::start();
    let live = accepted(&api);
    let app = format!("app={}", scope.prefix);
    let first = host_bot(&scope, "first", &live, &api.base_url(), &["--label", &app]);
    let file = scope.secret_file(&live);
    let base = api.base_url();
    let d = HostDaemon::start(
        &scope,
        &[
            "--secret-file",
            s(&file),
            "--label",
            &app,
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
    let later = scope.run(
        "later",
        &["--network", "host", "--label", &app, support::bot_image()],
    );
    assert!(
        wait_until(30.0, || env_of_if_any(&later, ENV_VAR).as_deref()
            == Some(live.as_str())),
        "{}",
        d.logs()
    );
    assert_eq!(env_of(&first, ENV_VAR).as_deref(), Some(live.as_str()));
}
