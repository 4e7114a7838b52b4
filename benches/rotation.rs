//! The benchmark harness: how fast a rotation lands, how long the bot is down, and what
//! the sidecar costs, side by side with docker-compose and the plain docker CLI, all in
//! one run on the same engine. Runs the shipped binary (the static one in the image).
//!
//! One run measures the engine `DOCKER_HOST` names and writes its part of the document to
//! `--out FILE` (`--top` adds the document's own header, `--quick` takes few iterations,
//! `--only a,b` runs those sections). `scripts/bench.sh` is the documented entry point: it
//! runs this once per engine (`--engine 20.10|26.1|both`) and joins the parts into
//! `docs/BENCHMARKS.md` (a quick or partial run: `target/bench/BENCHMARKS.md`).

#[path = "../tests/support/mod.rs"]
mod support;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use support::api::{Behaviour, StandInApi};
use support::updates::{k8s_write, rename_over, write_in_place};
use support::{accepted, docker, free_port, host_bot, new_token, Scope, ENV_VAR, SCOPE_LABEL};

/// How many times each thing is measured.
struct Plan {
    quick: bool,
    detect: usize,
    swaps: usize,
    e2e: usize,
    idle_secs: u64,
    fleet: &'static [usize],
    /// `--parallel` values tried for each fleet size.
    parallel: &'static [usize],
    fleet_runs: usize,
    /// Revocations caught in a bot's log, and the idle window with many log streams.
    live: usize,
    live_idle_secs: u64,
    /// Rotations of a Swarm service.
    swarm: usize,
}

const DEBOUNCE: f64 = 0.3;
const PEER_LABEL: &str = "token-rotator-bench.peer";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1).cloned())
    };
    // `--only swap,e2e` (of detect, swap, e2e, footprint, fleet, live, proof, swarm).
    let only = value("--only");
    let runs = |section: &str| {
        only.as_deref()
            .map_or(true, |o| o.split(',').any(|x| x == section))
    };
    let out = value("--out")
        .map(PathBuf::from)
        .unwrap_or_else(|| support_root().join(format!("target/bench/part-{}.md", engine_label())));
    let plan = if quick {
        Plan {
            quick,
            detect: 5,
            swaps: 3,
            e2e: 3,
            idle_secs: 5,
            fleet: &[1, 5],
            parallel: &[1, 5],
            fleet_runs: 1,
            live: 3,
            live_idle_secs: 5,
            swarm: 1,
        }
    } else {
        Plan {
            quick,
            detect: 50,
            swaps: 30,
            e2e: 20,
            idle_secs: 60,
            fleet: &[1, 10, 50],
            parallel: &[1, 5, 10],
            fleet_runs: 3,
            live: 20,
            live_idle_secs: 30,
            swarm: 5,
        }
    };
    let bin = shipped_binary();
    let mut md = if args.iter().any(|a| a == "--top") {
        header(&plan)
    } else {
        String::new()
    };
    md += &part_header();
    let mut verdicts = Vec::new();
    if runs("detect") {
        eprintln!("bench: detection latency");
        md += &detection(&plan, &bin, &mut verdicts);
    }
    if runs("swap") {
        eprintln!("bench: swap time and downtime against the peers");
        md += &swaps(&plan, &bin, &mut verdicts);
    }
    if runs("e2e") {
        eprintln!("bench: end to end");
        md += &end_to_end(&plan, &bin, &mut verdicts);
    }
    if runs("footprint") {
        eprintln!("bench: footprint");
        md += &footprint(&plan, &bin, &mut verdicts);
    }
    if runs("fleet") {
        eprintln!("bench: fleet scaling");
        md += &fleet(&plan, &bin, &mut verdicts);
    }
    if runs("live") {
        eprintln!("bench: live token watch");
        md += &live(&plan, &bin, &mut verdicts);
    }
    if runs("proof") {
        eprintln!("bench: start-first downtime and the canary's cost");
        md += &proof(&plan, &bin, &mut verdicts);
    }
    if runs("swarm") {
        eprintln!("bench: a Swarm service rotation");
        md += &swarm(&plan, &bin);
    }
    let _ = write!(
        md,
        "\n## Targets on Engine {}\n\n| target | measured | |\n|---|---|---|\n",
        engine_label()
    );
    for (target, measured, met) in &verdicts {
        let _ = writeln!(
            md,
            "| {target} | {measured} | {} |",
            if *met { "met" } else { "**missed**" }
        );
    }
    md.push('\n');
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    std::fs::write(&out, &md).unwrap();
    println!("{md}");
    eprintln!("bench: wrote {}", out.display());
}

/// The engine's API version, as `(major, minor)`.
fn api_of_engine() -> (u32, u32) {
    let v = sh("docker", &["version", "--format", "{{.Server.APIVersion}}"]);
    let (a, b) = v.split_once('.').unwrap_or(("1", "41"));
    (a.parse().unwrap_or(1), b.parse().unwrap_or(41))
}

/// The engine's version, as the document names it (`20.10.24+dfsg1` is `20.10`).
fn engine_label() -> String {
    let v = sh("docker", &["version", "--format", "{{.Server.Version}}"]);
    v.split('.').take(2).collect::<Vec<_>>().join(".")
}

fn support_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The static release binary the image ships (built with the image).
fn shipped_binary() -> PathBuf {
    support::rotator_image();
    let bin = support_root().join("target/image/x86_64-unknown-linux-gnu/release/token-rotator");
    assert!(bin.exists(), "{} was not built", bin.display());
    bin
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Median and p95 (nearest rank) of samples.
struct Stats {
    median: f64,
    p95: f64,
}

fn stats(samples: &[f64]) -> Stats {
    assert!(!samples.is_empty(), "no samples");
    let mut s = samples.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = s.len();
    let median = if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    };
    let rank = ((0.95 * n as f64).ceil() as usize).clamp(1, n) - 1;
    Stats {
        median,
        p95: s[rank],
    }
}

fn ms(secs: f64) -> String {
    let m = secs * 1000.0;
    if m.abs() < 10.0 {
        format!("{m:.1} ms")
    } else {
        format!("{m:.0} ms")
    }
}

fn cell(samples: &[f64]) -> String {
    let s = stats(samples);
    format!("{} / {}", ms(s.median), ms(s.p95))
}

fn sh(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|_| "not found".into())
}

fn header(plan: &Plan) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name\t: ").map(str::to_string))
        .unwrap_or_else(|| "unknown CPU".into());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .nth(1)
        .and_then(|k| k.parse::<u64>().ok())
        .map(|kb| format!("{:.0} GiB", kb as f64 / 1024.0 / 1024.0))
        .unwrap_or_default();
    let mut md = String::from("# Benchmarks\n\n");
    let _ = writeln!(
        md,
        "Written by `scripts/bench.sh`{} on {} (UTC).\n",
        if plan.quick {
            " --quick (few iterations: a smoke run, not figures to quote)"
        } else {
            ""
        },
        humantime::format_rfc3339_seconds(SystemTime::now())
    );
    let _ = writeln!(
        md,
        "- Machine: {} cores, {cpu}, {mem}; {}",
        sh("nproc", &[]),
        sh("uname", &["-sr"])
    );
    let _ = writeln!(
        md,
        "- token-rotator: the static release binary from the image, run on the host\n\
         - Each figure is `median / p95` over the runs; peers are interleaved with ours run by run.\n\
         - One part per engine: the machine's own, and a private Docker 26.1 from Debian trixie \
         beside it (`scripts/engine26.sh`), each with Compose v1 and v2 as peers. The summary of \
         every target is at the end of each part.\n"
    );
    md
}

/// The heading of one engine's part: which engine and which compose tools.
fn part_header() -> String {
    let first_line =
        |cmd: &str, args: &[&str]| sh(cmd, args).lines().next().unwrap_or_default().to_string();
    format!(
        "# On Docker Engine {} (API {})\n\n- Peers: docker CLI {}, docker-compose {} (v1), Compose {} (v2)\n\n",
        sh("docker", &["version", "--format", "{{.Server.Version}}"]),
        sh("docker", &["version", "--format", "{{.Server.APIVersion}}"]),
        sh("docker", &["version", "--format", "{{.Client.Version}}"]),
        first_line("docker-compose", &["version", "--short"]),
        first_line(&compose_v2(), &["version", "--short"]),
    )
}

/// A daemon (`run`) on the host, logging JSON at debug level to a file.
struct Daemon {
    child: Child,
    log: PathBuf,
    /// Its `--listen` address (`/status`, `/metrics`).
    listen: String,
    _dir: tempfile::TempDir,
}

