//! Mattermost incoming webhooks: `mattermost://[USER@]HOST[:PORT]/TOKEN[/CHANNEL]`
//! (shoutrrr's form of `https://HOST/hooks/TOKEN`; `?scheme=http` for a server without
//! TLS). Sent as `text`, with `username` and `channel` when the URL names them.

use super::query::Query;
use super::{decoded, Notice};

/// One Mattermost webhook.
#[derive(Clone)]
pub struct Mattermost {
    /// `scheme://host[:port]/hooks/TOKEN`.
    url: String,
    user: Option<String>,
    channel: Option<String>,
}

impl Mattermost {
    /// From a parsed `mattermost://` URL.
    pub fn parse(url: &reqwest::Url, q: &mut Query) -> Result<Self, String> {
        let plain = q.plain_http()? || q.take(&["disabletls"]).is_some_and(|v| yes(&v));
        let scheme = if plain { "http" } else { "https" };
        let host = url.host_str().filter(|h| !h.is_empty());
        let mut path = url.path().trim_start_matches('/').split('/').map(decoded);
        let token = path.next().filter(|t| !t.is_empty());
        let (Some(host), Some(token)) = (host, token) else {
            return Err(
                "mattermost:// must be mattermost://[USER@]HOST[:PORT]/TOKEN[/CHANNEL]".into(),
            );
        };
        let channel = path.next().filter(|c| !c.is_empty());
        let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
        let user = Some(decoded(url.username())).filter(|u| !u.is_empty());
        Ok(Mattermost {
            url: format!("{scheme}://{host}{port}/hooks/{token}"),
            user,
            channel,
        })
    }

    /// The webhook request.
    pub fn request(&self, http: &reqwest::Client, n: &Notice) -> reqwest::RequestBuilder {
        let mut body = serde_json::json!({ "text": format!("#### {}\n{}", n.title, n.text) });
        if let Some(u) = &self.user {
            body["username"] = u.as_str().into();
        }
        if let Some(c) = &self.channel {
            body["channel"] = c.as_str().into();
        }
        http.post(&self.url).json(&body)
    }
}

fn yes(v: &str) -> bool {
    matches!(v.to_ascii_lowercase().as_str(), "yes" | "true" | "1")
}
