//! The state file: written and read back whole, refused with a named error when corrupt,
//! of another version or readable by others; never showing its content.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

use super::{Store, StoreError, FILE};
use crate::daemon::policy::age::Kept as Deployed;
use crate::daemon::policy::problems::{Detail, Problem};
use crate::daemon::policy::retired::{Kept as Retired, State as Seen};
use crate::daemon::policy::state::State;
use crate::error::Outcome;
use crate::secret::{Fingerprint, Token};

const SECRET: &str = "sk-ant-oat01-state-test-secret-value";

fn state() -> State {
    let t = |s: i64| SystemTime::UNIX_EPOCH + Duration::from_secs((1_800_000_000 + s) as u64);
    State {
        retired: vec![
            Retired {
                token: Token::new(SECRET.into()),
                retired_at: t(0),
                next: 2,
                next_at: t(900),
                state: Seen::Alive,
                last_probe_at: Some(t(300)),
                last_answer: Some("valid (200)".into()),
                alerted: true,
            },
            Retired {
                token: Token::new("sk-ant-oat01-another-one".into()),
                retired_at: t(10),
                next: 1,
                next_at: t(400),
                state: Seen::Dead {
                    at: t(310),
                    alive_for: Duration::from_secs(300),
                },
                last_probe_at: Some(t(310)),
                last_answer: None,
                alerted: false,
            },
        ],
        rejected: vec![Fingerprint::of("sk-ant-oat01-rejected")],
        problems: problems(t(0)),
        deployed: vec![
            Deployed {
                fingerprint: Fingerprint::of("sk-ant-oat01-older"),
                first_deployed: t(-86_400),
                expiry_announced: true,
            },
            Deployed {
                fingerprint: Fingerprint::of(SECRET),
                first_deployed: t(0),
                expiry_announced: false,
            },
        ],
    }
}

/// One open problem of each kind (a drift still waiting).
fn problems(at: SystemTime) -> Vec<Problem> {
    let fp = || Fingerprint::of("sk-ant-oat01-live");
    let p = |detail, announced_at, reminders| Problem {
        fingerprint: fp(),
        detail,
        since: at,
        announced_at,
        reminders,
    };
    let day = Duration::from_secs(86_400);
    vec![
        p(
            Detail::StandbyNeeded {
                reason: "no standby token".into(),
                live: Some(Fingerprint::of("sk-ant-oat01-spare")),
            },
            Some(at + day),
            1,
        ),
        p(Detail::RetiredTokenAlive { retired_at: at }, Some(at), 0),
        p(
            Detail::RotationFailed {
                outcome: Outcome::Busy,
                error: Some("locked".into()),
                targets: vec!["bot".into()],
            },
            Some(at + 2 * day),
            2,
        ),
        p(
            Detail::Drift {
                targets: vec!["bot".into()],
            },
            None,
            0,
        ),
        p(
            Detail::TokenExpiring {
                first_deployed: at - 335 * day,
                expires_at: at + 30 * day,
                targets: vec!["bot".into()],
            },
            Some(at + day),
            1,
        ),
    ]
}

