//! The labels token-rotator writes on the containers it creates.

/// Fingerprint of the token the container was given.
pub const FINGERPRINT: &str = "token-rotator.fingerprint";
/// ID of the rotation that created the container.
pub const ROTATION: &str = "token-rotator.rotation";
/// When that rotation swapped it in (RFC 3339, UTC).
pub const SWAPPED_AT: &str = "token-rotator.swapped-at";
/// ID of the container this one replaced.
pub const REPLACES: &str = "token-rotator.replaces";
/// Whether the replaced container was running (for recovery after a crash).
pub const OLD_RUNNING: &str = "token-rotator.old-was-running";
/// The name the container is meant to carry once the swap completes.
pub const TARGET_NAME: &str = "token-rotator.target-name";
/// Marks a canary container (a throwaway run of the target's image with the new token).
pub const CANARY: &str = "token-rotator.canary";
/// When the token the container carries was first deployed, on any target (RFC 3339, UTC):
/// a re-deployment of the same token keeps the earliest time known. Its age is an estimate
/// from this: the token itself is opaque.
pub const FIRST_DEPLOYED: &str = "token-rotator.first-deployed";
