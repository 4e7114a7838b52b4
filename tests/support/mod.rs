//! Shared helpers for the integration tests: the real Docker engine (through the docker
//! CLI), images built from scratch, per-test names with cleanup, tokens, and a runner for
//! the real `token-rotator` binary that checks no output ever carries a secret.
#![allow(dead_code)]

pub mod api;
pub mod engine;
pub mod haproxy;
pub mod proxy;
pub mod receiver;
pub mod recorder;
pub mod updates;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The test bot image: fake-bot on `FROM scratch`.
pub const BOT_IMAGE: &str = "token-rotator-test-bot:latest";
/// The env var the rotator writes by default.
pub const ENV_VAR: &str = "BOT_BOTTLE_CLAUDE_OAUTH_TOKEN";
/// Label put on every test container (and copied to replacements) for cleanup.
pub const SCOPE_LABEL: &str = "token-rotator-test.scope";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `docker ARGS`, panicking with stderr on failure; returns trimmed stdout.
pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("the docker CLI is not installed (run scripts/setup.sh)");
    assert!(
        out.status.success(),
        "docker {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Runs `docker ARGS` and returns whether it succeeded (for cleanup and probes).
pub fn docker_ok(args: &[&str]) -> bool {
    Command::new("docker")
        .args(args)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Whether the engine of this lane is Podman's Docker-compatible API (its `/version` names a
/// `Podman Engine` component). Asked once per process.
pub fn on_podman() -> bool {
    static PODMAN: OnceLock<bool> = OnceLock::new();
    *PODMAN.get_or_init(|| {
        docker(&[
            "version",
            "--format",
            "{{range .Server.Components}}{{.Name}};{{end}}",
        ])
        .contains("Podman")
    })
}

/// Whether a test that cannot apply to Podman is to be skipped: on Podman it prints
/// `skipped on Podman: REASON` (seen with `--nocapture`, and in the output of a failing
/// run) and returns true. Use as `if skip_on_podman("why") { return; }`.
pub fn skip_on_podman(reason: &str) -> bool {
    if !on_podman() {
        return false;
    }
    eprintln!("skipped on Podman: {reason}");
    println!("skipped on Podman: {reason}");
    true
}

/// `docker inspect NAME` as JSON.
pub fn inspect(name: &str) -> Value {
    let text = docker(&["inspect", "--type", "container", name]);
    let mut v: Value = serde_json::from_str(&text).expect("inspect JSON");
    v[0].take()
}

/// The name of the (anonymous) volume mounted at `/data` in a container.
pub fn anon_volume(name: &str) -> String {
    inspect(name)["Mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["Destination"] == "/data")
        .and_then(|m| m["Name"].as_str())
        .unwrap()
        .to_string()
}

/// The value of `var` in a container's env; `None` also while no container has the name
/// (for a moment, mid-swap, none has).
pub fn env_of_if_any(name: &str, var: &str) -> Option<String> {
    let out = Command::new("docker")
        .args(["inspect", "--type", "container", name])
        .output()
        .ok()?;
    let v: Value = serde_json::from_slice(&out.stdout).ok()?;
    v[0]["Config"]["Env"]
        .as_array()?
        .iter()
        .filter_map(|e| e.as_str())
        .find_map(|e| e.strip_prefix(&format!("{var}=")).map(str::to_string))
}

/// The value of `var` in a container's env.
pub fn env_of(name: &str, var: &str) -> Option<String> {
    let v = inspect(name);
    v["Config"]["Env"]
        .as_array()?
        .iter()
        .filter_map(|e| e.as_str())
        .find_map(|e| e.strip_prefix(&format!("{var}=")).map(str::to_string))
}

/// `cargo build`, in the environment `scripts/test.sh` built everything in first.
fn cargo_build() -> Command {
    let mut cmd = without_cargo_test_env(Command::new(env!("CARGO")));
    cmd.arg("build");
    cmd
}

/// `cmd` without the variables `cargo test` sets for a test binary (`CARGO_MANIFEST_DIR`,
/// `CARGO_PKG_*`, ...). Some build scripts (ring's) name `CARGO_MANIFEST_DIR` among the
/// variables that invalidate their output, so a build started from a test with them set
/// redid ring and all that depends on it (minutes) although `scripts/test.sh` had just built
/// the same thing from the shell.
fn without_cargo_test_env(mut cmd: Command) -> Command {
    for (k, _) in std::env::vars() {
        let set_by_cargo_test = k.starts_with("CARGO_PKG_")
            || matches!(
                k.as_str(),
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_TARGET_TMPDIR"
            );
        if set_by_cargo_test {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// Builds the static fake-bot (once per process) and returns its path.
pub fn fake_bot_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let target_dir = root().join("target/fake-bot");
            let status = cargo_build()
                .args([
                    "--release",
                    "--locked",
                    "--target",
                    "x86_64-unknown-linux-gnu",
                ])
                .arg("--manifest-path")
                .arg(root().join("examples/fake-bot/Cargo.toml"))
                .arg("--target-dir")
                .arg(&target_dir)
                .env("RUSTFLAGS", "-C target-feature=+crt-static")
                .status()
                .expect("cargo");
            assert!(status.success(), "building the static fake-bot failed");
            target_dir.join("x86_64-unknown-linux-gnu/release/fake-bot")
        })
        .clone()
}

/// Builds `BOT_IMAGE` from scratch (once per process; no registry involved).
pub fn bot_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| build_image(BOT_IMAGE, ""));
    BOT_IMAGE
}

/// The bot image with an exec-form `HEALTHCHECK` (a scratch image has no shell for
/// the CLI's `--health-cmd`).
pub fn bot_image_with_healthcheck() -> &'static str {
    const IMAGE: &str = "token-rotator-test-bot-hc:latest";
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        build_image(
            IMAGE,
            "HEALTHCHECK --interval=1s --timeout=2s --retries=3 CMD [\"/fake-bot\", \"health\"]\n",
        )
    });
    IMAGE
}

