//! SIGKILL at every step of a swap; the next run recovers from what the engine shows:
//! the target runs under its own name, with the new token only if it had been verified,
//! no temporary container is left, and no volume is lost.

mod support;

use support::api::StandInApi;
use support::{
    accepted, anon_volume, env_of, host_bot, inspect, rotator, s, Paused, Scope, ENV_VAR,
};

/// Runs a fault-injection rotation paused at `step`, then SIGKILLs it there.
fn kill_at(step: &str, file: &std::path::Path, api: &StandInApi, target: &str) {
    let base = api.base_url();
    let args = ["rotate", "--secret-file", s(file), "--api-base-url", &base];
    let tail = ["--container", target, "--settle", "0.3"];
    Paused::at(step, &[&args[..], &tail[..]].concat(), &[]).kill();
}

/// Kills a rotation at `step`, re-runs it, and checks the end state. `verified`: whether
/// the new container had passed verification when the process died.
fn crash_and_recover(step: &str, verified: bool) {
    let scope = Scope::new(&format!("crash-{step}"));
    let api = StandInApi::start();
    let (old, new) = (accepted(&api), accepted(&api));
    let name = host_bot(&scope, "bot", &old, &api.base_url(), &["-v", "/data"]);
    let (old_id, volume) = (
        inspect(&name)["Id"].as_str().unwrap().to_string(),
        anon_volume(&name),
    );
    scope.forget_volume_later(&volume);
    let file = scope.secret_file(&new);

    kill_at(step, &file, &api, &name);
    let new_id_at_crash = support::docker(&[
        "ps",
        "-aq",
        "--no-trunc",
        "--filter",
        &format!("label=token-rotator.replaces={old_id}"),
    ]);

    let run = rotator(&[
        "rotate",
        "--json",
        "--secret-file",
        s(&file),
        "--api-base-url",
        &api.base_url(),
        "--container",
        &name,
        "--settle",
        "0.3",
    ]);
    assert_eq!(run.code, 0, "{step}: {run:?}");
    let report = run.json();
    let recovered = report["recovered"].to_string();
    let short = &old_id[..12];
    let expect = match step {
        "after-create" => "removed unfinished replacement".to_string(),
        _ if verified => format!("removed {short} (replaced by a verified container)"),
        _ => format!("restored the old container {short} under its name"),
    };
    assert!(
        recovered.contains(&expect),
        "{step}: expected {expect:?}\n{run:?}"
    );
    let after = inspect(&name);
    assert_eq!(
        after["State"]["Running"], true,
        "{step}: running under its own name"
    );
    assert_eq!(
        env_of(&name, ENV_VAR).as_deref(),
        Some(new.as_str()),
        "{step}"
    );
    if verified {
        assert_eq!(
            after["Id"].as_str().unwrap(),
            new_id_at_crash,
            "{step}: the verified container is kept"
        );
        assert_eq!(
            report["targets"][0]["outcome"], "already_current",
            "{step}: no second swap: {run:?}"
        );
    } else {
        assert_eq!(
            report["targets"][0]["outcome"], "swapped",
            "{step}: swapped again after restoring: {run:?}"
        );
    }
    assert_eq!(
        scope.containers(),
        vec![name.clone()],
        "{step}: no leftovers"
    );
    assert_eq!(
        anon_volume(&name),
        volume,
        "{step}: the anonymous volume survived"
    );
}

#[test]
fn killed_after_the_replacement_was_created() {
    crash_and_recover("after-create", false);
}

#[test]
fn killed_after_the_old_container_was_stopped() {
    crash_and_recover("after-stop", false);
}

#[test]
fn killed_after_the_old_container_was_renamed_aside() {
    crash_and_recover("after-rename-old", false);
}

#[test]
fn killed_after_the_replacement_took_the_name() {
    crash_and_recover("after-rename-new", false);
}

#[test]
fn killed_after_the_replacement_started() {
    crash_and_recover("after-start", false);
}

#[test]
fn killed_during_verification() {
    crash_and_recover("during-verify", false);
}

#[test]
fn killed_before_the_verified_swap_removed_the_old_container() {
    crash_and_recover("before-remove", true);
}

