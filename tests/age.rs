//! The token's age, on the real engine: each replacement carries the label
//! `token-rotator.first-deployed`, the earliest time known for its token (a token deployed
//! again keeps it, a new token gets a new one); the daemon shows the age on `/status` and
//! `/metrics`, announces `token_expiring` when it is due (not again after a restart),
//! repeats it every `--remind-every` while that token is live and announces it `resolved`
//! once a new token is, and a daemon started afresh learns the time from the labels.

mod support;

use std::time::{Duration, SystemTime};

use serde_json::Value;
use support::api::StandInApi;
use support::receiver::Receiver;
use support::{
    accepted, fingerprint, host_bot, inspect, metric, rotator, rotator_env, s, wait_until,
    HostDaemon, Scope,
};

const LABEL: &str = "token-rotator.first-deployed";

fn first_deployed(container: &str) -> Option<String> {
    inspect(container)["Config"]["Labels"][LABEL]
        .as_str()
        .map(str::to_string)
}

fn time(rfc3339: &str) -> SystemTime {
    humantime::parse_rfc3339(rfc3339).unwrap_or_else(|e| panic!("{rfc3339:?}: {e}"))
}

fn rotate(file: &std::path::Path, api: &StandInApi, containers: &[&str]) -> Value {
    let base = api.base_url();
    let mut args = vec![
        "rotate",
        "--json",
        "--settle",
        "0.3",
        "--secret-file",
        s(file),
        "--api-base-url",
        &base,
    ];
    for c in containers {
        args.extend(["--container", c]);
    }
    let run = rotator(&args);
    assert_eq!(run.code, 0, "{run:?}");
    run.json()
}

#[test]
fn rotate_labels_each_replacement_and_a_token_deployed_again_keeps_its_first_time() {
    let scope = Scope::new("age-rotate");
    let api = StandInApi::start();
    let (old, a, b) = (accepted(&api), accepted(&api), accepted(&api));
    let bot1 = host_bot(&scope, "bot1", &old, &api.base_url(), &[]);
    let file = scope.secret_file(&a);

    let before = SystemTime::now() - Duration::from_secs(1);
    let report = rotate(&file, &api, &[&bot1]);
    assert_eq!(report["outcome"], "rotated", "{report}");
    let t1 = first_deployed(&bot1).expect("the replacement carries the label");
    assert_eq!(report["first_deployed_at"], t1.as_str(), "{report}");
    let elapsed = time(&t1).duration_since(before).expect("now, not earlier");
    assert!(elapsed < Duration::from_secs(60), "{t1}");

    // Later, a second target still on the old token joins: A goes into it, and the time
    // bot1's label knows for A is kept, not now.
    std::thread::sleep(Duration::from_millis(1100));
    let bot2 = host_bot(&scope, "bot2", &old, &api.base_url(), &[]);
    let report = rotate(&file, &api, &[&bot1, &bot2]);
    assert_eq!(report["outcome"], "rotated", "{report}");
    assert_eq!(report["targets"][1]["outcome"], "swapped", "{report}");
    assert_eq!(first_deployed(&bot2).as_deref(), Some(t1.as_str()));
    assert_eq!(first_deployed(&bot1).as_deref(), Some(t1.as_str()));
    assert_eq!(report["first_deployed_at"], t1.as_str());

    // A new token gets its own time.
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::write(&file, &b).unwrap();
    let report = rotate(&file, &api, &[&bot1, &bot2]);
    assert_eq!(report["outcome"], "rotated", "{report}");
    let t2 = first_deployed(&bot1).unwrap();
    assert!(time(&t2) > time(&t1), "{t2} after {t1}");
    assert_eq!(first_deployed(&bot2).as_deref(), Some(t2.as_str()));
    let labels = &inspect(&bot1)["Config"]["Labels"];
    assert_eq!(
        labels["token-rotator.fingerprint"],
        fingerprint(&b).as_str()
    );
    // `status` shows it per target.
    let st = rotator(&[
        "status",
        "--json",
        "--secret-file",
        s(&file),
        "--container",
        &bot1,
    ]);
    assert_eq!(st.code, 0, "{st:?}");
    assert_eq!(st.json()["targets"][0]["first_deployed_at"], t2.as_str());
}

fn status(d: &HostDaemon) -> Value {
    serde_json::from_str(&d.get("/status").1).unwrap_or(Value::Null)
}

