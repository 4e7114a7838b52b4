//! Every input of the daemon is one typed [`Trigger`] on one channel; only the loop in
//! [`super::run`] decides what to do, and only it calls the pipeline.

use tokio::sync::mpsc;

/// Which secret file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum File {
    /// `--secret-file`: the token to deploy.
    Primary,
    /// `--standby-file`: the token held back for when the live one is rejected.
    Standby,
}

impl File {
    /// `primary` or `standby`.
    pub fn label(self) -> &'static str {
        match self {
            File::Primary => "primary",
            File::Standby => "standby",
        }
    }
}

/// Something the daemon may have to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// A secret file may have changed.
    File(File),
    /// A target container started; `fingerprint` is its `token-rotator.fingerprint` label
    /// (set on the rotator's own replacements).
    TargetStarted {
        /// The target's name.
        name: String,
        /// The label, if any.
        fingerprint: Option<String>,
    },
    /// The engine's event stream came back after a break: look at every target once.
    EventsReconnected,
    /// A target's log has a line that says its token was refused (a suspicion only).
    RejectedInLogs {
        /// The target's name.
        name: String,
    },
}

/// The sending side, one clone per watcher.
pub type Sender = mpsc::UnboundedSender<Trigger>;