#[test]
fn recovery_restores_the_very_same_old_container_when_the_token_is_not_retried() {
    let scope = Scope::new("crash-restore");
    let api = StandInApi::start();
    let (old, new) = (accepted(&api), accepted(&api));
    let name = host_bot(&scope, "bot", &old, &api.base_url(), &[]);
    let old_id = inspect(&name)["Id"].clone();
    kill_at("after-start", &scope.secret_file(&new), &api, &name);
    // The operator puts the old token back: recovery alone must restore the container.
    let file = scope.secret_file(&old);
    let run = rotator(&[
        "rotate",
        "--json",
        "--secret-file",
        s(&file),
        "--api-base-url",
        &api.base_url(),
        "--container",
        &name,
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.json()["outcome"], "already_current", "{run:?}");
    assert_eq!(
        inspect(&name)["Id"],
        old_id,
        "the same container, not a copy"
    );
    assert_eq!(inspect(&name)["State"]["Running"], true);
    assert_eq!(scope.containers(), vec![name]);
}

#[test]
fn two_rotators_never_interleave_and_a_dead_holders_lock_is_taken_over() {
    let scope = Scope::new("crash-lock");
    let api = StandInApi::start();
    let (old, new) = (accepted(&api), accepted(&api));
    let name = host_bot(&scope, "bot", &old, &api.base_url(), &[]);
    let file = scope.secret_file(&new);
    let args = [
        "rotate",
        "--json",
        "--secret-file",
        s(&file),
        "--api-base-url",
        &api.base_url(),
        "--container",
        &name,
        "--settle",
        "0.3",
        "--lock-wait",
        "1",
    ];

    // A pauses mid-swap, alive, holding the lock.
    let a = Paused::at("after-start", &args, &[]);
    let mid_swap = scope.containers();

    let b = rotator(&args);
    assert_eq!(b.code, 7, "{b:?}");
    assert_eq!(b.json()["outcome"], "busy", "{b:?}");
    let mut after_b = scope.containers();
    let mut before_b = mid_swap.clone();
    after_b.sort();
    before_b.sort();
    assert_eq!(
        after_b, before_b,
        "B touched nothing, not even A's swap in progress"
    );

    a.kill();
    let c = rotator(&args);
    assert_eq!(c.code, 0, "C takes over the dead holder's lock: {c:?}");
    let report = c.json();
    assert!(
        report["recovered"]
            .to_string()
            .contains("restored the old container"),
        "{c:?}"
    );
    assert_eq!(env_of(&name, ENV_VAR).as_deref(), Some(new.as_str()));
    assert_eq!(
        scope.containers(),
        vec![name.clone()],
        "no lock or temporary container left"
    );
}

#[test]
fn a_lock_from_another_host_is_honoured_until_it_expires() {
    let scope = Scope::new("crash-lock-host");
    let api = StandInApi::start();
    let (old, new) = (accepted(&api), accepted(&api));
    let name = host_bot(&scope, "bot", &old, &api.base_url(), &[]);
    let file = scope.secret_file(&new);
    let lock = format!("{name}-tr-lock");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let since = format!("token-rotator.lock.since={}", now - 120);
    let label = format!("{}={}", support::SCOPE_LABEL, scope.prefix);
    support::docker(&[
        "create",
        "--name",
        &lock,
        "--label",
        &label,
        "--label",
        "token-rotator.lock.host=elsewhere",
        "--label",
        "token-rotator.lock.pid=1",
        "--label",
        &since,
        "--entrypoint",
        "/x",
        support::bot_image(),
    ]);
    let run = |timeout: &str| {
        rotator(&[
            "rotate",
            "--json",
            "--secret-file",
            s(&file),
            "--api-base-url",
            &api.base_url(),
            "--container",
            &name,
            "--settle",
            "0.3",
            "--lock-wait",
            "0",
            "--lock-timeout",
            timeout,
        ])
    };
    let held = run("600");
    assert_eq!(held.code, 7, "{held:?}");
    let report = held.json();
    assert_eq!(report["outcome"], "busy");
    assert!(
        report["error"]
            .as_str()
            .unwrap()
            .contains("(on elsewhere, pid 1, for 12"),
        "the holder is named: {held:?}"
    );
    assert_eq!(env_of(&name, ENV_VAR).as_deref(), Some(old.as_str()));

    let expired = run("60");
    assert_eq!(
        expired.code, 0,
        "a 2-minute-old lock expires after 60s: {expired:?}"
    );
    assert_eq!(env_of(&name, ENV_VAR).as_deref(), Some(new.as_str()));
    assert_eq!(scope.containers(), vec![name]);
}
