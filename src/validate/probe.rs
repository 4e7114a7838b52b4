//! The API probe: one cheap `POST /v1/messages` (`max_tokens: 1`) shaped like Claude Code's own
//! requests. Answers are sorted into [`Verdict`]s; inconclusive ones are retried with
//! backoff until a deadline and are never treated as valid.

use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use crate::engine::Backoff;
use crate::secret::Token;

/// The beta flag without which an OAuth token is refused.
pub const OAUTH_BETA: &str = "oauth-2025-04-20";
/// API version header value.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";
/// Largest response body read; a bigger one is cut (the verdict needs only the start).
const MAX_BODY: usize = 64 * 1024;

/// What the API said about a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The token authenticates.
    Valid {
        /// HTTP status (2xx, or 429).
        status: u16,
        /// Extra context, e.g. that a 429 still proves the credential was recognised.
        note: Option<String>,
    },
    /// The token was refused (401, 403).
    Invalid {
        /// HTTP status.
        status: u16,
        /// The API's `error.type`.
        error_type: String,
        /// The API's `error.message`.
        message: String,
    },
    /// Nothing can be said (5xx, timeout, network, unparseable answer).
    Inconclusive {
        /// Why.
        reason: String,
    },
    /// Validation was turned off with `--validate none`.
    Skipped,
}

impl Verdict {
    /// Every label, as listed in the README.
    pub const LABELS: [&'static str; 4] = [Self::VALID, "invalid", "inconclusive", "skipped"];
    /// The label of [`Verdict::Valid`], as a report's `validation` holds it.
    pub const VALID: &'static str = "valid";

    /// Short stable name for metrics and exit codes.
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Valid { .. } => Self::VALID,
            Verdict::Invalid { .. } => "invalid",
            Verdict::Inconclusive { .. } => "inconclusive",
            Verdict::Skipped => "skipped",
        }
    }

    /// Whether this verdict allows the token to be swapped in.
    pub fn allows_swap(&self) -> bool {
        matches!(self, Verdict::Valid { .. } | Verdict::Skipped)
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Valid { status, note: None } => write!(f, "valid (HTTP {status})"),
            Verdict::Valid {
                status,
                note: Some(n),
            } => write!(f, "valid (HTTP {status}: {n})"),
            Verdict::Invalid {
                status,
                error_type,
                message,
            } => write!(f, "invalid (HTTP {status} {error_type}: {message})"),
            Verdict::Inconclusive { reason } => write!(f, "inconclusive ({reason})"),
            Verdict::Skipped => write!(f, "not validated (--validate none)"),
        }
    }
}

/// Settings of the probe.
#[derive(Debug, Clone)]
pub struct ValidatorConfig {
    /// API base URL, without the `/v1/messages` path.
    pub base_url: reqwest::Url,
    /// Model for the probe.
    pub model: String,
    /// Timeout of one request.
    pub request_timeout: Duration,
    /// Retry inconclusive answers until this much time has passed.
    pub deadline: Duration,
}

/// Why a validator could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    /// The HTTP client failed to initialise (TLS setup).
    #[error("cannot initialise the HTTPS client")]
    Client(#[source] reqwest::Error),
}

/// Sends validation probes.
#[derive(Debug, Clone)]
pub struct Validator {
    http: reqwest::Client,
    url: String,
    cfg: ValidatorConfig,
}

