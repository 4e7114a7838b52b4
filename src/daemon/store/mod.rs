//! Where the state that survives a restart is kept ([`super::policy::State`]): one JSON
//! file, `state.json`, in the `--state-dir` directory. It holds the retired tokens
//! themselves (they are probed until the API rejects them), so it is written like a key:
//! mode 0600 in a 0700 directory, atomically (a temporary file, fsync, rename, fsync of the
//! directory), so a crash leaves the old file or the new one, never half of one. A file
//! that cannot be read, is not this schema, or is readable by others is refused at start
//! with an error naming the file and the fix; its content is never printed.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::policy::age::Kept as Deployed;
use super::policy::retired::{Kept as Retired, State as Seen};
use super::policy::state::State;

mod problems;
use crate::secret::{Fingerprint, Token};

/// The schema this build writes and reads.
pub const VERSION: u32 = 1;
/// The file's name in `--state-dir`.
pub const FILE: &str = "state.json";

/// Why the state cannot be loaded or kept.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The directory or file cannot be read, created or written.
    #[error("cannot {what} {path} (--state-dir): {source}; give the daemon's user (uid 65532 in the image) a writable directory, e.g. a named volume")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not state this build can read (its content is not shown: it holds tokens).
    #[error("the state file {path} is not valid ({why}): move it aside or delete it, and the daemon starts with an empty state (the retired-token watch and the rejected tokens are forgotten)")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Where or what, never the content.
        why: String,
    },
    /// Written by a newer version.
    #[error("the state file {path} has schema version {found}, this build reads {VERSION}: run the version that wrote it, or move the file aside to start with an empty state")]
    Version {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: u32,
    },
    /// Others may read the tokens in it.
    #[error("the state file {path} is readable by other users (mode {mode:o}): it holds tokens; run `chmod 600 {path}`")]
    Exposed {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

/// The state file of one directory.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
    file: PathBuf,
}

impl Store {
    /// Opens `dir` (created 0700 if missing) and reads its state, if any.
    pub fn open(dir: &Path) -> Result<(Store, Option<State>), StoreError> {
        let io = |what, path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Io { what, path, source }
        };
        fs::create_dir_all(dir).map_err(io("create", dir))?;
        let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700)); // best effort: not ours to change, maybe
        let store = Store {
            dir: dir.to_path_buf(),
            file: dir.join(FILE),
        };
        let bytes = match fs::read(&store.file) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((store, None)),
            Err(e) => return Err(io("read", &store.file)(e)),
        };
        let meta = fs::metadata(&store.file).map_err(io("read", &store.file))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(StoreError::Exposed {
                path: store.file.clone(),
                mode,
            });
        }
        let state = decode(&bytes, &store.file)?;
        Ok((store, Some(state)))
    }

    /// The state file's path.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Replaces the file with `state`, atomically.
    pub fn save(&self, state: &State) -> Result<(), StoreError> {
        let io = |what, path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Io { what, path, source }
        };
        let body = serde_json::to_vec_pretty(&Kept::of(state)).expect("state serializes");
        let tmp = self.dir.join(format!(".{FILE}.tmp"));
        let _ = fs::remove_file(&tmp);
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io("write", &tmp))?;
        f.write_all(&body).map_err(io("write", &tmp))?;
        f.sync_all().map_err(io("write", &tmp))?;
        drop(f);
        fs::rename(&tmp, &self.file).map_err(io("write", &self.file))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io("write", &self.dir))
    }
}

/// The file's schema (version 1; `problems` was added later, and a file without it reads
/// as none open).
#[derive(Serialize, Deserialize)]
struct Kept {
    version: u32,
    retired: Vec<KeptRetired>,
    rejected: Vec<String>,
    #[serde(default)]
    problems: Vec<problems::KeptProblem>,
    /// Added within version 1: a file written before has none (read as empty).
    #[serde(default)]
    deployed: Vec<KeptDeployed>,
}

/// When a deployed token was first deployed (its fingerprint only: no token here).
#[derive(Serialize, Deserialize)]
struct KeptDeployed {
    fingerprint: String,
    first_deployed_at: String,
    /// Whether `token_expiring` is open for it, as `problems` says (written for a build that
    /// read this and kept no problems; a file from before `deployed` lacks it).
    #[serde(default)]
    expiry_announced: bool,
}

#[derive(Serialize, Deserialize)]
struct KeptRetired {
    /// The token itself (the reason for mode 0600).
    token: String,
    fingerprint: String,
    retired_at: String,
    next_probe: usize,
    next_probe_at: String,
    /// `unknown`, `alive` or `dead`.
    state: String,
    dead_at: Option<String>,
    alive_for_seconds: Option<u64>,
    last_probe_at: Option<String>,
    last_answer: Option<String>,
    alerted: bool,
}

