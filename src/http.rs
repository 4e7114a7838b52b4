//! The daemon's endpoints: `/healthz` (alive), `/readyz` (engine, secret, targets),
//! `/metrics` (Prometheus text) and `/status` (JSON).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::daemon::Shared;
use crate::rotate::Rotator;
use crate::status::collect;

#[derive(Clone)]
struct App {
    shared: Arc<Shared>,
    rotator: Arc<Rotator>,
}

/// Binds `addr` and serves until `shutdown` completes.
pub async fn serve(
    addr: SocketAddr,
    shared: Arc<Shared>,
    rotator: Arc<Rotator>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving /healthz /readyz /metrics /status");
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

async fn snapshot(app: &App) -> crate::status::Snapshot {
    let r = &app.rotator;
    collect(
        &r.docker,
        &r.containers,
        &r.verify.env_var,
        &r.secret_file,
        r.token_format,
    )
    .await
}

async fn readyz(State(app): State<App>) -> Response {
    let mut problems = Vec::new();
    if let Err(e) = app.rotator.docker.ping().await {
        problems.push(format!("engine: {}", crate::docker::describe(&e)));
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
