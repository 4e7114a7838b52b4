//! The stand-in for the Anthropic API: `POST /v1/messages` with the real wire format
//! (CONTEXT.md), told per token whether to accept, rate-limit, refuse or fail.
//!
//! Unknown tokens get 401 "Invalid bearer token", as the real API answers them.
//! Requests without the OAuth beta header get the real 401 for that case.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::json;

/// What the stand-in answers for one token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)]
pub enum Behaviour {
    /// 200 with a one-token message.
    Accept,
    /// 429 rate_limit_error.
    RateLimited,
    /// 401 authentication_error "OAuth token has expired".
    Expired,
    /// 403 permission_error "OAuth token has been revoked".
    Revoked,
    /// 529 overloaded_error.
    Overloaded,
    /// 500 with an HTML body (a proxy error page).
    ServerErrorHtml,
    /// 200 with a 10 MB body that is not JSON.
    HugeBody,
    /// Never answers (holds the request for 120 s).
    Hang,
    /// Accepted from token-rotator's probe, refused (403, "only authorized for use with
    /// Claude Code" style) from any other client: the API sees clients differently.
    ProbeOnly,
}

#[derive(Default)]
struct Inner {
    behaviours: HashMap<String, Behaviour>,
    /// A fault of the whole API: every token is answered so while it is set.
    all: Option<Behaviour>,
    hits: HashMap<String, usize>,
    bodies: Vec<serde_json::Value>,
}

/// A running stand-in API on 127.0.0.1.
#[derive(Clone)]
pub struct StandInApi {
    /// Where it listens.
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

#[allow(dead_code)]
impl StandInApi {
    /// Starts a stand-in on an ephemeral loopback port, on its own thread and runtime,
    /// so it serves whether or not the test itself is async.
    pub fn start() -> StandInApi {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let state = inner.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                tx.send(listener.local_addr().expect("addr")).expect("send");
                let app = Router::new()
                    .route("/v1/messages", post(messages))
                    .with_state(state);
                axum::serve(listener, app).await.expect("serve");
            });
        });
        let addr = rx.recv().expect("stand-in API did not start");
        StandInApi { addr, inner }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sets how `token` is answered.
    pub fn set(&self, token: &str, behaviour: Behaviour) {
        self.inner
            .lock()
            .unwrap()
            .behaviours
            .insert(token.to_string(), behaviour);
    }

    /// Answers every request with `behaviour` (an outage: `ServerErrorHtml`, `Overloaded`,
    /// `Hang`) until called again with `None`, whatever each token's own behaviour.
    pub fn fail_all(&self, behaviour: Option<Behaviour>) {
        self.inner.lock().unwrap().all = behaviour;
    }

    /// How many requests carried `token`.
    pub fn hits(&self, token: &str) -> usize {
        *self.inner.lock().unwrap().hits.get(token).unwrap_or(&0)
    }

    /// The JSON bodies received so far.
    pub fn bodies(&self) -> Vec<serde_json::Value> {
        self.inner.lock().unwrap().bodies.clone()
    }
}

fn api_error(status: u16, kind: &str, message: &str) -> Response {
    let body = json!({
        "type": "error",
        "error": {"type": kind, "message": message},
        "request_id": "req_standin0000000000000000",
    });
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn messages(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let Some(token) = header("authorization")
        .strip_prefix("Bearer ")
        .map(str::to_string)
    else {
        return api_error(401, "authentication_error", "x-api-key header is required");
    };
    if header("anthropic-version").is_empty() {
        return api_error(
            400,
            "invalid_request_error",
            "anthropic-version: header is required",
        );
    }
    if !header("anthropic-beta")
        .split(',')
        .any(|b| b.trim() == "oauth-2025-04-20")
    {
        return api_error(
            401,
            "authentication_error",
            "OAuth authentication is currently not supported.",
        );
    }
    let parsed: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => return api_error(400, "invalid_request_error", "invalid JSON body"),
    };
    let behaviour = {
        let mut g = inner.lock().unwrap();
        *g.hits.entry(token.clone()).or_default() += 1;
        g.bodies.push(parsed.clone());
        g.all.or_else(|| g.behaviours.get(&token).copied())
    };
    let from_probe = header("user-agent").starts_with("token-rotator/");
    let behaviour = match behaviour {
        Some(Behaviour::ProbeOnly) if from_probe => Some(Behaviour::Accept),
        other => other,
    };
    match behaviour {
        Some(Behaviour::ProbeOnly) => api_error(
            403,
            "permission_error",
            "This credential is not authorized for this client.",
        ),
        Some(Behaviour::Accept) => {
            let model = parsed["model"].as_str().unwrap_or("claude-haiku-4-5");
            let ok = json!({
                "id": "msg_standin", "type": "message", "role": "assistant", "model": model,
                "content": [{"type": "text", "text": "P"}],
                "stop_reason": "max_tokens", "stop_sequence": null,
                "usage": {"input_tokens": 8, "output_tokens": 1},
            });
            ([("content-type", "application/json")], ok.to_string()).into_response()
        }
        Some(Behaviour::RateLimited) => api_error(
            429,
            "rate_limit_error",
            "This request would exceed your account's rate limit. Please try again later.",
        ),
        Some(Behaviour::Expired) => api_error(
            401,
            "authentication_error",
            "OAuth token has expired. Please obtain a new token or refresh your existing token.",
        ),
        Some(Behaviour::Revoked) => api_error(
            403,
            "permission_error",
            "OAuth token has been revoked. Please obtain a new token.",
        ),
        Some(Behaviour::Overloaded) => api_error(529, "overloaded_error", "Overloaded"),
        Some(Behaviour::ServerErrorHtml) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [("content-type", "text/html")],
            "<html><body><h1>500 Internal Server Error</h1></body></html>",
        )
            .into_response(),
        Some(Behaviour::HugeBody) => Response::builder()
            .status(200)
            .header("content-type", "text/plain")
            .body(Body::from(vec![b'x'; 10 * 1024 * 1024]))
            .unwrap(),
        Some(Behaviour::Hang) => {
            tokio::time::sleep(Duration::from_secs(120)).await;
            api_error(504, "timeout_error", "late")
        }
        None => api_error(401, "authentication_error", "Invalid bearer token"),
    }
}
