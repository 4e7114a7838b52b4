//! The pipeline's one undo, and what `rotate --json` reports: an in-process failure at a
//! step and a crash at the same step end in the same state; the rotator's own names are
//! told from a target's; container text never carries a token out; unusable secret files
//! and a taken listen address fail at once.

mod support;

use std::path::Path;

use serde_json::Value;
use support::api::StandInApi;
use support::{
    accepted, anon_volume, bot_image_with_leaking_healthcheck, env_of, host_bot, inspect, rotator,
    rotator_env, s, Paused, Run, Scope, ENV_VAR,
};

fn rotate_args<'a>(file: &'a Path, api: &'a str, name: &'a str) -> Vec<&'a str> {
    vec![
        "rotate",
        "--json",
        "--secret-file",
        s(file),
        "--api-base-url",
        api,
        "--container",
        name,
        "--settle",
        "0.3",
    ]
}

/// What a test can compare between two runs: who holds the name, whether it runs, its
/// token, what else is left, and its anonymous volume.
#[derive(Debug, PartialEq)]
struct EndState {
    original_container: bool,
    running: bool,
    token_is_old: bool,
    leftovers: Vec<String>,
    volume_kept: bool,
}

struct Bot {
    scope: Scope,
    api: StandInApi,
    name: String,
    id: String,
    volume: String,
    old: String,
    new: String,
}

impl Bot {
    fn new(test: &str) -> Bot {
        let scope = Scope::new(test);
        let api = StandInApi::start();
        let (old, new) = (accepted(&api), accepted(&api));
        let name = host_bot(&scope, "bot", &old, &api.base_url(), &["-v", "/data"]);
        let id = inspect(&name)["Id"].as_str().unwrap().to_string();
        let volume = anon_volume(&name);
        scope.forget_volume_later(&volume);
        Bot {
            scope,
            api,
            name,
            id,
            volume,
            old,
            new,
        }
    }

    fn end_state(&self) -> EndState {
        let info = inspect(&self.name);
        let mut leftovers = self.scope.containers();
        leftovers.retain(|c| *c != self.name);
        EndState {
            original_container: info["Id"] == self.id.as_str(),
            running: info["State"]["Running"] == true,
            token_is_old: env_of(&self.name, ENV_VAR).as_deref() == Some(self.old.as_str()),
            leftovers,
            volume_kept: anon_volume(&self.name) == self.volume,
        }
    }
}

/// Fails the swap in-process at `step`; returns the report and the end state.
fn fail_in_process(step: &str) -> (Value, EndState) {
    let bot = Bot::new(&format!("undo-fail-{step}"));
    let file = bot.scope.secret_file(&bot.new);
    let base = bot.api.base_url();
    let run = fault_run(
        &rotate_args(&file, &base, &bot.name),
        &[("TOKEN_ROTATOR_FAIL_AT", step)],
    );
    let report = run.json();
    assert_eq!(run.code, 4, "{step}: {run:?}");
    (report, bot.end_state())
}

/// Kills the swap at `step`, then runs the rotator again with the old token back in the
/// file (so that the second run only recovers); returns its report and the end state.
fn crash_then_recover(step: &str) -> (Value, EndState) {
    let bot = Bot::new(&format!("undo-crash-{step}"));
    let file = bot.scope.secret_file(&bot.new);
    let base = bot.api.base_url();
    Paused::at(step, &rotate_args(&file, &base, &bot.name), &[]).kill();
    let file = bot.scope.secret_file(&bot.old);
    let run = rotator(&rotate_args(&file, &base, &bot.name));
    assert_eq!(run.code, 0, "{step}: {run:?}");
    (run.json(), bot.end_state())
}

fn fault_run(args: &[&str], env: &[(&str, &str)]) -> Run {
    support::run_binary(&support::fault_binary(), args, env)
}

/// The one undo: the same failure in-process and after a crash ends in the same state,
/// and that state is the original container, running, with the old token, nothing left.
fn same_end_state(step: &str) {
    let (failed, after_failure) = fail_in_process(step);
    assert_eq!(failed["outcome"], "rolled_back", "{step}: {failed}");
    assert_eq!(
        failed["targets"][0]["outcome"], "rolled_back",
        "{step}: {failed}"
    );
    assert!(
        failed["targets"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("injected")),
        "{failed}"
    );

    let (recovered, after_crash) = crash_then_recover(step);
    assert_eq!(
        recovered["outcome"], "already_current",
        "{step}: {recovered}"
    );
    assert!(
        !recovered["recovered"].as_array().unwrap().is_empty(),
        "{step}: {recovered}"
    );

    assert_eq!(after_failure, after_crash, "{step}: the same end state");
    assert_eq!(
        after_failure,
        EndState {
            original_container: true,
            running: true,
            token_is_old: true,
            leftovers: vec![],
            volume_kept: true,
        },
        "{step}"
    );
}

#[test]
fn undo_after_a_failure_right_after_create_equals_recovery_after_a_crash_there() {
    same_end_state("after-create");
}

#[test]
fn undo_after_a_failure_once_the_old_container_is_aside_equals_recovery_after_a_crash_there() {
    same_end_state("after-rename-old");
}

#[test]
fn undo_after_a_failure_once_the_replacement_has_the_name_equals_recovery_after_a_crash_there() {
    same_end_state("after-rename-new");
}

