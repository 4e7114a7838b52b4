//! Prometheus metrics of the daemon, served as text on `/metrics`.
//!
//! Labels are typed. Every `outcome` and `verdict` series exists from the start (at zero),
//! so an alert on an increase sees the first one. What each target carries
//! (`deployed_token`, `target_in_sync`) is read from the engine, not remembered from the
//! rotator's own swaps: a bot recreated by someone else shows as it is.

use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use super::status::Snapshot;
use crate::error::Outcome;
use crate::rotation::{RotationReport, TargetOutcome};
use crate::validate::Verdict;

/// `token_rotator_rotations_total{outcome}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// One of [`Outcome::ALL`]'s labels.
    pub outcome: String,
}

/// `token_rotator_validations_total{verdict}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerdictLabels {
    /// One of [`Verdict::LABELS`].
    pub verdict: String,
}

/// `token_rotator_deployed_token{container,fingerprint}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeployedLabels {
    /// The target's name.
    pub container: String,
    /// The fingerprint of the token it carries.
    pub fingerprint: String,
}

/// `token_rotator_target_in_sync{container}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetLabels {
    /// The target's name.
    pub container: String,
}

/// `token_rotator_live_token_rejections_total{source}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    /// How the rejection was noticed: `logs` or `probe`.
    pub source: String,
}

/// `token_rotator_retired_tokens{state}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    /// `alive` or `dead`.
    pub state: String,
}

/// `token_rotator_build_info{version}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    /// The crate version.
    pub version: String,
}

/// The daemon's metrics.
pub struct Metrics {
    registry: Registry,
    rotations: Family<OutcomeLabels, Counter>,
    validations: Family<VerdictLabels, Counter>,
    duration: Histogram,
    last_success: Gauge<f64, AtomicU64>,
    deployed: Family<DeployedLabels, Gauge>,
    in_sync: Family<TargetLabels, Gauge>,
    rejections: Family<SourceLabels, Counter>,
    standby_ready: Gauge,
    live_probe: Gauge<f64, AtomicU64>,
    log_streams: Gauge,
    retired: Family<StateLabels, Gauge>,
    retired_alive: Histogram,
    oldest_alive: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// The label sets exported now, to replace them when the targets change.
    exported: Mutex<(Vec<DeployedLabels>, Vec<TargetLabels>)>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("token_rotator");
        let rotations = Family::<OutcomeLabels, Counter>::default();
        registry.register("rotations", "Rotations by outcome", rotations.clone());
        for o in Outcome::ALL {
            let zero = OutcomeLabels {
                outcome: o.label().into(),
            };
            rotations.get_or_create(&zero).inc_by(0);
        }
        let validations = Family::<VerdictLabels, Counter>::default();
        registry.register(
            "validations",
            "Token validations by verdict",
            validations.clone(),
        );
        for v in Verdict::LABELS {
            let zero = VerdictLabels { verdict: v.into() };
            validations.get_or_create(&zero).inc_by(0);
        }
        let duration = Histogram::new(exponential_buckets(0.05, 2.0, 12));
        registry.register(
            "rotation_duration_seconds",
            "Wall time of rotations that swapped containers",
            duration.clone(),
        );
        let last_success = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "last_success_timestamp_seconds",
            "Unix time of the last rotation that swapped every target (0: none yet)",
            last_success.clone(),
        );
        let deployed = Family::<DeployedLabels, Gauge>::default();
        registry.register(
            "deployed_token",
            "1 for the token fingerprint each target carries, as the engine shows it",
            deployed.clone(),
        );
        let in_sync = Family::<TargetLabels, Gauge>::default();
        registry.register(
            "target_in_sync",
            "1 when the target carries the secret file's token, else 0",
            in_sync.clone(),
        );
        let rejections = Family::<SourceLabels, Counter>::default();
        registry.register(
            "live_token_rejections",
            "Live tokens the API rejected, by how it was noticed (logs, probe)",
            rejections.clone(),
        );
        for source in ["logs", "probe"] {
            let zero = SourceLabels {
                source: source.into(),
            };
            rejections.get_or_create(&zero).inc_by(0);
        }
        let standby_ready = Gauge::default();
        registry.register(
            "standby_ready",
            "1 when a validated standby token is waiting, else 0",
            standby_ready.clone(),
        );
        let live_probe = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "live_probe_timestamp_seconds",
            "Unix time of the last probe of the live token (0: none yet)",
            live_probe.clone(),
        );
        let log_streams = Gauge::default();
        registry.register(
            "log_streams",
            "Target log streams open now",
            log_streams.clone(),
        );
        let retired = Family::<StateLabels, Gauge>::default();
        registry.register(
            "retired_tokens",
            "Retired tokens being watched, by state (alive: still accepted, dead: rejected)",
            retired.clone(),
        );
        for state in ["alive", "dead"] {
            let zero = StateLabels {
                state: state.into(),
            };
            retired.get_or_create(&zero).set(0);
        }
        // From a minute to two weeks.
        let retired_alive = Histogram::new(exponential_buckets(60.0, 4.0, 10));
        registry.register(
            "retired_token_alive_seconds",
            "How long retired tokens kept working after their retirement, until rejected",
            retired_alive.clone(),
        );
        let oldest_alive = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "oldest_alive_retired_token_timestamp_seconds",
            "Unix time at which the oldest retired token that the API still accepts was retired (0: none)",
            oldest_alive.clone(),
        );
        // An info metric: exposed as `token_rotator_build_info{version} 1`.
        let build = Info::new(BuildLabels {
            version: env!("CARGO_PKG_VERSION").into(),
        });
        registry.register("build", "The running version", build);
        Metrics {
            registry,
            rotations,
            validations,
            duration,
            last_success,
            deployed,
            in_sync,
            rejections,
            standby_ready,
            live_probe,
            log_streams,
            retired,
            retired_alive,
            oldest_alive,
            exported: Mutex::default(),
        }
    }
}

