//! `token-rotator rotate` against the real engine: swap, verify, roll back, refuse.

mod support;

use support::api::{Behaviour, StandInApi};
use support::{
    accepted, docker, docker_ok, env_of, fingerprint, host_bot, inspect, new_token,
    remember_secret, rotator, s, Scope, ENV_VAR,
};

fn rotate(
    file: &std::path::Path,
    api: &StandInApi,
    containers: &[&str],
    extra: &[&str],
) -> support::Run {
    let base = api.base_url();
    let mut args = vec![
        "rotate",
        "--json",
        "--secret-file",
        s(file),
        "--api-base-url",
        &base,
    ];
    if !extra.contains(&"--settle") {
        args.extend(["--settle", "0.5"]);
    }
    for c in containers {
        args.push("--container");
        args.push(c);
    }
    args.extend_from_slice(extra);
    rotator(&args)
}

fn id_of(name: &str) -> String {
    inspect(name)["Id"].as_str().unwrap().to_string()
}

fn started_at(name: &str) -> String {
    inspect(name)["State"]["StartedAt"]
        .as_str()
        .unwrap()
        .to_string()
}

fn is_running(name: &str) -> bool {
    inspect(name)["State"]["Running"].as_bool().unwrap()
}

#[test]
fn happy_rotation_swaps_in_the_new_token_and_verifies_it_by_exec() {
    let scope = Scope::new("happy");
    let api = StandInApi::start();
    let (old, new) = (accepted(&api), accepted(&api));
    let name = host_bot(&scope, "bot", &old, &api.base_url(), &[]);
    let old_id = id_of(&name);

    let file = scope.secret_file(&format!("{new}\n"));
    let run = rotate(&file, &api, &[&name], &["--verify-exec", "/fake-bot check"]);

    assert_eq!(run.code, 0, "{run:?}");
    let report = run.json();
    assert_eq!(report["outcome"], "rotated");
    assert_eq!(report["fingerprint"], fingerprint(&new).as_str());
    assert_eq!(report["targets"][0]["outcome"], "swapped");
    assert_eq!(report["targets"][0]["old_id"], old_id.as_str());
    assert_eq!(report["targets"][0]["previous"], fingerprint(&old).as_str());
    let after = inspect(&name);
    assert_eq!(report["targets"][0]["new_id"], after["Id"]);
    assert_ne!(after["Id"].as_str().unwrap(), old_id, "a new container");
    assert!(after["State"]["Running"].as_bool().unwrap());
    assert_eq!(env_of(&name, ENV_VAR).as_deref(), Some(new.as_str()));
    assert_eq!(
        after["Config"]["Labels"]["token-rotator.fingerprint"].as_str(),
        Some(fingerprint(&new).as_str())
    );
    assert!(
        !docker_ok(&["inspect", &old_id]),
        "the old container is removed"
    );
    assert_eq!(
        scope.containers(),
        vec![name.clone()],
        "no temporary containers left"
    );
    // Validation by the rotator, then `/fake-bot check` inside the new container.
    assert!(
        api.hits(&new) >= 2,
        "validated and verified: {}",
        api.hits(&new)
    );
    let logs = docker(&["logs", &name]);
    assert!(
        logs.contains(&format!("authenticated with token {}", fingerprint(&new))),
        "{logs}"
    );
}

#[test]
fn failed_verification_rolls_back_to_the_same_old_container() {
    let scope = Scope::new("rollback-exec");
    let api = StandInApi::start();
    // The bot talks to a second API that knows only the old token: the new one fails inside.
    let bot_api = StandInApi::start();
    let (old, new) = (accepted(&api), accepted(&api));
    bot_api.set(&old, Behaviour::Accept);
    let name = host_bot(&scope, "bot", &old, &bot_api.base_url(), &[]);
    let old_id = id_of(&name);

    let file = scope.secret_file(&new);
    let run = rotate(
        &file,
        &api,
        &[&name],
        &["--verify-exec", "/fake-bot check", "--verify-timeout", "2"],
    );

    assert_eq!(run.code, 4, "{run:?}");
    let report = run.json();
    assert_eq!(report["outcome"], "rolled_back");
    assert_eq!(report["targets"][0]["outcome"], "rolled_back");
    let error = report["targets"][0]["error"].as_str().unwrap();
    assert!(
        error.contains("could not verify the replacement")
            && error.contains("verification command exited 1"),
        "the failed step and its cause: {error}"
    );
    assert_eq!(id_of(&name), old_id, "the very same container");
    assert!(is_running(&name));
    assert_eq!(env_of(&name, ENV_VAR).as_deref(), Some(old.as_str()));
    assert_eq!(
        scope.containers(),
        vec![name.clone()],
        "replacement removed"
    );
}