impl Daemon {
    /// Watches `file` for `target`, validating against `api`; `extra` flags follow.
    fn start(bin: &Path, file: &Path, target: &str, api: &str, extra: &[&str]) -> Daemon {
        Daemon::start_logging(bin, file, target, api, extra, "debug")
    }

    /// As [`Daemon::start`], with `TOKEN_ROTATOR_LOG=filter`.
    fn start_logging(
        bin: &Path,
        file: &Path,
        target: &str,
        api: &str,
        extra: &[&str],
        filter: &str,
    ) -> Daemon {
        let args = [
            &[
                "--secret-file",
                file.to_str().unwrap(),
                "--container",
                target,
            ][..],
            &["--api-base-url", api],
            extra,
        ]
        .concat();
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let listen = format!("127.0.0.1:{}", free_port());
        let mut cmd = Command::new(bin);
        for (k, _) in std::env::vars() {
            if k.starts_with("TOKEN_ROTATOR_") {
                cmd.env_remove(k);
            }
        }
        let child = cmd
            .args(["--log-format", "json", "run"])
            .args(&args)
            .args(["--listen", &listen])
            .env("TOKEN_ROTATOR_LOG", filter)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let d = Daemon {
            child,
            log,
            listen,
            _dir: dir,
        };
        d.wait_for(0, |m, _| m == "rotation finished"); // the reconcile on start
        d
    }

