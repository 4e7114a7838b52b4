//! Until it is fixed, through the real binary, engine and a real receiver (a generic JSON
//! webhook): a problem that needs a person is repeated every `--remind-every`, keeps its
//! schedule across a restart, and is closed by one `resolved`; a target that cannot be
//! rotated is announced as `drift` after `--drift-after`, then resolved once it carries the
//! token. The decisions themselves are unit tests (`src/daemon/policy/tests/problems.rs`).

mod support;

use serde_json::Value;
use support::api::{Behaviour, StandInApi};
use support::receiver::Receiver;
use support::{accepted, env_of_if_any, fingerprint, host_bot, s, wait_until, HostDaemon};
use support::{Scope, ENV_VAR};

/// Every body the receiver got, in order.
fn bodies(rx: &Receiver) -> Vec<Value> {
    rx.got().iter().map(|g| g.json()).collect()
}

/// The bodies of `event` whose `field` is `value`.
fn of(rx: &Receiver, event: &str, field: &str, value: &str) -> Vec<Value> {
    let all = bodies(rx).into_iter().filter(|b| b["event"] == event);
    all.filter(|b| b[field] == value).collect()
}

/// The daemon's arguments beside the secret file and the target.
fn args<'a>(file: &'a str, bot: &'a str, base: &'a str, hook: &'a str) -> Vec<&'a str> {
    vec![
        "--secret-file",
        file,
        "--container",
        bot,
        "--api-base-url",
        base,
        "--notify",
        hook,
        "--validate-deadline",
        "2",
        "--log-watch",
        "off",
    ]
}

#[test]
fn standby_needed_is_repeated_across_a_restart_then_resolved_once_a_valid_standby_is_written() {
    let scope = Scope::new("remind-standby");
    let api = StandInApi::start();
    let live = accepted(&api);
    let bot = host_bot(&scope, "bot", &live, &api.base_url(), &[]);
    let dir = scope.dir.path();
    std::fs::create_dir_all(dir.join("primary")).unwrap();
    std::fs::create_dir_all(dir.join("standby")).unwrap();
    let (primary, standby) = (dir.join("primary/token"), dir.join("standby/token"));
    std::fs::write(&primary, &live).unwrap();
    let state = dir.join("state");
    let rx = Receiver::start();
    let hook = format!("generic+http://{}/hook", rx.addr);
    let base = api.base_url();
    let mut argv = args(s(&primary), &bot, &base, &hook);
    argv.extend([
        "--standby-file",
        s(&standby),
        "--state-dir",
        s(&state),
        "--live-probe-interval",
        "1s",
        "--remind-every",
        "2s",
    ]);
    let mut d = HostDaemon::start(&scope, &argv, &[]);
    d.wait_for_first_rotation();
    api.set(&live, Behaviour::Revoked);
    let fp = fingerprint(&live);
    // Not promoted: `live_fingerprint` is the rejected token itself.
    let needed = || of(&rx, "standby_needed", "live_fingerprint", &fp);
    assert!(
        wait_until(30.0, || needed().len() >= 2),
        "{:?}\n{}",
        bodies(&rx),
        d.logs()
    );
    let first = &needed()[0];
    assert!(first.get("reminder").is_none(), "the first is no reminder");
    assert_eq!(needed()[1]["reminder"], 1);
    let since = needed()[1]["since"].clone();
    assert!(since.is_string());

    // A restart: the problem is not announced again as new, its reminders go on.
    assert_eq!(d.terminate(20.0), Some(0));
    let before = needed().len();
    let d = HostDaemon::start(&scope, &argv, &[]);
    assert!(
        wait_until(30.0, || needed().len() >= before + 2),
        "{:?}\n{}",
        bodies(&rx),
        d.logs()
    );
    let after: Vec<Value> = needed().split_off(before);
    for (i, b) in after.iter().enumerate() {
        assert_eq!(b["reminder"], (before + i) as u64, "numbered on: {b}");
        assert_eq!(b["since"], since, "since the real start");
    }

    // A valid standby is written: the problem is over.
    let spare = accepted(&api);
    let tmp = dir.join("standby/.token.tmp");
    std::fs::write(&tmp, &spare).unwrap();
    std::fs::rename(&tmp, &standby).unwrap();
    let resolved = || of(&rx, "resolved", "problem", "standby_needed");
    assert!(
        wait_until(30.0, || !resolved().is_empty()),
        "{:?}\n{}",
        bodies(&rx),
        d.logs()
    );
    std::thread::sleep(std::time::Duration::from_secs(5));
    let r = resolved();
    assert_eq!(r.len(), 1, "resolved once: {r:?}");
    assert_eq!(r[0]["fingerprint"], fp.as_str());
    assert!(r[0]["lasted_seconds"].as_u64().unwrap() >= 4, "{}", r[0]);
    assert_eq!(r[0]["severity"], "info");
    let all = bodies(&rx);
    let at = all.iter().position(|b| b["event"] == "resolved").unwrap();
    let later = all[at..]
        .iter()
        .filter(|b| b["event"] == "standby_needed" && b["live_fingerprint"] == fp.as_str());
    assert_eq!(later.count(), 0, "nothing after it is resolved: {all:?}");
    // The spare replaced the rejected token (after the restart too), and a new spare is
    // asked for: a new problem, about the promoted token.
    assert!(
        wait_until(20.0, || env_of_if_any(&bot, ENV_VAR).as_deref()
            == Some(spare.as_str())),
        "{}",
        d.logs()
    );
    let spare_fp = fingerprint(&spare);
    assert!(wait_until(10.0, || !of(
        &rx,
        "standby_needed",
        "live_fingerprint",
        &spare_fp
    )
    .is_empty()));
}

