//! State that survives a restart of the daemon (`--state-dir`): the retired-token watch
//! goes on, counted from the real retirement, and the rejected tokens stay rejected.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::api::{Behaviour, StandInApi};
use support::recorder::Recorder;
use support::{accepted, fingerprint, host_bot, s, wait_until, HostDaemon, Scope};

fn status(d: &HostDaemon) -> Value {
    serde_json::from_str(&d.get("/status").1).unwrap_or(Value::Null)
}

/// The retired tokens' fingerprints and the rejected ones, as `/status` shows them.
fn tokens(v: &Value) -> (Vec<Value>, Value) {
    let retired = v["retired"].as_array().cloned().unwrap_or_default();
    let fps = retired.iter().map(|r| r["fingerprint"].clone()).collect();
    (fps, v["rejected"].clone())
}

#[test]
fn a_restart_in_the_middle_of_a_retired_watch_keeps_it_and_the_rejected_tokens() {
    let scope = Scope::new("state-restart");
    let api = StandInApi::start();
    let (a, b) = (accepted(&api), accepted(&api));
    let bot = host_bot(&scope, "bot", &a, &api.base_url(), &[]);
    let file = scope.secret_file(&a);
    let dir = scope.dir.path().join("state");
    let hook = Recorder::start();
    let base = api.base_url();
    let args = [
        "--secret-file",
        s(&file),
        "--container",
        &bot,
        "--api-base-url",
        &base,
        "--settle",
        "0.3",
        "--live-probe-interval",
        "2s",
        "--notify-webhook",
        &hook.url,
        "--retired-probe-schedule",
        "1s,2s",
        "--state-dir",
        s(&dir),
    ];
    let mut d = HostDaemon::start(&scope, &args, &[]);
    d.wait_for_first_rotation();
    let written = Instant::now();
    std::fs::write(&file, &b).unwrap();
    assert!(
        wait_until(30.0, || status(&d)["retired"][0]["state"] == "alive"),
        "{}",
        d.logs()
    );
    let seen_alive = Instant::now();
    // B, live now, is revoked: the periodic probe finds it rejected.
    api.set(&b, Behaviour::Revoked);
    let rejected = serde_json::json!([fingerprint(&b)]);
    assert!(
        wait_until(30.0, || status(&d)["rejected"] == rejected),
        "{}",
        d.logs()
    );
    let before = status(&d);
    assert_eq!(before["state"]["kept"], "file", "{before}");
    let kept = dir.join("state.json");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!((mode(&kept), mode(&dir)), (0o600, 0o700));
    assert_eq!(d.terminate(30.0), Some(0), "{}", d.logs());
    std::thread::sleep(Duration::from_secs(4)); // down for a while

    let d = HostDaemon::start(&scope, &args, &[]);
    assert!(
        wait_until(30.0, || tokens(&status(&d)) == tokens(&before)),
        "before: {before}\nafter: {}\n{}",
        status(&d),
        d.logs()
    );
    assert_eq!(
        tokens(&before).0,
        vec![Value::from(fingerprint(&a))],
        "{before}"
    );

    let revoked_at = Instant::now();
    api.set(&a, Behaviour::Revoked);
    let dead = || {
        hook.bodies()
            .into_iter()
            .find(|e| e["event"] == "retired_token_dead")
    };
    assert!(wait_until(30.0, || dead().is_some()), "{}", d.logs());
    let dead = dead().unwrap();
    assert_eq!(dead["fingerprint"], fingerprint(&a).as_str());
    let lived = dead["alive_for_seconds"].as_u64().unwrap();
    // Counted from the retirement (after `written`, before `seen_alive`), not from the restart.
    let lower = revoked_at.duration_since(seen_alive).as_secs();
    let upper = written.elapsed().as_secs() + 1;
    assert!(
        lived >= lower && lived <= upper,
        "{lived} not in {lower}..={upper}: {dead}"
    );
    assert!(lower >= 4, "the downtime is inside the bound");
    let kept_state = || {
        let text = std::fs::read_to_string(&kept).unwrap_or_default();
        serde_json::from_str::<Value>(&text).unwrap_or(Value::Null)["retired"][0]["state"].clone()
    };
    assert!(
        wait_until(10.0, || kept_state() == "dead"),
        "the death is kept too: {}\n{}",
        kept_state(),
        d.logs()
    );
}

#[test]
fn without_a_state_dir_status_says_the_state_is_in_memory() {
    let scope = Scope::new("state-memory");
    let api = StandInApi::start();
    let a = accepted(&api);
    let bot = host_bot(&scope, "bot", &a, &api.base_url(), &[]);
    let file = scope.secret_file(&a);
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
    assert_eq!(status(&d)["state"], serde_json::json!({"kept": "memory"}));
    assert_eq!(status(&d)["rejected"], serde_json::json!([]));
}

#[test]
fn a_corrupt_state_file_stops_the_daemon_naming_the_file_and_not_its_content() {
    let scope = Scope::new("state-corrupt");
    let dir = scope.dir.path().join("state");
    std::fs::create_dir(&dir).unwrap();
    let kept = dir.join("state.json");
    std::fs::write(
        &kept,
        "{\"version\": 1, \"retired\": \"sk-ant-oat01-SECRETPART\"",
    )
    .unwrap();
    std::fs::set_permissions(&kept, std::fs::Permissions::from_mode(0o600)).unwrap();
    let file = scope.secret_file(&support::new_token());
    let run = support::rotator(&[
        "run",
        "--secret-file",
        s(&file),
        "--container",
        "nobody",
        "--state-dir",
        s(&dir),
    ]);
    assert_ne!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains(s(&kept)), "{run:?}");
    assert!(!run.stderr.contains("SECRETPART"), "{run:?}");
}
