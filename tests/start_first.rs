//! `--order start-first`: the replacement starts and is verified while the old container
//! still runs; the old one is stopped only then. Where two copies cannot run at once it
//! falls back to stop-first and says why; a crash at any step recovers as for stop-first.

mod support;

use support::api::{Behaviour, StandInApi};
use support::{
    accepted, anon_volume, docker, env_of, host_bot, inspect, rotator, s, Paused, Scope, ENV_VAR,
};

fn args<'a>(file: &'a std::path::Path, base: &'a str, bot: &'a str) -> Vec<&'a str> {
    vec![
        "rotate",
        "--json",
        "--order",
        "start-first",
        "--secret-file",
        s(file),
        "--api-base-url",
        base,
        "--container",
        bot,
        "--settle",
        "0.5",
    ]
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// (time in ns, action, container ID) of `start` and `die` events of the scope since `since`.
fn events(scope: &Scope, since: u128) -> Vec<(u128, String, String)> {
    let label = format!("label={}={}", support::SCOPE_LABEL, scope.prefix);
    let out = docker(&[
        "events",
        "--since",
        &format!("{}.{:09}", since / 1_000_000_000, since % 1_000_000_000),
        "--until",
        &format!("{}", now_nanos() / 1_000_000_000 + 1),
        "--filter",
        &label,
        "--filter",
        "type=container",
        "--format",
        "{{.TimeNano}} {{.Action}} {{.Actor.ID}}",
    ]);
    out.lines()
        .filter_map(|l| {
            let mut p = l.split_whitespace();
            Some((
                p.next()?.parse().ok()?,
                p.next()?.to_string(),
                p.next()?.to_string(),
            ))
        })
        .filter(|(_, a, _)| a == "start" || a == "die")
        .collect()
}

#[test]
fn the_replacement_starts_before_the_old_container_dies() {
    let scope = Scope::new("sf-order");
    let api = StandInApi::start();
    let (old, new) = (accepted(&api), accepted(&api));
    let bot = host_bot(&scope, "bot", &old, &api.base_url(), &["-v", "/data"]);
    let old_id = inspect(&bot)["Id"].as_str().unwrap().to_string();
    let volume = anon_volume(&bot);
    scope.forget_volume_later(&volume);
    let file = scope.secret_file(&new);
    let base = api.base_url();
    let since = now_nanos();
    let run = rotator(
        &[
            &args(&file, &base, &bot)[..],
            &["--verify-exec", "/fake-bot check"],
        ]
        .concat(),
    );
    assert_eq!(run.code, 0, "{run:?}");
    let report = run.json();
    assert_eq!(report["targets"][0]["outcome"], "swapped");
    assert_eq!(report["targets"][0]["order"], "start-first");
    let new_id = inspect(&bot)["Id"].as_str().unwrap().to_string();
    assert_ne!(new_id, old_id);
    assert_eq!(env_of(&bot, ENV_VAR).as_deref(), Some(new.as_str()));
    assert_eq!(anon_volume(&bot), volume, "the volume went along");
    let ev = events(&scope, since);
    let started = ev
        .iter()
        .find(|(_, a, id)| a == "start" && *id == new_id)
        .expect("replacement start");
    let died = ev
        .iter()
        .find(|(_, a, id)| a == "die" && *id == old_id)
        .expect("old die");
    assert!(
        started.0 < died.0,
        "start {started:?} before die {died:?}: {ev:?}"
    );
    assert_eq!(scope.containers(), vec![bot]);
}

#[test]
fn stop_first_starts_the_replacement_only_once_the_old_process_has_died() {
    let scope = Scope::new("sf-stop-first");
    let api = StandInApi::start();
    let (old, new) = (accepted(&api), accepted(&api));
    let bot = host_bot(&scope, "bot", &old, &api.base_url(), &[]);
    let old_id = inspect(&bot)["Id"].as_str().unwrap().to_string();
    let file = scope.secret_file(&new);
    let base = api.base_url();
    let since = now_nanos();
    let mut argv = args(&file, &base, &bot);
    argv[3] = "stop-first";
    let run = rotator(&argv);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.json()["targets"][0]["order"], "stop-first");
    let new_id = inspect(&bot)["Id"].as_str().unwrap().to_string();
    let ev = events(&scope, since);
    let at = |action: &str, id: &str| {
        ev.iter()
            .find(|(_, a, i)| a == action && i == id)
            .unwrap_or_else(|| panic!("no {action} of {id}: {ev:?}"))
            .0
    };
    // Stop-first: the replacement's process never runs beside the old one.
    assert!(at("die", &old_id) < at("start", &new_id), "{ev:?}");
    assert_eq!(env_of(&bot, ENV_VAR).as_deref(), Some(new.as_str()));
    assert_eq!(scope.containers(), vec![bot]);
}

