//! URL parsing of every scheme, and the request each builds (no network).

use super::*;

fn notice() -> Notice {
    Notice {
        event: "standby_needed",
        severity: Severity::Critical,
        title: "token-rotator: write a new token".into(),
        text: "the live token 4ecd2601eefc was rejected".into(),
        body: serde_json::json!({"event": "standby_needed"}),
    }
}

fn built(url: &str, base: Option<&str>) -> Vec<reqwest::Request> {
    let n = NotifyUrl::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
    let http = reqwest::Client::new();
    let base = base.map(|b| reqwest::Url::parse(b).unwrap());
    let base = base.as_ref();
    let reqs = match &n.target {
        Target::Ntfy(t) => vec![t.request(&http, &notice())],
        Target::Discord(t) => vec![t.request(&http, base, &notice())],
        Target::Slack(t) => vec![t.request(&http, base, &notice())],
        Target::Mattermost(t) => vec![t.request(&http, &notice())],
        Target::Teams(t) => vec![t.request(&http, base, &notice())],
        Target::Generic(t) => vec![t.request(&http, &notice())],
        Target::Telegram(t) => t.requests(&http, base, &notice()),
        Target::Smtp(_) => vec![],
    };
    reqs.into_iter().map(|r| r.build().unwrap()).collect()
}

fn json(r: &reqwest::Request) -> serde_json::Value {
    serde_json::from_slice(r.body().unwrap().as_bytes().unwrap()).unwrap()
}

fn err(url: &str) -> String {
    NotifyUrl::parse(url).map(|_| ()).unwrap_err()
}

#[test]
fn ntfy_urls() {
    let r = &built("ntfy://alice:s3cret@ntfy.example.com:8080/alerts", None)[0];
    assert_eq!(r.url().as_str(), "https://ntfy.example.com:8080/");
    let v = json(r);
    assert_eq!(v["topic"], "alerts");
    assert_eq!(v["priority"], 5);
    assert_eq!(
        v["tags"],
        serde_json::json!(["rotating_light", "standby_needed"])
    );
    let auth = r.headers()["authorization"].to_str().unwrap();
    assert!(auth.starts_with("Basic "), "{auth}");
    let r = &built("ntfy://:tk_abc@host/t?scheme=http", None)[0];
    assert_eq!(r.url().as_str(), "http://host/");
    assert_eq!(r.headers()["authorization"], "Bearer tk_abc");
    let r = &built("ntfy:///mytopic", None)[0];
    assert_eq!(r.url().as_str(), "https://ntfy.sh/");
    assert!(err("ntfy://host/").contains("topic"));
    assert!(err("ntfy://host/t?scheme=ftp").contains("?scheme="));
}

#[test]
fn discord_urls() {
    let r = &built(
        "discord://TOKEN_abc-1@693853386302554172",
        Some("http://127.0.0.1:9/"),
    )[0];
    assert_eq!(
        r.url().as_str(),
        "http://127.0.0.1:9/api/webhooks/693853386302554172/TOKEN_abc-1"
    );
    let v = json(r);
    assert_eq!(v["content"], "token-rotator: write a new token");
    assert_eq!(
        v["embeds"][0]["description"],
        "the live token 4ecd2601eefc was rejected"
    );
    let r = &built("discord://TOKEN@1234", None)[0];
    assert_eq!(
        r.url().as_str(),
        "https://discord.com/api/webhooks/1234/TOKEN"
    );
    assert!(err("discord://TOKEN@notanid").contains("discord://TOKEN@WEBHOOK_ID"));
    assert!(err("discord://1234").contains("discord://TOKEN@WEBHOOK_ID"));
}