impl Validator {
    /// Builds a client with bundled web PKI roots (a scratch image has no CA store).
    pub fn new(cfg: ValidatorConfig) -> Result<Self, ValidateError> {
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(cfg.request_timeout)
            .connect_timeout(cfg.request_timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("token-rotator/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(ValidateError::Client)?;
        let url = format!(
            "{}/v1/messages?beta=true",
            cfg.base_url.as_str().trim_end_matches('/')
        );
        Ok(Validator { http, url, cfg })
    }

    /// Probes until a conclusive verdict or the deadline; returns the last verdict.
    pub async fn validate(&self, token: &Token) -> Verdict {
        let start = Instant::now();
        let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(10));
        let mut attempt = 1u32;
        loop {
            let verdict = self.probe_once(token).await;
            let Verdict::Inconclusive { reason } = &verdict else {
                return verdict;
            };
            let left = self.cfg.deadline.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Verdict::Inconclusive {
                    reason: format!("{reason}; gave up after {attempt} attempt(s)"),
                };
            }
            let delay = backoff.next_delay().min(left);
            tracing::warn!(fingerprint = %token.fingerprint(), attempt, %reason, retry_in_ms = delay.as_millis() as u64, "validation inconclusive, retrying");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// One probe request, classified.
    pub async fn probe_once(&self, token: &Token) -> Verdict {
        let body = json!({
            "model": self.cfg.model,
            "max_tokens": 1,
            "messages": [{"role": "user", "content": "ping"}],
        });
        let sent = self
            .http
            .post(&self.url)
            .bearer_auth(token.expose())
            .header("anthropic-version", ANTHROPIC_VERSION)
            .header("anthropic-beta", OAUTH_BETA)
            .json(&body)
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => {
                return Verdict::Inconclusive {
                    reason: describe_transport_error(&e),
                }
            }
        };
        let status = resp.status().as_u16();
        let body = match read_bounded(resp).await {
            Ok(b) => b,
            Err(e) => {
                return Verdict::Inconclusive {
                    reason: format!(
                        "HTTP {status}, body unreadable: {}",
                        describe_transport_error(&e)
                    ),
                }
            }
        };
        scrub(classify(status, &body), token)
    }
}

/// Sorts one HTTP answer into a verdict.
pub fn classify(status: u16, body: &[u8]) -> Verdict {
    let api_error = parse_error(body);
    match (status, api_error) {
        (200..=299, _) if is_message(body) => Verdict::Valid { status, note: None },
        (200..=299, _) => Verdict::Inconclusive {
            reason: format!("HTTP {status} but the body is not an API message (a proxy or captive portal?)"),
        },
        (429, Some((t, _))) if t == "rate_limit_error" => Verdict::Valid {
            status,
            note: Some(
                "rate-limited, which proves the credential was recognised; probes count against the subscription's limits".into(),
            ),
        },
        (401 | 403, Some((error_type, message))) => Verdict::Invalid {
            status,
            error_type,
            message,
        },
        // Without the API's error shape the answer may come from a proxy in between.
        (_, Some((t, m))) => Verdict::Inconclusive {
            reason: format!("HTTP {status} {t}: {m}"),
        },
        (_, None) => Verdict::Inconclusive {
            reason: format!("HTTP {status} with a body that is not an API answer"),
        },
    }
}

fn is_message(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("type")?.as_str().map(|t| t == "message"))
        .unwrap_or(false)
}

fn parse_error(body: &[u8]) -> Option<(String, String)> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    if v.get("type")?.as_str()? != "error" {
        return None;
    }
    let err = v.get("error")?;
    let t = err.get("type")?.as_str()?;
    let m = err.get("message").and_then(|m| m.as_str()).unwrap_or("");
    Some((clip(t, 64), clip(m, 300)))
}

fn clip(s: &str, max: usize) -> String {
    let clean: String = s.chars().filter(|c| !c.is_control()).collect();
    match clean.char_indices().nth(max) {
        Some((i, _)) => format!("{}...", &clean[..i]),
        None => clean,
    }
}

/// An API message quoting the token back must not carry it into our logs.
fn scrub(v: Verdict, token: &Token) -> Verdict {
    let redact = |s: String| s.replace(token.expose(), "<redacted>");
    match v {
        Verdict::Invalid {
            status,
            error_type,
            message,
        } => Verdict::Invalid {
            status,
            error_type: redact(error_type),
            message: redact(message),
        },
        Verdict::Inconclusive { reason } => Verdict::Inconclusive {
            reason: redact(reason),
        },
        other => other,
    }
}

async fn read_bounded(mut resp: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        let room = MAX_BODY - out.len();
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() >= MAX_BODY {
            break;
        }
    }
    Ok(out)
}

fn describe_transport_error(e: &reqwest::Error) -> String {
    // reqwest's Display includes the URL, which holds no secret; walk the sources for the cause.
    let mut msg = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "connection failed".to_string()
    } else {
        "request failed".to_string()
    };
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(t: &str, m: &str) -> Vec<u8> {
        serde_json::to_vec(
            &json!({"type":"error","error":{"type":t,"message":m},"request_id":"req_1"}),
        )
        .unwrap()
    }

    #[test]
    fn answers_are_classified_as_context_describes() {
        assert_eq!(
            classify(200, br#"{"type":"message","content":[]}"#).label(),
            "valid"
        );
        assert_eq!(classify(200, b"<html>login</html>").label(), "inconclusive");
        assert_eq!(
            classify(429, &err("rate_limit_error", "slow down")).label(),
            "valid"
        );
        let v = classify(401, &err("authentication_error", "Invalid bearer token"));
        assert_eq!(
            v.to_string(),
            "invalid (HTTP 401 authentication_error: Invalid bearer token)"
        );
        let v = classify(
            403,
            &err(
                "permission_error",
                "OAuth token has been revoked. Please obtain a new token.",
            ),
        );
        assert_eq!(v.label(), "invalid");
        assert_eq!(
            classify(529, &err("overloaded_error", "Overloaded")).label(),
            "inconclusive"
        );
        assert_eq!(classify(500, b"<html>oops</html>").label(), "inconclusive");
        assert_eq!(classify(401, b"<html>proxy</html>").label(), "inconclusive");
        assert_eq!(classify(429, b"too many").label(), "inconclusive");
    }
}
