//! Webhook notifications: a JSON POST for each rotation, each refused token, and each event
//! of the live, standby and retired tokens.
//!
//! The body has a `text` field so a Slack-style incoming webhook shows it as a message.
//! Delivery runs in the background with a timeout, one event after the other in the order
//! they were sent (a receiver sees `live_token_rejected` before `standby_promoted`): a
//! failing webhook is logged and never delays a rotation. Deliveries still in flight at
//! shutdown are drained within a bound.
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
    /// Completes when the delivery sent last is done: the next one waits for it.
    last: Arc<Mutex<Option<tokio::sync::oneshot::Receiver<()>>>>,
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
            last: Arc::default(),
        })
    }

    /// Posts the event for `report` in the background.
    pub fn send(&self, report: &RotationReport) {
        self.send_json(event(report));
    }

    /// Posts `body` in the background.
    pub fn send_json(&self, body: serde_json::Value) {
        let (http, url) = (self.http.clone(), self.url.0.clone());
        let mut set = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        while set.try_join_next().is_some() {} // forget the finished ones
        let (done, next) = tokio::sync::oneshot::channel();
        let before = self
            .last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(next);
        set.spawn(async move {
            if let Some(before) = before {
                let _ = before.await; // in order: after the one sent before
            }
            match http.post(url).json(&body).send().await {
                Ok(r) if r.status().is_success() => tracing::debug!("webhook delivered"),
                Ok(r) => tracing::warn!(status = r.status().as_u16(), "webhook refused the event"),
                Err(e) => tracing::warn!("webhook failed: {}", e.without_url()),
            }
            let _ = done.send(());
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
        Outcome::CanaryFailed => "canary_failed",
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

/// `live_token_rejected`: the API rejected the token the targets run on.
pub fn live_token_rejected(
    fingerprint: &str,
    source: &str,
    answer: &str,
    targets: &[String],
) -> serde_json::Value {
    let text = format!(
        "token-rotator: the live token {fingerprint} was rejected by the API ({answer}), noticed \
         from {source}; the bots {} cannot authenticate. A valid standby is deployed if there is \
         one; else write a new token (claude setup-token) into the secret file.",
        targets.join(", ")
    );
    json!({ "event": "live_token_rejected", "text": text, "fingerprint": fingerprint,
            "source": source, "answer": answer, "targets": targets })
}

/// `standby_promoted`: the standby token replaced a rejected live token.
pub fn standby_promoted(old: &str, new: &str, report: &RotationReport) -> serde_json::Value {
    let text = format!(
        "token-rotator: standby token {new} replaced the rejected live token {old} in {}; \
         write a new standby token to keep a spare.",
        names(report)
    );
    json!({ "event": "standby_promoted", "text": text, "old_fingerprint": old,
            "new_fingerprint": new, "report": report })
}

/// `standby_needed`: no valid standby is left.
pub fn standby_needed(
    live: &str,
    standby_file: Option<&std::path::Path>,
    why: &str,
    promoted: Option<&str>,
) -> serde_json::Value {
    let place = standby_file.map_or_else(
        || "set --standby-file and write a spare token there, or write a new token into the secret file".to_string(),
        |p| format!("write a new token (claude setup-token) into {} or into the secret file", p.display()),
    );
    let text = match promoted {
        None => format!(
            "token-rotator: the live token {live} was rejected and there is no valid standby ({why}); \
             the bots were left as they are. A human must act: {place}."
        ),
        Some(now) => format!(
            "token-rotator: the standby token {now} replaced the rejected token {live} and is live now; \
             no spare is left for the next failure ({why}). A human must act: {place}."
        ),
    };
    json!({ "event": "standby_needed", "text": text, "fingerprint": live, "reason": why,
            "live_fingerprint": promoted.unwrap_or(live),
            "standby_file": standby_file.map(|p| p.display().to_string()) })
}

/// `retired_token_dead`: a retired token is finally rejected by the API.
pub fn retired_token_dead(
    fingerprint: &str,
    retired_at: &str,
    rejected_at: &str,
    alive_for: u64,
) -> serde_json::Value {
    let text = format!(
        "token-rotator: the retired token {fingerprint} is dead: the API rejected it {alive_for} s \
         after it was retired ({retired_at}). Nothing more to do."
    );
    json!({ "event": "retired_token_dead", "text": text, "fingerprint": fingerprint,
            "retired_at": retired_at, "first_rejected_at": rejected_at, "alive_for_seconds": alive_for })
}

/// `retired_token_alive`: a retired token still works long after its retirement.
pub fn retired_token_alive(
    fingerprint: &str,
    retired_at: &str,
    alive_for: u64,
) -> serde_json::Value {
    let text = format!(
        "token-rotator: the retired token {fingerprint} still works {alive_for} s after it was \
         retired ({retired_at}): whoever holds it can still use the subscription. Revoke it at \
         claude.ai (settings, Claude Code); it is watched until the API rejects it."
    );
    json!({ "event": "retired_token_alive", "text": text, "fingerprint": fingerprint,
            "retired_at": retired_at, "alive_for_seconds": alive_for })
}

fn names(report: &RotationReport) -> String {
    report
        .targets
        .iter()
        .map(|t| t.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
