//! The faults the soak injects, a seeded random source to time and pick them, and how each
//! is done to the running system. Each `inject` returns the instant the fault ended (the
//! daemon back up, the engine back, the API or the receiver answering again, a good token
//! in the file again): convergence is timed from there.

use std::time::{Duration, Instant};

use crate::support::api::Behaviour;
use crate::support::{self, HostDaemon};
use crate::Chaos;

/// A kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// SIGKILL of the rotator at a random instant, then started again.
    KillRotator,
    /// The private engine SIGKILLed and started again.
    EngineRestart,
    /// The API answering 5xx (HTML 500 or 529) or hanging, for a while.
    ApiDown,
    /// The webhook receiver down (its port refusing connections), for a while.
    WebhookDown,
    /// Garbage written to the secret file, then a good token again.
    GarbageSecret,
    /// A bot removed and run again by hand (old token) while a rotation may be under way.
    BotRecreated,
}

impl Kind {
    /// Every kind, in the order figures list them.
    pub const ALL: [Kind; 6] = [
        Kind::KillRotator,
        Kind::EngineRestart,
        Kind::ApiDown,
        Kind::WebhookDown,
        Kind::GarbageSecret,
        Kind::BotRecreated,
    ];

    /// Its name in the figures.
    pub fn name(self) -> &'static str {
        match self {
            Kind::KillRotator => "kill_rotator",
            Kind::EngineRestart => "engine_restart",
            Kind::ApiDown => "api_down",
            Kind::WebhookDown => "webhook_down",
            Kind::GarbageSecret => "garbage_secret",
            Kind::BotRecreated => "bot_recreated",
        }
    }
}

/// splitmix64: small, seeded, the same sequence for the same seed (for replay).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `lo..hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo).max(1)
    }

    /// A pause of `lo..hi` milliseconds.
    pub fn ms(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(self.range(lo, hi))
    }
}

/// Which round (of `updates`) gets which fault: `faults` of them spread evenly, one per
/// round at most, the kinds in a shuffled order that repeats every kind once per block.
pub fn plan(rng: &mut Rng, updates: usize, faults: usize) -> Vec<Option<Kind>> {
    let mut plan = vec![None; updates];
    let faults = faults.min(updates);
    let mut block = Vec::new();
    for j in 0..faults {
        if block.is_empty() {
            block = Kind::ALL.to_vec();
            for i in (1..block.len()).rev() {
                block.swap(i, rng.range(0, i as u64 + 1) as usize);
            }
        }
        let (lo, hi) = (j * updates / faults, (j + 1) * updates / faults);
        plan[rng.range(lo as u64, hi as u64) as usize] = block.pop();
    }
    plan
}

/// Garbage as it reaches secret files: a token-shaped one the API refuses, a truncated
/// paste, prose, an empty file, binary bytes.
fn garbage(rng: &mut Rng) -> Vec<u8> {
    match rng.range(0, 5) {
        0 => {
            let t = support::new_token(); // unknown to the stand-in: 401
            support::remember_secret(&t);
            t.into_bytes()
        }
        1 => {
            let t = support::new_token();
            support::remember_secret(&t);
            t.as_bytes()[..60].to_vec() // unknown too
        }
        2 => b"please paste the token here\n".to_vec(),
        3 => Vec::new(),
        _ => (0..64).map(|_| rng.next() as u8).collect(),
    }
}

impl Chaos {
    /// Does `kind` to the system; returns when it ended.
    pub fn inject(&mut self, kind: Kind, rng: &mut Rng) -> Instant {
        match kind {
            Kind::KillRotator => {
                if let Some(mut d) = self.daemon.take() {
                    d.sigkill();
                    self.keep_logs(&d);
                }
                self.start_daemon();
            }
            Kind::EngineRestart => {
                self.engine.kill();
                std::thread::sleep(rng.ms(0, 2000));
                self.engine.restart();
            }
            Kind::ApiDown => {
                let how = [
                    Behaviour::ServerErrorHtml,
                    Behaviour::Overloaded,
                    Behaviour::Hang,
                ];
                self.api.fail_all(Some(how[rng.range(0, 3) as usize]));
                std::thread::sleep(rng.ms(1000, 5000));
                self.api.fail_all(None);
            }
            Kind::WebhookDown => {
                self.webhook.down();
                std::thread::sleep(rng.ms(1000, 5000));
                self.webhook.up();
            }
            Kind::GarbageSecret => {
                std::fs::write(&self.fleet.file, garbage(rng)).unwrap();
                std::thread::sleep(rng.ms(500, 2500));
                self.fleet.update(&self.api, rng.next());
                self.updates += 1;
            }
            Kind::BotRecreated => {
                let name =
                    self.fleet.names[rng.range(0, self.fleet.names.len() as u64) as usize].clone();
                let old = self.fleet.previous.clone();
                self.recreate(&name, &old);
            }
        }
        Instant::now()
    }

    /// `docker rm -f NAME` then `docker run` of the same name on `token`, as compose
    /// would; tried again when the name was taken in between (by the swap's rename).
    fn recreate(&self, name: &str, token: &str) {
        for _ in 0..5 {
            let _ = std::process::Command::new("docker")
                .args(["rm", "-f", name])
                .env("DOCKER_HOST", &self.engine.host)
                .output();
            let ran = std::process::Command::new("docker")
                .args(self.fleet.run_args(name, token))
                .env("DOCKER_HOST", &self.engine.host)
                .output()
                .is_ok_and(|o| o.status.success());
            if ran {
                return;
            }
        }
        panic!("could not run {name} again by hand");
    }

    /// Starts the daemon (again).
    pub fn start_daemon(&mut self) {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        // The webhook URL is a credential: in the env, never in the process arguments.
        let env = [
            ("DOCKER_HOST", self.engine.host.as_str()),
            ("TOKEN_ROTATOR_NOTIFY_WEBHOOK", self.webhook.url.as_str()),
        ];
        self.daemon = Some(HostDaemon::start(&self.scope, &args, &env));
        self.samples.push(Vec::new());
    }
}