/// The bot image with a healthcheck that prints the bot's token (whole and cut) and
/// fails: a careless bot, for redaction tests.
pub fn bot_image_with_leaking_healthcheck() -> &'static str {
    const IMAGE: &str = "token-rotator-test-bot-leaky:latest";
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        build_image(
            IMAGE,
            "HEALTHCHECK --interval=1s --timeout=2s --retries=1 CMD [\"/fake-bot\", \"leak\"]\n",
        )
    });
    IMAGE
}

fn build_image(tag: &str, extra: &str) {
    let bin = fake_bot_binary();
    let ctx = tempfile::tempdir().expect("tempdir");
    std::fs::copy(&bin, ctx.path().join("fake-bot")).expect("copy fake-bot");
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM scratch\nCOPY fake-bot /fake-bot\nENTRYPOINT [\"/fake-bot\"]\nCMD [\"serve\"]\n{extra}"),
    )
    .unwrap();
    docker(&["build", "-q", "-t", tag, ctx.path().to_str().unwrap()]);
}

/// A fresh OAuth-shaped token, unique per call.
pub fn new_token() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let seed = format!(
        "{}-{}-{:?}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst),
        std::time::SystemTime::now()
    );
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut body = String::new();
    let mut block = Sha256::digest(seed.as_bytes()).to_vec();
    while body.len() < 95 {
        for b in &block {
            body.push(ALPHABET[(*b as usize) % 64] as char);
        }
        block = Sha256::digest(&block).to_vec();
    }
    body.truncate(95);
    format!("sk-ant-oat01-{body}")
}

/// A fresh token the stand-in accepts, registered for the leak check.
pub fn accepted(api: &api::StandInApi) -> String {
    let t = new_token();
    remember_secret(&t);
    api.set(&t, api::Behaviour::Accept);
    t
}

/// A running bot carrying `token`, on the host network so it reaches a stand-in API on
/// loopback at `api_url`; `extra` goes before the image.
pub fn host_bot(scope: &Scope, what: &str, token: &str, api_url: &str, extra: &[&str]) -> String {
    let env_tok = format!("{ENV_VAR}={token}");
    let env_api = format!("ANTHROPIC_BASE_URL={api_url}");
    let mut args = vec![
        "--network",
        "host",
        "-e",
        &env_tok,
        "-e",
        &env_api,
        "-e",
        "FAKE_BOT_INTERVAL=0.2",
    ];
    args.extend_from_slice(extra);
    args.push(bot_image());
    scope.run(what, &args)
}

