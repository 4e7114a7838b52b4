//! Discord: `discord://TOKEN@WEBHOOK_ID` (shoutrrr's form of
//! `https://discord.com/api/webhooks/WEBHOOK_ID/TOKEN`). The title is the message's
//! `content`, the text an embed coloured by severity.

use super::{decoded, fixed_host, Notice, Severity};

/// One Discord webhook.
#[derive(Clone)]
pub struct Discord {
    id: String,
    token: String,
}

impl Discord {
    /// From a parsed `discord://` URL.
    pub fn parse(url: &reqwest::Url) -> Result<Self, String> {
        let id = url.host_str().unwrap_or_default().to_string();
        let token = decoded(url.username());
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) || token.is_empty() {
            return Err(
                "discord:// must be discord://TOKEN@WEBHOOK_ID (from the webhook URL \
                        https://discord.com/api/webhooks/WEBHOOK_ID/TOKEN)"
                    .into(),
            );
        }
        Ok(Discord { id, token })
    }

    /// The webhook request.
    pub fn request(
        &self,
        http: &reqwest::Client,
        base: Option<&reqwest::Url>,
        n: &Notice,
    ) -> reqwest::RequestBuilder {
        let color = match n.severity {
            Severity::Info => 0x2488ff,
            Severity::Warning => 0xffc441,
            Severity::Critical => 0xd60510,
        };
        let body = serde_json::json!({
            "username": "token-rotator",
            "content": n.title,
            "embeds": [{ "description": n.text, "color": color,
                         "footer": { "text": format!("{} · {}", n.event, n.severity.label()) } }],
            "allowed_mentions": { "parse": [] },
        });
        let path = format!("/api/webhooks/{}/{}", self.id, self.token);
        http.post(fixed_host(base, "discord.com", &path))
            .json(&body)
    }
}
