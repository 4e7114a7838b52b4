//! `token-rotator check`: reading rules and API verdicts, with their exit codes.

mod support;

use support::api::{Behaviour, StandInApi};
use support::{fingerprint, new_token, remember_secret, rotator, s, Scope};

fn check(api: &StandInApi, file: &std::path::Path, extra: &[&str]) -> support::Run {
    let mut args = vec!["check", "--secret-file", s(file), "--api-base-url"];
    let base = api.base_url();
    args.push(&base);
    args.extend_from_slice(extra);
    rotator(&args)
}

#[test]
fn valid_token_exits_0_and_prints_its_fingerprint() {
    let scope = Scope::new("check-valid");
    let api = StandInApi::start();
    let token = new_token();
    remember_secret(&token);
    api.set(&token, Behaviour::Accept);
    // A token pasted across three lines is accepted once whitespace is stripped.
    let pasted = format!(
        "{}\n{}\r\n  {}\n",
        &token[..40],
        &token[40..80],
        &token[80..]
    );
    let run = check(&api, &scope.secret_file(&pasted), &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains(&fingerprint(&token)), "{run:?}");
    assert!(run.stdout.contains("valid (HTTP 200)"), "{run:?}");
    assert_eq!(api.hits(&token), 1);
    let body = &api.bodies()[0];
    assert_eq!(body["max_tokens"], 1);
}

#[test]
fn refused_tokens_exit_1_quoting_the_api() {
    let scope = Scope::new("check-refused");
    let api = StandInApi::start();
    let cases = [
        (
            Behaviour::Expired,
            "HTTP 401 authentication_error: OAuth token has expired",
        ),
        (
            Behaviour::Revoked,
            "HTTP 403 permission_error: OAuth token has been revoked",
        ),
    ];
    for (behaviour, expected) in cases {
        let token = new_token();
        remember_secret(&token);
        api.set(&token, behaviour);
        let run = check(&api, &scope.secret_file(&token), &[]);
        assert_eq!(run.code, 1, "{run:?}");
        assert!(run.stdout.contains(expected), "{run:?}");
    }
    // An unknown token gets the real API's "Invalid bearer token".
    let unknown = new_token();
    remember_secret(&unknown);
    let run = check(&api, &scope.secret_file(&unknown), &[]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.contains("Invalid bearer token"), "{run:?}");
}

#[test]
fn rate_limited_token_is_valid_and_says_why() {
    let scope = Scope::new("check-429");
    let api = StandInApi::start();
    let token = new_token();
    remember_secret(&token);
    api.set(&token, Behaviour::RateLimited);
    let run = check(&api, &scope.secret_file(&token), &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .contains("HTTP 429: rate-limited, which proves the credential was recognised"),
        "{run:?}"
    );
}

#[test]
fn server_trouble_is_inconclusive_exit_3_after_retrying() {
    let scope = Scope::new("check-5xx");
    let api = StandInApi::start();
    for (behaviour, expected) in [
        (
            Behaviour::Overloaded,
            "HTTP 529 overloaded_error: Overloaded",
        ),
        (
            Behaviour::ServerErrorHtml,
            "HTTP 500 with a body that is not an API answer",
        ),
        (
            Behaviour::HugeBody,
            "HTTP 200 but the body is not an API message",
        ),
    ] {
        let token = new_token();
        remember_secret(&token);
        api.set(&token, behaviour);
        let run = check(
            &api,
            &scope.secret_file(&token),
            &["--validate-deadline", "1"],
        );
        assert_eq!(run.code, 3, "{run:?}");
        assert!(run.stdout.contains(expected), "{run:?}");
        assert!(api.hits(&token) >= 2, "inconclusive answers are retried");
    }
}

#[test]
fn hanging_api_times_out_as_inconclusive() {
    let scope = Scope::new("check-hang");
    let api = StandInApi::start();
    let token = new_token();
    remember_secret(&token);
    api.set(&token, Behaviour::Hang);
    let run = check(
        &api,
        &scope.secret_file(&token),
        &["--validate-timeout", "1", "--validate-deadline", "0"],
    );
    assert_eq!(run.code, 3, "{run:?}");
    assert!(run.stdout.contains("inconclusive (timed out"), "{run:?}");
}

#[test]
fn unreachable_api_is_inconclusive_not_valid() {
    let scope = Scope::new("check-unreachable");
    let token = new_token();
    remember_secret(&token);
    let file = scope.secret_file(&token);
    // Port 9 on loopback: nothing listens.
    let run = rotator(&[
        "check",
        "--secret-file",
        s(&file),
        "--api-base-url",
        "http://127.0.0.1:9",
        "--validate-deadline",
        "0",
    ]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.stdout.contains("inconclusive (connection failed"),
        "{run:?}"
    );
}

#[test]
fn bad_secret_files_exit_1_naming_the_rule_without_calling_the_api() {
    let scope = Scope::new("check-bad-file");
    let api = StandInApi::start();
    let token = new_token();
    remember_secret(&token);
    let cases = [
        ("".to_string(), "is empty (or whitespace only)"),
        (" \n\t\n".to_string(), "is empty (or whitespace only)"),
        (format!("{token}\n{token}\n"), "holds more than one token"),
        (token.replace("oat01", "ort01"), "holds a refresh token"),
        (token.replace("oat01", "api03"), "holds an API key"),
        (
            token[..45].to_string(),
            "is too short (32 characters after sk-ant-oat01-",
        ),
        (
            format!("{token}\u{0}"),
            "contains a control character at byte 108",
        ),
    ];
    for (content, expected) in cases {
        let file = scope.secret_file(&content);
        let run = check(&api, &file, &[]);
        assert_eq!(run.code, 1, "{run:?}");
        assert!(
            run.stdout.contains(expected),
            "expected {expected:?}: {run:?}"
        );
    }
    let run = check(&api, scope.dir.path(), &[]);
    assert!(run.stdout.contains("is a directory, not a file"), "{run:?}");
    let run = check(&api, &scope.dir.path().join("absent"), &[]);
    assert!(run.stdout.contains("does not exist"), "{run:?}");
    let total: usize = api.bodies().len();
    assert_eq!(total, 0, "a rejected file must not reach the API");
}

#[test]
fn bad_usage_exits_64() {
    let run = rotator(&["check", "--api-base-url", "not a url"]);
    assert_eq!(run.code, 64, "{run:?}");
    assert!(run.stderr.contains("--api-base-url"), "{run:?}");
    let run = rotator(&["check", "--no-such-flag"]);
    assert_eq!(run.code, 64, "{run:?}");
    let run = rotator(&["rotate"]);
    assert_eq!(run.code, 64, "{run:?}");
    assert!(run.stderr.contains("--container"), "{run:?}");
}

#[test]
fn validate_none_skips_the_api_with_a_warning() {
    let scope = Scope::new("check-none");
    let token = new_token();
    remember_secret(&token);
    let run = rotator(&[
        "check",
        "--secret-file",
        s(&scope.secret_file(&token)),
        "--validate",
        "none",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("not validated (--validate none)"),
        "{run:?}"
    );
}