#[test]
fn a_target_that_cannot_be_rotated_is_drift_after_drift_after_then_resolved_once_it_carries_the_token(
) {
    let scope = Scope::new("remind-drift");
    let api = StandInApi::start();
    let live = accepted(&api);
    let file = scope.secret_file(&live);
    // The target does not exist yet: each rotation to the secret's token fails.
    let bot = scope.name("bot");
    let rx = Receiver::start();
    let hook = format!("generic+http://{}/hook", rx.addr);
    let base = api.base_url();
    let mut argv = args(s(&file), &bot, &base, &hook);
    argv.extend([
        "--live-probe-interval",
        "0",
        "--remind-every",
        "0",
        "--drift-after",
        "3s",
    ]);
    let d = HostDaemon::start(&scope, &argv, &[]);
    let failed = || of(&rx, "rotation_failed", "outcome", "bad_target");
    assert!(wait_until(20.0, || !failed().is_empty()), "{}", d.logs());
    assert!(
        of(&rx, "drift", "fingerprint", &fingerprint(&live)).is_empty(),
        "not before --drift-after"
    );
    let drift = || of(&rx, "drift", "fingerprint", &fingerprint(&live));
    assert!(wait_until(20.0, || !drift().is_empty()), "{}", d.logs());
    let body = &drift()[0];
    assert_eq!(body["targets"], serde_json::json!([bot]));
    assert!(body["since"].is_string(), "{body}");
    assert_eq!(body["severity"], "warning");

    // The bot appears, on another token: it is rotated, and both problems are over.
    let old = accepted(&api);
    host_bot(&scope, "bot", &old, &base, &[]);
    let resolved = |p: &str| of(&rx, "resolved", "problem", p);
    assert!(
        wait_until(30.0, || !resolved("drift").is_empty()
            && !resolved("rotation_failed").is_empty()),
        "{:?}\n{}",
        bodies(&rx),
        d.logs()
    );
    assert_eq!(env_of_if_any(&bot, ENV_VAR).as_deref(), Some(live.as_str()));
    let r = &resolved("drift")[0];
    assert_eq!(r["fingerprint"], fingerprint(&live).as_str());
    assert_eq!(r["reason"], "rotation_landed");
    assert!(r["lasted_seconds"].as_u64().unwrap() >= 3, "{r}");
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(resolved("drift").len(), 1, "once");
    assert_eq!(drift().len(), 1, "--remind-every 0: no reminder");
}

#[test]
fn a_bad_remind_every_or_drift_after_exits_64_naming_the_flag_or_the_variable() {
    let base = [
        "run",
        "--secret-file",
        "/nonexistent/token",
        "--container",
        "x",
    ];
    let mut argv = base.to_vec();
    argv.extend(["--remind-every", "soon"]);
    let run = support::rotator(&argv);
    assert_eq!(run.code, 64, "{run:?}");
    assert!(run.stderr.contains("--remind-every"), "{run:?}");
    let run = support::rotator_env(&base, &[("TOKEN_ROTATOR_DRIFT_AFTER", "40d")]);
    assert_eq!(run.code, 64, "{run:?}");
    assert!(run.stderr.contains("TOKEN_ROTATOR_DRIFT_AFTER"), "{run:?}");
}
