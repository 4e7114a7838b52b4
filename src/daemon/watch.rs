//! Notice that the secret file may have changed.
//!
//! The directory is watched, not the file: an editor's rename, Vault Agent's temp file,
//! or Kubernetes' `..data` symlink swap replace the file's inode, and no event names the
//! file in the last case. Only events that can change what the path resolves to count:
//! ones naming the file, a `..`-prefixed entry (the kubelet's `..data` and its timestamped
//! directories), or the directory itself; other files there (a log, Vault Agent's other
//! templates) cost nothing. An update that is complete when its event arrives (a close
//! after writing the file, a rename or symlink swap onto it or onto `..data`) ticks at
//! once; any other relevant event (a truncation, a deletion) starts a quiet period that
//! such a completion ends early. The reader then decides whether the content changed.
//! A periodic re-read is the backstop where inotify sees nothing (some bind mounts),
//! and a watcher that fails is re-created.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind, RenameMode};
use notify::{Event, EventKind, RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};

use super::trigger::{File, Sender, Trigger};

/// How the secret file is watched.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    /// The secret file.
    pub path: PathBuf,
    /// Quiet time after the last event of an update still in progress before a tick.
    pub debounce: Duration,
    /// Re-read this often regardless of events (`None`: never).
    pub poll_interval: Option<Duration>,
}

