//! Prometheus metrics of the daemon, served on `/metrics` as OpenMetrics or classic
//! Prometheus text (the scraper's `Accept` decides: [`super::exposition`]).
//!
//! Labels are typed. Every `outcome` and `verdict` series exists from the start (at zero),
//! so an alert on an increase sees the first one. What each target carries
//! (`deployed_token`, `target_in_sync`) is read from the engine, not remembered from the
//! rotator's own swaps: a bot recreated by someone else shows as it is.

use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

use prometheus_client::encoding::{self, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use super::exposition::Format;
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
    oldest_alive: Gauge<f64, AtomicU64>,
    live_age: Gauge,
    /// When the live token was first deployed: its age is computed at each encoding.
    live_first_deployed: Mutex<Option<std::time::SystemTime>>,
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
        let mut m = Metrics {
            registry: Registry::with_prefix("token_rotator"),
            rotations: Family::default(),
            validations: Family::default(),
            duration: Histogram::new(exponential_buckets(0.05, 2.0, 12)),
            last_success: Gauge::default(),
            deployed: Family::default(),
            in_sync: Family::default(),
            rejections: Family::default(),
            standby_ready: Gauge::default(),
            live_probe: Gauge::default(),
            log_streams: Gauge::default(),
            retired: Family::default(),
            // From a minute to two weeks.
            retired_alive: Histogram::new(exponential_buckets(60.0, 4.0, 10)),
            oldest_alive: Gauge::default(),
            live_age: Gauge::default(),
            live_first_deployed: Mutex::default(),
            exported: Mutex::default(),
        };
        // In this order on /metrics.
        m.register_rotations();
        m.register_targets();
        m.register_live_token();
        m.register_retired_tokens();
        m.register_build();
        m
    }
}

/// Registration, one group of metrics at a time; each creates the series that exist from
/// the start (at zero).
impl Metrics {
    /// What the rotations did: by outcome, the API's verdicts, how long, when last.
    fn register_rotations(&mut self) {
        let r = &mut self.registry;
        r.register("rotations", "Rotations by outcome", self.rotations.clone());
        for o in Outcome::ALL {
            let zero = OutcomeLabels {
                outcome: o.label().into(),
            };
            self.rotations.get_or_create(&zero).inc_by(0);
        }
        r.register(
            "validations",
            "Token validations by verdict",
            self.validations.clone(),
        );
        for v in Verdict::LABELS {
            let zero = VerdictLabels { verdict: v.into() };
            self.validations.get_or_create(&zero).inc_by(0);
        }
        r.register(
            "rotation_duration_seconds",
            "Wall time of rotations that swapped containers",
            self.duration.clone(),
        );
        r.register(
            "last_success_timestamp_seconds",
            "Unix time of the last rotation that swapped every target (0: none yet)",
            self.last_success.clone(),
        );
    }

    /// What each target carries, as the engine shows it (no series until a scrape looks).
    fn register_targets(&mut self) {
        self.registry.register(
            "deployed_token",
            "1 for the token fingerprint each target carries, as the engine shows it",
            self.deployed.clone(),
        );
        self.registry.register(
            "target_in_sync",
            "1 when the target carries the secret file's token, else 0",
            self.in_sync.clone(),
        );
    }

    /// The live token's watch (rejections, probes, the bots' log streams) and the standby.
    fn register_live_token(&mut self) {
        let r = &mut self.registry;
        r.register(
            "live_token_rejections",
            "Live tokens the API rejected, by how it was noticed (logs, probe)",
            self.rejections.clone(),
        );
        for source in ["logs", "probe"] {
            let zero = SourceLabels {
                source: source.into(),
            };
            self.rejections.get_or_create(&zero).inc_by(0);
        }
        r.register(
            "standby_ready",
            "1 when a validated standby token is waiting, else 0",
            self.standby_ready.clone(),
        );
        r.register(
            "live_probe_timestamp_seconds",
            "Unix time of the last probe of the live token (0: none yet)",
            self.live_probe.clone(),
        );
        r.register(
            "live_token_age_seconds",
            "Seconds since the live token was first deployed, an estimate from the token-rotator.first-deployed label (0: no live token or not known)",
            self.live_age.clone(),
        );
        r.register(
            "log_streams",
            "Target log streams open now",
            self.log_streams.clone(),
        );
    }