/// SHA-256 fingerprint (12 hex) as the rotator prints it.
pub fn fingerprint(token: &str) -> String {
    hex::encode(&Sha256::digest(token.as_bytes())[..6])
}

/// Every token any test of this process has used, for the leak check.
static SECRETS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Registers a token so every later output is checked for it.
pub fn remember_secret(token: &str) {
    SECRETS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(token.to_string());
}

/// Panics if `text` holds a known token or any 12-character piece of one that reaches
/// past the public `sk-ant-oat01-` prefix. One pass over `text` whatever the number of
/// tokens (a soak registers hundreds and checks megabytes of logs).
pub fn assert_no_secret(text: &str) {
    let secrets = SECRETS.lock().unwrap_or_else(|e| e.into_inner());
    let mut pieces = std::collections::HashMap::new();
    for token in secrets.iter() {
        for start in 2..=token.len().saturating_sub(12) {
            pieces
                .entry(&token.as_bytes()[start..start + 12])
                .or_insert(start);
        }
    }
    if pieces.is_empty() {
        return;
    }
    for window in text.as_bytes().windows(12) {
        if let Some(start) = pieces.get(window) {
            let piece = String::from_utf8_lossy(window);
            panic!("output leaks a piece of a token ({piece:?} at {start}):\n{text}");
        }
    }
}

/// One test's names and the cleanup of everything it made, even when it fails.
pub struct Scope {
    /// Unique prefix for this test's containers, networks and volumes.
    pub prefix: String,
    networks: Mutex<Vec<String>>,
    volumes: Mutex<Vec<String>>,
    /// Temporary directory for secret files.
    pub dir: tempfile::TempDir,
}

