//! What the rotator tells the outside: [`logging`] (tracing, with dependencies kept from
//! printing container env), [`metrics`] (Prometheus), [`status`] (each target as the engine
//! shows it), [`http`] (the daemon's endpoints) and [`webhook`] (events).

pub mod http;
pub mod logging;
pub mod metrics;
pub mod status;
pub mod webhook;

use std::sync::{Arc, OnceLock, RwLock};

/// What the daemon shares with its endpoints.
#[derive(Debug, Default)]
pub struct Shared {
    /// Metrics.
    pub metrics: metrics::Metrics,
    /// The last rotation's report.
    pub last_report: RwLock<Option<crate::rotation::RotationReport>>,
    /// The rotator, once the engine answered (the endpoints serve before that).
    pub rotator: OnceLock<Arc<crate::rotation::Rotator>>,
    /// Why the engine cannot be reached yet, while the daemon waits for it at start.
    pub engine_problem: RwLock<Option<String>>,
}