#[test]
fn replacement_that_exits_is_rolled_back_at_once() {
    let scope = Scope::new("rollback-exit");
    let api = StandInApi::start();
    let bot_api = StandInApi::start();
    let (old, new) = (accepted(&api), accepted(&api));
    bot_api.set(&old, Behaviour::Accept);
    let name = host_bot(
        &scope,
        "bot",
        &old,
        &bot_api.base_url(),
        &["-e", "FAKE_BOT_EXIT_ON_AUTH_FAILURE=1"],
    );
    let old_id = id_of(&name);

    let run = rotate(
        &scope.secret_file(&new),
        &api,
        &[&name],
        &["--settle", "3", "--verify-timeout", "30"],
    );

    assert_eq!(run.code, 4, "{run:?}");
    let report = run.json();
    assert_eq!(report["outcome"], "rolled_back");
    let error = report["targets"][0]["error"].as_str().unwrap();
    assert!(
        error.contains("the new container exited (code 1)"),
        "{error}"
    );
    assert_eq!(id_of(&name), old_id);
    assert!(is_running(&name));
    assert_eq!(env_of(&name, ENV_VAR).as_deref(), Some(old.as_str()));
    assert_eq!(scope.containers(), vec![name.clone()]);
}

#[test]
fn invalid_token_leaves_the_target_untouched() {
    let scope = Scope::new("invalid");
    let api = StandInApi::start();
    let old = accepted(&api);
    let revoked = new_token();
    remember_secret(&revoked);
    api.set(&revoked, Behaviour::Revoked);
    let name = host_bot(&scope, "bot", &old, &api.base_url(), &[]);
    let (id, started) = (id_of(&name), started_at(&name));

    let run = rotate(&scope.secret_file(&revoked), &api, &[&name], &[]);

    assert_eq!(run.code, 1, "{run:?}");
    let report = run.json();
    assert_eq!(report["outcome"], "rejected");
    assert_eq!(report["validation"], "invalid");
    assert!(
        report["verdict"]
            .as_str()
            .unwrap()
            .contains("OAuth token has been revoked"),
        "{report}"
    );
    assert_eq!(report["targets"][0]["outcome"], "not_attempted");
    assert_eq!(id_of(&name), id);
    assert_eq!(started_at(&name), started, "not even restarted");
    assert_eq!(env_of(&name, ENV_VAR).as_deref(), Some(old.as_str()));
}

#[test]
fn inconclusive_validation_leaves_the_target_untouched() {
    let scope = Scope::new("inconclusive");
    let api = StandInApi::start();
    let old = accepted(&api);
    let flaky = new_token();
    remember_secret(&flaky);
    api.set(&flaky, Behaviour::Overloaded);
    let name = host_bot(&scope, "bot", &old, &api.base_url(), &[]);
    let (id, started) = (id_of(&name), started_at(&name));

    let run = rotate(
        &scope.secret_file(&flaky),
        &api,
        &[&name],
        &["--validate-deadline", "1"],
    );

    assert_eq!(run.code, 3, "{run:?}");
    let report = run.json();
    assert_eq!(report["outcome"], "inconclusive");
    assert_eq!(report["validation"], "inconclusive");
    assert!(
        report["verdict"].as_str().unwrap().contains("HTTP 529"),
        "{report}"
    );
    assert_eq!(id_of(&name), id);
    assert_eq!(started_at(&name), started);
    assert_eq!(env_of(&name, ENV_VAR).as_deref(), Some(old.as_str()));
}

#[test]
fn malformed_secret_file_leaves_the_target_untouched() {
    let scope = Scope::new("malformed");
    let api = StandInApi::start();
    let old = accepted(&api);
    let name = host_bot(&scope, "bot", &old, &api.base_url(), &[]);
    let id = id_of(&name);
    let run = rotate(
        &scope.secret_file(&old.replace("oat01", "ort01")),
        &api,
        &[&name],
        &[],
    );
    assert_eq!(run.code, 1, "{run:?}");
    let report = run.json();
    assert_eq!(report["outcome"], "rejected");
    assert_eq!(report["fingerprint"], serde_json::Value::Null);
    assert!(
        report["error"]
            .as_str()
            .unwrap()
            .contains("holds a refresh token"),
        "{report}"
    );
    assert_eq!(id_of(&name), id);
}

