//! Webhook notifications: a JSON POST after each rotation and each rejected token.
//!
//! The body has a `text` field so a Slack-style incoming webhook shows it as a message.
//! Delivery runs in the background with a timeout: a failing webhook is logged and never
//! delays a rotation. Deliveries still in flight at shutdown are drained within a bound.
//! The URL is a credential (a Slack webhook URL is): it is never logged or printed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::task::JoinSet;

use crate::error::Outcome;
use crate::rotation::RotationReport;

/// A webhook URL: http(s) with a host. Its `Debug` and `Display` hide it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookUrl(reqwest::Url);

impl WebhookUrl {
    /// Parses an http:// or https:// URL with a host.
    pub fn parse(s: &str) -> Result<Self, String> {
        match reqwest::Url::parse(s) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
                Ok(WebhookUrl(u))
            }
            // Not the value: it may be a credential with a typo.
            _ => Err("not an http:// or https:// URL with a host".into()),
        }
    }
}

impl std::fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookUrl(<hidden>)")
    }
}

/// Sends events to one URL.
#[derive(Clone)]
pub struct Webhook {
    http: reqwest::Client,
    url: WebhookUrl,
    in_flight: Arc<Mutex<JoinSet<()>>>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Webhook(<hidden url>)")
    }
}

impl Webhook {
    /// A webhook client with a 10-second timeout.
    pub fn new(url: WebhookUrl) -> Result<Webhook, reqwest::Error> {
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(Duration::from_secs(10))
            .user_agent(concat!("token-rotator/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Webhook {
            http,
            url,
            in_flight: Arc::default(),
        })
    }

    /// Posts the event for `report` in the background.
    pub fn send(&self, report: &RotationReport) {
        let body = event(report);
        let (http, url) = (self.http.clone(), self.url.0.clone());
        let mut set = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        while set.try_join_next().is_some() {} // forget the finished ones
        set.spawn(async move {
            match http.post(url).json(&body).send().await {
                Ok(r) if r.status().is_success() => tracing::debug!("webhook delivered"),
                Ok(r) => tracing::warn!(status = r.status().as_u16(), "webhook refused the event"),
                Err(e) => tracing::warn!("webhook failed: {}", e.without_url()),
            }
        });
    }

    /// Waits for the deliveries in flight, for at most `bound`.
    pub async fn drain(&self, bound: Duration) {
        let mut set =
            std::mem::take(&mut *self.in_flight.lock().unwrap_or_else(|e| e.into_inner()));
        if set.is_empty() {
            return;
        }
        tracing::debug!(in_flight = set.len(), "waiting for webhook deliveries");
        let all = async { while set.join_next().await.is_some() {} };
        if tokio::time::timeout(bound, all).await.is_err() {
            tracing::warn!("webhook deliveries still in flight at shutdown were dropped");
        }
    }
}

/// The JSON body for a report.
pub fn event(report: &RotationReport) -> serde_json::Value {
    let kind = match report.outcome {
        Outcome::Rejected => "token_rejected",
        _ => "rotation",
    };
    let fp = report.fingerprint.as_deref().unwrap_or("unreadable");
    let text = match report.outcome {
        Outcome::Rotated => format!(
            "token-rotator: rotated token {fp} into {} in {:.1}s",
            names(report),
            report.duration_secs
        ),
        Outcome::AlreadyCurrent => {
            format!("token-rotator: {} already carry token {fp}", names(report))
        }
        _ => format!(
            "token-rotator: rotation to token {fp} {}: {}",
            report.outcome.label().replace('_', " "),
            report.error.as_deref().unwrap_or("")
        ),
    };
    json!({ "event": kind, "text": text, "outcome": report.outcome.label(), "report": report })
}

fn names(report: &RotationReport) -> String {
    report
        .targets
        .iter()
        .map(|t| t.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