impl Scope {
    /// A new scope named after the test.
    pub fn new(test: &str) -> Scope {
        static N: AtomicUsize = AtomicUsize::new(0);
        let prefix = format!(
            "trt-{}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst),
            test.replace('_', "-")
        );
        Scope {
            prefix,
            networks: Mutex::new(Vec::new()),
            volumes: Mutex::new(Vec::new()),
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// A name unique to this test.
    pub fn name(&self, what: &str) -> String {
        format!("{}-{what}", self.prefix)
    }

    /// `docker run -d` with the scope label and a unique name; returns the name.
    pub fn run(&self, what: &str, args: &[&str]) -> String {
        let name = self.name(what);
        let label = format!("{SCOPE_LABEL}={}", self.prefix);
        let mut argv = vec!["run", "-d", "--name", &name, "--label", &label];
        argv.extend_from_slice(args);
        docker(&argv);
        name
    }

    /// `docker network create` of a network removed with the scope.
    pub fn network(&self, what: &str, extra: &[&str]) -> String {
        let name = self.name(what);
        let mut argv = vec!["network", "create"];
        argv.extend_from_slice(extra);
        argv.push(&name);
        docker(&argv);
        self.networks.lock().unwrap().push(name.clone());
        name
    }

    /// Registers a network made elsewhere (compose, a retry loop) for removal.
    pub fn adopt_network(&self, name: &str) {
        self.networks.lock().unwrap().push(name.to_string());
    }

    /// A named volume removed with the scope.
    pub fn volume(&self, what: &str) -> String {
        let name = self.name(what);
        docker(&["volume", "create", &name]);
        self.volumes.lock().unwrap().push(name.clone());
        name
    }

    /// Registers an anonymous volume for removal.
    pub fn forget_volume_later(&self, name: &str) {
        self.volumes.lock().unwrap().push(name.to_string());
    }

    /// Writes `content` to a file in this scope's temp dir; returns its path.
    pub fn secret_file(&self, content: &str) -> PathBuf {
        let path = self.dir.path().join("token");
        std::fs::write(&path, content).unwrap();
        path
    }

    /// The containers of this scope (any state): those carrying its label, and any other
    /// named after it (a lock marker carries no label of its target's).
    pub fn containers(&self) -> Vec<String> {
        self.listed("{{.Names}}")
    }

    fn listed(&self, format: &str) -> Vec<String> {
        let by_label = format!("label={SCOPE_LABEL}={}", self.prefix);
        let by_name = format!("name=^/{}-", self.prefix);
        let mut all = Vec::new();
        for filter in [by_label, by_name] {
            let out = Command::new("docker")
                .args(["ps", "-a", "--filter", &filter, "--format", format])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
                .unwrap_or_default();
            for line in out.lines().map(str::to_string) {
                if !all.contains(&line) {
                    all.push(line);
                }
            }
        }
        all
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        let ids = self.listed("{{.ID}}");
        if !ids.is_empty() {
            let mut argv = vec!["rm", "-f", "-v"];
            argv.extend(ids.iter().map(String::as_str));
            docker_ok(&argv);
        }
        for n in self.networks.lock().unwrap().iter() {
            docker_ok(&["network", "rm", n]);
        }
        for v in self.volumes.lock().unwrap().iter() {
            docker_ok(&["volume", "rm", "-f", v]);
        }
    }
}

/// Output of one rotator run.
pub struct Run {
    /// Exit code.
    pub code: i32,
    /// stdout.
    pub stdout: String,
    /// stderr.
    pub stderr: String,
}

impl Run {
    /// stdout and stderr together.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs the real `token-rotator` binary with `args` (no TOKEN_ROTATOR_* from outside)
/// and checks its output for secrets.
pub fn rotator(args: &[&str]) -> Run {
    rotator_env(args, &[])
}

/// Like [`rotator`], with extra env vars.
pub fn rotator_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    run_binary(Path::new(env!("CARGO_BIN_EXE_token-rotator")), args, env)
}

/// Runs the rotator binary at `bin` (the fault-injection build, say) like [`rotator_env`].
pub fn run_binary(bin: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(bin);
    for (k, _) in std::env::vars() {
        if k.starts_with("TOKEN_ROTATOR_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("TOKEN_ROTATOR_LOG", "debug");
    cmd.args(args).envs(env.iter().copied());
    let out: Output = cmd.output().expect("run token-rotator");
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
    };
    assert_no_secret(&run.all());
    run
}

impl Run {
    /// stdout parsed as the one JSON object of `rotate --json`.
    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}): {self:?}"))
    }
}

/// Path as &str.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Builds `token-rotator:dev` with `scripts/build-image.sh` (once per process). Its own
/// target dir: `cargo test` holds the lock on the main one while tests run.
pub fn rotator_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let status = without_cargo_test_env(Command::new("bash"))
            .arg(root().join("scripts/build-image.sh"))
            .env("CARGO_TARGET_DIR", root().join("target/image"))
            .env("CARGO", env!("CARGO"))
            .status()
            .expect("bash");
        assert!(status.success(), "scripts/build-image.sh failed");
    });
    "token-rotator:dev"
}

/// The engine's socket on the host: `DOCKER_HOST` (the private engine's lane) or the
/// machine's own.
pub fn engine_socket() -> PathBuf {
    match std::env::var("DOCKER_HOST") {
        Ok(h) if h.starts_with("unix://") => PathBuf::from(&h["unix://".len()..]),
        _ => PathBuf::from("/var/run/docker.sock"),
    }
}

/// The compose tool of this lane: `TR_COMPOSE` (Compose v2 beside the private engine,
/// run standalone) or the machine's `docker-compose`.
pub fn compose_bin() -> String {
    std::env::var("TR_COMPOSE").unwrap_or_else(|_| "docker-compose".into())
}