    /// The retired tokens being watched until the API rejects them.
    fn register_retired_tokens(&mut self) {
        let r = &mut self.registry;
        r.register(
            "retired_tokens",
            "Retired tokens being watched, by state (alive: still accepted, dead: rejected)",
            self.retired.clone(),
        );
        for state in ["alive", "dead"] {
            let zero = StateLabels {
                state: state.into(),
            };
            self.retired.get_or_create(&zero).set(0);
        }
        r.register(
            "retired_token_alive_seconds",
            "How long retired tokens kept working after their retirement, until rejected",
            self.retired_alive.clone(),
        );
        r.register(
            "oldest_alive_retired_token_timestamp_seconds",
            "Unix time at which the oldest retired token that the API still accepts was retired (0: none)",
            self.oldest_alive.clone(),
        );
    }

    /// An info metric: `token_rotator_build_info{version} 1` in both formats (type `info`
    /// in OpenMetrics, `gauge` in the classic format).
    fn register_build(&mut self) {
        let build = Info::new(BuildLabels {
            version: env!("CARGO_PKG_VERSION").into(),
        });
        self.registry
            .register("build", "The running version", build);
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

    /// When the live token was first deployed (`None`: no live token, or not known).
    pub fn set_live_first_deployed(&self, at: Option<std::time::SystemTime>) {
        *self
            .live_first_deployed
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = at;
    }

    /// A retired token was first seen rejected, `alive_for` after its retirement.
    pub fn retired_dead(&self, alive_for: std::time::Duration) {
        self.retired_alive.observe(alive_for.as_secs_f64());
    }

    /// The exposition in `format` (see [`Format::negotiate`]).
    pub fn encode(&self, format: Format) -> String {
        let since = *self
            .live_first_deployed
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let age = since.map_or(0, |t| {
            let secs = std::time::SystemTime::now().duration_since(t);
            secs.unwrap_or_default().as_secs()
        });
        self.live_age.set(i64::try_from(age).unwrap_or(i64::MAX));
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = match format {
            Format::OpenMetrics => encoding::text::encode(&mut out, &self.registry),
            Format::Classic => encoding::prometheus_text::encode(&mut out, &self.registry),
        };
        out
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::telemetry::status::TargetStatus;

    /// Metrics with a value in every family, as a daemon that has worked a while has.
    fn busy() -> Metrics {
        let m = Metrics::default();
        m.set_targets(&Snapshot {
            secret_file: "/run/secrets/t".into(),
            secret_fingerprint: Some("ab12".into()),
            secret_error: None,
            targets: vec![TargetStatus {
                kind: "container",
                name: "bot".into(),
                id: Some("c0ffee".into()),
                state: "running".into(),
                fingerprint: Some("ab12".into()),
                matches_secret: Some(true),
                rotation: None,
                swapped_at: None,
                first_deployed_at: None,
                error: None,
                interrupted: None,
            }],
        });
        m.live_rejected("probe");
        m.set_standby_ready(true);
        m.live_probed();
        m.log_stream_opened();
        m.set_retired(1, 2);
        m.retired_dead(std::time::Duration::from_secs(3600));
        m
    }

    /// Each sample's series (`name{labels}`) and value; `le` bounds as numbers, which the
    /// two formats spell differently (`60.0`, `60`).
    fn samples(text: &str) -> BTreeMap<String, String> {
        let le = regex::Regex::new(r#"le="([^"]+)""#).unwrap();
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| {
                let (series, value) = l.rsplit_once(' ').expect("a sample line");
                let series = le.replace(series, |c: &regex::Captures| {
                    let bound: f64 = c[1].parse().expect("a number");
                    format!("le=\"{bound}\"")
                });
                (series.into_owned(), value.to_string())
            })
            .collect()
    }

    #[test]
    fn openmetrics_is_openmetrics() {
        let om = busy().encode(Format::OpenMetrics);
        assert!(om.ends_with("\n# EOF\n"), "{om}");
        assert!(om.contains("# TYPE token_rotator_build info\n"), "{om}");
        assert!(
            om.contains("# TYPE token_rotator_rotations counter\n"),
            "{om}"
        );
        assert!(om.contains("\ntoken_rotator_rotations_total{outcome=\"rotated\"} 0\n"));
    }

    #[test]
    fn classic_text_is_classic() {
        let text = busy().encode(Format::Classic);
        assert!(!text.contains("# EOF"), "{text}");
        assert!(!text.contains("# UNIT"), "{text}");
        let version = env!("CARGO_PKG_VERSION");
        for want in [
            "# HELP token_rotator_build_info The running version.\n".to_string(),
            "# TYPE token_rotator_build_info gauge\n".into(),
            format!("token_rotator_build_info{{version=\"{version}\"}} 1\n"),
            "# HELP token_rotator_rotations_total Rotations by outcome.\n".into(),
            "# TYPE token_rotator_rotations_total counter\n".into(),
            "# TYPE token_rotator_rotation_duration_seconds histogram\n".into(),
            "token_rotator_retired_token_alive_seconds_bucket{le=\"+Inf\"} 1\n".into(),
            "# TYPE token_rotator_standby_ready gauge\n".into(),
        ] {
            assert!(text.contains(&want), "no {want:?} in\n{text}");
        }
        assert_families_in_order(&text);
    }

    /// Each family's HELP, then TYPE, then its samples, each named after it.
    fn assert_families_in_order(text: &str) {
        let mut family = None;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                family = rest.split(' ').next().map(str::to_string);
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert_eq!(Some(name), family.as_deref(), "{line}");
                assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            } else {
                let f = family.as_deref().expect("a sample after a HELP line");
                let name = line.split(['{', ' ']).next().unwrap();
                let suffix = name
                    .strip_prefix(f)
                    .unwrap_or_else(|| panic!("{line} in {f}"));
                assert!(
                    ["", "_bucket", "_sum", "_count"].contains(&suffix),
                    "{line}"
                );
            }
        }
    }