pub(super) fn time(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

impl Kept {
    fn of(state: &State) -> Self {
        let retired = state.retired.iter().map(|r| {
            let (dead_at, alive_for) = match r.state {
                Seen::Dead { at, alive_for } => (Some(time(at)), Some(alive_for.as_secs())),
                _ => (None, None),
            };
            KeptRetired {
                token: r.token.expose().to_string(),
                fingerprint: r.token.fingerprint().to_string(),
                retired_at: time(r.retired_at),
                next_probe: r.next,
                next_probe_at: time(r.next_at),
                state: r.state.label().to_string(),
                dead_at,
                alive_for_seconds: alive_for,
                last_probe_at: r.last_probe_at.map(time),
                last_answer: r.last_answer.clone(),
                alerted: r.alerted,
            }
        });
        Kept {
            version: VERSION,
            retired: retired.collect(),
            rejected: state.rejected.iter().map(|f| f.to_string()).collect(),
            problems: state
                .problems
                .iter()
                .map(problems::KeptProblem::of)
                .collect(),
            deployed: state
                .deployed
                .iter()
                .map(|d| KeptDeployed {
                    fingerprint: d.fingerprint.to_string(),
                    first_deployed_at: time(d.first_deployed),
                    expiry_announced: d.expiry_announced,
                })
                .collect(),
        }
    }
}

/// The state in `bytes`, or why not (never with the content).
fn decode(bytes: &[u8], path: &Path) -> Result<State, StoreError> {
    let corrupt = |why: String| StoreError::Corrupt {
        path: path.to_path_buf(),
        why,
    };
    #[derive(Deserialize)]
    struct Versioned {
        version: u32,
    }
    let v: Versioned = serde_json::from_slice(bytes).map_err(|e| corrupt(where_(&e)))?;
    if v.version != VERSION {
        return Err(StoreError::Version {
            path: path.to_path_buf(),
            found: v.version,
        });
    }
    let kept: Kept = serde_json::from_slice(bytes).map_err(|e| corrupt(where_(&e)))?;
    let retired = kept
        .retired
        .into_iter()
        .map(|r| retired(r).map_err(&corrupt));
    let rejected = kept.rejected.iter().map(|f| {
        Fingerprint::parse(f)
            .ok_or_else(|| corrupt("a rejected fingerprint is not 12 hex digits".into()))
    });
    let problems = kept
        .problems
        .into_iter()
        .map(|p| p.read().map_err(&corrupt));
    let deployed = kept
        .deployed
        .into_iter()
        .map(|d| deployed(d).map_err(&corrupt));
    Ok(State {
        retired: retired.collect::<Result<_, _>>()?,
        rejected: rejected.collect::<Result<_, _>>()?,
        problems: problems.collect::<Result<_, _>>()?,
        deployed: deployed.collect::<Result<_, _>>()?,
    })
}

/// Where serde stopped (line and column: its message may quote the content).
fn where_(e: &serde_json::Error) -> String {
    format!(
        "{:?} error at line {}, column {}",
        e.classify(),
        e.line(),
        e.column()
    )
    .to_lowercase()
}

fn deployed(d: KeptDeployed) -> Result<Deployed, String> {
    Ok(Deployed {
        fingerprint: Fingerprint::parse(&d.fingerprint)
            .ok_or("a deployed token's fingerprint is not 12 hex digits")?,
        first_deployed: humantime::parse_rfc3339(&d.first_deployed_at)
            .map_err(|_| "a first-deployed time is not RFC 3339")?,
        expiry_announced: d.expiry_announced,
    })
}

fn retired(r: KeptRetired) -> Result<Retired, String> {
    let at =
        |s: &str| humantime::parse_rfc3339(s).map_err(|_| "a time is not RFC 3339".to_string());
    let token = Token::new(r.token);
    if token.fingerprint().as_str() != r.fingerprint {
        return Err("a retired token does not match its fingerprint".into());
    }
    let state = match (r.state.as_str(), r.dead_at, r.alive_for_seconds) {
        ("unknown", _, _) => Seen::Unknown,
        ("alive", _, _) => Seen::Alive,
        ("dead", Some(dead_at), Some(secs)) => Seen::Dead {
            at: at(&dead_at)?,
            alive_for: Duration::from_secs(secs),
        },
        _ => return Err("a retired token's state is not unknown, alive or dead".into()),
    };
    Ok(Retired {
        token,
        retired_at: at(&r.retired_at)?,
        next: r.next_probe,
        next_at: at(&r.next_probe_at)?,
        state,
        last_probe_at: r.last_probe_at.as_deref().map(at).transpose()?,
        last_answer: r.last_answer,
        alerted: r.alerted,
    })
}

#[cfg(test)]
mod tests;
