//! Hostile input: each case gets its exact message, and nothing changes.
//! (Cases covered elsewhere: empty, whitespace-only, two tokens, refresh token, API key,
//! directory, missing file in check.rs; 401, 403, 429, 500, 529, HTML, 10 MB and a silent
//! API in check.rs and rotate.rs; missing, AutoRemove and own container in rotate.rs and
//! daemon.rs.)

mod support;

use std::os::unix::fs::PermissionsExt;

use support::api::{Behaviour, StandInApi};
use support::{
    accepted, docker, env_of, host_bot, inspect, new_token, remember_secret, rotator, s, Scope,
    ENV_VAR,
};

/// `rotate` of a running bot with `file`; asserts exit `code`, `message` in the output,
/// and that the bot is exactly as it was.
fn refused(scope: &Scope, api: &StandInApi, file: &std::path::Path, code: i32, message: &str) {
    let old = accepted(api);
    let name = host_bot(
        scope,
        &format!("bot{code}{}", message.len()),
        &old,
        &api.base_url(),
        &[],
    );
    let before = inspect(&name);
    let run = rotator(&[
        "rotate",
        "--secret-file",
        s(file),
        "--api-base-url",
        &api.base_url(),
        "--container",
        &name,
    ]);
    assert_eq!(run.code, code, "{run:?}");
    assert!(run.all().contains(message), "expected {message:?}: {run:?}");
    let after = inspect(&name);
    assert_eq!(after["Id"], before["Id"]);
    assert_eq!(
        after["State"]["StartedAt"], before["State"]["StartedAt"],
        "not restarted"
    );
    assert_eq!(env_of(&name, ENV_VAR).as_deref(), Some(old.as_str()));
}

#[test]
fn a_100_mb_secret_file_is_refused_after_reading_4_kib() {
    let scope = Scope::new("hostile-huge");
    let api = StandInApi::start();
    let path = scope.dir.path().join("huge");
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(100 * 1024 * 1024).unwrap();
    refused(
        &scope,
        &api,
        &path,
        1,
        &format!(
            "secret file {} is larger than 4096 bytes: it does not hold a single token",
            path.display()
        ),
    );
}

#[test]
fn binary_and_non_utf8_bytes_are_refused() {
    let scope = Scope::new("hostile-binary");
    let api = StandInApi::start();
    let path = scope.dir.path().join("bin");
    std::fs::write(&path, [b's', b'k', 0xff, 0xfe, 0x00, 0x81]).unwrap();
    refused(
        &scope,
        &api,
        &path,
        1,
        &format!(
            "secret file {} contains a non-ASCII byte at byte 2: a token is printable ASCII only",
            path.display()
        ),
    );
    std::fs::write(&path, b"sk-ant-oat01-\x1b[31mred").unwrap();
    refused(
        &scope,
        &api,
        &path,
        1,
        &format!(
            "secret file {} contains a control character at byte 13",
            path.display()
        ),
    );
}

#[test]
fn a_symlink_loop_is_refused() {
    let scope = Scope::new("hostile-loop");
    let api = StandInApi::start();
    let path = scope.dir.path().join("loop");
    std::os::unix::fs::symlink(&path, &path).unwrap();
    refused(
        &scope,
        &api,
        &path,
        1,
        &format!(
            "cannot read secret file {}: Too many levels of symbolic links (os error 40)",
            path.display()
        ),
    );
}

