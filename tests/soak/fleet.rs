//! The soak's bots on the private engine, the secret file that drives them, and the
//! invariants every round must end in: each bot once under its name, running, on the file's
//! latest good token (every token ever seen on a container was one the API accepted),
//! nothing else on the engine (no `-tr-` container, no lock marker, no dependent copy), and
//! the daemon seeing each target in sync.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

use crate::support::engine::PrivateEngine;
use crate::support::{self, api::StandInApi, updates, HostDaemon, Scope, ENV_VAR};

/// What one container looks like: its state and the fingerprint of the token it carries.
pub type Seen = BTreeMap<String, (String, Option<String>)>;

/// The bots and the file.
pub struct Fleet {
    /// The bots' names, sorted.
    pub names: Vec<String>,
    /// `soak=PREFIX`, the daemon's `--label`.
    pub label: String,
    /// The secret file.
    pub file: PathBuf,
    /// Every token the API accepted and the file held (fingerprints).
    good: BTreeSet<String>,
    /// The file's latest good token, and the one before it.
    pub latest: String,
    pub previous: String,
}

impl Fleet {
    /// `bots` bots on `e`, all on a first good token that the file holds too.
    pub fn new(e: &PrivateEngine, scope: &Scope, api: &StandInApi, bots: usize) -> Fleet {
        let first = support::accepted(api);
        let mut fleet = Fleet {
            names: (1..=bots)
                .map(|i| scope.name(&format!("bot-{i}")))
                .collect(),
            label: format!("soak={}", scope.prefix),
            file: scope.secret_file(&first),
            good: BTreeSet::from([support::fingerprint(&first)]),
            latest: first.clone(),
            previous: first,
        };
        fleet.names.sort();
        for name in fleet.names.clone() {
            fleet.run_bot(e, &name, &fleet.latest.clone());
        }
        fleet
    }

    /// The `docker` arguments that run a bot named `name` on `token`, as compose would
    /// (re)create it.
    pub fn run_args(&self, name: &str, token: &str) -> Vec<String> {
        let env = format!("{ENV_VAR}={token}");
        let args = [
            "run",
            "-d",
            "--name",
            name,
            "--label",
            &self.label,
            "--restart",
            "always",
            "-e",
            &env,
            support::bot_image(),
        ];
        args.map(String::from).to_vec()
    }

    /// Runs a bot named `name` on `token`.
    pub fn run_bot(&self, e: &PrivateEngine, name: &str, token: &str) {
        let args = self.run_args(name, token);
        e.docker(&args.iter().map(String::as_str).collect::<Vec<_>>());
    }

    /// Writes a new good token to the file in one of the ways files are updated.
    pub fn update(&mut self, api: &StandInApi, how: u64) -> String {
        let token = support::accepted(api);
        self.good.insert(support::fingerprint(&token));
        let styles: [updates::Update; 4] = [
            updates::write_in_place,
            updates::rename_over,
            updates::truncate_then_write,
            updates::delete_then_recreate,
        ];
        styles[how as usize % styles.len()](&self.file, &token);
        self.previous = std::mem::replace(&mut self.latest, token.clone());
        token
    }

    /// Every container on `e`: state and token fingerprint. Read while the daemon works, so
    /// a container listed may be gone when inspected (it is then left out).
    pub fn seen(&self, e: &PrivateEngine) -> Seen {
        let ids = e.docker(&["ps", "-aq"]);
        let mut seen = Seen::new();
        if ids.is_empty() {
            return seen;
        }
        let out = Command::new("docker")
            .args(["inspect", "--type", "container"])
            .args(ids.lines())
            .env("DOCKER_HOST", &e.host)
            .output()
            .expect("docker inspect");
        let all: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        for c in all.as_array().into_iter().flatten() {
            let name = c["Name"].as_str().unwrap_or("").trim_start_matches('/');
            let state = c["State"]["Status"].as_str().unwrap_or("").to_string();
            let token = c["Config"]["Env"].as_array().and_then(|env| {
                env.iter()
                    .filter_map(|v| v.as_str())
                    .find_map(|v| v.strip_prefix(&format!("{ENV_VAR}=")))
                    .map(support::fingerprint)
            });
            seen.insert(name.to_string(), (state, token));
        }
        seen
    }

    /// A broken invariant that no waiting can mend: a container carrying a token the API
    /// never accepted.
    pub fn never_validated(&self, seen: &Seen) -> Option<String> {
        seen.iter().find_map(|(name, (_, fp))| {
            let fp = fp.as_ref()?;
            (!self.good.contains(fp))
                .then(|| format!("{name} carries {fp}, a token the API never accepted"))
        })
    }

    /// Whether `seen` is the converged state: exactly the bots, running, on the latest
    /// good token.
    pub fn converged(&self, seen: &Seen) -> bool {
        let want = Some(support::fingerprint(&self.latest));
        seen.len() == self.names.len()
            && self.names.iter().all(|n| {
                seen.get(n)
                    .is_some_and(|(state, fp)| state == "running" && *fp == want)
            })
    }

    /// Whether the daemon sees every bot in sync (`token_rotator_target_in_sync` 1), its
    /// `/status` and `/metrics` carrying no token piece.
    pub fn daemon_in_sync(&self, daemon: &HostDaemon) -> bool {
        let (code, metrics) = daemon.get("/metrics");
        let (_, status) = daemon.get("/status");
        support::assert_no_secret(&metrics);
        support::assert_no_secret(&status);
        code == 200
            && self.names.iter().all(|n| {
                let series = format!("token_rotator_target_in_sync{{container=\"{n}\"}}");
                support::metric(&metrics, &series) == Some(1.0)
            })
    }
}
