//! Webhook notifications: a JSON POST after each rotation and each rejected token.
//!
//! The body has a `text` field so a Slack-style incoming webhook shows it as a message.
//! Delivery runs in the background with a timeout: a failing webhook is logged and never
//! delays or blocks a rotation.

use std::time::Duration;

use serde_json::json;

use crate::report::{Outcome, RotationReport};

/// Sends events to one URL.
#[derive(Debug, Clone)]
pub struct Webhook {
    http: reqwest::Client,
    url: String,
}

impl Webhook {
    /// A webhook client with a 10-second timeout.
    pub fn new(url: String) -> Result<Webhook, reqwest::Error> {
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(Duration::from_secs(10))
            .user_agent(concat!("token-rotator/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Webhook { http, url })
    }

    /// Posts the event for `report` in the background; returns the task (tests await it).
    pub fn send(&self, report: &RotationReport) -> tokio::task::JoinHandle<()> {
        let body = event(report);
        let (http, url) = (self.http.clone(), self.url.clone());
        tokio::spawn(async move {
            match http.post(&url).json(&body).send().await {
                Ok(r) if r.status().is_success() => tracing::debug!("webhook delivered"),
                Ok(r) => tracing::warn!(status = r.status().as_u16(), "webhook refused the event"),
                Err(e) => tracing::warn!("webhook failed: {}", e.without_url()),
            }
        })
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
