//! Notice that the secret file may have changed.
//!
//! The directory is watched, not the file: an editor's rename, Vault Agent's temp file,
//! or Kubernetes' `..data` symlink swap replace the file's inode, and no event names the
//! file in the last case. Any event in the directory counts; a burst of them is
//! debounced into one tick; the reader then decides whether the content changed.
//! A periodic re-read is the backstop where inotify sees nothing (some bind mounts),
//! and a watcher that fails is re-created.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};

use super::trigger::{File, Sender, Trigger};

/// How the secret file is watched.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    /// The secret file.
    pub path: PathBuf,
    /// Quiet time after the last event before a tick.
    pub debounce: Duration,
    /// Re-read this often regardless of events (`None`: never).
    pub poll_interval: Option<Duration>,
}

enum Raw {
    Event,
    Failed(String),
}

/// Starts watching; the receiver's value increases once per debounced burst (or poll).
/// Dropping the receiver stops the watcher.
pub fn spawn(cfg: WatchConfig) -> watch::Receiver<u64> {
    let (ticks, rx) = watch::channel(0u64);
    tokio::spawn(run(cfg, ticks));
    rx
}

/// Starts watching and sends `Trigger::File(file)` once per debounced burst (or poll),
/// until the receiving side is gone.
pub fn spawn_triggers(cfg: WatchConfig, file: File, tx: Sender) {
    let mut ticks = spawn(cfg);
    tokio::spawn(async move {
        while ticks.changed().await.is_ok() {
            if tx.send(Trigger::File(file)).is_err() {
                return;
            }
        }
    });
}

async fn run(cfg: WatchConfig, ticks: watch::Sender<u64>) {
    let dir = watched_dir(&cfg.path);
    let (raw_tx, mut raw) = mpsc::unbounded_channel();
    let mut watcher = None;
    let mut first = true;
    let mut poll = cfg.poll_interval.map(|every| {
        let mut i = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        i
    });
    loop {
        if watcher.is_none() {
            watcher = start_watcher(&dir, raw_tx.clone());
            // Whatever happened while nothing was watching must be looked at; the very
            // first start needs no tick (the daemon reconciles on start anyway).
            if watcher.is_some() && !first {
                tick(&ticks);
            }
            first = false;
        }
        let retry = tokio::time::sleep(Duration::from_secs(2));
        tokio::select! {
            _ = ticks.closed() => return,
            event = raw.recv() => match event {
                Some(Raw::Event) => {
                    tracing::debug!(dir = %dir.display(), "secret directory changed");
                    debounce(&mut raw, cfg.debounce).await;
                    tracing::debug!("no change for the debounce period: re-reading the secret file");
                    tick(&ticks);
                }
                Some(Raw::Failed(e)) => {
                    tracing::warn!(dir = %dir.display(), "file watcher failed, re-creating it: {e}");
                    watcher = None;
                }
                None => return,
            },
            _ = async { poll.as_mut().unwrap().tick().await }, if poll.is_some() => {
                tracing::trace!("periodic re-read");
                tick(&ticks);
            }
            _ = retry, if watcher.is_none() => {}
        }
    }
}

/// Waits until no event has arrived for `quiet`.
async fn debounce(raw: &mut mpsc::UnboundedReceiver<Raw>, quiet: Duration) {
    while let Ok(Some(_)) = tokio::time::timeout(quiet, raw.recv()).await {}
}

fn tick(ticks: &watch::Sender<u64>) {
    ticks.send_modify(|n| *n += 1);
}

/// The directory holding the file (for a bare file name, the current directory).
pub fn watched_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn start_watcher(dir: &Path, tx: mpsc::UnboundedSender<Raw>) -> Option<notify::RecommendedWatcher> {
    let handler = move |res: notify::Result<Event>| {
        let msg = match res {
            Ok(ev) if is_change(&ev.kind) => Raw::Event,
            Ok(_) => return,
            Err(e) => Raw::Failed(e.to_string()),
        };
        let _ = tx.send(msg);
    };
    let attempt = notify::recommended_watcher(handler)
        .and_then(|mut w| w.watch(dir, RecursiveMode::NonRecursive).map(|()| w));
    match attempt {
        Ok(w) => {
            tracing::debug!(dir = %dir.display(), "watching");
            Some(w)
        }
        Err(e) => {
            tracing::warn!(dir = %dir.display(), "cannot watch the secret's directory (retrying every 2s): {e}");
            None
        }
    }
}

/// Reads (ours included) are not changes; a write being closed is.
fn is_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}
