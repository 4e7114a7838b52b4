//! Slack incoming webhooks, in shoutrrr's forms: `slack://[BOTNAME@]T…/B…/X…` (the
//! webhook URL with `https://hooks.slack.com/services/` replaced by `slack://`) and
//! `slack://hook:T…-B…-X…@webhook`. `?channel=` is passed on. Sent as `text` (Slack's
//! markdown: the title in bold).

use super::query::Query;
use super::{decoded, fixed_host, Notice};

/// One Slack webhook.
#[derive(Clone)]
pub struct Slack {
    /// `T…/B…/X…`.
    token: String,
    botname: Option<String>,
    channel: Option<String>,
}

const FORMS: &str = "slack:// must be slack://[BOTNAME@]TOKEN-A/TOKEN-B/TOKEN-C or \
slack://hook:TOKEN-A-TOKEN-B-TOKEN-C@webhook (from https://hooks.slack.com/services/TOKEN-A/TOKEN-B/TOKEN-C)";

impl Slack {
    /// From a parsed `slack://` URL.
    pub fn parse(url: &reqwest::Url, q: &mut Query) -> Result<Self, String> {
        let host = url.host_str().unwrap_or_default();
        let user = decoded(url.username());
        let (raw, botname) = if url.path().len() > 1 {
            (
                format!("{host}{}", url.path()),
                Some(user).filter(|u| !u.is_empty()),
            )
        } else if user.starts_with("xox") {
            return Err(
                "slack:// with an API token (xoxb/xoxp) is not supported: use an \
                        incoming webhook, slack://hook:TOKEN-A-TOKEN-B-TOKEN-C@webhook"
                    .into(),
            );
        } else {
            (url.password().map(decoded).unwrap_or_default(), None)
        };
        let token = webhook_token(&raw).ok_or_else(|| FORMS.to_string())?;
        let channel = q.take(&["channel"]);
        Ok(Slack {
            token,
            botname,
            channel,
        })
    }

    /// The webhook request.
    pub fn request(
        &self,
        http: &reqwest::Client,
        base: Option<&reqwest::Url>,
        n: &Notice,
    ) -> reqwest::RequestBuilder {
        let mut body = serde_json::json!({ "text": format!("*{}*\n{}", n.title, n.text) });
        if let Some(b) = &self.botname {
            body["username"] = b.as_str().into();
        }
        if let Some(c) = &self.channel {
            body["channel"] = c.as_str().into();
        }
        let path = format!("/services/{}", self.token);
        http.post(fixed_host(base, "hooks.slack.com", &path))
            .json(&body)
    }
}

/// `T…/B…/X…` or `T…-B…-X…` (one separator throughout) as `T…/B…/X…`: two parts of 9 or
/// more upper-case letters and digits, then one of 24 or more letters and digits.
fn webhook_token(raw: &str) -> Option<String> {
    let sep = raw.chars().find(|c| matches!(c, '/' | '-' | ','))?;
    let parts: Vec<&str> = raw.trim_end_matches('/').split(sep).collect();
    let [a, b, c] = parts.as_slice() else {
        return None;
    };
    let upper = |p: &str| {
        p.len() >= 9
            && p.bytes()
                .all(|x| x.is_ascii_uppercase() || x.is_ascii_digit())
    };
    let ok = upper(a) && upper(b) && c.len() >= 24 && c.bytes().all(|x| x.is_ascii_alphanumeric());
    ok.then(|| format!("{a}/{b}/{c}"))
}