#[test]
fn slack_urls() {
    let x = "XXXXXXXXXXXXXXXXXXXXXXXX";
    let r = &built(&format!("slack://T00000000/B00000000/{x}"), None)[0];
    assert_eq!(
        r.url().as_str(),
        format!("https://hooks.slack.com/services/T00000000/B00000000/{x}")
    );
    assert_eq!(
        json(r)["text"],
        "*token-rotator: write a new token*\nthe live token 4ecd2601eefc was rejected"
    );
    let r = &built(
        &format!("slack://Bot@T00000000/B00000000/{x}?channel=ops"),
        None,
    )[0];
    assert_eq!(json(r)["username"], "Bot");
    assert_eq!(json(r)["channel"], "ops");
    let r = &built(
        &format!("slack://hook:T00000000-B00000000-{x}@webhook"),
        Some("http://h:1"),
    )[0];
    assert_eq!(
        r.url().as_str(),
        format!("http://h:1/services/T00000000/B00000000/{x}")
    );
    assert!(err("slack://xoxb:123-456@chan").contains("not supported"));
    assert!(err("slack://T0/B0/short").contains("slack://"));
}

#[test]
fn mattermost_urls() {
    let r = &built(
        "mattermost://bob@chat.example.com:8065/tok3n/ops?scheme=http",
        None,
    )[0];
    assert_eq!(r.url().as_str(), "http://chat.example.com:8065/hooks/tok3n");
    let v = json(r);
    assert_eq!(
        (v["username"].as_str(), v["channel"].as_str()),
        (Some("bob"), Some("ops"))
    );
    let r = &built("mattermost://chat.example.com/tok3n", None)[0];
    assert_eq!(r.url().as_str(), "https://chat.example.com/hooks/tok3n");
    assert!(json(r).get("channel").is_none());
    assert!(err("mattermost://chat.example.com/").contains("TOKEN"));
}

#[test]
fn telegram_urls() {
    let rs = built(
        "telegram://110201543:AAHdq_x@telegram?chats=-100123,@mychannel,42:7",
        None,
    );
    assert_eq!(rs.len(), 3);
    assert_eq!(
        rs[0].url().as_str(),
        "https://api.telegram.org/bot110201543:AAHdq_x/sendMessage"
    );
    assert_eq!(json(&rs[0])["chat_id"], "-100123");
    assert_eq!(json(&rs[1])["chat_id"], "@mychannel");
    assert_eq!(json(&rs[2])["message_thread_id"], 7);
    let rs = built(
        "telegram://1:A@telegram?channels=5",
        Some("http://127.0.0.1:1"),
    );
    assert_eq!(
        rs[0].url().as_str(),
        "http://127.0.0.1:1/bot1:A/sendMessage"
    );
    assert!(err("telegram://1:A@telegram").contains("no chat"));
    assert!(err("telegram://bot@telegram?chats=1").contains("BOTID:SECRET"));
}

