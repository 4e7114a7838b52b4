//! Notifiers by URL (`--notify`, `TOKEN_ROTATOR_NOTIFY`): each scheme reaches a local
//! receiver that checks that service's wire format (the fixed hosts through the test-only
//! `TOKEN_ROTATOR_NOTIFY_TEST_BASE_URL`), email reaches a real SMTP server (aiosmtpd),
//! `?events=` limits a notifier, a bad URL exits 64 without being shown, and no URL or
//! credential appears in any log line. The events come from the real daemon: a target
//! that does not exist (`rotation_failed`), and a real rotation of a bot (`rotation`).
//! Email goes over STARTTLS and TLS to servers whose certificate the test makes (trusted
//! through the test-only `TOKEN_ROTATOR_NOTIFY_TEST_CA`); STARTTLS required against a server
//! without it, or a certificate not trusted, fails before any login, saying so in the log.

mod support;

use support::api::StandInApi;
use support::receiver::{Got, Pems, Receiver, Smtp, SmtpMode};
use support::{
    accepted, env_of_if_any, fingerprint, host_bot, rotator_env, s, HostDaemon, Scope, ENV_VAR,
};

const SLACK_X: &str = "SlackXSecretXXXXXXXXXXXXXXXX";
const TEAMS_G: &str = "11111111-4444-4444-8444-cccccccccccc";
const TEAMS_T: &str = "22222222-4444-4444-8444-cccccccccccc";

/// Every credential the URLs below carry: none may appear in a log line.
const CREDENTIALS: &[&str] = &[
    "ntfyPassw0rdSecret",
    "DiscordTokenSecret",
    SLACK_X,
    "mmTokenSecret",
    "TelegramBotSecret",
    "TeamsExtraSecret",
    "genericPathSecret",
    "smtpPassSecret",
    "deadTopicSecret",
];

fn one<'a>(got: &'a [Got], path: &str) -> &'a Got {
    got.iter()
        .find(|g| g.path.starts_with(path))
        .unwrap_or_else(|| panic!("nothing came to {path}: {got:#?}"))
}

/// A daemon whose only target does not exist: its start-up rotation is `bad_target`.
fn failing_daemon(scope: &Scope, args: &[&str], env: &[(&str, &str)]) -> HostDaemon {
    let token = support::new_token();
    support::remember_secret(&token);
    let file = scope.secret_file(&token);
    let absent = scope.name("absent");
    let mut argv = vec![
        "--secret-file",
        s(&file),
        "--container",
        &absent,
        "--validate",
        "none",
    ];
    argv.extend_from_slice(args);
    HostDaemon::start(scope, &argv, env)
}