    fn lines(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits for the first log line from index `from` on that `pred` accepts (message,
    /// the whole line); returns its index and timestamp.
    fn wait_for(&self, from: usize, pred: impl Fn(&str, &Value) -> bool) -> (usize, f64) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let lines = self.lines();
            for (i, v) in lines.iter().enumerate().skip(from) {
                // The JSON format flattens an event's fields next to its message.
                let msg = v["message"].as_str().unwrap_or_default();
                if pred(msg, v) {
                    return (i, log_time(v));
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "daemon log never showed what was awaited; tail:\n{}",
                self.tail()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The last 20 lines of its log, for a failure message.
    fn tail(&self) -> String {
        let lines = self.lines();
        let from = lines.len().saturating_sub(20);
        lines[from..]
            .iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `GET path` on its endpoints: the body, empty if it did not answer 200.
    fn get(&self, path: &str) -> String {
        match support::http_get(&self.listen, path) {
            (200, body) => body,
            _ => String::new(),
        }
    }

    /// A series' value on `/metrics`.
    fn metric(&self, series: &str) -> Option<f64> {
        self.get("/metrics").lines().find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
    }

    /// `/status` as JSON (`null` if it did not answer).
    fn status(&self) -> Value {
        serde_json::from_str(&self.get("/status")).unwrap_or(Value::Null)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn log_time(v: &Value) -> f64 {
    let t = humantime::parse_rfc3339(v["timestamp"].as_str().unwrap()).unwrap();
    t.duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

fn is(what: &'static str) -> impl Fn(&str, &Value) -> bool {
    move |m, _| m == what
}

// ---------------------------------------------------------------------------------------
// 1. Detection latency

#[derive(Clone, Copy, PartialEq)]
enum Style {
    InPlace,
    Rename,
    K8s,
}

impl Style {
    /// Writes generation `generation` of the secret `token` in `dir` this way.
    fn update(self, dir: &Path, generation: usize, t: &str) {
        match self {
            Style::InPlace => write_in_place(&dir.join("token"), t),
            Style::Rename => rename_over(&dir.join("token"), t),
            Style::K8s => k8s_write(dir, generation, t),
        }
    }

    fn key(self) -> &'static str {
        match self {
            Style::InPlace => "inplace",
            Style::Rename => "rename",
            Style::K8s => "k8s",
        }
    }
}

fn detection(plan: &Plan, bin: &Path, verdicts: &mut Vec<(String, String, bool)>) -> String {
    let scope = Scope::new("bench-detect");
    let api = StandInApi::start();
    let old = accepted(&api);
    let name = host_bot(&scope, "bot", &old, &api.base_url(), &[]);
    let base = api.base_url();
    let mut md = format!(
        "## 1. Detection latency\n\n\
         From the update being in place (the write closed, the rename or the `..data` swap \
         returned) to the daemon reading the token to start a rotation, over {} updates per \
         style, each a new token the stand-in API refuses (so nothing is swapped). Each of \
         these updates is complete when its event arrives (a close after writing, a rename \
         onto the file or onto `..data`), so it is read at once: the `--debounce` quiet \
         period (default {DEBOUNCE} s) is only sat out after an event of an update still in \
         progress (a truncation, a deletion) that no such completion follows. *First \
         event* is when inotify's first event on the secret reached the daemon (below zero: \
         it was there before the writer's call had returned to the writer).\n\n\
         | update style | first event | token read |\n|---|---|---|\n",
        plan.detect
    );
    let mut all = Vec::new();
    for (label, style) in [
        ("in-place write", Style::InPlace),
        ("temp file renamed over it", Style::Rename),
        ("Kubernetes `..data` swap", Style::K8s),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        style.update(dir.path(), 0, &old);
        let debounce = DEBOUNCE.to_string();
        let extra = ["--debounce", &debounce, "--validate-deadline", "0"];
        let d = Daemon::start_logging(
            bin,
            &file,
            &name,
            &base,
            &extra,
            "debug,token_rotator::daemon::watch=trace",
        );
        let (mut first, mut read) = (Vec::new(), Vec::new());
        for i in 1..=plan.detect {
            let t = new_token();
            api.set(&t, Behaviour::Revoked);
            let from = d.lines().len();
            style.update(dir.path(), i, &t);
            let placed = now();
            let (_, event) = d.wait_for(from, |m, _| m.starts_with("secret file "));
            let (_, start) = d.wait_for(from, is("read token"));
            d.wait_for(from, is("rotation finished"));
            first.push(event - placed);
            read.push(start - placed);
            std::thread::sleep(Duration::from_millis(50));
        }
        all.extend_from_slice(&read);
        let _ = writeln!(md, "| {label} | {} | {} |", cell(&first), cell(&read));
    }
    let m = stats(&all).median;
    verdicts.push((
        format!(
            "detection under 50 ms at the median, no fixed quiet period ({})",
            engine_label()
        ),
        ms(m),
        m < 0.050,
    ));
    md.push('\n');
    md
}

// ---------------------------------------------------------------------------------------
// 2. Swap time and downtime against docker-compose and the docker CLI

/// One engine event of a benchmark container.
struct Event {
    action: String,
    peer: String,
    at: f64,
}

fn events(scope: &Scope, since: f64, until: f64) -> Vec<Event> {
    let filter = format!("label={SCOPE_LABEL}={}", scope.prefix);
    let out = docker(&[
        "events",
        "--since",
        &format!("{since:.6}"),
        "--until",
        &format!("{until:.6}"),
        "--filter",
        "type=container",
        "--filter",
        &filter,
        "--format",
        "{{json .}}",
    ]);
    out.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| Event {
            action: v["Action"].as_str().unwrap_or_default().to_string(),
            peer: v["Actor"]["Attributes"][PEER_LABEL]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            at: v["timeNano"].as_f64().unwrap_or_default() / 1e9,
        })
        .collect()
}

/// One timed swap: when the command was launched and when it returned.
struct Run {
    peer: &'static str,
    launched: f64,
    returned: f64,
}

struct Peers {
    scope: Scope,
    secret: PathBuf,
    ours: String,
    cli: String,
    /// Compose v1 (`docker-compose`) and v2 (`TR_COMPOSE`): a project each.
    composes: Vec<ComposePeer>,
}

/// A compose tool as a peer: its binary, its project and the directory of its file.
struct ComposePeer {
    peer: &'static str,
    bin: String,
    dir: tempfile::TempDir,
    project: String,
}

impl ComposePeer {
    /// `up -d` after writing the env file with `token`.
    fn up(&self, token: &str) {
        std::fs::write(
            self.dir.path().join("bot.env"),
            format!("{ENV_VAR}={token}\n"),
        )
        .unwrap();
        let out = Command::new(&self.bin)
            .args(["-p", &self.project, "up", "-d"])
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|e| panic!("{} cannot run: {e}", self.bin));
        assert!(
            out.status.success(),
            "{} up failed: {}",
            self.bin,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Compose v2's binary (`TR_COMPOSE`, which `scripts/bench.sh` sets from
/// `scripts/engine26.sh env`).
fn compose_v2() -> String {
    std::env::var("TR_COMPOSE")
        .expect("TR_COMPOSE names Compose v2's binary: run the bench through scripts/bench.sh")
}

fn peer_labels(scope: &Scope, peer: &str) -> [String; 2] {
    [
        format!("{SCOPE_LABEL}={}", scope.prefix),
        format!("{PEER_LABEL}={peer}"),
    ]
}

impl Peers {
    fn new() -> Peers {
        let scope = Scope::new("bench-swap");
        let first = new_token();
        let env = format!("{ENV_VAR}={first}");
        let run = |peer: &str| {
            let label = format!("{PEER_LABEL}={peer}");
            scope.run(peer, &["--label", &label, "-e", &env, support::bot_image()])
        };
        let ours = run("ours");
        let cli = run("cli");
        let secret = scope.secret_file(&first);
        // docker-compose 1.29 cannot recreate a container on Engine 25+ (API 1.44): it reads
        // the image's `ContainerConfig`, which those engines no longer return.
        let v1_works = api_of_engine() < (1, 44);
        let composes = [("compose", "docker-compose".to_string()), ("compose2", compose_v2())]
            .into_iter()
            .filter(|(peer, _)| v1_works || *peer != "compose")
            .map(|(peer, bin)| {
                let dir = tempfile::tempdir().unwrap();
                std::fs::write(
                    dir.path().join("docker-compose.yml"),
                    format!(
                        "version: \"2.4\"\nservices:\n  bot:\n    image: {}\n    env_file: bot.env\n    \
                         network_mode: bridge\n    labels:\n      {SCOPE_LABEL}: \"{}\"\n      {PEER_LABEL}: {peer}\n",
                        support::bot_image(),
                        scope.prefix
                    ),
                )
                .unwrap();
                ComposePeer {
                    peer,
                    bin,
                    dir,
                    project: scope.name(peer),
                }
            })
            .collect();
        let peers = Peers {
            scope,
            secret,
            ours,
            cli,
            composes,
        };
        for c in &peers.composes {
            c.up(&first);
        }
        peers
    }

    /// The plain CLI sequence an operator would script; the token goes by env, not argv.
    fn cli_swap(&self, token: &str) {
        let [scope_label, peer_label] = peer_labels(&self.scope, "cli");
        let script = r#"set -e
docker create --name "$N-next" --label "$L1" --label "$L2" -e "$VAR" "$IMAGE" >/dev/null
docker stop "$N" >/dev/null
docker rename "$N" "$N-prev"
docker rename "$N-next" "$N"
docker start "$N" >/dev/null
docker rm "$N-prev" >/dev/null
"#;
        let ok = Command::new("bash")
            .args(["-c", script])
            .env("N", &self.cli)
            .env("L1", scope_label)
            .env("L2", peer_label)
            .env("VAR", ENV_VAR)
            .env(ENV_VAR, token)
            .env("IMAGE", support::bot_image())
            .status()
            .unwrap()
            .success();
        assert!(ok, "the docker CLI sequence failed");
    }

    fn ours_swap(&self, bin: &Path, token: &str) {
        self.ours_swap_via(bin, token, None)
    }

    /// Ours, with `DOCKER_HOST` set to `host` if given.
    fn ours_swap_via(&self, bin: &Path, token: &str, host: Option<&str>) {
        write_in_place(&self.secret, token);
        let mut cmd = Command::new(bin);
        if let Some(h) = host {
            cmd.env("DOCKER_HOST", h);
        }
        let out = cmd
            .args(["rotate", "--secret-file", self.secret.to_str().unwrap()])
            .args([
                "--container",
                &self.ours,
                "--validate",
                "none",
                "--settle",
                "0",
            ])
            .env("TOKEN_ROTATOR_LOG", "error")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "token-rotator rotate failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }

    fn swap(&self, bin: &Path, peer: &'static str) -> Run {
        let token = new_token();
        let launched = now();
        match peer {
            "ours" => self.ours_swap(bin, &token),
            "cli" => self.cli_swap(&token),
            _ => self
                .composes
                .iter()
                .find(|c| c.peer == peer)
                .expect("a compose peer")
                .up(&token),
        }
        Run {
            peer,
            launched,
            returned: now(),
        }
    }

    /// The engine alone, on a container of the same image: `POST .../start` of a created
    /// one (request to its `start` event), then `POST .../stop` of it running (request to
    /// its `stop` event, and of that the part after the process died: `die` to `stop`).
    fn floor(&self) -> Floor {
        let name = self.scope.name("floor");
        let [scope_label, peer_label] = peer_labels(&self.scope, "floor");
        let l = ["--label", &scope_label, "--label", &peer_label];
        docker(
            &[
                &["create", "--name", &name][..],
                &l,
                &[support::bot_image()],
            ]
            .concat(),
        );
        let sock = support::engine_socket();
        let post = |verb: &str| {
            let url = format!("http://localhost/containers/{name}/{verb}");
            let launched = now();
            let ok = Command::new("curl")
                .args([
                    "-sf",
                    "--unix-socket",
                    sock.to_str().unwrap(),
                    "-X",
                    "POST",
                    &url,
                ])
                .status()
                .expect("curl")
                .success();
            assert!(ok, "{verb} {name} failed");
            launched
        };
        let started = post("start");
        std::thread::sleep(Duration::from_millis(300));
        let stopped = post("stop");
        std::thread::sleep(Duration::from_millis(100));
        let evs = events(&self.scope, started, now());
        let at = |a: &str, after: f64| {
            evs.iter()
                .find(|e| e.peer == "floor" && e.action == a && e.at >= after)
                .unwrap_or_else(|| panic!("no {a} event of the floor container"))
                .at
        };
        docker(&["rm", "-f", &name]);
        let stop = at("stop", stopped);
        Floor {
            start: at("start", started) - started,
            stop: stop - stopped,
            after_exit: stop - at("die", stopped),
        }
    }
}

/// The engine's own times for one container of the bot's image, in seconds.
struct Floor {
    start: f64,
    stop: f64,
    /// Of the stop: from the process's exit (`die`) to the `stop` event.
    after_exit: f64,
}

/// Ours through a recording proxy in front of the engine's socket: when each request of a
/// rotation reached the proxy after launch, median over `runs` rotations, as a table.
fn request_profile(peers: &Peers, bin: &Path, runs: usize) -> String {
    let dir = tempfile::tempdir().unwrap();
    let proxy = support::proxy::EngineProxy::start(dir.path());
    let host = proxy.docker_host();
    let mut per_run: Vec<Vec<(f64, String)>> = Vec::new();
    for _ in 0..runs {
        let token = new_token();
        let from = proxy.timed_requests().len();
        let launched = now();
        peers.ours_swap_via(bin, &token, Some(&host));
        let reqs = proxy.timed_requests()[from..]
            .iter()
            .map(|(t, r)| (t - launched, r.clone()))
            .collect();
        per_run.push(reqs);
        std::thread::sleep(Duration::from_millis(200));
    }
    let n = per_run.iter().map(Vec::len).min().unwrap_or(0);
    let general = |r: &str| {
        let r = r.replace(&peers.ours, "BOT");
        let path = r.split('?').next().unwrap_or_default().to_string();
        let mut out = String::new();
        for part in path.split('/') {
            if !out.is_empty() || part.is_empty() {
                out.push('/');
            }
            let id = part.len() == 64 && part.chars().all(|c| c.is_ascii_hexdigit());
            out.push_str(if id { "ID" } else { part });
        }
        let filter = r.split_once("filters=").map(|(_, f)| {
            f.replace("%22", "\"")
                .replace("%7B", "{")
                .replace("%7D", "}")
                .replace("%5B", "[")
                .replace("%5D", "]")
                .replace("%3A", ":")
                .replace("%3D", "=")
                .replace("%2C", ",")
        });
        match filter {
            Some(f) => format!(
                "`{}` {}",
                out.trim_start_matches("//"),
                f.split('&').next().unwrap_or_default()
            ),
            None => format!("`{}`", out.trim_start_matches("//")),
        }
    };
    let mut md = format!(
        "Where ours spends its time: each request of one `rotate` to the engine, in order, and \
         when it reached a recording proxy in front of the socket after launch (median of {runs} \
         rotations; the proxy adds well under a millisecond per request). The gap before a \
         request is the previous one's answer and our work on it.\n\n\
         | # | request | sent at | gap |\n|---|---|---|---|\n"
    );
    let mut prev = 0.0;
    for i in 0..n {
        let at: Vec<f64> = per_run.iter().map(|r| r[i].0).collect();
        let m = stats(&at).median;
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            i + 1,
            general(&per_run[0][i].1).replace('|', "\\|"),
            ms(m),
            ms(m - prev)
        );
        prev = m;
    }
    md.push('\n');
    md
}

/// One peer's samples, in seconds.
#[derive(Default)]
struct Samples {
    peer: &'static str,
    swap: Vec<f64>,
    down: Vec<f64>,
    overhead: Vec<f64>,
    command: Vec<f64>,
    /// Per engine action, when it first happened after launch.
    timeline: std::collections::BTreeMap<String, Vec<f64>>,
}

/// Engine actions in the order a swap makes them, for the timeline table.
const ACTIONS: [&str; 7] = [
    "create", "rename", "kill", "die", "stop", "start", "destroy",
];

/// Per peer: swap time (launch to the new container's start event), downtime (the old
/// one's die event to the new one's start), and the client's own overhead (launch to the
/// first engine event).
fn swaps(plan: &Plan, bin: &Path, verdicts: &mut Vec<(String, String, bool)>) -> String {
    let peers = Peers::new();
    let order: Vec<&'static str> = ["ours", "cli"]
        .into_iter()
        .chain(peers.composes.iter().map(|c| c.peer))
        .collect();
    let mut runs = Vec::new();
    let (mut evs, mut floors) = (Vec::new(), Vec::new());
    for i in 0..plan.swaps {
        for k in 0..order.len() {
            // Rotated each round, so no peer always goes first.
            let run = peers.swap(bin, order[(i + k) % order.len()]);
            // Read right away: the engine keeps only its last 256 events.
            std::thread::sleep(Duration::from_millis(100));
            evs.extend(events(&peers.scope, run.launched, now()));
            runs.push(run);
            std::thread::sleep(Duration::from_millis(100));
        }
        floors.push(peers.floor());
    }
    let mut table: Vec<Samples> = order
        .iter()
        .map(|p| Samples {
            peer: p,
            ..Samples::default()
        })
        .collect();
    for run in &runs {
        let mine: Vec<&Event> = evs
            .iter()
            .filter(|e| e.peer == run.peer && e.at >= run.launched && e.at <= run.returned + 0.05)
            .collect();
        let first = mine.iter().map(|e| e.at).fold(f64::MAX, f64::min);
        let at = |a: &str| mine.iter().find(|e| e.action == a).map(|e| e.at);
        let (Some(die), Some(start)) = (at("die"), at("start")) else {
            panic!("{}: no die/start events in its window", run.peer);
        };
        let row = table.iter_mut().find(|r| r.peer == run.peer).unwrap();
        row.swap.push(start - run.launched);
        row.down.push(start - die);
        row.overhead.push(first - run.launched);
        row.command.push(run.returned - run.launched);
        for action in ACTIONS {
            if let Some(t) = at(action) {
                let t = t - run.launched;
                row.timeline.entry(action.to_string()).or_default().push(t);
            }
        }
    }
    let row = |p: &str| table.iter().find(|r| r.peer == p).unwrap();
    let med = |v: &[f64]| stats(v).median;
    let mut md = format!(
        "## 2. Swap time and downtime\n\n\
         The same small container (`FROM scratch`, exits at once on SIGTERM), {} swaps per \
         peer, interleaved. *Swap*: from launching the command to the engine's `start` event \
         of the new container. *Downtime*: from the old container's `die` event to that \
         `start`: no container of that name runs in between. *Client overhead*: launch to the \
         peer's first engine event on the bot's containers (for ours, its `create` of the \
         replacement; its lock marker carries no label of the bot's and is not counted). \
         *Command*: until the command returned (ours then removes the old container; compose \
         and the CLI script too). Ours runs `rotate --validate none --settle 0` (stop-first): \
         validation and verification are measured apart, in section 3. Ratios are ours over \
         the peer's, medians.\n\n\
         | peer | swap | downtime | client overhead | command | swap ratio | downtime ratio | command ratio |\n\
         |---|---|---|---|---|---|---|---|\n",
        plan.swaps
    );
    let names = [
        ("ours", "token-rotator `rotate`"),
        ("cli", "docker CLI: create, stop, rename, rename, start, rm"),
        (
            "compose",
            "Compose v1: `docker-compose up -d` after editing the env file",
        ),
        (
            "compose2",
            "Compose v2: `docker compose up -d` after editing the env file",
        ),
    ];
    let ratio = |p: &str, f: fn(&Samples) -> &Vec<f64>| med(f(row("ours"))) / med(f(row(p)));
    for (p, label) in names {
        if !order.contains(&p) {
            let _ = writeln!(
                md,
                "| {label} | cannot recreate a container on this engine (docker-compose 1.29 reads the image's `ContainerConfig`, which Engine 25+ no longer returns: `KeyError: 'ContainerConfig'`) | | | | | | |"
            );
            continue;
        }
        let r = row(p);
        let cell_ratio = |f: fn(&Samples) -> &Vec<f64>| {
            if p == "ours" {
                "—".to_string()
            } else {
                format!("{:.2}", ratio(p, f))
            }
        };
        let _ = writeln!(
            md,
            "| {label} | {} | {} | {} | {} | {} | {} | {} |",
            cell(&r.swap),
            cell(&r.down),
            cell(&r.overhead),
            cell(&r.command),
            cell_ratio(|r| &r.swap),
            cell_ratio(|r| &r.down),
            cell_ratio(|r| &r.command),
        );
    }
    let starts: Vec<f64> = floors.iter().map(|f| f.start).collect();
    let stops: Vec<f64> = floors.iter().map(|f| f.stop).collect();
    let after_exit: Vec<f64> = floors.iter().map(|f| f.after_exit).collect();
    let floor_down: Vec<f64> = floors.iter().map(|f| f.after_exit + f.start).collect();
    let _ = writeln!(
        md,
        "| *the engine's floor: its bare stop and start* | — | {} | — | — | — | — | — |",
        cell(&floor_down)
    );
    let _ = writeln!(
        md,
        "\nThe engine's floor, measured in the same run on a container of the same image \
         (requests by curl on the socket, to the engine's events): a bare `start` of a \
         created container takes **{}** to its `start` event; a bare `stop` of a running one \
         takes {} to its `stop` event, of which {} come after the process died (`die` to \
         `stop`: the engine's clean-up, unmounting and detaching the network). A stop-first \
         swap cannot be down for less than that clean-up plus a start (the floor row): the \
         engine releases the old container's ports and addresses only in that clean-up, and \
         answers the stop (and any wait for it) only after it. Starting the replacement \
         at the old process's `die` instead, during the clean-up, was tried: on this 2-core \
         machine with fuse-overlayfs it was slower (the two contend for the engine's CPU; \
         8 interleaved swaps of a bridge-network bot: 400 ms median downtime against \
         285 ms waiting for the stop), so ours waits for the stop like every peer.",
        cell(&starts),
        cell(&stops),
        cell(&after_exit)
    );
    let (down, bare) = (med(&row("ours").down), med(&starts));
    let (vs_cli_down, vs_bare) = (ratio("cli", |r| &r.down), down / bare);
    let (over, cli_over) = (med(&row("ours").overhead), med(&row("cli").overhead));
    let vs_v2_cmd = ratio("compose2", |r| &r.command);
    let (down_v2, vs_cli) = (med(&row("compose2").down), ratio("cli", |r| &r.swap));
    let e = engine_label();
    verdicts.extend([
        (
            format!("client overhead at most the docker CLI's ({e})"),
            format!("{} vs {}", ms(over), ms(cli_over)),
            over <= cli_over,
        ),
        (
            format!("stop-first downtime at most 0.8x the docker CLI sequence's ({e})"),
            format!(
                "{vs_cli_down:.2}x ({} vs {})",
                ms(down),
                ms(med(&row("cli").down))
            ),
            vs_cli_down <= 0.8,
        ),
        (
            format!("stop-first downtime within 1.15x the engine's bare start ({e})"),
            format!("{vs_bare:.2}x ({} vs {})", ms(down), ms(bare)),
            vs_bare <= 1.15,
        ),
        (
            format!("`rotate` command time at most 0.8x Compose v2's ({e})"),
            format!(
                "{vs_v2_cmd:.2}x ({} vs {})",
                ms(med(&row("ours").command)),
                ms(med(&row("compose2").command))
            ),
            vs_v2_cmd <= 0.8,
        ),
        (
            format!("stop-first downtime at most Compose v2's ({e})"),
            format!("{} vs {}", ms(down), ms(down_v2)),
            down <= down_v2,
        ),
        (
            format!("swap at most 0.8x the docker CLI sequence ({e})"),
            format!("{vs_cli:.2}x"),
            vs_cli <= 0.8,
        ),
    ]);
    if order.contains(&"compose") {
        let vs_compose = ratio("compose", |r| &r.swap);
        verdicts.push((
            format!("swap at most 0.4x Compose v1 ({e})"),
            format!("{vs_compose:.2}x"),
            vs_compose <= 0.4,
        ));
    }
    md.push_str(
        "\nWhat bounds it: the median time after launch at which each engine action first \
         happened. The engine's own `start` of the replacement is most of every peer's swap; \
         before it, each peer's own work shows as the time to its first action.\n\n| peer |",
    );
    for a in ACTIONS {
        let _ = write!(md, " {a} |");
    }
    md.push_str("\n|---|");
    md.push_str(&"---|".repeat(ACTIONS.len()));
    md.push('\n');
    for (p, label) in names.iter().filter(|(p, _)| order.contains(p)) {
        let _ = write!(md, "| {label} |");
        for a in ACTIONS {
            let _ = match row(p).timeline.get(a) {
                Some(v) => write!(md, " {} |", ms(stats(v).median)),
                None => write!(md, " — |"),
            };
        }
        md.push('\n');
    }
    md.push('\n');
    md += &request_profile(&peers, bin, if plan.quick { 2 } else { 10 });
    md
}

// ---------------------------------------------------------------------------------------
// 3. End to end

fn end_to_end(plan: &Plan, bin: &Path, verdicts: &mut Vec<(String, String, bool)>) -> String {
    let scope = Scope::new("bench-e2e");
    let api = StandInApi::start();
    let base = api.base_url();
    let extra = ["--verify-exec", "/fake-bot check", "--settle", "0"];
    // One bot and one daemon per update style, the styles interleaved rotation by rotation.
    struct Lane {
        label: &'static str,
        style: Style,
        dir: tempfile::TempDir,
        d: Daemon,
        phases: [Vec<f64>; 6],
    }
    let mut lanes: Vec<Lane> = [
        ("a new token renamed into place", Style::Rename),
        ("a Kubernetes `..data` swap", Style::K8s),
    ]
    .into_iter()
    .map(|(label, style)| {
        let old = accepted(&api);
        let name = host_bot(&scope, &format!("bot-{}", style.key()), &old, &base, &[]);
        let dir = tempfile::tempdir().unwrap();
        style.update(dir.path(), 0, &old);
        let d = Daemon::start(bin, &dir.path().join("token"), &name, &base, &extra);
        Lane {
            label,
            style,
            dir,
            d,
            phases: Default::default(),
        }
    })
    .collect();
    for i in 1..=plan.e2e {
        for lane in &mut lanes {
            let t = accepted(&api);
            let d = &lane.d;
            let from = d.lines().len();
            lane.style.update(lane.dir.path(), i, &t);
            let placed = now();
            let (_, read) = d.wait_for(from, is("read token"));
            let (_, valid) = d.wait_for(from, |_, f| f["verdict"].is_string());
            let (_, started) = d.wait_for(from, is("replacement started, verifying"));
            let (_, verified) = d.wait_for(from, |m, _| m.starts_with("swapped "));
            let (_, done) = d.wait_for(from, is("rotation finished"));
            let times = [
                verified - placed,
                read - placed,
                valid - read,
                started - valid,
                verified - started,
                done - verified,
            ];
            for (v, t) in lane.phases.iter_mut().zip(times) {
                v.push(t);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let mut md = format!(
        "## 3. End to end\n\n\
         The daemon, a bot on the host network, the stand-in API on loopback: from a new \
         token in place (the writer's rename returned) to the new container verified \
         (running, env carries the token, `--verify-exec /fake-bot check` made a real request \
         with it), {} rotations per update style, the styles interleaved, `--settle 0` (a \
         settle period, default 2 s, adds exactly itself). A completed update is read at \
         once: the `--debounce` quiet period ({}) is only for an update still in progress.\n\n\
         | phase | {} | {} |\n|---|---|---|\n",
        plan.e2e,
        ms(DEBOUNCE),
        lanes[0].label,
        lanes[1].label
    );
    let rows = [
        "**file in place → verified**",
        "of which: noticing it, reading the token",
        "locking, inspecting, validating against the API",
        "swap (create … start)",
        "verification (exec check)",
        "after: removing the old container (not counted)",
    ];
    for (k, label) in rows.iter().enumerate() {
        let bold = |c: String| if k == 0 { format!("**{c}**") } else { c };
        let _ = writeln!(
            md,
            "| {label} | {} | {} |",
            bold(cell(&lanes[0].phases[k])),
            bold(cell(&lanes[1].phases[k]))
        );
    }
    for lane in &lanes {
        let m = stats(&lane.phases[0]).median;
        verdicts.push((
            format!(
                "{}: file update to verified container at most 300 ms ({})",
                lane.label,
                engine_label()
            ),
            ms(m),
            m <= 0.300,
        ));
    }
    md.push('\n');
    md
}

// ---------------------------------------------------------------------------------------
// 4. Footprint

/// A process's resident set now and at its peak, in KiB.
fn rss(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// CPU time (user + system) in seconds.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<u64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // Fields 14 and 15 of stat; 11 and 12 after the command name. Ticks of 1/100 s.
    (f[11] + f[12]) as f64 / 100.0
}

fn footprint(plan: &Plan, bin: &Path, verdicts: &mut Vec<(String, String, bool)>) -> String {
    let binary = std::fs::metadata(bin).unwrap().len();
    let image: u64 = docker(&["image", "inspect", "-f", "{{.Size}}", "token-rotator:dev"])
        .parse()
        .unwrap();
    let scope = Scope::new("bench-footprint");
    let api = StandInApi::start();
    let old = accepted(&api);
    // A bot that logs nothing once up (no API to call): the daemon follows its log, and a
    // chatty bot would wake it for every line.
    let env = format!("{ENV_VAR}={old}");
    let name = scope.run(
        "bot",
        &["--network", "host", "-e", &env, support::bot_image()],
    );
    let base = api.base_url();
    let file = scope.secret_file(&old);
    let d = Daemon::start(bin, &file, &name, &base, &["--settle", "0"]);
    // Idle is after start-up: tokio's blocking-pool thread that read the secret file ends
    // 10 s after that read (one wake-up, once), as in section 6.
    std::thread::sleep(Duration::from_secs(11));
    let pid = d.pid();
    let (cpu0, sw0) = (cpu_secs(pid), thread_switches(pid));
    std::thread::sleep(Duration::from_secs(plan.idle_secs));
    let (cpu1, sw1) = (cpu_secs(pid), thread_switches(pid));
    let (idle_rss, idle_peak) = rss(pid);
    // Per thread: a blocking-pool thread that ends in the window must not make the sum
    // of all threads go down.
    let wakeups = woke(&sw0, &sw1) as f64 / plan.idle_secs as f64;
    let from = d.lines().len();
    rename_over(&file, &accepted(&api));
    d.wait_for(from, is("rotation finished"));
    let (after_rss, peak) = rss(pid);
    let mib = |kb: u64| kb as f64 / 1024.0;
    let mb = |b: u64| b as f64 / 1e6;
    verdicts.push((
        "idle RSS under 8 MiB".into(),
        format!("{:.1} MiB", mib(idle_rss)),
        mib(idle_rss) < 8.0,
    ));
    verdicts.push((
        "no idle wake-ups".into(),
        format!("{wakeups:.2}/s"),
        wakeups == 0.0,
    ));
    verdicts.push((
        "image under 10 MB".into(),
        format!("{:.1} MB", mb(image)),
        mb(image) < 10.0,
    ));
    format!(
        "## 4. Footprint\n\n\
         | | |\n|---|---|\n\
         | static binary | {:.1} MB ({binary} bytes) |\n\
         | image `token-rotator:dev` | {:.1} MB ({image} bytes) |\n\
         | daemon RSS idle (over {} s from 11 s after start-up, `--listen` on, no polling) | {:.1} MiB (peak so far {:.1} MiB) |\n\
         | daemon CPU time over those {} s | {:.0} ms |\n\
         | daemon wake-ups while idle (context switches, all threads) | {wakeups:.2}/s |\n\
         | daemon peak RSS, through one rotation | {:.1} MiB (RSS after it {:.1} MiB) |\n\n",
        mb(binary),
        mb(image),
        plan.idle_secs,
        mib(idle_rss),
        mib(idle_peak),
        plan.idle_secs,
        (cpu1 - cpu0) * 1000.0,
        mib(peak),
        mib(after_rss)
    )
}

// ---------------------------------------------------------------------------------------
// 5. Fleet scaling

/// Runs a command to completion; returns wall seconds and its peak RSS in KiB.
fn measured(cmd: &mut Command) -> (bool, f64, u64) {
    let start = now();
    // Reaped by wait4 below, which std's wait cannot do while also returning rusage.
    #[allow(clippy::zombie_processes)]
    let child = cmd.spawn().unwrap();
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, whose pid std has not reaped.
    let r = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(r, child.id() as i32, "wait4");
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    (ok, now() - start, usage.ru_maxrss as u64)
}

/// The machine's CPU time so far, busy and total, in ticks (`/proc/stat`).
fn cpu_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = fields.iter().sum();
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

fn fleet(plan: &Plan, bin: &Path, verdicts: &mut Vec<(String, String, bool)>) -> String {
    let mut md = format!(
        "## 5. Fleet scaling\n\n\
         One `rotate` for N targets (validated once against the stand-in API, `--settle 0`), \
         swapped `--parallel P` at a time, median of {} run(s) per cell. Peak RSS is the \
         rotator's, from `wait4`.\n\n\
         *Machine CPU busy*: the share of both cores in use over the run (`/proc/stat`), \
         the engine's work included.\n\n\
         | targets | --parallel | wall time | per target | speed-up | peak RSS | machine CPU busy |\n|---|---|---|---|---|---|---|\n",
        plan.fleet_runs
    );
    let mut per_target = Vec::new();
    let mut speedups = Vec::new();
    for &n in plan.fleet {
        let scope = Scope::new(&format!("bench-fleet-{n}"));
        let api = StandInApi::start();
        let old = accepted(&api);
        let env = format!("{ENV_VAR}={old}");
        let names: Vec<String> = (0..n)
            .map(|i| scope.run(&format!("bot{i}"), &["-e", &env, support::bot_image()]))
            .collect();
        let mut serial = None;
        for &p in plan.parallel {
            if p > 1 && p > n {
                continue;
            }
            let (mut walls, mut peaks, mut busy) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..plan.fleet_runs {
                let (b0, t0) = cpu_ticks();
                let file = scope.secret_file(&accepted(&api));
                let mut cmd = Command::new(bin);
                cmd.args(["rotate", "--secret-file", file.to_str().unwrap()])
                    .args(["--api-base-url", &api.base_url(), "--settle", "0"])
                    .args(["--parallel", &p.to_string()])
                    .env("TOKEN_ROTATOR_LOG", "error")
                    .stdout(Stdio::null());
                for name in &names {
                    cmd.args(["--container", name]);
                }
                let (ok, wall, peak) = measured(&mut cmd);
                assert!(ok, "rotating {n} targets with --parallel {p} failed");
                let (b1, t1) = cpu_ticks();
                busy.push((b1 - b0) as f64 / (t1 - t0).max(1) as f64);
                walls.push(wall);
                peaks.push(peak as f64);
            }
            let wall = stats(&walls).median;
            let base = *serial.get_or_insert(wall);
            if p == 1 {
                per_target.push((n, wall / n as f64));
            }
            speedups.push((n, p, base / wall));
            let _ = writeln!(
                md,
                "| {n} | {p} | {} | {} | {:.2}x | {:.1} MiB | {:.0}% |",
                ms(wall),
                ms(wall / n as f64),
                base / wall,
                stats(&peaks).median / 1024.0,
                stats(&busy).median * 100.0
            );
        }
    }
    let (first, last) = (per_target[0], per_target[per_target.len() - 1]);
    verdicts.push((
        "fleet wall time growing no faster than linearly (one at a time)".into(),
        format!(
            "{} per target at {}, {} at {}",
            ms(first.1),
            first.0,
            ms(last.1),
            last.0
        ),
        last.1 <= first.1 * 1.1,
    ));
    md.push_str(
        "\nWhat bounds it: the machine's two cores (the last column). One swap at a time \
         keeps them about half busy: the engine's create, stop and start, and \
         fuse-overlayfs mounting each new container's file system, run in the engine's \
         processes while the rotator waits on them. Five at a time fill most of both cores, \
         so ten at a time gains little more. The rotator's own share is small (its peak RSS \
         grows by under 1 MiB from one to ten at a time).\n",
    );
    let largest = *plan.fleet.last().unwrap();
    let widest = *plan.parallel.last().unwrap();
    if let Some((_, _, x)) = speedups
        .iter()
        .find(|(n, p, _)| *n == largest && *p == widest)
    {
        verdicts.push((
            format!(
                "{largest} targets at least 4x faster with --parallel {widest} than one at a time"
            ),
            format!("{x:.2}x"),
            *x >= 4.0,
        ));
    }
    md.push('\n');
    md
}

// ---------------------------------------------------------------------------------------
// 8. A Swarm service

/// One rotation of a 2-replica service on a private single-node Swarm, split by the
/// rotator's JSON log into its own work (before the update, and from Swarm's completion to
/// the end) and Swarm's convergence (the update to Swarm's `completed`).
fn swarm(plan: &Plan, bin: &Path) -> String {
    let e = support::engine::PrivateEngine::start(&[support::bot_image()]);
    e.docker(&[
        "swarm",
        "init",
        "--advertise-addr",
        "127.0.0.1",
        "--default-addr-pool",
        "10.250.0.0/16",
    ]);
    let scope = Scope::new("bench-swarm");
    let api = StandInApi::start();
    let name = scope.name("svc");
    let env = format!("{ENV_VAR}={}", accepted(&api));
    let base = format!("ANTHROPIC_BASE_URL={}", api.base_url());
    e.docker(&[
        "service",
        "create",
        "-q",
        "--name",
        &name,
        "--replicas",
        "2",
        "--network",
        "host",
        "--update-delay",
        "0s",
        "--update-monitor",
        "1s",
        "-e",
        &env,
        "-e",
        &base,
        support::bot_image(),
        "serve",
    ]);
    let (mut ours, mut converge, mut total) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..plan.swarm {
        let file = scope.secret_file(&accepted(&api));
        let launched = now();
        let out = Command::new(bin)
            .args([
                "rotate",
                "--secret-file",
                file.to_str().unwrap(),
                "--service",
                &name,
            ])
            .args([
                "--api-base-url",
                &api.base_url(),
                "--settle",
                "0",
                "--log-format",
                "json",
            ])
            // The service's own progress lines are debug (the one info line per swap is
            // the pipeline's).
            .env(
                "TOKEN_ROTATOR_LOG",
                "info,token_rotator::targets::service=debug",
            )
            .env("DOCKER_HOST", &e.host)
            .output()
            .unwrap();
        let ended = now();
        assert!(
            out.status.success(),
            "swarm rotate failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<Value> = String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let at = |what: &str| {
            lines
                .iter()
                .find(|v| v["message"].as_str().is_some_and(|m| m.starts_with(what)))
                .map(log_time)
                .unwrap_or_else(|| panic!("no log line {what:?}"))
        };
        let (updated, completed) = (at("service updated"), at("Swarm completed the rollout"));
        ours.push((updated - launched) + (ended - completed));
        converge.push(completed - updated);
        total.push(ended - launched);
    }
    let mut md = format!(
        "## 8. A Swarm service\n\n\
         A 2-replica service of the bot on a private single-node Swarm (Docker 26.1), update \
         parallelism 1, delay 0, monitor 1 s, stop-first; `rotate --service --settle 0`, {} \
         rotation(s). Split by the rotator's own log: ours is the time before the service \
         update and from Swarm's `completed` to the end (the task checks and the label-only \
         commit), Swarm's is the rollout itself.\n\n\
         | measure | median / p95 |\n|---|---|\n",
        plan.swarm
    );
    let _ = writeln!(md, "| `rotate` wall time | {} |", cell(&total));
    let _ = writeln!(md, "| our work | {} |", cell(&ours));
    let _ = writeln!(md, "| Swarm's convergence | {} |\n", cell(&converge));
    md.push_str(
        "What bounds it: Swarm's rollout, one task at a time, each watched for the monitor \
         period before the next; our share is the update call, the task checks and the commit.\n\n",
    );
    md
}

// ---------------------------------------------------------------------------------------
// 7. Proof before cutover: start-first downtime and the canary's cost

/// The bot is never down with start-first: the replacement's `start` comes before the old
/// container's `die`. The canary's cost is the `rotate` time it adds.
fn proof(plan: &Plan, bin: &Path, verdicts: &mut Vec<(String, String, bool)>) -> String {
    let scope = Scope::new("bench-proof");
    let api = StandInApi::start();
    let label = format!("{PEER_LABEL}=start-first");
    let old = accepted(&api);
    let bot = support::host_bot(&scope, "bot", &old, &api.base_url(), &["--label", &label]);
    let rotate = |extra: &[&str]| {
        let file = scope.secret_file(&accepted(&api));
        let launched = now();
        let ok = Command::new(bin)
            .args(["rotate", "--secret-file", file.to_str().unwrap()])
            .args(["--api-base-url", &api.base_url(), "--settle", "0"])
            .args(["--container", &bot])
            .args(extra)
            .env("TOKEN_ROTATOR_LOG", "error")
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(ok, "rotate {extra:?} failed");
        (launched, now())
    };
    // Start-first: overlap of the two copies, from the engine's events.
    let mut overlaps = Vec::new();
    for _ in 0..plan.swaps {
        let (from, to) = rotate(&["--order", "start-first", "--verify-exec", "/fake-bot check"]);
        let ev = events(&scope, from, to + 0.5);
        let start = ev.iter().find(|e| e.action == "start").map(|e| e.at);
        let die = ev.iter().find(|e| e.action == "die").map(|e| e.at);
        if let (Some(start), Some(die)) = (start, die) {
            overlaps.push(die - start);
        }
    }
    let downtime: Vec<f64> = overlaps.iter().map(|o| (-o).max(0.0)).collect();
    // Canary cost: the same rotation with and without it, interleaved.
    let (mut plain, mut canary) = (Vec::new(), Vec::new());
    for i in 0..plan.swaps * 2 {
        let with = i % 2 == 1;
        let mut extra = vec!["--verify-exec", "/fake-bot check"];
        if with {
            extra.push("--canary");
        }
        let (a, b) = rotate(&extra);
        if with { &mut canary } else { &mut plain }.push(b - a);
    }
    let cost = stats(&canary).median - stats(&plain).median;
    let mut md = format!(
        "## 7. Start-first downtime and the canary's cost\n\n\
         One bot on the host network, `--settle 0`, `--verify-exec '/fake-bot check'` through \
         the stand-in API, {} rotations each. Start-first: the old container's `die` minus \
         the replacement's `start`, from the engine's events (positive: both ran, so no \
         downtime). Canary: `rotate` with and without `--canary` (a throwaway copy of the \
         image runs `/fake-bot check` with the new token first), interleaved.\n\n\
         | measure | median / p95 |\n|---|---|\n",
        plan.swaps
    );
    let _ = writeln!(
        md,
        "| start-first: both copies running (overlap) | {} |",
        cell(&overlaps)
    );
    let _ = writeln!(md, "| start-first: downtime | {} |", cell(&downtime));
    let _ = writeln!(md, "| `rotate` without the canary | {} |", cell(&plain));
    let _ = writeln!(md, "| `rotate` with the canary | {} |", cell(&canary));
    let _ = writeln!(md, "| the canary's cost | {} |\n", ms(cost));
    verdicts.push((
        "start-first downtime 0 (the replacement starts before the old container dies)".into(),
        format!(
            "{} of {} swaps overlapped; worst downtime {}",
            overlaps.iter().filter(|o| **o > 0.0).count(),
            overlaps.len(),
            ms(downtime.iter().cloned().fold(0.0, f64::max))
        ),
        !overlaps.is_empty() && overlaps.iter().all(|o| *o > 0.0),
    ));
    md
}

// ---------------------------------------------------------------------------------------
// 6. Live token watch

const SUSPECTED: &str = "a log line says the token was refused; confirming with a probe";
const CONFIRMED: &str = "the live token was rejected by the API";
const STREAMS: &str = "token_rotator_log_streams";

/// Polls `f` every 20 ms for up to `secs`; panics naming `what`, with the daemon's log.
fn wait(d: &Daemon, secs: f64, what: &str, mut f: impl FnMut() -> bool) {
    let end = std::time::Instant::now() + Duration::from_secs_f64(secs);
    while !f() {
        assert!(
            std::time::Instant::now() < end,
            "{what}: not within {secs} s; daemon log tail:\n{}",
            d.tail()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `docker logs --follow --timestamps` of one container (by ID), into a file: each line
/// stamped by the engine when it read it from the container. Ends when the container
/// stops; killed on drop if it has not.
struct Follow {
    child: Child,
    out: PathBuf,
}

impl Follow {
    fn start(dir: &Path, id: &str, since: f64) -> Follow {
        let out = dir.join(format!("logs-{}", &id[..12]));
        let child = Command::new("docker")
            .args(["logs", "--follow", "--timestamps"])
            .args(["--since", &format!("{since:.6}"), id])
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker logs");
        Follow { child, out }
    }

    /// Waits (up to 10 s) for the stream to end; the engine's time of the first line from
    /// `after` on that contains `what`.
    fn first(mut self, after: f64, what: &str) -> f64 {
        let end = std::time::Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().unwrap().is_none() && std::time::Instant::now() < end {
            std::thread::sleep(Duration::from_millis(20));
        }
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        text.lines()
            .filter(|l| l.contains(what))
            .filter_map(|l| l.split_whitespace().next().and_then(rfc3339))
            .find(|t| *t >= after)
            .unwrap_or_else(|| panic!("no {what:?} in the bot's log after the revoke:\n{text}"))
    }
}

impl Drop for Follow {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An RFC 3339 time (the engine's has nanoseconds) as seconds since the epoch.
fn rfc3339(t: &str) -> Option<f64> {
    let t = humantime::parse_rfc3339(t).ok()?;
    Some(t.duration_since(UNIX_EPOCH).ok()?.as_secs_f64())
}

/// Context switches per thread (by thread ID), each one a wake-up.
/// Context switches between two samples of [`thread_switches`]. A thread that ended in the
/// window takes its count with it: it woke at least once, to end. A new one counts whole.
fn woke(
    sw0: &std::collections::HashMap<String, u64>,
    sw1: &std::collections::HashMap<String, u64>,
) -> u64 {
    let ended = sw0.keys().filter(|tid| !sw1.contains_key(*tid)).count() as u64;
    ended
        + sw1
            .iter()
            .map(|(tid, n1)| n1.saturating_sub(*sw0.get(tid).unwrap_or(&0)))
            .sum::<u64>()
}

fn thread_switches(pid: u32) -> std::collections::HashMap<String, u64> {
    let mut all = std::collections::HashMap::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        let n: u64 = status
            .lines()
            .filter(|l| {
                l.starts_with("voluntary_ctxt_switches:")
                    || l.starts_with("nonvoluntary_ctxt_switches:")
            })
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum();
        all.insert(task.file_name().to_string_lossy().to_string(), n);
    }
    all
}

/// How many containers (any, on the whole engine) started between `since` and `until`.
fn engine_starts(since: f64, until: f64) -> usize {
    docker(&[
        "events",
        "--since",
        &format!("{since:.6}"),
        "--until",
        &format!("{until:.6}"),
        "--filter",
        "type=container",
        "--filter",
        "event=start",
        "--format",
        "{{.ID}}",
    ])
    .lines()
    .count()
}

/// A primary and a standby secret file, each in a directory of its own (each is watched
/// by its directory).
fn secret_files(scope: &Scope, primary: &str, standby: &str) -> (PathBuf, PathBuf) {
    let dir = scope.dir.path();
    std::fs::create_dir_all(dir.join("primary")).unwrap();
    std::fs::create_dir_all(dir.join("standby")).unwrap();
    let (p, s) = (dir.join("primary/token"), dir.join("standby/token"));
    rename_over(&p, primary);
    rename_over(&s, standby);
    (p, s)
}

fn live(plan: &Plan, bin: &Path, verdicts: &mut Vec<(String, String, bool)>) -> String {
    let mut md = live_detection(plan, bin, verdicts);
    md += &live_footprint(plan, bin, verdicts);
    md
}

/// From a bot's first refused line to the standby verified in its replacement.
fn live_detection(plan: &Plan, bin: &Path, verdicts: &mut Vec<(String, String, bool)>) -> String {
    let scope = Scope::new("bench-live");
    let api = StandInApi::start();
    let mut token = accepted(&api);
    let standby = accepted(&api);
    let name = host_bot(&scope, "bot", &token, &api.base_url(), &[]);
    let (primary, standby_file) = secret_files(&scope, &token, &standby);
    let extra = [
        "--standby-file",
        standby_file.to_str().unwrap(),
        "--settle",
        "0",
        "--live-probe-interval",
        "0",
        "--validate-deadline",
        "2",
    ];
    let d = Daemon::start(bin, &primary, &name, &api.base_url(), &extra);
    let (mut lead, mut total, mut deliver, mut confirm) = (vec![], vec![], vec![], vec![]);
    let (mut validate, mut swap, mut verify) = (vec![], vec![], vec![]);
    for i in 0..plan.live {
        if i > 0 {
            // A fresh primary: deployed, and the promoted standby waits again.
            token = accepted(&api);
            let from = d.lines().len();
            rename_over(&primary, &token);
            d.wait_for(from, is("rotation finished"));
        }
        let ready = || {
            let st = d.status();
            st["live"]["source"] == "primary"
                && st["standby"]["state"] == "ready"
                && d.metric(STREAMS) == Some(1.0)
                && support::env_of_if_any(&name, ENV_VAR).as_deref() == Some(&token)
        };
        wait(
            &d,
            30.0,
            "the primary live, the standby ready, one log stream",
            ready,
        );
        // The swapped container's stream ends and is followed again by name after 0.5 s:
        // give it time, so the one counted is the live bot's.
        std::thread::sleep(Duration::from_millis(1500));
        wait(&d, 30.0, "one log stream", || {
            d.metric(STREAMS) == Some(1.0)
        });
        let id = support::inspect(&name)["Id"].as_str().unwrap().to_string();
        let from = d.lines().len();
        let revoked = now();
        let follow = Follow::start(scope.dir.path(), &id, revoked - 1.0);
        api.set(&token, Behaviour::Revoked);
        let (i1, suspected) = d.wait_for(from, is(SUSPECTED));
        let (i2, confirmed) = d.wait_for(i1, |m, _| m.starts_with(CONFIRMED));
        let (i3, validated) = d.wait_for(i2, |_, f| f["verdict"].is_string());
        let (i4, started) = d.wait_for(i3, is("replacement started, verifying"));
        let (i5, verified) = d.wait_for(i4, |m, _| m.starts_with("swapped "));
        d.wait_for(i5, is("rotation finished"));
        let line = follow.first(revoked, "Failed to authenticate");
        assert_eq!(
            support::env_of_if_any(&name, ENV_VAR).as_deref(),
            Some(standby.as_str()),
            "the replacement does not carry the standby"
        );
        lead.push(line - revoked);
        total.push(verified - line);
        deliver.push(suspected - line);
        confirm.push(confirmed - suspected);
        validate.push(validated - confirmed);
        swap.push(started - validated);
        verify.push(verified - started);
    }
    let beyond: Vec<f64> = total.iter().zip(&verify).map(|(t, v)| t - v).collect();
    let p95 = stats(&beyond).p95;
    verdicts.push((
        "a refusal in a bot's log to the standby verified, under 5 s beyond the verification \
         (p95, `--settle 0`)"
            .into(),
        format!("{} ({} with it)", ms(p95), ms(stats(&total).p95)),
        p95 < 5.0,
    ));
    let share = |phase: &[f64]| 100.0 * stats(phase).median / stats(&total).median;
    format!(
        "## 6. When the live token dies\n\n\
         The daemon (`run --standby-file … --settle 0 --live-probe-interval 0 \
         --validate-deadline 2`), a bot on the host network calling the stand-in API every \
         0.2 s with token A (the primary file's), a standby file holding token B, which the \
         stand-in accepts. Once `/status` shows the standby `ready` and `/metrics` one log \
         stream, the stand-in starts refusing A (403 `permission_error`, revoked). From the \
         bot's first refused line (`Failed to authenticate`) to B verified in the bot's \
         replacement, {} revocations; between them a fresh A is written to the primary file \
         and deployed, and B waits again.\n\n\
         Clocks: the line's time is the engine's, stamped when dockerd read the line from the \
         bot's output (`docker logs --timestamps` of the old container, followed from before \
         the revoke, nanoseconds); the others are the `timestamp` of the daemon's JSON log \
         events (microseconds; `TOKEN_ROTATOR_LOG=debug`, for the `replacement started` \
         event): *suspicion* is `a log line says the token was refused`, *confirmed* `the \
         live token was rejected by the API`, then the rotation's verdict on B, `replacement \
         started, verifying` and `swapped NAME: …`. Both are this host's wall clock (the \
         engine runs on the same kernel).\n\n\
         | phase | median / p95 |\n|---|---|\n\
         | **the bot's refused line → standby verified in the replacement** | **{}** |\n\
         | of which: the line → suspicion logged (the engine's log stream, the patterns) | {} |\n\
         | suspicion → rejection confirmed (a probe of the live token) | {} |\n\
         | locking, inspecting, validating the standby against the API | {} |\n\
         | swap (create … start) | {} |\n\
         | verification (`--settle 0`: running, carries the token) | {} |\n\
         | before it, not counted: the revoke → the bot's first refused line | {} |\n\n\
         What bounds it: the swap, {:.0}% of the median, the engine's create, stop and start \
         (section 2); noticing and confirming take {:.1}% together. The bot's own pace is \
         outside it: a bot notices a revoke at its next call (here every 0.2 s), and a \
         `--settle` (default 2 s) or `--verify-exec` adds itself after the start.\n\n",
        plan.live,
        cell(&total),
        cell(&deliver),
        cell(&confirm),
        cell(&validate),
        cell(&swap),
        cell(&verify),
        cell(&lead),
        share(&swap),
        share(&deliver) + share(&confirm)
    )
}

/// The daemon idle with 1 and with 20 log streams open (bots that log nothing).
fn live_footprint(plan: &Plan, bin: &Path, verdicts: &mut Vec<(String, String, bool)>) -> String {
    const MOST: usize = 20;
    let scope = Scope::new("bench-live-idle");
    let api = StandInApi::start();
    let token = accepted(&api);
    let (primary, standby_file) = secret_files(&scope, &token, &accepted(&api));
    let env = format!("{ENV_VAR}={token}");
    // No ANTHROPIC_BASE_URL: each logs one line when it starts, then nothing.
    let names: Vec<String> = (0..MOST)
        .map(|i| scope.run(&format!("idle{i}"), &["-e", &env, support::bot_image()]))
        .collect();
    let mut sizes = Vec::new();
    // Tokio ends a blocking-pool thread (reading the secret files) after 10 s idle: past
    // that, the window holds no such ending. The quick run has no time for it.
    let settle = if plan.quick { 1 } else { 11 };
    let mut md = format!(
        "Idle, with every target's log followed: bots that log nothing (no API to call), \
         the same daemon flags and binary (the static release one, as in section 4), sampled \
         from `/proc/PID` over {} s once `/metrics` shows every stream open (and {settle} s more, \
         so that tokio's idle blocking-pool threads have ended): RSS is `VmRSS` at the end, \
         CPU time `utime + stime` of `stat` (10 ms ticks), wake-ups the voluntary and \
         involuntary context switches of every thread in `task/` (a thread that ended in the \
         window counts as one). The daemon also follows the engine's `start` events of \
         every container (filtered by name in the daemon), so a container started by anyone \
         else on the engine wakes it: the last column counts those in the window.\n\n\
         | log streams | RSS idle | CPU time over the {} s | wake-ups (context switches, all threads) | threads | other containers started meanwhile |\n\
         |---|---|---|---|---|---|\n",
        plan.live_idle_secs, plan.live_idle_secs
    );
    for n in [1, MOST] {
        let mut extra = vec![
            "--standby-file",
            standby_file.to_str().unwrap(),
            "--settle",
            "0",
            "--live-probe-interval",
            "0",
            "--validate-deadline",
            "2",
        ];
        for name in &names[1..n] {
            extra.extend(["--container", name.as_str()]);
        }
        let d = Daemon::start(bin, &primary, &names[0], &api.base_url(), &extra);
        wait(&d, 30.0, "every log stream open", || {
            d.status()["standby"]["state"] == "ready" && d.metric(STREAMS) == Some(n as f64)
        });
        std::thread::sleep(Duration::from_secs(settle));
        let pid = d.pid();
        let (t0, cpu0, sw0) = (now(), cpu_secs(pid), thread_switches(pid));
        std::thread::sleep(Duration::from_secs(plan.live_idle_secs));
        let (t1, cpu1, sw1) = (now(), cpu_secs(pid), thread_switches(pid));
        let (idle_rss, _) = rss(pid);
        let starts = engine_starts(t0, t1);
        assert_eq!(d.metric(STREAMS), Some(n as f64), "a stream closed");
        let wakeups = woke(&sw0, &sw1) as f64 / plan.live_idle_secs as f64;
        let mib = idle_rss as f64 / 1024.0;
        let threads = if sw0.len() == sw1.len() {
            sw1.len().to_string()
        } else {
            format!("{} → {}", sw0.len(), sw1.len())
        };
        let _ = writeln!(
            md,
            "| {n} | {mib:.1} MiB | {:.0} ms | {wakeups:.2}/s | {threads} | {starts} |",
            (cpu1 - cpu0) * 1000.0
        );
        if n == MOST {
            verdicts.push((
                format!("idle RSS under 8 MiB with {MOST} log streams"),
                format!("{mib:.1} MiB"),
                mib < 8.0,
            ));
        }
        sizes.push(idle_rss as f64);
    }
    let _ = writeln!(
        md,
        "\nWhat bounds it: the daemon's own base, not the streams: each stream past the first \
         adds {:.0} KiB of RSS (the difference over {}). An idle stream is a connection the \
         engine writes nothing to; a wake-up comes from elsewhere: another container \
         starting on the engine, a request to `--listen`, a blocking-pool thread ending.\n",
        (sizes[1] - sizes[0]) / (MOST - 1) as f64,
        MOST - 1
    );
    md
}