#[test]
fn teams_urls() {
    let g = "11111111-4444-4444-8444-cccccccccccc";
    let t = "22222222-4444-4444-8444-cccccccccccc";
    let url = format!("teams://{g}@{t}/3333/4444/V2ES?host=contoso.webhook.office.com");
    let r = &built(&url, None)[0];
    assert_eq!(
        r.url().as_str(),
        format!(
            "https://contoso.webhook.office.com/webhookb2/{g}@{t}/IncomingWebhook/3333/4444/V2ES"
        )
    );
    assert_eq!(json(r)["@type"], "MessageCard");
    let r = &built(&url, Some("http://127.0.0.1:5"))[0];
    assert!(
        r.url()
            .as_str()
            .starts_with("http://127.0.0.1:5/webhookb2/"),
        "{}",
        r.url()
    );
    let r = &built("teams+https://prod-1.westus.logic.azure.com/workflows/abc/triggers/manual/paths/invoke?api-version=2016-06-01&sig=S", None)[0];
    assert_eq!(r.url().as_str(), "https://prod-1.westus.logic.azure.com/workflows/abc/triggers/manual/paths/invoke?api-version=2016-06-01&sig=S");
    assert_eq!(
        json(r)["attachments"][0]["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert!(err("teams://nothing").contains("teams://GROUP@TENANT"));
}

#[test]
fn generic_urls_forward_what_is_not_ours() {
    let r = &built(
        "generic+https://hooks.example.com/in?key=abc&events=standby_needed",
        None,
    )[0];
    assert_eq!(r.url().as_str(), "https://hooks.example.com/in?key=abc");
    assert_eq!(json(r)["event"], "standby_needed");
    let r = &built("generic+http://127.0.0.1:8080/x", None)[0];
    assert_eq!(r.url().as_str(), "http://127.0.0.1:8080/x");
    assert!(err("generic+ftp://x").contains("unknown scheme"));
}

#[test]
fn smtp_urls() {
    let u = NotifyUrl::parse("smtp://me:pw@mail.example.com:587/?from=rotator@example.com&to=a@example.com,b@example.com").unwrap();
    assert_eq!(u.scheme(), "smtp");
    let Target::Smtp(s) = &u.target else { panic!() };
    assert_eq!(s.recipients(), 2);
    NotifyUrl::parse("smtp://mail:25/?fromAddress=a@b.c&toAddresses=d@e.f&encryption=ExplicitTLS")
        .unwrap();
    assert!(err("smtp://mail:25/?from=a@b.c").contains("to="));
    assert!(err("smtp://mail:25/?from=nope&to=d@e.f").contains("email addresses"));
    assert!(
        err("smtp://mail:25/?from=a@b.c&to=d@e.f&encryption=rot13").contains("starttls, tls, none")
    );
    use smtp::{encryption, Encryption};
    assert_eq!(encryption(None, None, 465), Ok(Encryption::Tls));
    assert_eq!(encryption(None, None, 587), Ok(Encryption::StartTls));
    assert_eq!(
        encryption(Some("Auto"), Some("No"), 25),
        Ok(Encryption::None)
    );
    assert_eq!(
        encryption(Some("ImplicitTLS"), None, 25),
        Ok(Encryption::Tls)
    );
    assert_eq!(encryption(Some("none"), None, 587), Ok(Encryption::None));
}

#[test]
fn events_limit_a_notifier() {
    let u = NotifyUrl::parse("ntfy://h/t?events=standby_needed,rotation_failed").unwrap();
    assert!(u.wants("standby_needed") && u.wants("rotation_failed"));
    assert!(!u.wants("rotation"));
    assert!(NotifyUrl::parse("ntfy://h/t").unwrap().wants("rotation"));
    let e = err("ntfy://h/t?events=standby_needed,bogus");
    assert!(
        e.contains("unknown event") && e.contains("retired_token_alive"),
        "{e}"
    );
    assert!(!e.contains("bogus"));
    assert!(err("ntfy://h/t?events=").contains("empty"));
}

#[test]
fn errors_and_debug_never_show_the_url() {
    let secret = "SECRETPART";
    for url in [
        format!("ntfy://u:{secret}@h/"),
        format!("discord://{secret}@x"),
        format!("slack://{secret}"),
        format!("telegram://1:{secret}@telegram"),
        format!("smtp://u:{secret}@h:25/?from=x"),
        format!("nope://{secret}"),
        secret.to_string(),
        format!("generic+ftp://{secret}"),
    ] {
        assert!(!err(&url).contains(secret), "{url}: {}", err(&url));
    }
    let ok = NotifyUrl::parse(&format!("ntfy://u:{secret}@h/t")).unwrap();
    assert_eq!(format!("{ok:?}"), "NotifyUrl(ntfy, <hidden>)");
}

#[test]
fn the_webhook_keeps_its_rotation_event_for_a_failed_rotation() {
    let failed = Notice {
        event: "rotation_failed",
        body: serde_json::json!({"event": "rotation_failed", "outcome": "bad_target"}),
        ..notice()
    };
    let http = reqwest::Client::new();
    let url = generic::WebhookUrl::parse("http://127.0.0.1:9/hook").unwrap();
    let old = generic::Generic::webhook(url).request(&http, &failed);
    let body = json(&old.build().unwrap());
    assert_eq!(
        (body["event"].as_str(), body["outcome"].as_str()),
        (Some("rotation"), Some("bad_target"))
    );
    let new = generic::Generic::parse(
        &reqwest::Url::parse("generic+http://127.0.0.1:9/h").unwrap(),
        vec![],
    )
    .unwrap();
    let body = json(&new.request(&http, &failed).build().unwrap());
    assert_eq!(body["event"], "rotation_failed");
}
