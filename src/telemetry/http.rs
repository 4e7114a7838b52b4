//! The daemon's endpoints: `/healthz` (alive), `/readyz` (engine, secret, targets),
//! `/metrics` (OpenMetrics or classic Prometheus text, by `Accept`) and `/status` (JSON).

use std::sync::Arc;

use axum::extract::State;
use axum::http::header::{ACCEPT, CONTENT_TYPE, VARY};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::exposition::Format;
use super::status::collect;
use super::Shared;
use crate::rotation::Rotator;

#[derive(Clone)]
struct App {
    shared: Arc<Shared>,
}

impl App {
    /// The rotator, or why there is none yet (the engine has not answered since start).
    fn rotator(&self) -> Result<&Arc<Rotator>, String> {
        self.shared.rotator.get().ok_or_else(|| {
            let why = self
                .shared
                .engine_problem
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            format!(
                "engine: not connected yet ({}); retrying",
                why.unwrap_or_else(|| "connecting".into())
            )
        })
    }
}

/// Serves on `listener` (bound by the caller, so a taken address fails at start) until
/// `shutdown` completes. Until the engine answers, `/readyz` says so and `/status` is 503.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving /healthz /readyz /metrics /status");
    }
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .with_state(App { shared });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn snapshot(r: &Rotator) -> super::status::Snapshot {
    let names = match r.target_names().await {
        Ok(n) => n,
        // The engine could not list them: show the named ones, which it then reports.
        Err(_) => r
            .targets
            .names
            .iter()
            .map(|n| (n.clone(), r.container.env_var.clone()))
            .collect(),
    };
    let services = match r.targets.service_names(&r.docker).await {
        Ok(s) => s,
        Err(_) => r.targets.services.clone(),
    };
    let var = &r.container.env_var;
    collect(
        &r.docker,
        &names,
        &services,
        var,
        &r.secret.path,
        r.secret.format,
    )
    .await
}

async fn readyz(State(app): State<App>) -> Response {
    let mut problems = Vec::new();
    match app.rotator() {
        Err(why) => problems.push(why),
        Ok(r) => {
            if let Err(e) = r.docker.ping().await {
                problems.push(format!("engine: {}", crate::engine::describe(&e)));
            } else {
                problems.extend(snapshot(r).await.problems());
            }
            problems.extend(crate::secret::single_file_mount_problem(&r.secret.path));
        }
    }
    let status = if problems.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({ "ready": problems.is_empty(), "problems": problems });
    (status, Json(body)).into_response()
}

/// In the format the `Accept` header asks for (see [`Format::negotiate`]).
async fn metrics(State(app): State<App>, headers: HeaderMap) -> Response {
    // What the targets carry is read now, from the engine: someone else may have
    // recreated a bot since the last rotation.
    if let Ok(r) = app.rotator() {
        app.shared.metrics.set_targets(&snapshot(r).await);
    }
    // Several Accept headers are one list (RFC 9110, 5.3).
    let accept: Vec<&str> = headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let format = Format::negotiate((!accept.is_empty()).then(|| accept.join(",")).as_deref());
    (
        [(CONTENT_TYPE, format.content_type()), (VARY, "accept")],
        app.shared.metrics.encode(format),
    )
        .into_response()
}

/// Where the state that survives a restart is kept: `{"kept": "file", "file": PATH}`, or
/// `{"kept": "memory"}` (no `--state-dir`: a restart forgets it).
fn state_kept(shared: &crate::telemetry::Shared) -> serde_json::Value {
    match shared.state_file.get() {
        Some(Some(file)) => json!({ "kept": "file", "file": file.display().to_string() }),
        _ => json!({ "kept": "memory" }),
    }
}

async fn status(State(app): State<App>) -> Response {
    let r = match app.rotator() {
        Ok(r) => r,
        Err(why) => {
            let body = json!({ "error": why, "last_rotation": null });
            return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
        }
    };
    let snap = snapshot(r).await;
    let last = app
        .shared
        .last_report
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let mut tokens = app
        .shared
        .tokens
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    if let Some(live) = tokens.live.as_mut() {
        live.age.at(std::time::SystemTime::now()); // as of this request
    }
    Json(
        json!({ "secret_file": snap.secret_file, "secret_fingerprint": snap.secret_fingerprint,
        "secret_error": snap.secret_error, "targets": snap.targets, "last_rotation": last,
        "live": tokens.live, "standby": tokens.standby, "retired": tokens.retired,
        "rejected": tokens.rejected, "state": state_kept(&app.shared) }),
    )
    .into_response()
}
