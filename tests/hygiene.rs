//! The token appears nowhere the rotator writes: logs at the most verbose level, in both
//! formats, summaries and errors, over success, rollback, refusal and inconclusive runs.
//! (Every other test's runs are scanned too: `support::rotator` checks all output.)

mod support;

use support::api::{Behaviour, StandInApi};
use support::{assert_no_secret, inspect, new_token, remember_secret, rotator_env, s, Scope};

#[test]
fn no_output_of_any_scenario_contains_the_token_even_at_trace_level() {
    let scope = Scope::new("hygiene");
    let api = StandInApi::start();
    let bot_api = StandInApi::start();
    let token = |b: Behaviour| {
        let t = new_token();
        remember_secret(&t);
        api.set(&t, b);
        t
    };
    let old = token(Behaviour::Accept);
    bot_api.set(&old, Behaviour::Accept);
    let name = support::host_bot(&scope, "bot", &old, &bot_api.base_url(), &[]);

    let good_for_bot = token(Behaviour::Accept);
    bot_api.set(&good_for_bot, Behaviour::Accept);
    let fails_in_bot = token(Behaviour::Accept); // validated, but the bot's API refuses it
    let rate_limited = token(Behaviour::RateLimited);
    bot_api.set(&rate_limited, Behaviour::Accept);
    let scenarios = [
        ("success", good_for_bot.clone(), 0),
        ("already current", good_for_bot, 0),
        ("rollback", fails_in_bot, 4),
        ("revoked", token(Behaviour::Revoked), 1),
        ("expired", token(Behaviour::Expired), 1),
        ("rate limited", rate_limited, 0),
        ("inconclusive", token(Behaviour::Overloaded), 3),
    ];
    let mut everything = String::new();
    for format in ["json", "text"] {
        for (what, tok, code) in &scenarios {
            // Each run starts from a bot that does not carry `tok`, except the no-op case.
            let file = scope.secret_file(tok);
            let base = api.base_url();
            let run = rotator_env(
                &[
                    "--log-format",
                    format,
                    "rotate",
                    "--secret-file",
                    s(&file),
                    "--api-base-url",
                    &base,
                    "--container",
                    &name,
                    "--verify-exec",
                    "/fake-bot check",
                    "--verify-timeout",
                    "1",
                    "--settle",
                    "0.2",
                    "--validate-deadline",
                    "0",
                ],
                &[("TOKEN_ROTATOR_LOG", "trace")],
            );
            assert_eq!(run.code, *code, "{what} ({format}): {run:?}");
            everything.push_str(&run.all());
            let labels = inspect(&name)["Config"]["Labels"].to_string();
            assert_no_secret(&labels);
        }
        // Put the bot back on the old token for the second round.
        let reset = scope.secret_file(&old);
        let base = api.base_url();
        rotator_env(
            &[
                "rotate",
                "--secret-file",
                s(&reset),
                "--api-base-url",
                &base,
                "--container",
                &name,
                "--settle",
                "0",
            ],
            &[],
        );
    }
    assert!(
        everything.contains("\"level\":\"DEBUG\""),
        "verbose logs were captured"
    );
    assert_no_secret(&everything);
}

#[test]
fn debug_output_of_a_token_shows_only_its_fingerprint() {
    let scope = Scope::new("hygiene-debug");
    let t = new_token();
    remember_secret(&t);
    let file = scope.secret_file(&t);
    let token = token_rotator::secret::read_token(&file, token_rotator::secret::TokenFormat::Oauth)
        .unwrap();
    let text = format!("{token:?} {:?}", token.fingerprint());
    assert_no_secret(&text);
    assert!(text.contains(&support::fingerprint(&t)));
}