#[test]
fn a_state_file_written_before_problems_were_kept_reads_as_none_open() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join(FILE);
    let fp = Fingerprint::of(SECRET);
    // Exactly what the version before wrote: no `problems`.
    let body = format!(
        r#"{{"version": 1, "retired": [{{"token": "{SECRET}", "fingerprint": "{fp}",
            "retired_at": "2027-01-15T08:00:00Z", "next_probe": 1,
            "next_probe_at": "2027-01-15T09:00:00Z", "state": "alive", "dead_at": null,
            "alive_for_seconds": null, "last_probe_at": "2027-01-15T08:01:00Z",
            "last_answer": "valid (200)", "alerted": false}}],
            "rejected": ["{}"]}}"#,
        Fingerprint::of("sk-ant-oat01-rejected")
    );
    fs::write(&file, body).unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
    let (store, back) = Store::open(tmp.path()).unwrap();
    let back = back.expect("read");
    assert_eq!(back.retired.len(), 1);
    assert_eq!(back.rejected.len(), 1);
    assert!(back.problems.is_empty());
    // Written again, it gains them.
    let mut now = back.clone();
    now.problems = problems(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000));
    store.save(&now).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&fs::read(&file).unwrap()).unwrap();
    assert_eq!(json["version"], 1);
    assert_eq!(json["problems"][2]["problem"], "rotation_failed");
    assert_eq!(json["problems"][2]["outcome"], "busy");
    assert_eq!(json["problems"][3]["announced_at"], serde_json::Value::Null);
    assert_eq!(json["problems"][4]["problem"], "token_expiring");
    assert_eq!(json["problems"][4]["targets"][0], "bot");
    assert!(json["problems"][4]["first_deployed_at"].is_string());
    assert!(json["problems"][4]["expires_at"].is_string());
    assert_eq!(Store::open(tmp.path()).unwrap().1.unwrap(), now);
}

#[test]
fn a_problem_of_an_unknown_kind_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join(FILE);
    let body = r#"{"version": 1, "retired": [], "rejected": [], "problems": [
        {"problem": "bogus", "fingerprint": "0123456789ab", "since": "2027-01-15T08:00:00Z",
         "announced_at": null, "reminders": 0}]}"#;
    fs::write(&file, body).unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
    let e = Store::open(tmp.path()).unwrap_err();
    assert!(matches!(e, StoreError::Corrupt { .. }), "{e:?}");
}

#[test]
fn a_file_written_before_token_expiring_was_a_problem_keeps_its_expiry_announced() {
    // As the build of the token's age wrote it: `deployed` with the flag, no `problems`.
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join(FILE);
    let (a, b) = (
        Fingerprint::of("sk-ant-oat01-a"),
        Fingerprint::of("sk-ant-oat01-b"),
    );
    let body = format!(
        r#"{{"version": 1, "retired": [], "rejected": [], "deployed": [
            {{"fingerprint": "{a}", "first_deployed_at": "2026-01-15T08:00:00Z",
              "expiry_announced": true}},
            {{"fingerprint": "{b}", "first_deployed_at": "2026-12-01T08:00:00Z"}}]}}"#
    );
    fs::write(&file, body).unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
    let back = Store::open(tmp.path()).unwrap().1.expect("the state");
    assert!(back.problems.is_empty());
    let flags: Vec<_> = back
        .deployed
        .iter()
        .map(|d| (d.fingerprint.clone(), d.expiry_announced))
        .collect();
    assert_eq!(
        flags,
        [(a, true), (b, false)],
        "a missing flag reads as false"
    );
    assert_eq!(
        back.deployed[0].first_deployed,
        humantime::parse_rfc3339("2026-01-15T08:00:00Z").unwrap()
    );
}

#[test]
fn a_file_written_before_the_first_deployed_times_reads_with_none() {
    // As the version before wrote it: no `deployed`.
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join(FILE);
    let fp = Fingerprint::of("sk-ant-oat01-rejected");
    let body = format!(
        r#"{{"version": 1, "retired": [{{"token": "{SECRET}", "fingerprint": "{}",
            "retired_at": "2027-01-15T08:00:00Z", "next_probe": 1,
            "next_probe_at": "2027-01-15T08:05:00Z", "state": "unknown", "dead_at": null,
            "alive_for_seconds": null, "last_probe_at": null, "last_answer": null,
            "alerted": false}}], "rejected": ["{fp}"]}}"#,
        Fingerprint::of(SECRET)
    );
    fs::write(&file, body).unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
    let (store, back) = Store::open(tmp.path()).unwrap();
    let back = back.expect("the state");
    assert_eq!(back.retired.len(), 1);
    assert_eq!(back.rejected, vec![fp]);
    assert!(back.deployed.is_empty());
    // Written again, it keeps them from then on.
    store.save(&state()).unwrap();
    assert_eq!(Store::open(tmp.path()).unwrap().1.unwrap(), state());
}