/// The `token_expiring` notices the receiver got.
fn expiring(rx: &Receiver) -> Vec<Value> {
    rx.got()
        .iter()
        .map(|g| g.json())
        .filter(|j| j["event"] == "token_expiring")
        .collect()
}

#[test]
fn the_daemon_shows_the_age_announces_token_expiring_once_and_learns_the_time_from_the_labels() {
    let scope = Scope::new("age-daemon");
    let api = StandInApi::start();
    let (old, a) = (accepted(&api), accepted(&api));
    let bot = host_bot(&scope, "bot", &old, &api.base_url(), &[]);
    let file = scope.secret_file(&a);
    let rx = Receiver::start();
    let hook = format!("generic+http://{}/age?events=token_expiring", rx.addr);
    let dir = scope.dir.path().join("state");
    let base = api.base_url();
    let args = |state: Option<&str>| {
        let mut v: Vec<String> = [
            "--secret-file",
            s(&file),
            "--container",
            &bot,
            "--api-base-url",
            &base,
            "--settle",
            "0.3",
            "--notify",
            &hook,
            "--token-lifetime",
            "20s",
            "--expiry-warning",
            "15s",
        ]
        .map(String::from)
        .to_vec();
        if let Some(dir) = state {
            v.extend(["--state-dir".to_string(), dir.to_string()]);
        }
        v
    };
    let state = args(Some(s(&dir)));
    let state: Vec<&str> = state.iter().map(String::as_str).collect();

    let mut d = HostDaemon::start(&scope, &state, &[]);
    d.wait_for_first_rotation();
    let first = first_deployed(&bot).expect("the daemon's rotation labels the replacement");
    let live = status(&d)["live"].clone();
    assert_eq!(live["fingerprint"], fingerprint(&a).as_str(), "{live}");
    assert_eq!(live["first_deployed_at"], first.as_str(), "{live}");
    let end = humantime::format_rfc3339_seconds(time(&first) + Duration::from_secs(20));
    assert_eq!(live["expires_at"], end.to_string().as_str(), "{live}");
    assert!(live["age_seconds"].as_u64().unwrap() < 5, "{live}");
    let (_, m) = d.get("/metrics");
    let age = metric(&m, "token_rotator_live_token_age_seconds").expect("the gauge");
    assert!(age < 5.0, "{age}");

    // Due 5 s after the first deployment, once.
    assert!(
        wait_until(30.0, || !expiring(&rx).is_empty()),
        "{}",
        d.logs()
    );
    let got = expiring(&rx)[0].clone();
    eprintln!("--- token_expiring\n{}\n{}", got["title"], got["text"]);
    let due = time(&first) + Duration::from_secs(5);
    assert!(SystemTime::now() >= due, "not before it was due");
    assert_eq!(got["fingerprint"], fingerprint(&a).as_str(), "{got}");
    assert_eq!(got["first_deployed_at"], first.as_str(), "{got}");
    assert_eq!(got["expires_at"], end.to_string().as_str(), "{got}");
    assert_eq!(got["targets"], serde_json::json!([bot]), "{got}");
    assert!(got["age_seconds"].as_u64().unwrap() >= 5, "{got}");
    // The age goes on between publications: /status and /metrics count it at each request.
    assert!(wait_until(10.0, || status(&d)["live"]["age_seconds"]
        .as_u64()
        >= Some(7)));
    let (_, m) = d.get("/metrics");
    assert!(metric(&m, "token_rotator_live_token_age_seconds").unwrap() >= 7.0);
    assert_eq!(d.terminate(30.0), Some(0), "{}", d.logs());

    // Restarted with its state: the same time, and no second announcement.
    let d = HostDaemon::start(&scope, &state, &[]);
    d.wait_for_first_rotation();
    assert_eq!(status(&d)["live"]["first_deployed_at"], first.as_str());
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(expiring(&rx).len(), 1, "announced once per token");
    drop(d);

    // A new sidecar with no state learns the time from the labels.
    let fresh = args(None);
    let fresh: Vec<&str> = fresh.iter().map(String::as_str).collect();
    let d = HostDaemon::start(&scope, &fresh, &[]);
    d.wait_for_first_rotation();
    let live = status(&d)["live"].clone();
    assert_eq!(live["first_deployed_at"], first.as_str(), "{live}");
    assert!(live["age_seconds"].as_u64().unwrap() >= 7, "{live}");
    assert_eq!(first_deployed(&bot).as_deref(), Some(first.as_str()));
}

