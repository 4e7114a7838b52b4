//! The names token-rotator gives containers: `TARGET-tr-TAG-ROTATION` while a swap is in
//! progress, and `TARGET-tr-lock` for a target's lock. One codec writes and reads them all,
//! so a target whose own name merely contains `-tr-` (say `app-tr-eu`) is never mistaken
//! for one of them.

/// The kinds of name token-rotator gives containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    /// The replacement before it takes the name.
    New,
    /// The old container, set aside, was running.
    Old,
    /// The old container, set aside, was stopped.
    Stopped,
    /// The old container after the replacement was verified.
    Done,
    /// The target's lock (a created, never started container).
    Lock,
    /// A throwaway container of the target's image that tries the new token first.
    Canary,
}

const SWAP_MARKERS: [Marker; 5] = [
    Marker::New,
    Marker::Old,
    Marker::Stopped,
    Marker::Done,
    Marker::Canary,
];

impl Marker {
    fn tag(self) -> &'static str {
        match self {
            Marker::New => "new",
            Marker::Old => "old",
            Marker::Stopped => "stopped",
            Marker::Done => "done",
            Marker::Lock => "lock",
            Marker::Canary => "canary",
        }
    }

    /// `TARGET-tr-TAG-ROTATION` for a swap marker (`TARGET-tr-lock` for the lock).
    pub fn name(self, target: &str, rotation: &str) -> String {
        match self {
            Marker::Lock => lock_name(target),
            _ => format!("{target}-tr-{}-{rotation}", self.tag()),
        }
    }

    /// Splits a name into its target name and marker, if token-rotator made it.
    pub fn parse(name: &str) -> Option<(&str, Marker)> {
        let name = name.trim_start_matches('/');
        if let Some(target) = name.strip_suffix("-tr-lock") {
            return (!target.is_empty()).then_some((target, Marker::Lock));
        }
        let idx = name.rfind("-tr-")?;
        let (target, rest) = (&name[..idx], &name[idx + 4..]);
        let (tag, rotation) = rest.split_once('-')?;
        if target.is_empty() || !is_rotation_id(rotation) {
            return None;
        }
        let marker = SWAP_MARKERS.into_iter().find(|m| m.tag() == tag)?;
        Some((target, marker))
    }
}

/// A listed container's name, without the `/` the engine puts before it.
pub fn listed_name(c: &bollard::models::ContainerSummary) -> Option<String> {
    c.names
        .as_ref()?
        .first()
        .map(|n| n.trim_start_matches('/').to_string())
}

/// The name of `target`'s lock container.
pub fn lock_name(target: &str) -> String {
    format!("{target}-tr-lock")
}

/// Whether `s` has the shape of a rotation ID (8 lowercase hex digits).
pub fn is_rotation_id(s: &str) -> bool {
    s.len() == 8 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A short ID for one rotation: 8 hex digits from the clock, the process ID and a counter.
pub fn new_rotation_id() -> String {
    use sha2::{Digest, Sha256};
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let digest = Sha256::digest(format!("{nanos}-{}-{n}", std::process::id()).as_bytes());
    hex::encode(&digest[..4])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_names_round_trip_and_odd_names_are_not_markers() {
        for m in SWAP_MARKERS {
            let name = m.name("my-bot-tr-x", "0a1b2c3d");
            assert_eq!(Marker::parse(&format!("/{name}")), Some(("my-bot-tr-x", m)));
        }
        assert_eq!(
            Marker::parse(&Marker::Lock.name("app-tr-eu", "")),
            Some(("app-tr-eu", Marker::Lock))
        );
        assert_eq!(Marker::parse("bot-tr-old-xyz"), None);
        assert_eq!(Marker::parse("bot-tr-weird-0a1b2c3d"), None);
        assert_eq!(Marker::parse("app-tr-eu"), None);
        assert_eq!(Marker::parse("app-tr-eu-west"), None);
        assert_eq!(Marker::parse("-tr-lock"), None);
        assert_eq!(Marker::parse("bot"), None);
        assert!(is_rotation_id(&new_rotation_id()));
    }
}