impl Metrics {
    /// Records one rotation's report.
    pub fn observe(&self, report: &RotationReport) {
        self.rotations
            .get_or_create(&OutcomeLabels {
                outcome: report.outcome.label().into(),
            })
            .inc();
        if let Some(label) = report.validation {
            self.validations
                .get_or_create(&VerdictLabels {
                    verdict: label.into(),
                })
                .inc();
        }
        if report
            .targets
            .iter()
            .any(|t| t.outcome == TargetOutcome::Swapped)
        {
            self.duration.observe(report.duration_secs);
        }
        if report.outcome == Outcome::Rotated {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            self.last_success.set(now);
        }
    }

    /// Sets what each target carries, from a fresh look at the engine and the secret file.
    pub fn set_targets(&self, snap: &Snapshot) {
        let mut exported = self.exported.lock().unwrap_or_else(|e| e.into_inner());
        for old in exported.0.drain(..) {
            self.deployed.remove(&old);
        }
        for old in exported.1.drain(..) {
            self.in_sync.remove(&old);
        }
        for t in &snap.targets {
            if let Some(fp) = &t.fingerprint {
                let labels = DeployedLabels {
                    container: t.name.clone(),
                    fingerprint: fp.clone(),
                };
                self.deployed.get_or_create(&labels).set(1);
                exported.0.push(labels);
            }
            let labels = TargetLabels {
                container: t.name.clone(),
            };
            let in_sync = t.matches_secret == Some(true);
            self.in_sync.get_or_create(&labels).set(i64::from(in_sync));
            exported.1.push(labels);
        }
    }

    /// Counts a live token the API rejected, noticed through `source` (`logs`, `probe`).
    pub fn live_rejected(&self, source: &str) {
        let labels = SourceLabels {
            source: source.into(),
        };
        self.rejections.get_or_create(&labels).inc();
    }

    /// Whether a validated standby is waiting.
    pub fn set_standby_ready(&self, ready: bool) {
        self.standby_ready.set(i64::from(ready));
    }

    /// Records that the live token was probed now.
    pub fn live_probed(&self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        self.live_probe.set(now);
    }

    /// A target log stream opened.
    pub fn log_stream_opened(&self) {
        self.log_streams.inc();
    }

    /// A target log stream closed.
    pub fn log_stream_closed(&self) {
        self.log_streams.dec();
    }

    /// How many retired tokens are still accepted and how many are dead.
    pub fn set_retired(&self, alive: i64, dead: i64) {
        for (state, n) in [("alive", alive), ("dead", dead)] {
            let labels = StateLabels {
                state: state.into(),
            };
            self.retired.get_or_create(&labels).set(n);
        }
    }

    /// When the oldest retired token still accepted was retired (`None`: there is none).
    pub fn set_oldest_alive_retired(&self, at: Option<std::time::SystemTime>) {
        let secs = at
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0.0, |d| d.as_secs_f64());
        self.oldest_alive.set(secs);
    }

    /// A retired token was first seen rejected, `alive_for` after its retirement.
    pub fn retired_dead(&self, alive_for: std::time::Duration) {
        self.retired_alive.observe(alive_for.as_secs_f64());
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
