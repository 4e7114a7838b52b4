//! Delivery: every notifier gets each notice it wants in the background, one after the
//! other in the order they were sent (a receiver sees `live_token_rejected` before
//! `standby_promoted`), each within a 10-second timeout. A failure is logged, naming the
//! notifier by its place and scheme, never its URL, and never delays a rotation. What is
//! still in flight at shutdown is drained within a bound.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinSet;

use super::{Notice, NotifyUrl};

/// How long one delivery may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Every notifier, and what is in flight.
#[derive(Clone, Default)]
pub struct Notifiers {
    sinks: Vec<Arc<Sink>>,
    http: Option<reqwest::Client>,
    /// The test-only override of fixed hosts.
    base: Option<reqwest::Url>,
    in_flight: Arc<Mutex<JoinSet<()>>>,
}

struct Sink {
    url: NotifyUrl,
    /// `notifier 2 (ntfy)`, or `webhook` for `--notify-webhook`.
    name: String,
    /// Completes when the delivery sent last is done: the next one waits for it.
    last: Mutex<Option<oneshot::Receiver<()>>>,
}

impl std::fmt::Debug for Notifiers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.sinks.iter().map(|s| s.name.as_str()).collect();
        write!(f, "Notifiers({names:?})")
    }
}

impl Notifiers {
    /// The notifiers `--notify-webhook` (if any) and `--notify` name, in that order;
    /// `base` redirects the fixed hosts (test-only).
    pub fn new(
        webhook: Option<NotifyUrl>,
        urls: Vec<NotifyUrl>,
        base: Option<reqwest::Url>,
    ) -> Result<Self, reqwest::Error> {
        let mut sinks = Vec::new();
        if let Some(url) = webhook {
            sinks.push(Sink::new(url, "webhook".into()));
        }
        for (i, url) in urls.into_iter().enumerate() {
            let name = format!("notifier {} ({})", i + 1, url.scheme());
            sinks.push(Sink::new(url, name));
        }
        let http = if sinks.is_empty() {
            None
        } else {
            Some(
                reqwest::Client::builder()
                    .use_rustls_tls()
                    .timeout(TIMEOUT)
                    .user_agent(concat!("token-rotator/", env!("CARGO_PKG_VERSION")))
                    .build()?,
            )
        };
        Ok(Notifiers {
            sinks,
            http,
            base,
            in_flight: Arc::default(),
        })
    }

    /// Whether there is any notifier.
    pub fn is_empty(&self) -> bool {
        self.sinks.is_empty()
    }

    /// Sends `notice` to every notifier that wants it, in the background.
    pub fn announce(&self, notice: Notice) {
        let Some(http) = &self.http else { return };
        let notice = Arc::new(notice);
        let mut set = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        while set.try_join_next().is_some() {} // forget the finished ones
        for sink in self.sinks.iter().filter(|s| s.url.wants(notice.event)) {
            let (done, next) = oneshot::channel();
            let before = sink
                .last
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .replace(next);
            let (sink, http, base, notice) = (
                sink.clone(),
                http.clone(),
                self.base.clone(),
                notice.clone(),
            );
            set.spawn(async move {
                if let Some(before) = before {
                    let _ = before.await; // in order: after the one sent before
                }
                sink.deliver(&http, base.as_ref(), &notice).await;
                let _ = done.send(());
            });
        }
    }

    /// Waits for the deliveries in flight, for at most `bound`.
    pub async fn drain(&self, bound: Duration) {
        let mut set =
            std::mem::take(&mut *self.in_flight.lock().unwrap_or_else(|e| e.into_inner()));
        if set.is_empty() {
            return;
        }
        tracing::debug!(in_flight = set.len(), "waiting for notification deliveries");
        let all = async { while set.join_next().await.is_some() {} };
        if tokio::time::timeout(bound, all).await.is_err() {
            tracing::warn!("notifications still in flight at shutdown were dropped");
        }
    }
}

impl Sink {
    fn new(url: NotifyUrl, name: String) -> Arc<Sink> {
        Arc::new(Sink {
            url,
            name,
            last: Mutex::new(None),
        })
    }

    async fn deliver(&self, http: &reqwest::Client, base: Option<&reqwest::Url>, n: &Notice) {
        let name = &self.name;
        match tokio::time::timeout(TIMEOUT, self.url.deliver(http, base, n)).await {
            Ok(Ok(())) => tracing::debug!(event = n.event, "{name} delivered"),
            Ok(Err(e)) => tracing::warn!(event = n.event, "{name} failed: {e}"),
            Err(_) => tracing::warn!(
                event = n.event,
                "{name} failed: timed out after {}s",
                TIMEOUT.as_secs()
            ),
        }
    }
}