#[test]
fn a_saved_state_reads_back_whole_with_modes_0600_and_0700() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    let (store, none) = Store::open(&dir).unwrap();
    assert!(none.is_none(), "a new directory holds no state");
    store.save(&state()).unwrap();
    let mode = |p: &std::path::Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir.join(FILE)), 0o600);
    assert_eq!(mode(&dir), 0o700);
    let (_, back) = Store::open(&dir).unwrap();
    let back = back.expect("the state");
    assert_eq!(back, state());
    assert_eq!(
        back.retired[0].token.expose(),
        SECRET,
        "the token itself is kept"
    );
    let names: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        vec![std::ffi::OsString::from(FILE)],
        "no temporary file is left"
    );
}

#[test]
fn a_corrupt_file_is_refused_naming_it_without_its_content() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join(FILE);
    for body in [
        format!("{{\"version\": 1, \"retired\": \"{SECRET}\""),
        format!("{{\"version\": 1, \"retired\": [{{\"token\": \"{SECRET}\"}}], \"rejected\": []}}"),
        format!("{{\"version\": 1, \"retired\": [], \"rejected\": [\"{SECRET}\"]}}"),
        "not json".to_string(),
    ] {
        fs::write(&file, &body).unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
        let e = Store::open(tmp.path()).unwrap_err();
        assert!(matches!(e, StoreError::Corrupt { .. }), "{body}: {e:?}");
        let shown = format!("{e} {e:?}");
        assert!(shown.contains(&file.display().to_string()), "{shown}");
        assert!(
            !shown.contains("sk-ant"),
            "the content is never shown: {shown}"
        );
    }
}

#[test]
fn a_token_that_does_not_match_its_fingerprint_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(tmp.path()).unwrap();
    store.save(&state()).unwrap();
    let file = tmp.path().join(FILE);
    let body = fs::read_to_string(&file)
        .unwrap()
        .replace(SECRET, "sk-ant-oat01-tampered");
    fs::write(&file, body).unwrap();
    let e = Store::open(tmp.path()).unwrap_err();
    assert!(matches!(e, StoreError::Corrupt { .. }), "{e:?}");
}

#[test]
fn another_schema_version_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join(FILE);
    fs::write(&file, r#"{"version": 2, "something": "new"}"#).unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
    match Store::open(tmp.path()).unwrap_err() {
        StoreError::Version { found, path } => {
            assert_eq!(found, 2);
            assert_eq!(path, file);
        }
        e => panic!("not a version error: {e:?}"),
    }
}

#[test]
fn a_file_readable_by_others_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(tmp.path()).unwrap();
    store.save(&state()).unwrap();
    let file = tmp.path().join(FILE);
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
    match Store::open(tmp.path()).unwrap_err() {
        StoreError::Exposed { mode, .. } => assert_eq!(mode, 0o644),
        e => panic!("not a permission error: {e:?}"),
    }
}

#[test]
fn a_directory_that_cannot_be_written_is_an_io_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let blocker = tmp.path().join("file");
    fs::write(&blocker, "").unwrap();
    let e = Store::open(&blocker.join("state")).unwrap_err();
    assert!(matches!(e, StoreError::Io { what: "create", .. }), "{e:?}");
    assert!(e.to_string().contains("--state-dir"), "{e}");
}

#[test]
fn a_save_replaces_the_state_before() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(tmp.path()).unwrap();
    store.save(&state()).unwrap();
    let (store, _) = Store::open(tmp.path()).unwrap();
    let mut changed = state();
    changed.retired[0].state = Seen::Dead {
        at: changed.retired[0].retired_at + Duration::from_secs(5),
        alive_for: Duration::from_secs(5),
    };
    changed.retired[0].next = 7;
    store.save(&changed).unwrap();
    let (_, back) = Store::open(tmp.path()).unwrap();
    assert_eq!(back.unwrap(), changed);
}