#[test]
fn crlf_and_a_token_broken_across_lines_are_accepted() {
    let scope = Scope::new("hostile-crlf");
    let api = StandInApi::start();
    let (old, new) = (accepted(&api), accepted(&api));
    let name = host_bot(&scope, "bot", &old, &api.base_url(), &[]);
    let file = scope.secret_file(&format!("{}\r\n{}\r\n", &new[..50], &new[50..]));
    let run = rotator(&[
        "rotate",
        "--secret-file",
        s(&file),
        "--api-base-url",
        &api.base_url(),
        "--container",
        &name,
        "--settle",
        "0.3",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        env_of(&name, ENV_VAR).as_deref(),
        Some(new.as_str()),
        "whitespace stripped"
    );
}

#[test]
fn an_unreadable_secret_file_is_refused_for_a_non_root_rotator() {
    let scope = Scope::new("hostile-perm");
    let dir = scope.dir.path().join("secrets");
    std::fs::create_dir(&dir).unwrap();
    for d in [scope.dir.path(), &dir] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let token = new_token();
    remember_secret(&token);
    std::fs::write(dir.join("token"), &token).unwrap();
    std::fs::set_permissions(dir.join("token"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let volume = format!("{}:/secrets:ro", dir.display());
    let out = std::process::Command::new("docker")
        .args([
            "run",
            "--rm",
            "-v",
            &volume,
            "--entrypoint",
            "/token-rotator",
            support::rotator_image(),
        ])
        .args([
            "check",
            "--secret-file",
            "/secrets/token",
            "--validate",
            "none",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("invalid: cannot read secret file /secrets/token: permission denied"),
        "{text}"
    );
    // The message names the fix: who the sidecar runs as, and a mode that works.
    assert!(
        text.contains("uid 65532") && text.contains("0644"),
        "{text}"
    );
}

#[test]
fn a_docker_socket_the_sidecar_may_not_open_is_named_with_the_fix() {
    // The image runs as uid 65532; without the socket's group it may not open it.
    let sock = support::socket_mount();
    let out = std::process::Command::new("docker")
        .args([
            "run",
            "--rm",
            "-v",
            &sock,
            "--entrypoint",
            "/token-rotator",
            support::rotator_image(),
            "rotate",
            "--json",
            "--container",
            "x",
        ])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(5), "{stdout}{stderr}");
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["outcome"], "engine_unavailable");
    assert!(
        stderr.contains("permission denied on /var/run/docker.sock")
            && stderr.contains("uid 65532")
            && stderr.contains("DOCKER_GID")
            && stderr.contains("group_add"),
        "{stderr}"
    );
}

#[test]
fn an_ambiguous_id_prefix_is_refused() {
    let scope = Scope::new("hostile-ambiguous");
    let api = StandInApi::start();
    // Seventeen containers: at least two IDs share their first hex digit.
    for i in 0..17 {
        let label = format!("{}={}", support::SCOPE_LABEL, scope.prefix);
        docker(&[
            "create",
            "--name",
            &scope.name(&format!("c{i}")),
            "--label",
            &label,
            support::bot_image(),
        ]);
    }
    let ids = docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label={}={}", support::SCOPE_LABEL, scope.prefix),
    ]);
    let mut firsts: Vec<char> = ids.lines().filter_map(|l| l.chars().next()).collect();
    firsts.sort();
    let shared = firsts
        .windows(2)
        .find(|w| w[0] == w[1])
        .map(|w| w[0])
        .unwrap()
        .to_string();
    let file = scope.secret_file(&accepted(&api));
    let run = rotator(&[
        "rotate",
        "--secret-file",
        s(&file),
        "--api-base-url",
        &api.base_url(),
        "--container",
        &shared,
    ]);
    assert_eq!(run.code, 4, "{run:?}");
    assert!(run.stdout.contains(&format!("target container {shared:?} matches more than one container (an ID prefix?): use its full name or ID")), "{run:?}");
    assert_eq!(scope.containers().len(), 17, "nothing created or removed");
}

