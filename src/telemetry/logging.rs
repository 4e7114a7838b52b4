//! Log set-up: `tracing` to stderr as text or JSON, filtered by `TOKEN_ROTATOR_LOG`;
//! coloured only on a terminal, and never with `NO_COLOR` set.
//!
//! Whatever the filter says, other crates' events below WARN are dropped: the Docker
//! client's debug output includes raw inspect JSON, and with it the container's env,
//! which holds the token.

use tracing::{Level, Metadata};
use tracing_subscriber::filter::{filter_fn, EnvFilter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Whether an event may be written: ours at any level the filter allows, others at WARN and above.
pub fn is_safe(meta: &Metadata<'_>) -> bool {
    meta.target().starts_with("token_rotator") || *meta.level() <= Level::WARN
}

/// Installs the global subscriber. Call once.
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_env("TOKEN_ROTATOR_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour only on a terminal (not in `docker logs`), and never with NO_COLOR set.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").map_or(true, |v| v.is_empty());
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(colour);
    let layer = match format {
        LogFormat::Text => layer.boxed(),
        LogFormat::Json => layer.json().flatten_event(true).boxed(),
    };
    tracing_subscriber::registry()
        .with(layer.with_filter(filter).with_filter(filter_fn(is_safe)))
        .init();
}