#[test]
fn rotating_to_the_token_already_carried_touches_nothing_and_asks_no_api() {
    let scope = Scope::new("noop");
    let api = StandInApi::start();
    let (old, new) = (accepted(&api), accepted(&api));
    // The bot authenticates against its own stand-in: only the rotator's probes reach `api`.
    let bot_api = StandInApi::start();
    let name = host_bot(&scope, "bot", &old, &bot_api.base_url(), &[]);
    let file = scope.secret_file(&new);
    let first = rotate(&file, &api, &[&name], &[]);
    assert_eq!(first.code, 0, "{first:?}");
    let (id, started, hits) = (id_of(&name), started_at(&name), api.hits(&new));

    let second = rotate(&file, &api, &[&name], &[]);

    assert_eq!(second.code, 0, "{second:?}");
    let report = second.json();
    assert_eq!(report["outcome"], "already_current");
    assert_eq!(report["targets"][0]["outcome"], "already_current");
    assert_eq!(
        report["validation"],
        serde_json::Value::Null,
        "not validated"
    );
    assert_eq!(id_of(&name), id);
    assert_eq!(started_at(&name), started);
    assert_eq!(api.hits(&new), hits, "no probe when nothing is to be done");
}

#[test]
fn missing_container_fails_before_any_target_is_touched() {
    let scope = Scope::new("missing");
    let api = StandInApi::start();
    let (old, new) = (accepted(&api), accepted(&api));
    let name = host_bot(&scope, "bot", &old, &api.base_url(), &[]);
    let id = id_of(&name);
    let ghost = scope.name("ghost");

    let run = rotate(&scope.secret_file(&new), &api, &[&name, &ghost], &[]);

    assert_eq!(run.code, 4, "{run:?}");
    let report = run.json();
    assert_eq!(report["outcome"], "bad_target");
    assert!(
        report["error"].as_str().unwrap().contains(&ghost),
        "{report}"
    );
    assert_eq!(id_of(&name), id, "the existing target is untouched");
    assert_eq!(env_of(&name, ENV_VAR).as_deref(), Some(old.as_str()));
    assert_eq!(api.hits(&new), 0);
}

#[test]
fn two_targets_are_both_rotated() {
    let scope = Scope::new("two");
    let api = StandInApi::start();
    let (old, new) = (accepted(&api), accepted(&api));
    let a = host_bot(&scope, "a", &old, &api.base_url(), &[]);
    let b = host_bot(&scope, "b", &old, &api.base_url(), &[]);
    let (id_a, id_b) = (id_of(&a), id_of(&b));

    let run = rotate(
        &scope.secret_file(&new),
        &api,
        &[&a, &b],
        &["--verify-exec", "/fake-bot check"],
    );

    assert_eq!(run.code, 0, "{run:?}");
    let report = run.json();
    assert_eq!(report["targets"][0]["outcome"], "swapped");
    assert_eq!(report["targets"][1]["outcome"], "swapped");
    for (n, id) in [(&a, id_a), (&b, id_b)] {
        assert_ne!(id_of(n), id);
        assert!(is_running(n));
        assert_eq!(env_of(n, ENV_VAR).as_deref(), Some(new.as_str()));
    }
    let mut left = scope.containers();
    left.sort();
    assert_eq!(left, vec![a, b]);
}

#[test]
fn auto_remove_target_is_refused_and_left_running() {
    let scope = Scope::new("autoremove");
    let api = StandInApi::start();
    let (old, new) = (accepted(&api), accepted(&api));
    let name = host_bot(&scope, "bot", &old, &api.base_url(), &["--rm"]);
    let id = id_of(&name);

    let run = rotate(&scope.secret_file(&new), &api, &[&name], &[]);

    assert_eq!(run.code, 4, "{run:?}");
    let report = run.json();
    assert_eq!(report["outcome"], "bad_target");
    assert!(
        report["error"].as_str().unwrap().contains("AutoRemove"),
        "{report}"
    );
    assert_eq!(id_of(&name), id);
    assert!(is_running(&name));
}

