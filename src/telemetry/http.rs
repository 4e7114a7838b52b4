//! The daemon's endpoints: `/healthz` (alive), `/readyz` (engine, secret, targets),
//! `/metrics` (Prometheus text) and `/status` (JSON).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::status::collect;
use super::Shared;
use crate::rotation::Rotator;

#[derive(Clone)]
struct App {
    shared: Arc<Shared>,
    rotator: Arc<Rotator>,
}

/// Serves on `listener` (bound by the caller, so a taken address fails at start) until
/// `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    rotator: Arc<Rotator>,
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
        .with_state(App { shared, rotator });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn snapshot(app: &App) -> super::status::Snapshot {
    let r = &app.rotator;
    collect(
        &r.docker,
        &r.containers,
        &r.container.env_var,
        &r.secret.path,
        r.secret.format,
    )
    .await
}

async fn readyz(State(app): State<App>) -> Response {
    let mut problems = Vec::new();
    if let Err(e) = app.rotator.docker.ping().await {
        problems.push(format!("engine: {}", crate::engine::describe(&e)));
    } else {
        problems.extend(snapshot(&app).await.problems());
    }
    if problems.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "ready": false, "problems": problems })),
        )
            .into_response()
    }
}

async fn metrics(State(app): State<App>) -> Response {
    (
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.shared.metrics.encode(),
    )
        .into_response()
}

async fn status(State(app): State<App>) -> Response {
    let snap = snapshot(&app).await;
    let last = app
        .shared
        .last_report
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    Json(
        json!({ "secret_file": snap.secret_file, "secret_fingerprint": snap.secret_fingerprint,
        "secret_error": snap.secret_error, "targets": snap.targets, "last_rotation": last }),
    )
    .into_response()
}
