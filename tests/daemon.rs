//! `token-rotator run` as a container from `token-rotator:dev` (socket and secret
//! directory mounted, non-root, read-only root), driven by real file updates.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use support::api::{Behaviour, StandInApi};
use support::recorder::Recorder;
use support::updates::{
    delete_then_recreate, k8s_write, rename_over, truncate_then_write, write_in_place, Update,
};
use support::{
    accepted, assert_no_secret, docker, free_port, host_bot, http_get, new_token, remember_secret,
    rotator_image, socket_group, wait_until, Scope, ENV_VAR,
};

/// A daemon under test, its secret directory and its endpoints.
struct Daemon {
    name: String,
    listen: String,
    dir: PathBuf,
}

impl Daemon {
    /// Starts the daemon container watching `dir` (mounted at `mount`), with `env` added.
    fn start(scope: &Scope, dir: &Path, mount: &str, env: &[String]) -> Daemon {
        let listen = format!("127.0.0.1:{}", free_port());
        let volume = format!("{}:{mount}:ro", dir.display());
        let group = socket_group();
        let sock = support::socket_mount();
        let mut args: Vec<String> = [
            "--network",
            "host",
            "--read-only",
            "--group-add",
            &group,
            "-v",
            &sock,
            "-v",
            &volume,
            "-e",
            &format!("TOKEN_ROTATOR_LISTEN={listen}"),
            "-e",
            "TOKEN_ROTATOR_SETTLE=0.3",
            "-e",
            "TOKEN_ROTATOR_LOG=debug",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for e in env {
            args.push("-e".into());
            args.push(e.clone());
        }
        args.push(rotator_image().into());
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let name = scope.run("rotator", &argv);
        let d = Daemon {
            name,
            listen,
            dir: dir.to_path_buf(),
        };
        assert!(
            wait_until(20.0, || http_get(&d.listen, "/healthz").0 == 200),
            "daemon did not come up: {}",
            d.logs()
        );
        // The endpoints answer before the daemon's first look at the targets (the listener
        // is bound first): wait for that reconcile, so that tests start from its result.
        assert!(
            wait_until(30.0, || {
                let (code, body) = http_get(&d.listen, "/status");
                code == 200 && !body.contains("\"last_rotation\":null")
            }),
            "the daemon never finished its start-up reconcile: {}",
            d.logs()
        );
        d
    }

    fn logs(&self) -> String {
        let out = std::process::Command::new("docker")
            .args(["logs", &self.name])
            .output()
            .unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    fn metrics(&self) -> String {
        http_get(&self.listen, "/metrics").1
    }

    /// The `rotations_total` count for an outcome.
    fn rotations(&self, outcome: &str) -> u64 {
        let key = format!("token_rotator_rotations_total{{outcome=\"{outcome}\"}} ");
        self.metrics()
            .lines()
            .find_map(|l| l.strip_prefix(&key).and_then(|n| n.trim().parse().ok()))
            .unwrap_or(0)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Whatever happened, the daemon never printed a token.
        assert_no_secret(&self.logs());
    }
}

/// A stand-in API, a bot carrying `old`, and a secret directory whose `token` holds `old`.
struct Fixture {
    scope: Scope,
    api: StandInApi,
    name: String,
    dir: PathBuf,
    file: PathBuf,
    old: String,
}

impl Fixture {
    fn new(test: &str) -> Fixture {
        let scope = Scope::new(test);
        let api = StandInApi::start();
        let old = accepted(&api);
        let name = host_bot(&scope, "bot", &old, &api.base_url(), &[]);
        let dir = secret_dir(&scope);
        let file = dir.join("token");
        write_in_place(&file, &old);
        Fixture {
            scope,
            api,
            name,
            dir,
            file,
            old,
        }
    }

    /// The daemon watching the fixture's directory at /secrets, with `extra` env added.
    fn daemon(&self, extra: &[String]) -> Daemon {
        let mut env = vec![
            "TOKEN_ROTATOR_SECRET_FILE=/secrets/token".to_string(),
            format!("TOKEN_ROTATOR_CONTAINER={}", self.name),
            format!("TOKEN_ROTATOR_API_BASE_URL={}", self.api.base_url()),
        ];
        env.extend_from_slice(extra);
        Daemon::start(&self.scope, &self.dir, "/secrets", &env)
    }
}

/// A secret directory readable by the image's non-root user.
fn secret_dir(scope: &Scope) -> PathBuf {
    let dir = scope.dir.path().join("secrets");
    std::fs::create_dir_all(&dir).unwrap();
    for d in [scope.dir.path(), &dir] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    dir
}

fn carries(name: &str, token: &str) -> bool {
    support::env_of_if_any(name, ENV_VAR).as_deref() == Some(token)
}

/// Waits for the bot to carry `token`, then for the daemon to be idle, and checks that
/// exactly `expected` rotations have happened in all.
fn expect_rotated(d: &Daemon, bot: &str, token: &str, expected: u64, how: &str) {
    assert!(
        wait_until(30.0, || carries(bot, token)),
        "{how}: never rotated\n{}",
        d.logs()
    );
    // The replacement carries the name before its verification ends: wait for the count.
    wait_until(30.0, || d.rotations("rotated") >= expected);
    std::thread::sleep(std::time::Duration::from_millis(1200)); // > debounce: any extra rotation would show
    assert_eq!(
        d.rotations("rotated"),
        expected,
        "{how}: rotations\n{}",
        d.metrics()
    );
}

#[test]
fn every_plain_file_update_style_triggers_exactly_one_rotation() {
    let f = Fixture::new("daemon-styles");
    let Fixture {
        api, name, file, ..
    } = &f;
    let d = f.daemon(&[]);
    assert_eq!(
        d.rotations("already_current"),
        1,
        "reconciled on start, nothing to do"
    );

    let styles: [(&str, Update); 4] = [
        ("in-place write", write_in_place),
        ("truncate then write", truncate_then_write),
        ("temp file renamed over it", rename_over),
        ("delete then recreate", delete_then_recreate),
    ];
    for (i, (how, update)) in styles.iter().enumerate() {
        let token = accepted(api);
        update(file, &format!("{token}\n"));
        expect_rotated(&d, name, &token, i as u64 + 1, how);
    }
    assert!(
        d.metrics().contains(&format!("container=\"{name}\"")),
        "deployed fingerprint exported"
    );
    let _ = &d.dir;
}

#[test]
fn kubernetes_data_symlink_swaps_trigger_one_rotation_each() {
    let scope = Scope::new("daemon-k8s");
    let api = StandInApi::start();
    let first = accepted(&api);
    let name = host_bot(&scope, "bot", &first, &api.base_url(), &[]);
    let dir = secret_dir(&scope);
    k8s_write(&dir, 0, &first);
    let d = Daemon::start(
        &scope,
        &dir,
        "/var/run/secrets/bot",
        &[
            "TOKEN_ROTATOR_SECRET_FILE=/var/run/secrets/bot/token".into(),
            format!("TOKEN_ROTATOR_CONTAINER={name}"),
            format!("TOKEN_ROTATOR_API_BASE_URL={}", api.base_url()),
        ],
    );
    for generation in 1..=3 {
        let token = accepted(&api);
        k8s_write(&dir, generation, &token);
        expect_rotated(&d, &name, &token, generation as u64, "..data swap");
    }
}

#[test]
fn docker_secret_directory_at_the_default_path_is_watched() {
    let scope = Scope::new("daemon-default-path");
    let api = StandInApi::start();
    let first = accepted(&api);
    let name = host_bot(&scope, "bot", &first, &api.base_url(), &[]);
    let dir = secret_dir(&scope);
    let file = dir.join("claude_oauth_token");
    write_in_place(&file, &first);
    // No TOKEN_ROTATOR_SECRET_FILE: the default /run/secrets/claude_oauth_token.
    let d = Daemon::start(
        &scope,
        &dir,
        "/run/secrets",
        &[
            format!("TOKEN_ROTATOR_CONTAINER={name}"),
            format!("TOKEN_ROTATOR_API_BASE_URL={}", api.base_url()),
        ],
    );
    let token = accepted(&api);
    rename_over(&file, &token);
    expect_rotated(&d, &name, &token, 1, "default path");
}

#[test]
fn burst_of_writes_yields_at_most_two_rotations_the_last_to_the_final_content() {
    let f = Fixture::new("daemon-burst");
    let Fixture {
        api, name, file, ..
    } = &f;
    let d = f.daemon(&["TOKEN_ROTATOR_DEBOUNCE=0.5".into()]);
    let burst: Vec<String> = (0..5).map(|_| accepted(api)).collect();
    for t in &burst {
        write_in_place(file, t);
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let last = burst.last().unwrap();
    assert!(
        wait_until(30.0, || carries(name, last)),
        "never rotated to the final content\n{}",
        d.logs()
    );
    std::thread::sleep(std::time::Duration::from_millis(1500)); // any extra rotation would show
    let rotated = d.rotations("rotated");
    assert!(
        (1..=2).contains(&rotated),
        "rotations: {rotated}\n{}",
        d.metrics()
    );
    assert!(
        carries(name, last),
        "the last rotation is to the final content"
    );
    // No read caught a write half-way (an empty or cut token would be refused).
    assert_eq!(d.rotations("rejected"), 0, "{}", d.metrics());
}

#[test]
fn change_during_a_rotation_is_handled_right_after_it() {
    let f = Fixture::new("daemon-queue");
    let Fixture {
        scope,
        api,
        name,
        file,
        ..
    } = &f;
    let d = f.daemon(&["TOKEN_ROTATOR_SETTLE=3".into()]);
    let (a, b) = (accepted(api), accepted(api));
    write_in_place(file, &a);
    // The replacement exists under its temporary or final name while the swap settles.
    assert!(
        wait_until(15.0, || api.hits(&a) > 0),
        "rotation to A never started"
    );
    write_in_place(file, &b);
    expect_rotated(&d, name, &b, 2, "A, then B right after");
    assert_eq!(
        scope.containers().len(),
        2,
        "bot and rotator only: {:?}",
        scope.containers()
    );
}

#[test]
fn reconciles_on_start_when_the_target_lacks_the_file_token() {
    let scope = Scope::new("daemon-reconcile");
    let api = StandInApi::start();
    let (old, new) = (accepted(&api), accepted(&api));
    let name = host_bot(&scope, "bot", &old, &api.base_url(), &[]);
    let dir = secret_dir(&scope);
    write_in_place(&dir.join("token"), &new);
    let d = Daemon::start(
        &scope,
        &dir,
        "/secrets",
        &[
            "TOKEN_ROTATOR_SECRET_FILE=/secrets/token".into(),
            format!("TOKEN_ROTATOR_CONTAINER={name}"),
            format!("TOKEN_ROTATOR_API_BASE_URL={}", api.base_url()),
        ],
    );
    expect_rotated(&d, &name, &new, 1, "reconcile");
}

#[test]
fn sigterm_during_a_swap_leaves_the_target_running() {
    let f = Fixture::new("daemon-sigterm");
    let Fixture {
        scope,
        api,
        name,
        file,
        old,
        ..
    } = &f;
    let new = accepted(api);
    let d = f.daemon(&["TOKEN_ROTATOR_SETTLE=3".into()]);
    write_in_place(file, &new);
    assert!(
        wait_until(15.0, || scope
            .containers()
            .iter()
            .any(|c| c.contains("-tr-new-") || c.contains("-tr-old-"))),
        "swap never started"
    );
    docker(&["stop", "--time", "60", &d.name]);

    let state = support::inspect(&d.name)["State"].clone();
    assert_eq!(state["ExitCode"], 0, "clean exit: {}", d.logs());
    assert!(
        d.logs().contains("letting the rotation in progress finish"),
        "{}",
        d.logs()
    );
    let bot_state = support::inspect(name)["State"].clone();
    assert_eq!(bot_state["Running"], true, "the bot is running");
    assert!(carries(name, &new) || carries(name, old));
    let mut left = scope.containers();
    left.sort();
    let mut expected = vec![d.name.clone(), name.clone()];
    expected.sort();
    assert_eq!(
        left, expected,
        "no temporary or renamed-aside container left"
    );
}

#[test]
fn a_single_file_bind_mount_of_the_secret_is_reported_with_the_fix() {
    let f = Fixture::new("daemon-single-file");
    let env = [
        "TOKEN_ROTATOR_SECRET_FILE=/secrets/token".to_string(),
        format!("TOKEN_ROTATOR_CONTAINER={}", f.name),
        format!("TOKEN_ROTATOR_API_BASE_URL={}", f.api.base_url()),
    ];
    // The mistake the README warns about: the file itself, not its directory.
    let d = Daemon::start(&f.scope, &f.file, "/secrets/token", &env);
    let (code, body) = http_get(&d.listen, "/readyz");
    assert_eq!(code, 503, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["ready"], false);
    let problem = v["problems"].to_string();
    assert!(
        problem.contains("single-file bind mount") && problem.contains("mount the directory"),
        "{body}"
    );
    assert!(d.logs().contains("single-file bind mount"), "{}", d.logs());
}

#[test]
fn a_webhook_delivery_in_flight_at_shutdown_is_drained() {
    let f = Fixture::new("daemon-drain");
    let hook = Recorder::start();
    let new = accepted(&f.api);
    let d = f.daemon(&[
        "TOKEN_ROTATOR_SETTLE=3".into(),
        format!("TOKEN_ROTATOR_NOTIFY_WEBHOOK={}", hook.url),
    ]);
    write_in_place(&f.file, &new);
    assert!(
        wait_until(15.0, || f
            .scope
            .containers()
            .iter()
            .any(|c| c.contains("-tr-new-") || c.contains("-tr-old-"))),
        "swap never started"
    );
    // SIGTERM mid-swap: the swap finishes during shutdown and its event goes out at the
    // very end; the daemon must not exit before delivering it.
    docker(&["stop", "--time", "60", &d.name]);
    assert_eq!(
        support::inspect(&d.name)["State"]["ExitCode"],
        0,
        "{}",
        d.logs()
    );
    let events = hook.bodies();
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "rotation" && e["outcome"] == "rotated"),
        "the rotation's event was delivered before exit: {events:?}\n{}",
        d.logs()
    );
}

#[test]
fn endpoints_webhook_and_refused_tokens() {
    let f = Fixture::new("daemon-endpoints");
    let Fixture {
        api, name, file, ..
    } = &f;
    let hook = Recorder::start();
    let new = accepted(api);
    let d = f.daemon(&[
        format!("TOKEN_ROTATOR_NOTIFY_WEBHOOK={}", hook.url),
        "TOKEN_ROTATOR_VALIDATE_DEADLINE=0".into(),
    ]);
    assert_eq!(http_get(&d.listen, "/readyz").0, 200);

    write_in_place(file, &new);
    expect_rotated(&d, name, &new, 1, "rotation");
    let fp = support::fingerprint(&new);
    assert!(
        d.metrics().contains(&format!(
            "token_rotator_deployed_token{{container=\"{name}\",fingerprint=\"{fp}\"}} 1"
        )),
        "{}",
        d.metrics()
    );
    assert!(d
        .metrics()
        .contains("token_rotator_validations_total{verdict=\"valid\"} 1"));
    assert!(d
        .metrics()
        .contains("token_rotator_last_success_timestamp_seconds"));
    let status: serde_json::Value =
        serde_json::from_str(&http_get(&d.listen, "/status").1).unwrap();
    assert_eq!(status["targets"][0]["fingerprint"], fp.as_str());
    assert_eq!(status["targets"][0]["matches_secret"], true);
    assert_eq!(status["last_rotation"]["outcome"], "rotated");
    assert!(wait_until(5.0, || !hook.bodies().is_empty()));
    let event = &hook.bodies()[0];
    assert_eq!(event["event"], "rotation");
    assert!(
        event["text"]
            .as_str()
            .unwrap()
            .contains(&format!("rotated token {fp} into {name}")),
        "{event}"
    );

    // A revoked token: announced, and the bot keeps its working token.
    let revoked = new_token();
    remember_secret(&revoked);
    api.set(&revoked, Behaviour::Revoked);
    let id = support::inspect(name)["Id"].clone();
    write_in_place(file, &revoked);
    assert!(
        wait_until(10.0, || hook.bodies().len() >= 2),
        "{}",
        d.logs()
    );
    assert_eq!(hook.bodies()[1]["event"], "token_rejected");
    assert!(hook.bodies()[1]["text"]
        .as_str()
        .unwrap()
        .contains("revoked"));
    assert_eq!(support::inspect(name)["Id"], id);
    assert!(carries(name, &new));
    assert!(http_get(&d.listen, "/status")
        .1
        .contains("\"matches_secret\":false"));

    // An overloaded API: retried with backoff; once it answers, the token goes in.
    let later = new_token();
    remember_secret(&later);
    api.set(&later, Behaviour::Overloaded);
    write_in_place(file, &later);
    assert!(wait_until(10.0, || d.rotations("inconclusive") >= 1));
    assert!(carries(name, &new), "inconclusive leaves the bot alone");
    api.set(&later, Behaviour::Accept);
    assert!(
        wait_until(30.0, || carries(name, &later)),
        "retried after backoff: {}",
        d.logs()
    );

    for body in hook.bodies() {
        assert_no_secret(&body.to_string());
    }
    assert_no_secret(&d.metrics());
    assert_no_secret(&http_get(&d.listen, "/status").1);
}

#[test]
fn failing_webhook_never_blocks_a_rotation() {
    let f = Fixture::new("daemon-badhook");
    let Fixture {
        api, name, file, ..
    } = &f;
    let new = accepted(api);
    let d = f.daemon(&["TOKEN_ROTATOR_NOTIFY_WEBHOOK=http://127.0.0.1:9/hook".into()]);
    write_in_place(file, &new);
    expect_rotated(&d, name, &new, 1, "with a dead webhook");
    assert!(
        wait_until(5.0, || d.logs().contains("webhook failed")),
        "{}",
        d.logs()
    );
}

#[test]
fn the_rotator_refuses_to_replace_its_own_container() {
    let scope = Scope::new("daemon-self");
    let token = new_token();
    remember_secret(&token);
    let dir = secret_dir(&scope);
    write_in_place(&dir.join("token"), &token);
    let name = scope.name("rotator-self");
    let volume = format!("{}:/secrets:ro", dir.display());
    let group = socket_group();
    let sock = support::socket_mount();
    let label = format!("{}={}", support::SCOPE_LABEL, scope.prefix);
    let out = std::process::Command::new("docker")
        .args([
            "run",
            "--name",
            &name,
            "--label",
            &label,
            "--group-add",
            &group,
            "-v",
            &sock,
            "-v",
            &volume,
            "--entrypoint",
            "/token-rotator",
            rotator_image(),
            "rotate",
            "--secret-file",
            "/secrets/token",
            "--validate",
            "none",
            "--container",
            &name,
        ])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_no_secret(&text);
    assert_eq!(out.status.code(), Some(4), "{text}");
    assert!(
        text.contains("is the container token-rotator runs in: it cannot replace itself"),
        "{text}"
    );
    assert_eq!(
        support::inspect(&name)["State"]["ExitCode"],
        4,
        "it exited on its own, untouched"
    );
}

#[test]
fn watcher_starts_once_the_secret_directory_appears() {
    let scope = Scope::new("daemon-late-dir");
    let api = StandInApi::start();
    let (old, new) = (accepted(&api), accepted(&api));
    let name = host_bot(&scope, "bot", &old, &api.base_url(), &[]);
    let dir = secret_dir(&scope);
    let d = Daemon::start(
        &scope,
        &dir,
        "/secrets",
        &[
            "TOKEN_ROTATOR_SECRET_FILE=/secrets/later/token".into(),
            format!("TOKEN_ROTATOR_CONTAINER={name}"),
            format!("TOKEN_ROTATOR_API_BASE_URL={}", api.base_url()),
        ],
    );
    assert!(
        wait_until(10.0, || d.rotations("rejected") >= 1),
        "a missing file is reported"
    );
    assert!(d.logs().contains("does not exist"), "{}", d.logs());
    assert_eq!(
        http_get(&d.listen, "/readyz").0,
        503,
        "not ready without a secret"
    );
    let later = dir.join("later");
    std::fs::create_dir(&later).unwrap();
    std::fs::set_permissions(&later, std::fs::Permissions::from_mode(0o755)).unwrap();
    write_in_place(&later.join("token"), &new);
    expect_rotated(&d, &name, &new, 1, "directory created after start");
    assert_eq!(http_get(&d.listen, "/readyz").0, 200);
}

#[test]
fn a_deleted_secret_file_is_waited_for_and_the_bot_left_alone() {
    let f = Fixture::new("daemon-deleted");
    let Fixture {
        name,
        file,
        old,
        api,
        ..
    } = &f;
    let d = f.daemon(&[]);
    let id = support::inspect(name)["Id"].clone();
    std::fs::remove_file(file).unwrap();
    assert!(
        wait_until(10.0, || d.rotations("rejected") >= 1),
        "{}",
        d.logs()
    );
    assert!(
        d.logs()
            .contains("secret file /secrets/token does not exist"),
        "{}",
        d.logs()
    );
    assert_eq!(http_get(&d.listen, "/healthz").0, 200, "still running");
    assert_eq!(
        http_get(&d.listen, "/readyz").0,
        503,
        "not ready without its secret"
    );
    assert_eq!(support::inspect(name)["Id"], id, "the bot was left alone");
    assert!(carries(name, old));
    let new = accepted(api);
    write_in_place(file, &new);
    expect_rotated(&d, name, &new, 1, "file written again");
}

#[test]
fn writes_to_other_files_in_the_secret_directory_cost_no_engine_call_and_no_rotation() {
    let scope = Scope::new("daemon-unrelated");
    let api = StandInApi::start();
    let token = accepted(&api);
    let bot = host_bot(&scope, "bot", &token, &api.base_url(), &[]);
    // The daemon's own debug log is written into the same directory as the secret.
    let file = scope.secret_file(&token);
    let proxy = support::proxy::EngineProxy::start(scope.dir.path());
    let host = proxy.docker_host();
    let base = api.base_url();
    let d = support::HostDaemon::start(
        &scope,
        &[
            "--secret-file",
            file.to_str().unwrap(),
            "--container",
            &bot,
            "--api-base-url",
            &base,
            "--live-probe-interval",
            "0",
        ],
        &[("DOCKER_HOST", &host)],
    );
    d.wait_for_first_rotation();
    let rotations = || {
        d.get("/metrics")
            .1
            .lines()
            .filter(|l| l.starts_with("token_rotator_rotations_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    // (`/metrics` inspects the targets itself: read before the window.)
    let before = rotations();
    // Wait until the start-up calls (the event stream, the log stream) are all made.
    let mut seen = proxy.requests().len();
    assert!(wait_until(20.0, || {
        std::thread::sleep(std::time::Duration::from_millis(700));
        let now = proxy.requests().len();
        std::mem::replace(&mut seen, now) == now
    }));
    let (calls, log) = (proxy.requests().len(), d.logs().len());

    let other = scope.dir.path().join("agent-rendered.conf");
    for i in 0..100 {
        if i % 2 == 0 {
            write_in_place(&other, &format!("generation {i}\n"));
        } else {
            rename_over(&other, &format!("generation {i}\n"));
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    std::thread::sleep(std::time::Duration::from_millis(1500)); // > the debounce

    assert_eq!(
        proxy.requests()[calls..],
        [] as [String; 0],
        "no engine call for an unrelated file\n{}",
        d.logs()
    );
    assert_eq!(rotations(), before, "no rotation for an unrelated file");
    assert_eq!(
        &d.logs()[log..],
        "",
        "no log line for an unrelated file either"
    );
    // And the secret itself is still noticed.
    let new = accepted(&api);
    rename_over(&file, &new);
    assert!(wait_until(20.0, || carries(&bot, &new)), "{}", d.logs());
}