#[test]
fn undo_after_a_failure_once_the_old_container_stopped_equals_recovery_after_a_crash_there() {
    same_end_state("after-stop");
}

#[test]
fn undo_after_a_failure_once_the_replacement_started_equals_recovery_after_a_crash_there() {
    same_end_state("after-start");
}

#[test]
fn undo_after_a_failure_during_verification_equals_recovery_after_a_crash_there() {
    same_end_state("during-verify");
}

#[test]
fn a_target_whose_name_contains_tr_rotates_again_and_again() {
    let scope = Scope::new("tr-name");
    let api = StandInApi::start();
    let base = api.base_url();
    let tokens = [accepted(&api), accepted(&api), accepted(&api)];
    let bot = host_bot(&scope, "app-tr-eu", &tokens[0], &base, &[]);
    for token in &tokens[1..] {
        let file = scope.secret_file(token);
        let run = rotator(&rotate_args(&file, &base, &bot));
        assert_eq!(run.code, 0, "{run:?}");
        let report = run.json();
        assert_eq!(report["outcome"], "rotated", "{report}");
        assert_eq!(report["targets"][0]["name"], bot.as_str());
        assert_eq!(report["targets"][0]["outcome"], "swapped");
        assert_eq!(report["targets"][0]["error"], Value::Null);
        assert_eq!(env_of(&bot, ENV_VAR).as_deref(), Some(token.as_str()));
    }
    assert_eq!(scope.containers(), vec![bot]);
}

#[test]
fn exec_output_that_quotes_the_tokens_is_redacted_in_every_output() {
    let scope = Scope::new("redact-exec");
    let api = StandInApi::start();
    let base = api.base_url();
    let (old, new) = (accepted(&api), accepted(&api));
    let bot = host_bot(&scope, "bot", &old, &base, &[]);
    let file = scope.secret_file(&new);
    let mut args = rotate_args(&file, &base, &bot);
    args.extend(["--verify-exec", "/fake-bot leak", "--verify-timeout", "2"]);
    // `rotator` fails the test if any output holds a token or a 12-character piece of one.
    let run = rotator(&args);
    assert_eq!(run.code, 4, "{run:?}");
    let report = run.json();
    assert_eq!(report["targets"][0]["outcome"], "rolled_back");
    let error = report["targets"][0]["error"].as_str().unwrap();
    assert!(
        error.contains("verification command exited 1") && error.contains("<redacted>"),
        "{error}"
    );
    assert_eq!(env_of(&bot, ENV_VAR).as_deref(), Some(old.as_str()));
}

#[test]
fn healthcheck_output_that_quotes_the_token_is_redacted_in_every_output() {
    let scope = Scope::new("redact-health");
    let api = StandInApi::start();
    let base = api.base_url();
    let (old, new) = (accepted(&api), accepted(&api));
    let env_old = format!("{ENV_VAR}={old}");
    let bot = scope.run(
        "bot",
        &[
            "--network",
            "host",
            "-e",
            &env_old,
            bot_image_with_leaking_healthcheck(),
        ],
    );
    let file = scope.secret_file(&new);
    let mut args = rotate_args(&file, &base, &bot);
    args.extend(["--verify-timeout", "20"]);
    let run = rotator(&args);
    assert_eq!(run.code, 4, "{run:?}");
    let report = run.json();
    let error = report["targets"][0]["error"].as_str().unwrap();
    assert!(
        error.contains("unhealthy") && error.contains("<redacted>"),
        "{error}"
    );
    assert_eq!(env_of(&bot, ENV_VAR).as_deref(), Some(old.as_str()));
}

#[test]
fn a_fifo_in_place_of_the_secret_file_is_refused_at_once_and_touches_nothing() {
    let scope = Scope::new("fifo");
    let api = StandInApi::start();
    let base = api.base_url();
    let old = accepted(&api);
    let bot = host_bot(&scope, "bot", &old, &base, &[]);
    let fifo = scope.dir.path().join("token");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);

    let started = std::time::Instant::now();
    let check = rotator(&["check", "--secret-file", s(&fifo), "--api-base-url", &base]);
    assert_eq!(check.code, 1, "{check:?}");
    assert!(check.stdout.contains("FIFO"), "{check:?}");
    let run = rotator(&rotate_args(&fifo, &base, &bot));
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(run.json()["outcome"], "rejected");
    // Not a timing assertion on speed: a hung reader would never return at all.
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    assert_eq!(env_of(&bot, ENV_VAR).as_deref(), Some(old.as_str()));
}

#[test]
fn run_exits_at_once_naming_the_address_when_its_listen_port_is_taken() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let scope = Scope::new("listen-taken");
    let file = scope.secret_file("x");
    let run = rotator_env(
        &[
            "run",
            "--listen",
            &addr,
            "--secret-file",
            s(&file),
            "--container",
            "nothing-here",
        ],
        &[],
    );
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains(&addr) && run.stderr.contains("--listen"),
        "{run:?}"
    );
    let bad = rotator(&["run", "--listen", "not-an-address", "--container", "x"]);
    assert_eq!(bad.code, 64, "{bad:?}");
    assert!(bad.stderr.contains("--listen"), "{bad:?}");
}