#[test]
fn every_scheme_speaks_its_wire_format() {
    let scope = Scope::new("notify-schemes");
    let rx = Receiver::start();
    let smtp = Smtp::start("ops", "smtpPassSecret");
    let a = &rx.addr;
    let urls = [
        format!("ntfy://alice:ntfyPassw0rdSecret@{a}/alerts?scheme=http"),
        "discord://DiscordTokenSecret@693853386302554172".to_string(),
        format!("slack://hook:T00000000-B00000000-{SLACK_X}@webhook?channel=ops"),
        format!("mattermost://bob@{a}/mmTokenSecret/ops?scheme=http"),
        "telegram://110201543:TelegramBotSecret@telegram?chats=-1001234,@ops".to_string(),
        format!("teams://{TEAMS_G}@{TEAMS_T}/33333333012222222222333333333344/44444444-4444-4444-8444-cccccccccccc/TeamsExtraSecret?host=contoso.webhook.office.com"),
        format!("generic+http://{a}/genericPathSecret?k=v&events=rotation_failed"),
        format!("smtp://ops:smtpPassSecret@127.0.0.1:{}/?from=rotator@example.com&to=ops@example.com,oncall@example.com&encryption=none", smtp.port),
        "ntfy://127.0.0.1:9/deadTopicSecret?scheme=http".to_string(),
    ];
    let mut args = Vec::new();
    for u in &urls {
        args.extend(["--notify", u.as_str()]);
    }
    let d = failing_daemon(
        &scope,
        &args,
        &[("TOKEN_ROTATOR_NOTIFY_TEST_BASE_URL", &rx.base)],
    );
    let got = rx.wait_for(8, 20.0);
    assert!(
        support::wait_until(10.0, || !smtp.messages().is_empty()),
        "no mail: {}",
        d.logs()
    );
    for g in &got {
        assert_eq!(g.method, "POST", "{g:?}");
        assert!(
            g.headers["content-type"].starts_with("application/json"),
            "{g:?}"
        );
        eprintln!("--- {} {}\n{}", g.method, g.path, g.body);
    }

    assert_http_wire_formats(&got);

    let mail = &smtp.messages()[0];
    eprintln!("--- mail\n{mail}");
    assert!(
        mail.contains("X-Rcpt: ops@example.com,oncall@example.com"),
        "{mail}"
    );
    assert!(mail.contains("From: rotator@example.com"), "{mail}");
    assert!(
        mail.contains("Subject: token-rotator: rotation to token"),
        "{mail}"
    );

    let logs = d.logs();
    assert!(
        support::wait_until(15.0, || d.logs().contains("notifier 9 (ntfy) failed")),
        "{}",
        d.logs()
    );
    for cred in CREDENTIALS {
        assert!(!d.logs().contains(cred), "a log line shows {cred}:\n{logs}");
    }
}