#[test]
fn a_failed_verification_leaves_the_old_container_running_the_whole_time() {
    let scope = Scope::new("sf-rollback");
    let api = StandInApi::start();
    let bot_api = StandInApi::start();
    let (old, new) = (accepted(&api), accepted(&api));
    bot_api.set(&old, Behaviour::Accept);
    let bot = host_bot(&scope, "bot", &old, &bot_api.base_url(), &[]);
    let before = inspect(&bot);
    let file = scope.secret_file(&new);
    let base = api.base_url();
    let since = now_nanos();
    let run = rotator(
        &[
            &args(&file, &base, &bot)[..],
            &["--verify-exec", "/fake-bot check", "--verify-timeout", "2"],
        ]
        .concat(),
    );
    assert_eq!(run.code, 4, "{run:?}");
    assert_eq!(run.json()["outcome"], "rolled_back");
    let after = inspect(&bot);
    assert_eq!(after["Id"], before["Id"], "the same container");
    assert_eq!(
        after["State"]["StartedAt"], before["State"]["StartedAt"],
        "never restarted"
    );
    let old_id = before["Id"].as_str().unwrap();
    let ev = events(&scope, since);
    assert!(
        !ev.iter().any(|(_, a, id)| a == "die" && id == old_id),
        "never stopped: {ev:?}"
    );
    assert_eq!(env_of(&bot, ENV_VAR).as_deref(), Some(old.as_str()));
    assert_eq!(scope.containers(), vec![bot]);
}

#[test]
fn fixed_host_ports_fall_back_to_stop_first_and_say_why() {
    let scope = Scope::new("sf-ports");
    let api = StandInApi::start();
    let (old, new) = (accepted(&api), accepted(&api));
    let env_tok = format!("{ENV_VAR}={old}");
    let port = support::free_port().to_string();
    let publish = format!("127.0.0.1:{port}:8080");
    let bot = scope.run(
        "bot",
        &["-p", &publish, "-e", &env_tok, support::bot_image()],
    );
    let file = scope.secret_file(&new);
    let base = api.base_url();
    let run = rotator(&args(&file, &base, &bot));
    assert_eq!(run.code, 0, "{run:?}");
    let report = run.json();
    assert_eq!(report["targets"][0]["order"], "stop-first", "{report}");
    let note = report["targets"][0]["order_note"].as_str().unwrap();
    assert!(
        note.contains("host ports") && note.contains("8080"),
        "{note}"
    );
    assert!(run.stderr.contains("falling back to stop-first"), "{run:?}");
    assert_eq!(env_of(&bot, ENV_VAR).as_deref(), Some(new.as_str()));
}

#[test]
fn an_auto_remove_target_is_refused_with_stop_first_and_rotated_with_start_first() {
    let scope = Scope::new("sf-rm");
    let api = StandInApi::start();
    let (old, new) = (accepted(&api), accepted(&api));
    let bot = host_bot(&scope, "bot", &old, &api.base_url(), &["--rm"]);
    let file = scope.secret_file(&new);
    let base = api.base_url();
    let refused = rotator(&[
        "rotate",
        "--json",
        "--secret-file",
        s(&file),
        "--api-base-url",
        &base,
        "--container",
        &bot,
    ]);
    assert_eq!(refused.code, 4, "{refused:?}");
    let report = refused.json();
    assert_eq!(report["outcome"], "bad_target");
    assert!(
        report["error"]
            .as_str()
            .unwrap()
            .contains("--order start-first"),
        "{report}"
    );

    let run = rotator(&args(&file, &base, &bot));
    assert_eq!(run.code, 0, "{run:?}");
    let after = inspect(&bot);
    assert_eq!(after["State"]["Running"], true);
    assert_eq!(after["HostConfig"]["AutoRemove"], true, "still --rm");
    assert_eq!(env_of(&bot, ENV_VAR).as_deref(), Some(new.as_str()));
    assert_eq!(
        scope.containers(),
        vec![bot],
        "the old one went with its stop"
    );
}

/// Kills a start-first rotation at `step`, runs it again, and checks the end state.
fn crash_and_recover(step: &str, verified: bool) {
    let scope = Scope::new(&format!("sf-crash-{step}"));
    let api = StandInApi::start();
    let (old, new) = (accepted(&api), accepted(&api));
    let bot = host_bot(&scope, "bot", &old, &api.base_url(), &["-v", "/data"]);
    let volume = anon_volume(&bot);
    scope.forget_volume_later(&volume);
    let file = scope.secret_file(&new);
    let base = api.base_url();
    Paused::at(step, &args(&file, &base, &bot), &[]).kill();
    let run = rotator(&args(&file, &base, &bot));
    assert_eq!(run.code, 0, "{step}: {run:?}");
    let report = run.json();
    assert!(
        !report["recovered"].as_array().unwrap().is_empty(),
        "{step}: {report}"
    );
    let expected = if verified {
        "already_current"
    } else {
        "swapped"
    };
    assert_eq!(
        report["targets"][0]["outcome"], expected,
        "{step}: {report}"
    );
    assert_eq!(inspect(&bot)["State"]["Running"], true, "{step}");
    assert_eq!(
        env_of(&bot, ENV_VAR).as_deref(),
        Some(new.as_str()),
        "{step}"
    );
    assert_eq!(
        scope.containers(),
        vec![bot.clone()],
        "{step}: nothing left"
    );
    assert_eq!(anon_volume(&bot), volume, "{step}: the volume survived");
}

#[test]
fn start_first_killed_after_the_replacement_was_created() {
    crash_and_recover("after-create", false);
}

#[test]
fn start_first_killed_once_both_run() {
    crash_and_recover("after-start", false);
}

#[test]
fn start_first_killed_during_verification() {
    crash_and_recover("during-verify", false);
}

#[test]
fn start_first_killed_once_the_swap_was_recorded_as_verified() {
    crash_and_recover("before-remove", true);
}

#[test]
fn start_first_killed_once_the_replacement_has_the_name() {
    crash_and_recover("start-first-named", true);
}