/// Runs compose on `project` and `file`, panicking with stderr on failure; returns stdout.
pub fn compose(project: &str, file: &Path, args: &[&str]) -> String {
    let bin = compose_bin();
    let out = Command::new(&bin)
        .args(["-p", project, "-f"])
        .arg(file)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{bin} cannot run ({e}): run scripts/setup.sh"));
    assert!(
        out.status.success(),
        "{bin} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// The name of a compose service's one container (v1 says `P_bot_1`, v2 `P-bot-1`).
pub fn compose_container(project: &str, file: &Path, service: &str) -> String {
    let id = compose(project, file, &["ps", "-q", service])
        .trim()
        .to_string();
    inspect(&id)["Name"]
        .as_str()
        .unwrap()
        .trim_start_matches('/')
        .to_string()
}

/// `-v` for a sidecar container: the engine's socket at the standard path inside.
pub fn socket_mount() -> String {
    format!("{}:/var/run/docker.sock", engine_socket().display())
}

/// The group owning the Docker socket, for `--group-add` (the image runs as non-root).
pub fn socket_group() -> String {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(engine_socket())
        .map(|m| m.gid().to_string())
        .unwrap_or_else(|_| "0".into())
}

/// A GET on loopback: (status, body).
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return (0, String::new());
    };
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .ok();
    let _ = write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    );
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    // Chunked bodies carry size lines; callers search the text, which tolerates them.
    (status, body)
}

/// Replaces the container `name` by a bot with no token at all, as `docker compose up -d
/// --force-recreate` from a file without it, or an operator re-running it by hand, would.
pub fn rerun_without_token(scope: &Scope, name: &str) {
    docker(&["rm", "-f", name]);
    let label = format!("{SCOPE_LABEL}={}", scope.prefix);
    docker(&[
        "run",
        "-d",
        "--name",
        name,
        "--label",
        &label,
        "--network",
        "host",
        bot_image(),
    ]);
}

/// The value of the Prometheus line that starts with `series ` (`None` if absent).
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Polls `f` every 100 ms until it returns true or `secs` pass; returns the last result.
pub fn wait_until(secs: f64, mut f: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + std::time::Duration::from_secs_f64(secs);
    loop {
        if f() {
            return true;
        }
        if std::time::Instant::now() >= end {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// A free loopback port (for a daemon's --listen on the host network).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `token-rotator` built with the `fault-injection` feature (once per process), in its own
/// target dir: `TOKEN_ROTATOR_PAUSE_AT=<step>` makes it pause at that step of a swap.
pub fn fault_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let target_dir = root().join("target/faults");
            let status = cargo_build()
                .args([
                    "--locked",
                    "--features",
                    "fault-injection",
                    "--bin",
                    "token-rotator",
                ])
                .arg("--manifest-path")
                .arg(root().join("Cargo.toml"))
                .arg("--target-dir")
                .arg(&target_dir)
                .status()
                .expect("cargo");
            assert!(
                status.success(),
                "building token-rotator with fault-injection failed"
            );
            target_dir.join("debug/token-rotator")
        })
        .clone()
}

/// A fault-injection rotator paused at a swap step (see [`fault_binary`]).
pub struct Paused {
    /// The process, alive and paused.
    pub child: std::process::Child,
    /// Everything it wrote to stderr so far.
    pub seen: String,
    lines: std::io::Lines<std::io::BufReader<std::process::ChildStderr>>,
    resume_file: PathBuf,
}

impl Paused {
    /// Starts the fault binary with `args` and `env`, and waits until it pauses at `step`.
    pub fn at(step: &str, args: &[&str], env: &[(&str, &str)]) -> Paused {
        Paused::at_all(step, 1, args, env)
    }

