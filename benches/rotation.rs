//! The benchmark harness: how fast a rotation lands, how long the bot is down, and what
//! the sidecar costs, side by side with docker-compose and the plain docker CLI, all in
//! one run on the same engine. Runs the shipped binary (the static one in the image).
//!
//! `cargo bench --bench rotation` writes `docs/BENCHMARKS.md`; with `-- --quick` (few
//! iterations, what CI runs so this cannot rot) it writes `target/bench/BENCHMARKS.md`.
//! `scripts/bench.sh` is the documented entry point.

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
    fleet_runs: usize,
}

const DEBOUNCE: f64 = 0.3;
const PEER_LABEL: &str = "token-rotator-bench.peer";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    // `--only swap` (or detect, e2e, footprint, fleet) runs one section, to a scratch file.
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1).cloned());
    let runs = |section: &str| only.as_deref().map_or(true, |o| o == section);
    let plan = if quick {
        Plan {
            quick,
            detect: 5,
            swaps: 3,
            e2e: 3,
            idle_secs: 5,
            fleet: &[1, 5],
            fleet_runs: 1,
        }
    } else {
        Plan {
            quick,
            detect: 50,
            swaps: 30,
            e2e: 20,
            idle_secs: 60,
            fleet: &[1, 10, 50],
            fleet_runs: 3,
        }
    };
    let bin = shipped_binary();
    let mut md = header(&plan);
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
        md += &end_to_end(&plan, &bin);
    }
    if runs("footprint") {
        eprintln!("bench: footprint");
        md += &footprint(&plan, &bin, &mut verdicts);
    }
    if runs("fleet") {
        eprintln!("bench: fleet scaling");
        md += &fleet(&plan, &bin, &mut verdicts);
    }
    md += "\n## Targets\n\n| target | measured | |\n|---|---|---|\n";
    for (target, measured, met) in &verdicts {
        let _ = writeln!(
            md,
            "| {target} | {measured} | {} |",
            if *met { "met" } else { "**missed**" }
        );
    }
    let out = if plan.quick || only.is_some() {
        support_root().join("target/bench/BENCHMARKS.md")
    } else {
        support_root().join("docs/BENCHMARKS.md")
    };
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    std::fs::write(&out, &md).unwrap();
    println!("{md}");
    eprintln!("bench: wrote {}", out.display());
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
        "- Docker Engine {} (API {}), {}",
        sh("docker", &["version", "--format", "{{.Server.Version}}"]),
        sh("docker", &["version", "--format", "{{.Server.APIVersion}}"]),
        sh("docker-compose", &["version", "--short"])
            .lines()
            .next()
            .map(|v| format!("docker-compose {v}"))
            .unwrap_or_default()
    );
    let _ = writeln!(
        md,
        "- token-rotator: the static release binary from the image, run on the host\n\
         - Each figure is `median / p95` over the runs; peers are interleaved with ours run by run.\n"
    );
    md
}

