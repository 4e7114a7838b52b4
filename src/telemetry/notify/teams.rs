//! Microsoft Teams. Shoutrrr's form,
//! `teams://GROUP@TENANT/ALTID/GROUPOWNER[/EXTRAID]?host=ORG.webhook.office.com`, is an
//! Office 365 connector webhook and gets a MessageCard. The webhook URL form,
//! `teams+https://…` (the URL Teams shows, with `teams+` in front), gets a MessageCard
//! when it is such a connector (`*.webhook.office.com`), else an Adaptive Card (a
//! Workflows / Power Automate webhook).

use super::query::Query;
use super::{fixed_host, Notice, Severity};

/// One Teams webhook.
#[derive(Clone)]
pub struct Teams {
    /// For the shoutrrr form: the host and path (the test override keeps the path).
    host: String,
    path: String,
    /// For the webhook URL form: the whole URL.
    url: Option<String>,
    adaptive: bool,
}

impl Teams {
    /// From a parsed `teams://` or `teams+https://` URL.
    pub fn parse(url: &reqwest::Url, q: &mut Query) -> Result<Self, String> {
        if url.scheme() == "teams+https" {
            return Self::webhook_url(url, q);
        }
        let host = q
            .take(&["host"])
            .unwrap_or_else(|| "outlook.office.com".into());
        let parts: Vec<&str> = url.path().trim_matches('/').split('/').collect();
        let (group, tenant) = (url.username(), url.host_str().unwrap_or_default());
        if group.is_empty()
            || tenant.is_empty()
            || !(2..=3).contains(&parts.len())
            || parts.iter().any(|p| p.is_empty())
            || !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        {
            return Err("teams:// must be teams://GROUP@TENANT/ALTID/GROUPOWNER[/EXTRAID]?host=ORG.webhook.office.com, \
                        or the webhook URL itself with teams+ in front (teams+https://...)"
                .into());
        }
        let dir = if host == "outlook.office.com" {
            "webhook"
        } else {
            "webhookb2"
        };
        let path = format!(
            "/{dir}/{group}@{tenant}/IncomingWebhook/{}",
            parts.join("/")
        );
        Ok(Teams {
            host,
            path,
            url: None,
            adaptive: false,
        })
    }

    fn webhook_url(url: &reqwest::Url, q: &mut Query) -> Result<Self, String> {
        let host = url.host_str().unwrap_or_default().to_string();
        if host.is_empty() {
            return Err("teams+https:// must be the webhook URL with teams+ in front".into());
        }
        let mut real = url.clone();
        real.set_query(None);
        let rest = std::mem::replace(q, Query::empty()).rest();
        if !rest.is_empty() {
            real.query_pairs_mut().extend_pairs(rest);
        }
        let text = real.as_str().replacen("teams+https", "https", 1);
        let connector = host.ends_with(".webhook.office.com") || host == "outlook.office.com";
        Ok(Teams {
            host,
            path: String::new(),
            url: Some(text),
            adaptive: !connector,
        })
    }

    /// The webhook request.
    pub fn request(
        &self,
        http: &reqwest::Client,
        base: Option<&reqwest::Url>,
        n: &Notice,
    ) -> reqwest::RequestBuilder {
        let url = match (&self.url, base) {
            (Some(u), None) => u.clone(),
            (Some(u), Some(b)) => {
                let path = u.splitn(4, '/').nth(3).unwrap_or_default();
                format!("{}/{path}", b.as_str().trim_end_matches('/'))
            }
            (None, base) => fixed_host(base, &self.host, &self.path),
        };
        let body = if self.adaptive {
            adaptive_card(n)
        } else {
            message_card(n)
        };
        http.post(url).json(&body)
    }
}

fn color(s: Severity) -> &'static str {
    match s {
        Severity::Info => "2488FF",
        Severity::Warning => "FFC441",
        Severity::Critical => "D60510",
    }
}

/// The Office 365 connector's card.
pub fn message_card(n: &Notice) -> serde_json::Value {
    serde_json::json!({
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "summary": n.title,
        "title": n.title,
        "text": n.text,
        "themeColor": color(n.severity),
    })
}

/// A Workflows webhook's message: one Adaptive Card.
pub fn adaptive_card(n: &Notice) -> serde_json::Value {
    let style = match n.severity {
        Severity::Info => "good",
        Severity::Warning => "warning",
        Severity::Critical => "attention",
    };
    serde_json::json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": [
                    { "type": "TextBlock", "text": n.title, "weight": "bolder", "wrap": true, "color": style },
                    { "type": "TextBlock", "text": n.text, "wrap": true },
                ],
            },
        }],
    })
}