/// What the watcher saw, as far as the secret file is concerned.
#[derive(Debug, Clone, PartialEq)]
enum Raw {
    /// An update that may still be in progress (a truncation, a deletion, a new entry).
    Partial,
    /// An update complete when its event arrives: a close after writing the file, a rename
    /// or symlink swap onto it (or onto `..data`).
    Complete,
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
            watcher = start_watcher(&dir, &cfg.path, raw_tx.clone());
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
                Some(Raw::Complete) => {
                    tracing::trace!(dir = %dir.display(), "secret file updated");
                    tick(&ticks);
                }
                Some(Raw::Partial) => {
                    tracing::trace!(dir = %dir.display(), "secret file changing");
                    if let Some(Raw::Failed(e)) = debounce(&mut raw, cfg.debounce).await {
                        tracing::warn!(dir = %dir.display(), "file watcher failed, re-creating it: {e}");
                        watcher = None;
                    }
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

/// Waits until no event has arrived for `quiet`, or an update completes (or the watcher
/// fails: returned, so that it is re-created).
async fn debounce(raw: &mut mpsc::UnboundedReceiver<Raw>, quiet: Duration) -> Option<Raw> {
    loop {
        match tokio::time::timeout(quiet, raw.recv()).await {
            Ok(Some(Raw::Partial)) => continue,
            Ok(Some(Raw::Complete)) => return None,
            Ok(Some(failed)) => return Some(failed),
            Ok(None) | Err(_) => return None,
        }
    }
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

fn start_watcher(
    dir: &Path,
    path: &Path,
    tx: mpsc::UnboundedSender<Raw>,
) -> Option<notify::RecommendedWatcher> {
    let (dir_owned, path) = (dir.to_path_buf(), path.to_path_buf());
    // Resolved once, and again only when an event names the secret itself (a link
    // repointed): an event on another file costs no lookup.
    let mut known = names(&path, &dir_owned);
    let handler = move |res: notify::Result<Event>| {
        let msg = match res {
            Ok(ev) => {
                if ev.paths.iter().any(|p| p.file_name() == path.file_name()) {
                    known = names(&path, &dir_owned);
                }
                match classify(&ev, &dir_owned, &known) {
                    Some(raw) => raw,
                    None => return,
                }
            }
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

/// The names in `dir` whose change changes the secret: its own, and the file it is a
/// symlink to when that is in the same directory (`token -> token.v2`).
fn names(path: &Path, dir: &Path) -> Vec<OsString> {
    let mut names: Vec<OsString> = path.file_name().map(OsString::from).into_iter().collect();
    if let Ok(target) = std::fs::canonicalize(path) {
        let same_dir = match (target.parent(), std::fs::canonicalize(dir)) {
            (Some(parent), Ok(dir)) => parent == dir,
            _ => false,
        };
        if let (true, Some(name)) = (same_dir, target.file_name()) {
            names.push(name.to_os_string());
        }
    }
    names
}

/// What an event in the directory means for the secret, known in `dir` by `names`: `None`
/// when it cannot change what the path resolves to (another file, or a read: ours too).
fn classify(ev: &Event, dir: &Path, names: &[OsString]) -> Option<Raw> {
    let names_file = |p: &PathBuf| p.file_name().is_some_and(|n| names.iter().any(|f| f == n));
    let is_data = |p: &PathBuf| p.file_name().is_some_and(|n| n == "..data");
    let relevant = ev.paths.is_empty() // an overflow or rescan: anything may have changed
        || ev.paths.iter().any(|p| {
            names_file(p)
                || p == dir
                || p.file_name().is_some_and(|n| n.as_encoded_bytes().starts_with(b".."))
        });
    if !relevant {
        return None;
    }
    // A rename's destination is its last path (`Both` carries source and destination).
    let onto = ev.paths.last();
    match ev.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => {
            Some(if ev.paths.iter().any(names_file) {
                Raw::Complete
            } else {
                Raw::Partial
            })
        }
        EventKind::Access(_) => None,
        EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both))
            if onto.is_some_and(|p| names_file(p) || is_data(p)) =>
        {
            Some(Raw::Complete)
        }
        // A symlink is complete when created: the kubelet's first `..data`.
        EventKind::Create(CreateKind::File | CreateKind::Any | CreateKind::Other)
            if onto.is_some_and(is_data) =>
        {
            Some(Raw::Complete)
        }
        _ => Some(Raw::Partial),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{DataChange, RemoveKind};

    fn ev(kind: EventKind, paths: &[&str]) -> Event {
        paths
            .iter()
            .fold(Event::new(kind), |e, p| e.add_path(PathBuf::from(p)))
    }

    fn of(kind: EventKind, paths: &[&str]) -> Option<Raw> {
        classify(&ev(kind, paths), Path::new("/s"), &["token".into()])
    }

    #[test]
    fn completed_updates_of_the_secret_tick_at_once() {
        let close = EventKind::Access(AccessKind::Close(AccessMode::Write));
        let to = EventKind::Modify(ModifyKind::Name(RenameMode::To));
        let both = EventKind::Modify(ModifyKind::Name(RenameMode::Both));
        assert_eq!(of(close, &["/s/token"]), Some(Raw::Complete));
        assert_eq!(of(to, &["/s/token"]), Some(Raw::Complete));
        assert_eq!(of(both, &["/s/token.tmp", "/s/token"]), Some(Raw::Complete));
        assert_eq!(
            of(both, &["/s/..data_tmp", "/s/..data"]),
            Some(Raw::Complete)
        );
        let created = EventKind::Create(CreateKind::File);
        assert_eq!(of(created, &["/s/..data"]), Some(Raw::Complete));
    }

    #[test]
    fn updates_in_progress_wait_for_quiet_or_completion() {
        let data = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        let removed = EventKind::Remove(RemoveKind::File);
        let from = EventKind::Modify(ModifyKind::Name(RenameMode::From));
        let both = EventKind::Modify(ModifyKind::Name(RenameMode::Both));
        assert_eq!(of(data, &["/s/token"]), Some(Raw::Partial));
        assert_eq!(of(removed, &["/s/token"]), Some(Raw::Partial));
        assert_eq!(of(from, &["/s/token"]), Some(Raw::Partial));
        // The secret renamed away: gone until something takes its place.
        assert_eq!(of(both, &["/s/token", "/s/token.bak"]), Some(Raw::Partial));
        let dir_made = EventKind::Create(CreateKind::Folder);
        assert_eq!(of(dir_made, &["/s/..2026_12_02_0001"]), Some(Raw::Partial));
        // The directory itself, and an overflow that names nothing.
        assert_eq!(of(removed, &["/s"]), Some(Raw::Partial));
        assert_eq!(of(EventKind::Other, &[]), Some(Raw::Partial));
    }

    #[test]
    fn other_files_and_reads_are_not_changes() {
        let data = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        let close = EventKind::Access(AccessKind::Close(AccessMode::Write));
        let read = EventKind::Access(AccessKind::Close(AccessMode::Read));
        let both = EventKind::Modify(ModifyKind::Name(RenameMode::Both));
        assert_eq!(of(data, &["/s/rotator.log"]), None);
        assert_eq!(of(close, &["/s/rotator.log"]), None);
        assert_eq!(of(close, &["/s/token.tmp"]), None);
        assert_eq!(of(both, &["/s/a.tmp", "/s/a"]), None);
        assert_eq!(
            of(EventKind::Create(CreateKind::File), &["/s/.token.swp"]),
            None
        );
        assert_eq!(of(read, &["/s/token"]), None);
        // A file whose name merely contains the secret's.
        assert_eq!(of(close, &["/s/token2"]), None);
    }

    #[test]
    fn a_symlinked_secret_counts_its_target_in_the_same_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token.v2"), "x").unwrap();
        std::os::unix::fs::symlink("token.v2", dir.path().join("token")).unwrap();
        let names = names(&dir.path().join("token"), dir.path());
        assert_eq!(names, vec![OsString::from("token"), "token.v2".into()]);
    }
}