/// A daemon (`run`) on the host, logging JSON at debug level to a file.
struct Daemon {
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Daemon {
    /// Watches `file` for `target`, validating against `api`; `extra` flags follow.
    fn start(bin: &Path, file: &Path, target: &str, api: &str, extra: &[&str]) -> Daemon {
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
            .env("TOKEN_ROTATOR_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let d = Daemon {
            child,
            log,
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
                lines
                    .iter()
                    .rev()
                    .take(20)
                    .map(|v| v.to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
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
         style, each a new token the stand-in API refuses (so nothing is swapped). The \
         debounce (`--debounce`, default {DEBOUNCE} s: the quiet time the daemon waits for \
         after the last event, so a burst of writes is read once) is subtracted and shown \
         apart. *First event* is when inotify's first event reached the daemon (below zero: it \
         was there before the writer's `rename` call had returned to the writer); an \
         in-place write raises events before it is complete, so it has none.\n\n\
         | update style | first event | start beyond the debounce | debounce |\n|---|---|---|---|\n",
        plan.detect
    );
    let mut all_beyond = Vec::new();
    for (label, style) in [
        ("in-place write", Style::InPlace),
        ("temp file renamed over it", Style::Rename),
        ("Kubernetes `..data` swap", Style::K8s),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        let update = |generation: usize, t: &str| match style {
            Style::InPlace => write_in_place(&file, t),
            Style::Rename => rename_over(&file, t),
            Style::K8s => k8s_write(dir.path(), generation, t),
        };
        update(0, &old);
        let debounce = DEBOUNCE.to_string();
        let extra = ["--debounce", &debounce, "--validate-deadline", "0"];
        let d = Daemon::start(bin, &file, &name, &base, &extra);
        let (mut first, mut beyond) = (Vec::new(), Vec::new());
        for i in 1..=plan.detect {
            let t = new_token();
            api.set(&t, Behaviour::Revoked);
            let from = d.lines().len();
            update(i, &t);
            let placed = now();
            let (_, event) = d.wait_for(from, is("secret directory changed"));
            let (_, start) = d.wait_for(from, is("read token"));
            d.wait_for(from, is("rotation finished"));
            if style != Style::InPlace {
                first.push(event - placed);
            }
            beyond.push(start - placed - DEBOUNCE);
            std::thread::sleep(Duration::from_millis(50));
        }
        all_beyond.extend_from_slice(&beyond);
        let _ = writeln!(
            md,
            "| {label} | {} | {} | {} |",
            if first.is_empty() {
                "—".to_string()
            } else {
                cell(&first)
            },
            cell(&beyond),
            ms(DEBOUNCE)
        );
    }
    let m = stats(&all_beyond).median;
    verdicts.push((
        "detection under 50 ms at the median beyond the debounce".into(),
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
    compose_dir: tempfile::TempDir,
    compose_project: String,
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
        let compose_dir = tempfile::tempdir().unwrap();
        let compose_project = scope.name("compose");
        std::fs::write(
            compose_dir.path().join("docker-compose.yml"),
            format!(
                "version: \"2.4\"\nservices:\n  bot:\n    image: {}\n    env_file: bot.env\n    \
                 network_mode: bridge\n    labels:\n      {SCOPE_LABEL}: \"{}\"\n      {PEER_LABEL}: compose\n",
                support::bot_image(),
                scope.prefix
            ),
        )
        .unwrap();
        let peers = Peers {
            scope,
            secret,
            ours,
            cli,
            compose_dir,
            compose_project,
        };
        peers.compose_up(&first);
        peers
    }

    fn compose_up(&self, token: &str) {
        std::fs::write(
            self.compose_dir.path().join("bot.env"),
            format!("{ENV_VAR}={token}\n"),
        )
        .unwrap();
        let ok = Command::new("docker-compose")
            .args(["-p", &self.compose_project, "up", "-d"])
            .current_dir(self.compose_dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("docker-compose")
            .success();
        assert!(ok, "docker-compose up failed");
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
        write_in_place(&self.secret, token);
        let out = Command::new(bin)
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
            _ => self.compose_up(&token),
        }
        Run {
            peer,
            launched,
            returned: now(),
        }
    }

    /// The engine alone: one `POST /containers/{id}/start` (by curl) of a created
    /// container of the same image, from the request to the `start` event.
    fn bare_start(&self) -> f64 {
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
        let url = format!("http://localhost/containers/{name}/start");
        let launched = now();
        let ok = Command::new("curl")
            .args([
                "-sf",
                "--unix-socket",
                "/var/run/docker.sock",
                "-X",
                "POST",
                &url,
            ])
            .status()
            .expect("curl")
            .success();
        assert!(ok, "starting {name} failed");
        std::thread::sleep(Duration::from_millis(100));
        let started = events(&self.scope, launched, now())
            .into_iter()
            .find(|e| e.peer == "floor" && e.action == "start")
            .expect("a start event")
            .at;
        docker(&["rm", "-f", &name]);
        started - launched
    }
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
    let order = ["ours", "cli", "compose"];
    let mut runs = Vec::new();
    let (mut evs, mut floor) = (Vec::new(), Vec::new());
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
        floor.push(peers.bare_start());
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
    let median = |p: &str, down: bool| {
        let r = row(p);
        stats(if down { &r.down } else { &r.swap }).median
    };
    let mut md = format!(
        "## 2. Swap time and downtime\n\n\
         The same small container (`FROM scratch`, exits at once on SIGTERM), {} swaps per \
         peer, interleaved. *Swap*: from launching the command to the engine's `start` event \
         of the new container. *Downtime*: from the old container's `die` event to that \
         `start`: no container of that name runs in between. *Client overhead*: launch to the \
         peer's first engine event on the bot's containers: process start, connecting, \
         reading, and for ours also inspecting and taking the lock (its own marker \
         container, not counted as an event here). *Command*: until the \
         command returned (ours then removes the old container; compose and the CLI script \
         too). Ours runs `rotate --validate none --settle 0`: validation and verification \
         are measured apart, in section 3.\n\n\
         | peer | swap | downtime | client overhead | command | swap ratio ours/peer | downtime ratio |\n\
         |---|---|---|---|---|---|---|\n",
        plan.swaps
    );
    let names = [
        ("ours", "token-rotator `rotate`"),
        ("cli", "docker CLI: create, stop, rename, rename, start, rm"),
        (
            "compose",
            "`docker-compose up -d` after editing the env file",
        ),
    ];
    for (p, label) in names {
        let r = row(p);
        let ratio = |down| {
            if p == "ours" {
                "—".to_string()
            } else {
                format!("{:.2}", median("ours", down) / median(p, down))
            }
        };
        let _ = writeln!(
            md,
            "| {label} | {} | {} | {} | {} | {} | {} |",
            cell(&r.swap),
            cell(&r.down),
            cell(&r.overhead),
            cell(&r.command),
            ratio(false),
            ratio(true)
        );
    }
    let vs_cli = median("ours", false) / median("cli", false);
    let vs_compose = median("ours", false) / median("compose", false);
    verdicts.push((
        "swap at most 0.8x the docker CLI sequence".into(),
        format!("{vs_cli:.2}x"),
        vs_cli <= 0.8,
    ));
    verdicts.push((
        "swap at most 0.4x docker-compose".into(),
        format!("{vs_compose:.2}x"),
        vs_compose <= 0.4,
    ));
    md.push_str(
        "\nWhat bounds it: the median time after launch at which each engine action first \
         happened. The engine's own `start` of the replacement (from the `die`, or the `stop` \
         of the old one, to `start`) is most of every peer's swap.\n\n| peer |",
    );
    for a in ACTIONS {
        let _ = write!(md, " {a} |");
    }
    md.push_str("\n|---|");
    md.push_str(&"---|".repeat(ACTIONS.len()));
    md.push('\n');
    for (p, label) in names {
        let _ = write!(md, "| {label} |");
        for a in ACTIONS {
            let _ = match row(p).timeline.get(a) {
                Some(v) => write!(md, " {} |", ms(stats(v).median)),
                None => write!(md, " — |"),
            };
        }
        md.push('\n');
    }
    let _ = writeln!(
        md,
        "\nThe engine alone, for scale: one start request (by curl on the socket) of an \
         already created container of the same image takes {} (median / p95) to its `start` \
         event.\n",
        cell(&floor)
    );
    md
}

// ---------------------------------------------------------------------------------------
// 3. End to end

fn end_to_end(plan: &Plan, bin: &Path) -> String {
    let scope = Scope::new("bench-e2e");
    let api = StandInApi::start();
    let old = accepted(&api);
    let name = host_bot(&scope, "bot", &old, &api.base_url(), &[]);
    let base = api.base_url();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    rename_over(&file, &old);
    let extra = ["--verify-exec", "/fake-bot check", "--settle", "0"];
    let d = Daemon::start(bin, &file, &name, &base, &extra);
    let (mut total, mut detect, mut validate, mut swap, mut verify, mut finish) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    for _ in 0..plan.e2e {
        let t = accepted(&api);
        let from = d.lines().len();
        rename_over(&file, &t);
        let placed = now();
        let (_, read) = d.wait_for(from, is("read token"));
        let (_, valid) = d.wait_for(from, |_, f| f["verdict"].is_string());
        let (_, started) = d.wait_for(from, is("replacement started, verifying"));
        let (_, verified) = d.wait_for(from, is("swapped and verified"));
        let (_, done) = d.wait_for(from, is("rotation finished"));
        total.push(verified - placed);
        detect.push(read - placed);
        validate.push(valid - read);
        swap.push(started - valid);
        verify.push(verified - started);
        finish.push(done - verified);
        std::thread::sleep(Duration::from_millis(200));
    }
    format!(
        "## 3. End to end\n\n\
         The daemon, a bot on the host network, the stand-in API on loopback: from a new \
         token renamed into place to the new container verified (running, env carries the \
         token, `--verify-exec /fake-bot check` made a real request with it), {} rotations, \
         `--settle 0` (a settle period, default 2 s, adds exactly itself).\n\n\
         | phase | median / p95 |\n|---|---|\n\
         | **file in place → verified** | **{}** |\n\
         | of which: notice + debounce ({}) | {} |\n\
         | locking, inspecting, validating against the API | {} |\n\
         | swap (create … start) | {} |\n\
         | verification (exec check) | {} |\n\
         | after: removing the old container | {} |\n\n",
        plan.e2e,
        cell(&total),
        ms(DEBOUNCE),
        cell(&detect),
        cell(&validate),
        cell(&swap),
        cell(&verify),
        cell(&finish)
    )
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

/// Context switches of every thread: each one is a wake-up.
fn switches(pid: u32) -> u64 {
    let mut n = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        for l in status.lines() {
            if l.starts_with("voluntary_ctxt_switches:")
                || l.starts_with("nonvoluntary_ctxt_switches:")
            {
                n += l
                    .split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
    }
    n
}

fn footprint(plan: &Plan, bin: &Path, verdicts: &mut Vec<(String, String, bool)>) -> String {
    let binary = std::fs::metadata(bin).unwrap().len();
    let image: u64 = docker(&["image", "inspect", "-f", "{{.Size}}", "token-rotator:dev"])
        .parse()
        .unwrap();
    let scope = Scope::new("bench-footprint");
    let api = StandInApi::start();
    let old = accepted(&api);
    let name = host_bot(&scope, "bot", &old, &api.base_url(), &[]);
    let base = api.base_url();
    let file = scope.secret_file(&old);
    let d = Daemon::start(bin, &file, &name, &base, &["--settle", "0"]);
    std::thread::sleep(Duration::from_secs(1));
    let pid = d.pid();
    let (cpu0, sw0) = (cpu_secs(pid), switches(pid));
    std::thread::sleep(Duration::from_secs(plan.idle_secs));
    let (cpu1, sw1) = (cpu_secs(pid), switches(pid));
    let (idle_rss, idle_peak) = rss(pid);
    let wakeups = (sw1 - sw0) as f64 / plan.idle_secs as f64;
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
         | daemon RSS idle (after {} s, `--listen` on, no polling) | {:.1} MiB (peak so far {:.1} MiB) |\n\
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

fn fleet(plan: &Plan, bin: &Path, verdicts: &mut Vec<(String, String, bool)>) -> String {
    let mut md = format!(
        "## 5. Fleet scaling\n\n\
         One `rotate` for N targets (validated once against the stand-in API, swapped one at \
         a time, `--settle 0`), median of {} run(s) per size.\n\n\
         | targets | wall time | per target | peak RSS |\n|---|---|---|---|\n",
        plan.fleet_runs
    );
    let mut per_target = Vec::new();
    for &n in plan.fleet {
        let scope = Scope::new(&format!("bench-fleet-{n}"));
        let api = StandInApi::start();
        let old = accepted(&api);
        let env = format!("{ENV_VAR}={old}");
        let names: Vec<String> = (0..n)
            .map(|i| scope.run(&format!("bot{i}"), &["-e", &env, support::bot_image()]))
            .collect();
        let (mut walls, mut peaks) = (Vec::new(), Vec::new());
        for _ in 0..plan.fleet_runs {
            let file = scope.secret_file(&accepted(&api));
            let mut cmd = Command::new(bin);
            cmd.args(["rotate", "--secret-file", file.to_str().unwrap()])
                .args(["--api-base-url", &api.base_url(), "--settle", "0"])
                .env("TOKEN_ROTATOR_LOG", "error")
                .stdout(Stdio::null());
            for name in &names {
                cmd.args(["--container", name]);
            }
            let (ok, wall, peak) = measured(&mut cmd);
            assert!(ok, "rotating {n} targets failed");
            walls.push(wall);
            peaks.push(peak as f64);
        }
        let wall = stats(&walls).median;
        per_target.push((n, wall / n as f64));
        let _ = writeln!(
            md,
            "| {n} | {} | {} | {:.1} MiB |",
            ms(wall),
            ms(wall / n as f64),
            stats(&peaks).median / 1024.0
        );
    }
    let (first, last) = (per_target[0], per_target[per_target.len() - 1]);
    verdicts.push((
        "fleet wall time growing no faster than linearly".into(),
        format!(
            "{} per target at {}, {} at {}",
            ms(first.1),
            first.0,
            ms(last.1),
            last.0
        ),
        last.1 <= first.1 * 1.1,
    ));
    md.push('\n');
    md
}