#[test]
fn a_bot_crash_looping_on_a_revoked_token_is_fixed_by_rotation() {
    let scope = Scope::new("hostile-crashloop");
    let api = StandInApi::start();
    let revoked = new_token();
    remember_secret(&revoked);
    api.set(&revoked, Behaviour::Revoked);
    let name = host_bot(
        &scope,
        "bot",
        &revoked,
        &api.base_url(),
        &[
            "--restart",
            "always",
            "-e",
            "FAKE_BOT_EXIT_ON_AUTH_FAILURE=1",
        ],
    );
    assert!(
        support::wait_until(10.0, || inspect(&name)["RestartCount"]
            .as_i64()
            .unwrap_or(0)
            >= 1),
        "the bot crash-loops"
    );
    let new = accepted(&api);
    let run = rotator(&[
        "rotate",
        "--secret-file",
        s(&scope.secret_file(&new)),
        "--api-base-url",
        &api.base_url(),
        "--container",
        &name,
        "--settle",
        "2",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    let after = inspect(&name);
    assert_eq!(after["State"]["Running"], true);
    assert_eq!(after["RestartCount"], 0, "the new container runs steadily");
    assert_eq!(after["HostConfig"]["RestartPolicy"]["Name"], "always");
}

#[test]
fn a_replacement_that_keeps_crash_looping_is_rolled_back() {
    let scope = Scope::new("hostile-crashloop-stays");
    let api = StandInApi::start();
    let bot_api = StandInApi::start(); // knows no token: the bot fails whatever it gets
    let old = accepted(&api);
    let name = host_bot(
        &scope,
        "bot",
        &old,
        &bot_api.base_url(),
        &[
            "--restart",
            "always",
            "-e",
            "FAKE_BOT_EXIT_ON_AUTH_FAILURE=1",
        ],
    );
    let id = inspect(&name)["Id"].clone();
    let new = accepted(&api);
    let run = rotator(&[
        "rotate",
        "--secret-file",
        s(&scope.secret_file(&new)),
        "--api-base-url",
        &api.base_url(),
        "--container",
        &name,
        "--settle",
        "2",
        "--verify-timeout",
        "4",
    ]);
    assert_eq!(run.code, 4, "{run:?}");
    // A restart is a crash: it fails at once, on every engine, not at the timeout.
    assert!(run.stdout.contains("crashed and was restarted"), "{run:?}");
    assert!(
        run.stdout
            .contains("rolled back: the old container is back as it was"),
        "{run:?}"
    );
    assert_eq!(inspect(&name)["Id"], id);
    assert_eq!(env_of(&name, ENV_VAR).as_deref(), Some(old.as_str()));
    assert_eq!(scope.containers(), vec![name]);
}

#[test]
fn a_target_whose_image_tag_moved_keeps_its_own_image() {
    let scope = Scope::new("hostile-image-moved");
    let api = StandInApi::start();
    let tag = format!("{}:moving", scope.prefix);
    docker(&["tag", support::bot_image(), &tag]);
    let old = accepted(&api);
    let name = host_bot(&scope, "bot", &old, &api.base_url(), &[]);
    // host_bot uses the standard image; recreate from the movable tag instead.
    docker(&["rm", "-f", &name]);
    let env_tok = format!("{ENV_VAR}={old}");
    let name = scope.run("bot2", &["--network", "host", "-e", &env_tok, &tag]);
    let image_id = inspect(&name)["Image"].clone();
    // The tag now points elsewhere, and the old image is known only by its ID.
    docker(&["tag", support::bot_image_with_healthcheck(), &tag]);
    let new = accepted(&api);
    let run = rotator(&[
        "rotate",
        "--json",
        "--secret-file",
        s(&scope.secret_file(&new)),
        "--api-base-url",
        &api.base_url(),
        "--container",
        &name,
        "--settle",
        "0.3",
    ]);
    docker(&["rmi", &tag]);
    assert_eq!(run.code, 0, "{run:?}");
    let after = inspect(&name);
    assert_eq!(
        after["Image"], image_id,
        "the same image, not what the tag points at now"
    );
    // The report says why `docker ps` now shows an ID where the tag stood.
    let warning = run.json()["targets"][0]["warning"].to_string();
    assert!(
        warning.contains("no longer points at the image") && warning.contains(&tag),
        "{warning}"
    );
    assert_eq!(env_of(&name, ENV_VAR).as_deref(), Some(new.as_str()));
}