/// Each HTTP service's request, as that service expects it.
fn assert_http_wire_formats(got: &[Got]) {
    let ntfy_req = got
        .iter()
        .find(|g| g.path == "/")
        .expect("ntfy's JSON publish, at /");
    let ntfy = ntfy_req.json();
    assert_eq!(
        (ntfy["topic"].as_str(), ntfy["priority"].as_u64()),
        (Some("alerts"), Some(4))
    );
    assert_eq!(
        ntfy["tags"],
        serde_json::json!(["warning", "rotation_failed"])
    );
    assert!(
        ntfy["title"].as_str().unwrap().contains("bad target"),
        "{ntfy}"
    );
    assert!(ntfy_req.headers["authorization"].starts_with("Basic "));

    let discord = one(got, "/api/webhooks/693853386302554172/DiscordTokenSecret").json();
    assert!(discord["content"]
        .as_str()
        .unwrap()
        .starts_with("token-rotator: rotation to token"));
    assert!(discord["embeds"][0]["description"]
        .as_str()
        .unwrap()
        .contains("What to do"));

    let slack = one(got, &format!("/services/T00000000/B00000000/{SLACK_X}")).json();
    assert!(
        slack["text"]
            .as_str()
            .unwrap()
            .starts_with("*token-rotator:"),
        "{slack}"
    );
    assert_eq!(slack["channel"], "ops");

    let mm = one(got, "/hooks/mmTokenSecret").json();
    assert_eq!(
        (mm["username"].as_str(), mm["channel"].as_str()),
        (Some("bob"), Some("ops"))
    );
    assert!(mm["text"].as_str().unwrap().contains("bad target"));

    let tg: Vec<_> = got
        .iter()
        .filter(|g| g.path == "/bot110201543:TelegramBotSecret/sendMessage")
        .collect();
    let chats: Vec<_> = tg
        .iter()
        .map(|g| g.json()["chat_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(chats, ["-1001234", "@ops"]);

    let teams = one(
        got,
        &format!("/webhookb2/{TEAMS_G}@{TEAMS_T}/IncomingWebhook/"),
    )
    .json();
    assert_eq!(teams["@type"], "MessageCard");
    assert!(teams["title"].as_str().unwrap().contains("bad target"));

    let generic = one(got, "/genericPathSecret?k=v");
    assert_eq!(
        generic.path, "/genericPathSecret?k=v",
        "our ?events= is not forwarded"
    );
    let body = generic.json();
    assert_eq!(
        (body["event"].as_str(), body["outcome"].as_str()),
        (Some("rotation_failed"), Some("bad_target"))
    );
    assert_eq!(body["severity"], "warning");
}

#[test]
fn a_real_rotation_reaches_only_the_notifiers_that_want_it() {
    let scope = Scope::new("notify-e2e");
    let api = StandInApi::start();
    let old = accepted(&api);
    let bot = host_bot(&scope, "bot", &old, &api.base_url(), &[]);
    let new = accepted(&api);
    let file = scope.secret_file(&new);
    let rx = Receiver::start();
    let a = &rx.addr;
    // From the env var: two URLs, one separated by a space, with a comma inside the first.
    let list = format!(
        "ntfy://{a}/rotations?scheme=http&events=rotation,rotation_failed generic+http://{a}/standby-only?events=standby_needed"
    );
    let base = api.base_url();
    let args = [
        "--secret-file",
        s(&file),
        "--container",
        &bot,
        "--api-base-url",
        &base,
        "--settle",
        "0.3",
    ];
    let d = HostDaemon::start(&scope, &args, &[("TOKEN_ROTATOR_NOTIFY", &list)]);
    d.wait_for_first_rotation();
    assert_eq!(env_of_if_any(&bot, ENV_VAR).as_deref(), Some(new.as_str()));
    let got = rx.wait_for(1, 10.0);
    std::thread::sleep(std::time::Duration::from_secs(2)); // anything else would have come by now
    let got = if rx.got().len() > got.len() {
        rx.got()
    } else {
        got
    };
    assert_eq!(
        got.len(),
        1,
        "only the ntfy notifier wants a rotation: {got:#?}"
    );
    let v = got[0].json();
    eprintln!("--- {}\n{}", got[0].path, got[0].body);
    assert_eq!(
        (v["topic"].as_str(), v["priority"].as_u64()),
        (Some("rotations"), Some(3))
    );
    assert_eq!(
        v["tags"],
        serde_json::json!(["white_check_mark", "rotation"])
    );
    let fp = fingerprint(&new);
    assert_eq!(
        v["title"],
        format!("token-rotator: token {fp} rotated into {bot}")
    );
    assert!(v["message"]
        .as_str()
        .unwrap()
        .contains(&format!("rotated token {fp} into {bot}")));
}

#[test]
fn a_bad_notify_url_exits_64_naming_the_flag_never_the_url() {
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut argv = vec!["run", "--container", "x"];
        argv.extend_from_slice(args);
        rotator_env(&argv, env)
    };
    let r = run(&["--notify", "ntfy://u:PwSecretValue@host/"], &[]);
    assert_eq!(r.code, 64, "{r:?}");
    assert!(
        r.stderr.contains("--notify") && r.stderr.contains("topic"),
        "{r:?}"
    );
    assert!(!r.stderr.contains("PwSecretValue"), "{r:?}");

    let r = run(
        &[],
        &[(
            "TOKEN_ROTATOR_NOTIFY",
            "ntfy://h/t gopher://PwSecretValue@x",
        )],
    );
    assert_eq!(r.code, 64, "{r:?}");
    assert!(
        r.stderr.contains("TOKEN_ROTATOR_NOTIFY") && r.stderr.contains("URL 2 of the list"),
        "{r:?}"
    );
    assert!(
        r.stderr.contains("unknown scheme") && !r.stderr.contains("PwSecretValue"),
        "{r:?}"
    );

    let r = run(&["--notify", "ntfy://h/t?events=standby_needed,nope"], &[]);
    assert_eq!(r.code, 64, "{r:?}");
    for name in ["rotation_failed", "standby_needed", "retired_token_alive"] {
        assert!(r.stderr.contains(name), "the valid events are named: {r:?}");
    }

    let url = "smtp://u:PwSecretValue@127.0.0.1:587/?from=a@b.c&to=d@e.f";
    let r = run(&["--notify", url], &[(CA_VAR, "/nonexistent/ca.pem")]);
    assert_eq!(r.code, 64, "an unreadable test CA is a bad value: {r:?}");
    assert!(
        r.stderr.contains("--notify") && r.stderr.contains(CA_VAR),
        "{r:?}"
    );
    assert!(!r.stderr.contains("PwSecretValue"), "{r:?}");
    let scope = Scope::new("notify-smtp-badca");
    let empty = scope.secret_file("");
    let r = run(&["--notify", url], &[(CA_VAR, s(&empty))]);
    assert_eq!(r.code, 64, "a test CA file without a certificate: {r:?}");
    assert!(r.stderr.contains(CA_VAR), "{r:?}");
}

const SMTP_PASS: &str = "smtpTlsPassSecret";
const CA_VAR: &str = "TOKEN_ROTATOR_NOTIFY_TEST_CA";

fn smtp_url(port: u16, encryption: Option<&str>) -> String {
    let enc = encryption.map_or(String::new(), |e| format!("&encryption={e}"));
    format!(
        "smtp://ops:{SMTP_PASS}@127.0.0.1:{port}/?from=rotator@example.com&to=ops@example.com{enc}"
    )
}

/// The daemon's log lines (it logs JSON: `TOKEN_ROTATOR_LOG_FORMAT=json`).
fn log_lines(d: &HostDaemon) -> Vec<serde_json::Value> {
    d.logs()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The warning of `notifier` failing to deliver `rotation_failed`, once it is logged.
fn failure_of(d: &HostDaemon, notifier: &str) -> String {
    let prefix = format!("{notifier} failed: ");
    let find = || {
        log_lines(d).into_iter().find(|l| {
            l["level"] == "WARN"
                && l["event"] == "rotation_failed"
                && l["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with(&prefix))
        })
    };
    assert!(
        support::wait_until(20.0, || find().is_some()),
        "no failure of {notifier}: {}",
        d.logs()
    );
    let message = find().unwrap()["message"].as_str().unwrap().to_string();
    eprintln!("--- {message}");
    message
}

/// No log line shows the password or a notifier URL.
fn assert_no_smtp_credential(d: &HostDaemon) {
    let logs = d.logs();
    assert!(
        !logs.contains(SMTP_PASS),
        "a log line shows the password:\n{logs}"
    );
    assert!(!logs.contains("smtp://"), "a log line shows a URL:\n{logs}");
}

#[test]
fn email_goes_over_starttls_and_over_tls_with_a_login() {
    let scope = Scope::new("notify-smtp-tls");
    let starttls = Smtp::start_with(SmtpMode::StartTls, "ops", SMTP_PASS);
    let tls = Smtp::start_with(SmtpMode::Tls, "ops", SMTP_PASS);
    let ca = starttls.pem_file("ca.pem", &Pems::get().ca);
    // The default (auto) on a port other than 465 is STARTTLS, required.
    let (a, b) = (
        smtp_url(starttls.port, None),
        smtp_url(tls.port, Some("tls")),
    );
    let env = [(CA_VAR, s(&ca)), ("TOKEN_ROTATOR_LOG_FORMAT", "json")];
    let d = failing_daemon(&scope, &["--notify", &a, "--notify", &b], &env);
    for (server, what) in [(&starttls, "STARTTLS"), (&tls, "TLS")] {
        assert!(
            support::wait_until(20.0, || !server.mails().is_empty()),
            "no mail over {what}: {}",
            d.logs()
        );
        let mail = &server.mails()[0];
        eprintln!("--- mail over {what}\n{}", mail.content);
        assert!(mail.tls, "{what}: the mail came in clear");
        assert_eq!(mail.login.as_deref(), Some("ops"), "{what}: no login");
        assert_eq!(mail.rcpt_tos, ["ops@example.com"]);
        assert_eq!(mail.mail_from, "rotator@example.com");
        assert!(
            mail.content
                .contains("Subject: token-rotator: rotation to token"),
            "{}",
            mail.content
        );
        let logins = server.logins();
        assert_eq!(logins.len(), 1, "{what}: {logins:?}");
        assert!(logins[0].tls && logins[0].ok, "{what}: {logins:?}");
    }
    assert_no_smtp_credential(&d);
}

#[test]
fn starttls_required_against_a_server_without_it_fails_before_the_password() {
    let scope = Scope::new("notify-smtp-nostarttls");
    let trap = Smtp::start_with(SmtpMode::NoStartTls, "ops", SMTP_PASS);
    let ca = trap.pem_file("ca.pem", &Pems::get().ca);
    let url = smtp_url(trap.port, Some("starttls"));
    let env = [(CA_VAR, s(&ca)), ("TOKEN_ROTATOR_LOG_FORMAT", "json")];
    let d = failing_daemon(&scope, &["--notify", &url], &env);
    let message = failure_of(&d, "notifier 1 (smtp)");
    assert!(
        message.contains("STARTTLS"),
        "the error says why: {message}"
    );
    std::thread::sleep(std::time::Duration::from_secs(1)); // a late AUTH would show now
    assert!(
        trap.logins().is_empty(),
        "a password went in clear: {:?}",
        trap.logins()
    );
    assert!(trap.mails().is_empty(), "a mail went in clear");
    assert_no_smtp_credential(&d);
}

#[test]
fn a_certificate_the_rotator_does_not_trust_fails_before_the_password() {
    let scope = Scope::new("notify-smtp-untrusted");
    let starttls = Smtp::start_with(SmtpMode::StartTls, "ops", SMTP_PASS);
    let tls = Smtp::start_with(SmtpMode::Tls, "ops", SMTP_PASS);
    let stranger = tls.pem_file("stranger.pem", &Pems::get().stranger_ca);
    let (a, b) = (
        smtp_url(starttls.port, Some("starttls")),
        smtp_url(tls.port, Some("tls")),
    );
    // Without the override: only the bundled roots, which never signed the test's CA.
    let json = ("TOKEN_ROTATOR_LOG_FORMAT", "json");
    let d = failing_daemon(&scope, &["--notify", &a, "--notify", &b], &[json]);
    // With the override naming another CA: that one root is added, nothing else.
    let d2 = failing_daemon(&scope, &["--notify", &b], &[json, (CA_VAR, s(&stranger))]);
    for (d, notifier) in [
        (&d, "notifier 1 (smtp)"),
        (&d, "notifier 2 (smtp)"),
        (&d2, "notifier 1 (smtp)"),
    ] {
        let message = failure_of(d, notifier);
        assert!(
            message.contains("TLS") && message.contains("certificate"),
            "{message}"
        );
        assert_no_smtp_credential(d);
    }
    for server in [&starttls, &tls] {
        assert!(
            server.logins().is_empty(),
            "a password was sent: {:?}",
            server.logins()
        );
        assert!(server.mails().is_empty(), "a mail was sent");
    }
}

#[test]
fn a_wrong_password_is_a_refused_login_over_tls() {
    let scope = Scope::new("notify-smtp-login");
    let tls = Smtp::start_with(SmtpMode::Tls, "ops", SMTP_PASS);
    let ca = tls.pem_file("ca.pem", &Pems::get().ca);
    let wrong = "smtpWrongPassSecret";
    let url = smtp_url(tls.port, Some("tls")).replace(SMTP_PASS, wrong);
    let env = [(CA_VAR, s(&ca)), ("TOKEN_ROTATOR_LOG_FORMAT", "json")];
    let d = failing_daemon(&scope, &["--notify", &url], &env);
    let message = failure_of(&d, "notifier 1 (smtp)");
    assert!(message.contains("login"), "the error says why: {message}");
    let logins = tls.logins();
    assert_eq!(logins.len(), 1, "{logins:?}");
    assert!(logins[0].tls && !logins[0].ok, "{logins:?}");
    assert!(
        tls.mails().is_empty(),
        "a mail went through a refused login"
    );
    assert!(!d.logs().contains(wrong), "a log line shows the password");
    assert_no_smtp_credential(&d);
}