#[test]
fn stopped_target_gets_a_stopped_replacement() {
    let scope = Scope::new("stopped");
    let api = StandInApi::start();
    let (old, new) = (accepted(&api), accepted(&api));
    let name = host_bot(&scope, "bot", &old, &api.base_url(), &[]);
    docker(&["stop", &name]);

    let run = rotate(&scope.secret_file(&new), &api, &[&name], &[]);

    assert_eq!(run.code, 0, "{run:?}");
    assert!(!is_running(&name), "left stopped, as the operator had it");
    assert_eq!(env_of(&name, ENV_VAR).as_deref(), Some(new.as_str()));
    assert_eq!(scope.containers(), vec![name]);
}

#[test]
fn engine_unreachable_is_reported_with_exit_5() {
    let scope = Scope::new("noengine");
    let token = new_token();
    remember_secret(&token);
    let file = scope.secret_file(&token);
    let sock = format!("unix://{}/no.sock", scope.dir.path().display());
    let run = support::rotator_env(
        &[
            "rotate",
            "--json",
            "--secret-file",
            s(&file),
            "--container",
            "x",
        ],
        &[("DOCKER_HOST", &sock)],
    );
    assert_eq!(run.code, 5, "{run:?}");
    assert_eq!(run.json()["outcome"], "engine_unavailable");
    assert!(
        run.stderr.contains("cannot connect to the Docker engine"),
        "{run:?}"
    );
}

#[test]
fn status_reports_each_targets_token_and_last_swap() {
    let scope = Scope::new("status");
    let api = StandInApi::start();
    let (old, new) = (accepted(&api), accepted(&api));
    let name = host_bot(&scope, "bot", &old, &api.base_url(), &[]);
    let file = scope.secret_file(&new);
    let status = || support::rotator(&["status", "--secret-file", s(&file), "--container", &name]);

    let before = status();
    assert_eq!(before.code, 1, "not current yet: {before:?}");
    assert!(
        before.stdout.contains(&fingerprint(&old)) && before.stdout.contains(" NO "),
        "{before:?}"
    );

    let run = rotate(&file, &api, &[&name], &[]);
    assert_eq!(run.code, 0, "{run:?}");
    let rotation_id = run.json()["rotation"].as_str().unwrap().to_string();
    let after = status();
    assert_eq!(after.code, 0, "{after:?}");
    assert!(
        after.stdout.contains(&fingerprint(&new)) && after.stdout.contains(" yes "),
        "{after:?}"
    );
    assert!(
        after.stdout.contains(&rotation_id),
        "names the rotation {rotation_id}: {after:?}"
    );

    let json = support::rotator(&[
        "status",
        "--json",
        "--secret-file",
        s(&file),
        "--container",
        &name,
    ]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["targets"][0]["rotation"], rotation_id.as_str());
    assert_eq!(v["targets"][0]["matches_secret"], true);
}

#[test]
fn a_copy_the_engine_refuses_to_create_is_a_bad_target_and_nothing_changes() {
    if support::skip_on_podman("Podman shows a --mount bind as a Binds entry and its create makes a missing bind source, so it never refuses this copy") {
        return;
    }
    let scope = Scope::new("refused-copy");
    let api = StandInApi::start();
    let (old, new) = (accepted(&api), accepted(&api));
    let source = scope.dir.path().join("data");
    std::fs::create_dir(&source).unwrap();
    let mount = format!("type=bind,source={},target=/data", source.display());
    let name = host_bot(&scope, "bot", &old, &api.base_url(), &["--mount", &mount]);
    let id = id_of(&name);
    // The engine checks a `--mount` bind's source at create: the copy is refused.
    std::fs::remove_dir(&source).unwrap();

    let run = rotate(&scope.secret_file(&new), &api, &[&name], &[]);

    assert_eq!(run.code, 4, "{run:?}");
    let report = run.json();
    assert_eq!(report["outcome"], "bad_target", "{report}");
    let error = report["error"].as_str().unwrap();
    assert!(error.contains("nothing was changed"), "{error}");
    assert_eq!(id_of(&name), id, "the very same container");
    assert_eq!(inspect(&name)["State"]["Running"], true);
    assert_eq!(env_of(&name, ENV_VAR).as_deref(), Some(old.as_str()));
    assert_eq!(scope.containers(), vec![name], "nothing left over");
}