    #[test]
    fn both_formats_carry_the_same_series_and_values() {
        let m = busy();
        let om = samples(&m.encode(Format::OpenMetrics));
        let text = samples(&m.encode(Format::Classic));
        assert_eq!(om, text);
        // The contract, by name (examples/prometheus/alerts.yml and README use them).
        let names: std::collections::BTreeSet<&str> = text
            .keys()
            .map(|s| s.split(['{', ' ']).next().unwrap())
            .collect();
        for want in [
            "token_rotator_rotations_total",
            "token_rotator_validations_total",
            "token_rotator_rotation_duration_seconds_bucket",
            "token_rotator_rotation_duration_seconds_sum",
            "token_rotator_rotation_duration_seconds_count",
            "token_rotator_last_success_timestamp_seconds",
            "token_rotator_deployed_token",
            "token_rotator_target_in_sync",
            "token_rotator_build_info",
            "token_rotator_live_token_rejections_total",
            "token_rotator_standby_ready",
            "token_rotator_live_probe_timestamp_seconds",
            "token_rotator_log_streams",
            "token_rotator_retired_tokens",
            "token_rotator_retired_token_alive_seconds_bucket",
            "token_rotator_oldest_alive_retired_token_timestamp_seconds",
            "token_rotator_live_token_age_seconds",
        ] {
            assert!(names.contains(want), "no {want} in {names:?}");
        }
        assert_eq!(
            text.get("token_rotator_deployed_token{container=\"bot\",fingerprint=\"ab12\"}"),
            Some(&"1".to_string())
        );
        assert_eq!(
            text.get("token_rotator_retired_tokens{state=\"dead\"}"),
            Some(&"2".to_string())
        );
    }

    #[test]
    fn the_live_token_age_is_counted_at_each_scrape_from_its_first_deployment() {
        let m = busy();
        let age = |m: &Metrics| -> u64 {
            let text = samples(&m.encode(Format::Classic));
            text["token_rotator_live_token_age_seconds"]
                .parse()
                .unwrap()
        };
        assert_eq!(age(&m), 0, "no live token: 0");
        let day_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(86_400);
        m.set_live_first_deployed(Some(day_ago));
        let a = age(&m);
        assert!((86_400..86_460).contains(&a), "{a}");
        m.set_live_first_deployed(None);
        assert_eq!(age(&m), 0);
    }
}
