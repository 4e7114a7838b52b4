//! The retired-token watch: after a swap, the replaced token is probed until the API
//! rejects it; its life after retirement is reported.

mod support;

use support::api::{Behaviour, StandInApi};
use support::recorder::Recorder;
use support::{accepted, fingerprint, host_bot, metric, rotator, s, wait_until, HostDaemon, Scope};

#[test]
fn a_retired_token_is_reported_alive_then_dead_with_how_long_it_lived() {
    let scope = Scope::new("retired-watch");
    let api = StandInApi::start();
    let (a, b) = (accepted(&api), accepted(&api));
    let bot = host_bot(&scope, "bot", &a, &api.base_url(), &[]);
    let file = scope.secret_file(&a);
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
            "--settle",
            "0.3",
            "--live-probe-interval",
            "0",
            "--notify-webhook",
            &hook.url,
            "--retired-probe-schedule",
            "1s,2s",
            "--retired-alert-after",
            "1s",
        ],
        &[],
    );
    d.wait_for_first_rotation();
    std::fs::write(&file, &b).unwrap();
    let event = |name: &str| hook.bodies().into_iter().find(|e| e["event"] == name);
    assert!(
        wait_until(30.0, || event("retired_token_alive").is_some()),
        "{}",
        d.logs()
    );
    let alive = event("retired_token_alive").unwrap();
    assert_eq!(alive["fingerprint"], fingerprint(&a).as_str());
    let status: serde_json::Value = serde_json::from_str(&d.get("/status").1).unwrap();
    assert_eq!(status["retired"][0]["state"], "alive", "{status}");
    let m = d.get("/metrics").1;
    assert_eq!(
        metric(&m, "token_rotator_retired_tokens{state=\"alive\"}"),
        Some(1.0),
        "{m}"
    );

    let revoked_after = std::time::Instant::now();
    api.set(&a, Behaviour::Revoked);
    assert!(
        wait_until(30.0, || event("retired_token_dead").is_some()),
        "{}",
        d.logs()
    );
    let dead = event("retired_token_dead").unwrap();
    assert_eq!(dead["fingerprint"], fingerprint(&a).as_str());
    let lived = dead["alive_for_seconds"].as_u64().unwrap();
    let alive_at_alert = alive["alive_for_seconds"].as_u64().unwrap();
    assert!(lived >= alive_at_alert, "{dead} after {alive}");
    assert!(
        lived <= alive_at_alert + revoked_after.elapsed().as_secs() + 30,
        "{dead}"
    );
    let status: serde_json::Value = serde_json::from_str(&d.get("/status").1).unwrap();
    assert_eq!(status["retired"][0]["state"], "dead", "{status}");
    assert_eq!(
        status["retired"][0]["alive_for_seconds"].as_u64(),
        Some(lived)
    );
    let m = d.get("/metrics").1;
    assert_eq!(
        metric(&m, "token_rotator_retired_tokens{state=\"dead\"}"),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        metric(&m, "token_rotator_retired_token_alive_seconds_count"),
        Some(1.0),
        "{m}"
    );
    // Once dead, it is not probed any more.
    let hits = api.hits(&a);
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(api.hits(&a), hits);
}

#[test]
fn a_one_shot_rotation_names_the_retired_token_and_how_to_check_it() {
    let scope = Scope::new("retired-oneshot");
    let api = StandInApi::start();
    let (a, b) = (accepted(&api), accepted(&api));
    let bot = host_bot(&scope, "bot", &a, &api.base_url(), &[]);
    let file = scope.secret_file(&b);
    let base = api.base_url();
    let args = [
        "rotate",
        "--secret-file",
        s(&file),
        "--api-base-url",
        &base,
        "--container",
        &bot,
        "--settle",
        "0.3",
    ];
    let run = rotator(&[&args[..], &["--json"]].concat());
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.json()["retired"], serde_json::json!([fingerprint(&a)]));
    // Back to A: now B is retired, and the text says how to check it later.
    let file_a = scope.secret_file(&a);
    let back = rotator(&[
        "rotate",
        "--secret-file",
        s(&file_a),
        "--api-base-url",
        &base,
        "--container",
        &bot,
        "--settle",
        "0.3",
    ]);
    assert_eq!(back.code, 0, "{back:?}");
    assert!(
        back.stdout
            .contains(&format!("retired token {}", fingerprint(&b))),
        "{back:?}"
    );
    assert!(
        back.stdout.contains("token-rotator check --secret-file"),
        "{back:?}"
    );
}
