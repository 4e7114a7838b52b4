//! Log set-up: `tracing` to stderr as text or JSON, filtered by `TOKEN_ROTATOR_LOG`;
//! coloured only on a terminal, and never with `NO_COLOR` set.
//!
//! Text is for a person: time, level, the spans it happened in by name (`rotation:swap:`),
//! the message, its fields, then the spans' fields; no Rust module path. JSON is for a
//! machine and keeps everything: the target (module path), the current span and the list
//! of spans with their fields.
//!
//! Whatever the filter says, other crates' events below WARN are dropped: the Docker
//! client's debug output includes raw inspect JSON, and with it the container's env,
//! which holds the token.

use std::ffi::OsStr;

use tracing::{Level, Metadata, Subscriber};
use tracing_subscriber::filter::{filter_fn, EnvFilter};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
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

/// Whether to colour: only on a terminal (not in `docker logs`, not into a file or a
/// pipe), and never with `NO_COLOR` set to anything but the empty string.
pub fn colour(terminal: bool, no_color: Option<&OsStr>) -> bool {
    terminal && no_color.map_or(true, OsStr::is_empty)
}

/// The formatting layer, writing to `writer`.
fn layer<S, W>(format: LogFormat, colour: bool, writer: W) -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let layer = tracing_subscriber::fmt::layer().with_writer(writer);
    match format {
        LogFormat::Text => layer.compact().with_target(false).with_ansi(colour).boxed(),
        // No colour codes in JSON, ever.
        LogFormat::Json => layer.json().flatten_event(true).with_ansi(false).boxed(),
    }
}

/// Installs the global subscriber. Call once.
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_env("TOKEN_ROTATOR_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let colour = colour(
        std::io::IsTerminal::is_terminal(&std::io::stderr()),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    tracing_subscriber::registry()
        .with(
            layer(format, colour, std::io::stderr)
                .with_filter(filter)
                .with_filter(filter_fn(is_safe)),
        )
        .init();
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A writer into a shared buffer.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'w self) -> Buffer {
            self.clone()
        }
    }

    /// What `format` writes for one event in a rotation's swap, and one outside any span.
    fn logged(format: LogFormat, colour: bool) -> String {
        let out = Buffer::default();
        let subscriber = tracing_subscriber::registry().with(layer(format, colour, out.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let rotation = tracing::info_span!("rotation", id = "r-1", targets = "bot");
            let _r = rotation.enter();
            let swap = tracing::info_span!("swap", container = "bot");
            let _s = swap.enter();
            tracing::info!(step = "settle", secs = 2, "settled a swap");
            drop(_s);
            drop(_r);
            tracing::warn!(addr = %"127.0.0.1:9190", "outside any span");
        });
        let bytes = out.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn text_names_spans_compactly_and_no_module_path() {
        let text = logged(LogFormat::Text, false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(!text.contains("token_rotator"), "a module path in {text}");
        assert!(!text.contains('\x1b'), "colour without a terminal: {text}");
        assert!(
            lines[0].contains(
                " INFO rotation:swap: settled a swap step=\"settle\" secs=2 id=\"r-1\" targets=\"bot\" container=\"bot\""
            ),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].contains(" WARN outside any span addr=127.0.0.1:9190"),
            "{}",
            lines[1]
        );
        // It starts with the time, in UTC.
        assert!(lines[0].split(' ').next().unwrap().ends_with('Z'), "{text}");
    }

    #[test]
    fn text_colours_only_when_told() {
        assert!(logged(LogFormat::Text, true).contains('\x1b'));
        assert!(!logged(LogFormat::Text, false).contains('\x1b'));
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some(OsStr::new(""))));
        assert!(!colour(true, Some(OsStr::new("1"))));
        assert!(!colour(false, None));
        assert!(!colour(false, Some(OsStr::new(""))));
    }

    #[test]
    fn json_keeps_every_field() {
        let text = logged(LogFormat::Json, true);
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(!text.contains('\x1b'), "{text}");
        let e = &lines[0];
        assert_eq!(e["level"], "INFO");
        assert_eq!(e["message"], "settled a swap");
        assert_eq!(e["step"], "settle");
        assert_eq!(e["secs"], 2);
        assert!(e["target"].as_str().unwrap().starts_with("token_rotator"));
        assert!(e["timestamp"].is_string());
        assert_eq!(e["span"]["name"], "swap");
        assert_eq!(e["span"]["container"], "bot");
        assert_eq!(e["spans"][0]["name"], "rotation");
        assert_eq!(e["spans"][0]["id"], "r-1");
        assert_eq!(e["spans"][0]["targets"], "bot");
        assert_eq!(e["spans"][1]["name"], "swap");
        assert_eq!(lines[1]["addr"], "127.0.0.1:9190");
    }
}
