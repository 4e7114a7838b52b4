//! Prometheus metrics of the daemon, served as text on `/metrics`.

use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::error::Outcome;
use crate::rotation::{RotationReport, TargetOutcome};

type Labels = Vec<(&'static str, String)>;

/// The daemon's metrics.
pub struct Metrics {
    registry: Registry,
    rotations: Family<Labels, Counter>,
    validations: Family<Labels, Counter>,
    duration: Histogram,
    last_success: Gauge<f64, AtomicU64>,
    deployed: Family<Labels, Gauge>,
    /// The label set currently exported per container, to replace it when it changes.
    deployed_now: Mutex<Vec<Labels>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("token_rotator");
        let rotations = Family::<Labels, Counter>::default();
        registry.register("rotations", "Rotations by outcome", rotations.clone());
        let validations = Family::<Labels, Counter>::default();
        registry.register(
            "validations",
            "Token validations by verdict",
            validations.clone(),
        );
        let duration = Histogram::new(exponential_buckets(0.05, 2.0, 12));
        registry.register(
            "rotation_duration_seconds",
            "Wall time of rotations that swapped containers",
            duration.clone(),
        );
        let last_success = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "last_success_timestamp_seconds",
            "Unix time of the last rotation that swapped every target",
            last_success.clone(),
        );
        let deployed = Family::<Labels, Gauge>::default();
        registry.register(
            "deployed_token",
            "1 for the token fingerprint each target carries",
            deployed.clone(),
        );
        Metrics {
            registry,
            rotations,
            validations,
            duration,
            last_success,
            deployed,
            deployed_now: Mutex::new(Vec::new()),
        }
    }
}

impl Metrics {
    /// Records one rotation's report.
    pub fn observe(&self, report: &RotationReport) {
        self.rotations
            .get_or_create(&vec![("outcome", report.outcome.label().to_string())])
            .inc();
        if let Some(label) = report.validation {
            self.validations
                .get_or_create(&vec![("verdict", label.to_string())])
                .inc();
        }
        let swapped = report
            .targets
            .iter()
            .any(|t| t.outcome == TargetOutcome::Swapped);
        if swapped {
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

    /// Sets the fingerprint each container carries (`None`: not set or not found).
    pub fn set_deployed(&self, container: &str, fingerprint: Option<&str>) {
        let mut now = self.deployed_now.lock().unwrap_or_else(|e| e.into_inner());
        now.retain(|labels| {
            let same = labels[0].1 == container;
            if same {
                self.deployed.remove(labels);
            }
            !same
        });
        if let Some(fp) = fingerprint {
            let labels = vec![
                ("container", container.to_string()),
                ("fingerprint", fp.to_string()),
            ];
            self.deployed.get_or_create(&labels).set(1);
            now.push(labels);
        }
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