#[test]
fn a_short_remind_every_repeats_token_expiring_and_a_new_token_resolves_it() {
    let scope = Scope::new("age-remind");
    let api = StandInApi::start();
    let (old, a, b) = (accepted(&api), accepted(&api), accepted(&api));
    let bot = host_bot(&scope, "bot", &old, &api.base_url(), &[]);
    let file = scope.secret_file(&a);
    let rx = Receiver::start();
    let hook = format!(
        "generic+http://{}/age?events=token_expiring,resolved",
        rx.addr
    );
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
            "--settle",
            "0.3",
            "--notify",
            &hook,
            "--token-lifetime",
            "20s",
            "--expiry-warning",
            "15s",
            "--remind-every",
            "2s",
        ],
        &[],
    );
    d.wait_for_first_rotation();
    let (fa, fb) = (fingerprint(&a), fingerprint(&b));
    let of_a = || -> Vec<Value> {
        let all = expiring(&rx).into_iter();
        all.filter(|j| j["fingerprint"] == fa.as_str()).collect()
    };
    // Announced when due (5 s), then reminders 1 and 2, 2 s apart.
    assert!(wait_until(40.0, || of_a().len() >= 3), "{}", d.logs());
    let got = of_a();
    assert!(
        got[0].get("reminder").is_none(),
        "the first is no reminder: {}",
        got[0]
    );
    assert_eq!(got[1]["reminder"], 1, "{}", got[1]);
    assert_eq!(got[2]["reminder"], 2, "{}", got[2]);
    let since = got[0]["since"].clone();
    assert!(
        got[1..].iter().all(|r| r["since"] == got[1]["since"]),
        "{got:?}"
    );
    assert!(since.is_null(), "the first says no since: {}", got[0]);
    assert!(
        got[2]["age_seconds"].as_u64() > got[0]["age_seconds"].as_u64(),
        "the age as of each reminder: {got:?}"
    );

    // A new token is live: the problem is over, once, and its reminders stop.
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, &b).unwrap();
    std::fs::rename(&tmp, &file).unwrap();
    let resolved = || -> Vec<Value> {
        let all = rx.got().iter().map(|g| g.json()).collect::<Vec<_>>();
        let all = all.into_iter().filter(|j| j["event"] == "resolved");
        all.filter(|j| j["problem"] == "token_expiring" && j["fingerprint"] == fa.as_str())
            .collect()
    };
    assert!(wait_until(30.0, || !resolved().is_empty()), "{}", d.logs());
    assert_eq!(resolved()[0]["reason"], "live_token_replaced");
    for j in [&got[1], &resolved()[0]] {
        support::assert_no_secret(&j.to_string());
        eprintln!("--- {}\n{}\n{}", j["event"], j["title"], j["text"]);
    }
    assert_eq!(status(&d)["live"]["fingerprint"], fb.as_str());
    let reminded = of_a().len();
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(of_a().len(), reminded, "no reminder after resolved");
    assert_eq!(resolved().len(), 1, "resolved once");
}

#[test]
fn a_warning_not_shorter_than_the_lifetime_or_a_bad_duration_exits_64_naming_the_flag() {
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut argv = vec!["run", "--container", "x"];
        argv.extend_from_slice(args);
        rotator_env(&argv, env)
    };
    let r = run(&["--token-lifetime", "20s", "--expiry-warning", "20s"], &[]);
    assert_eq!(r.code, 64, "{r:?}");
    assert!(
        r.stderr.contains("--expiry-warning") && r.stderr.contains("--token-lifetime"),
        "{r:?}"
    );
    // From the env, against the default lifetime (365d).
    let r = run(&[], &[("TOKEN_ROTATOR_EXPIRY_WARNING", "400d")]);
    assert_eq!(r.code, 64, "{r:?}");
    assert!(r.stderr.contains("TOKEN_ROTATOR_EXPIRY_WARNING"), "{r:?}");
    for (flag, value) in [
        ("--token-lifetime", "soon"),
        ("--token-lifetime", "0"),
        ("--expiry-warning", "fortnight"),
    ] {
        let r = run(&[flag, value], &[]);
        assert_eq!(r.code, 64, "{flag} {value}: {r:?}");
        assert!(r.stderr.contains(flag), "{r:?}");
    }
}