    /// Like [`Paused::at`], but waits until `count` swaps (of a `--parallel` rotation)
    /// have paused at `step`.
    pub fn at_all(step: &str, count: usize, args: &[&str], env: &[(&str, &str)]) -> Paused {
        use std::io::BufRead;
        static N: AtomicUsize = AtomicUsize::new(0);
        let resume_file = std::env::temp_dir().join(format!(
            "token-rotator-resume-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_file(&resume_file);
        let mut cmd = Command::new(fault_binary());
        for (k, _) in std::env::vars() {
            if k.starts_with("TOKEN_ROTATOR_") {
                cmd.env_remove(k);
            }
        }
        let mut child = cmd
            .args(args)
            .env("TOKEN_ROTATOR_LOG", "debug")
            .env("TOKEN_ROTATOR_PAUSE_AT", step)
            .env("TOKEN_ROTATOR_RESUME_FILE", &resume_file)
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn the fault-injection binary");
        let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let mut seen = String::new();
        for line in lines.by_ref() {
            let line = line.unwrap_or_default();
            seen.push_str(&line);
            seen.push('\n');
            let here = format!("FAULT-POINT {step}");
            if line.contains(&here) && seen.matches(&here).count() >= count {
                return Paused {
                    child,
                    seen,
                    lines,
                    resume_file,
                };
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("never reached {step}:\n{seen}");
    }

    /// SIGKILLs it where it paused; returns its stderr.
    pub fn kill(mut self) -> String {
        self.child.kill().expect("SIGKILL"); // std's kill is SIGKILL on Unix
        let status = self.child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9)
        );
        assert_no_secret(&self.seen);
        std::mem::take(&mut self.seen)
    }

    /// Lets it go on from where it paused (see [`Paused::wait`]).
    pub fn release(&self) {
        std::fs::write(&self.resume_file, b"").unwrap();
    }

    /// Lets it go on from where it paused and waits for it to exit.
    pub fn resume(self) -> Run {
        self.release();
        self.wait()
    }

    /// Waits for it to exit (after [`Paused::release`]).
    pub fn wait(mut self) -> Run {
        use std::io::Read;
        let mut stderr = std::mem::take(&mut self.seen);
        for line in self.lines.by_ref() {
            stderr.push_str(&line.unwrap_or_default());
            stderr.push('\n');
        }
        let mut stdout = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .unwrap();
        let status = self.child.wait().unwrap();
        let run = Run {
            code: status.code().unwrap_or(-1),
            stdout,
            stderr,
        };
        assert_no_secret(&run.all());
        run
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.resume_file);
    }
}

/// `token-rotator run` as a process on this host (not in a container), its stderr kept in
/// a file, stopped with SIGTERM; its output is checked for secrets when it ends.
pub struct HostDaemon {
    child: std::process::Child,
    /// Its `--listen` address.
    pub listen: String,
    log: PathBuf,
}

impl HostDaemon {
    /// Starts `run --listen 127.0.0.1:PORT ARGS` with `env` (and no TOKEN_ROTATOR_* from
    /// outside), logging at debug.
    pub fn start(scope: &Scope, args: &[&str], env: &[(&str, &str)]) -> HostDaemon {
        let listen = format!("127.0.0.1:{}", free_port());
        static N: AtomicUsize = AtomicUsize::new(0);
        let log = scope
            .dir
            .path()
            .join(format!("daemon-{}.log", N.fetch_add(1, Ordering::SeqCst)));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_token-rotator"));
        for (k, _) in std::env::vars() {
            if k.starts_with("TOKEN_ROTATOR_") {
                cmd.env_remove(k);
            }
        }
        let child = cmd
            .args(["run", "--listen", &listen])
            .args(args)
            .env("TOKEN_ROTATOR_LOG", "debug")
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start token-rotator run");
        let d = HostDaemon { child, listen, log };
        assert!(
            wait_until(20.0, || http_get(&d.listen, "/healthz").0 == 200),
            "daemon did not come up: {}",
            d.logs()
        );
        d
    }

    /// Everything it logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `GET path` on its endpoints.
    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(&self.listen, path)
    }

    /// Waits until its first rotation (the start-up reconcile) has a report.
    pub fn wait_for_first_rotation(&self) {
        assert!(
            wait_until(30.0, || {
                let (code, body) = self.get("/status");
                code == 200 && !body.contains("\"last_rotation\":null")
            }),
            "no rotation finished: {}",
            self.logs()
        );
    }

    /// Its process ID (for /proc/PID/status and /proc/PID/fd).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILLs it (a crash at whatever instant it is at) and reaps it.
    pub fn sigkill(&mut self) {
        let _ = self.child.kill(); // std's kill is SIGKILL on Unix
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits up to `secs` for it to exit; its exit code, or `None` if
    /// it is still running (it is then killed).
    pub fn terminate(&mut self, secs: f64) -> Option<i32> {
        // SAFETY: kill(2) on our own child's PID.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let end = std::time::Instant::now() + std::time::Duration::from_secs_f64(secs);
        while std::time::Instant::now() < end {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        None
    }
}

impl Drop for HostDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        assert_no_secret(&self.logs());
    }
}
