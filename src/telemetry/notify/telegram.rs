//! Telegram bots: `telegram://TOKEN@telegram?chats=ID[,ID]` (shoutrrr's form; the token is
//! `BOTID:SECRET`, `channels=` is an alias, a chat may be `@channelname` or
//! `CHATID:THREADID`). One `sendMessage` per chat, as plain text.

use super::query::Query;
use super::{decoded, fixed_host, Notice};

/// One bot and its chats.
#[derive(Clone)]
pub struct Telegram {
    token: String,
    chats: Vec<(String, Option<i64>)>,
}

const FORM: &str = "telegram:// must be telegram://BOTID:SECRET@telegram?chats=CHAT[,CHAT]";

impl Telegram {
    /// From a parsed `telegram://` URL.
    pub fn parse(url: &reqwest::Url, q: &mut Query) -> Result<Self, String> {
        let id = decoded(url.username());
        let secret = url.password().map(decoded).unwrap_or_default();
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) || secret.is_empty() {
            return Err(FORM.into());
        }
        let list = q.take(&["chats", "channels"]).unwrap_or_default();
        let mut chats = Vec::new();
        for chat in list.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            chats.push(match chat.split_once(':') {
                Some((c, thread)) => {
                    let thread = thread
                        .parse()
                        .map_err(|_| "telegram:// a chat CHATID:THREADID needs a numeric thread")?;
                    (c.to_string(), Some(thread))
                }
                None => (chat.to_string(), None),
            });
        }
        if chats.is_empty() {
            return Err(format!("{FORM} (no chat given)"));
        }
        Ok(Telegram {
            token: format!("{id}:{secret}"),
            chats,
        })
    }

    /// One `sendMessage` per chat.
    pub fn requests(
        &self,
        http: &reqwest::Client,
        base: Option<&reqwest::Url>,
        n: &Notice,
    ) -> Vec<reqwest::RequestBuilder> {
        let url = fixed_host(
            base,
            "api.telegram.org",
            &format!("/bot{}/sendMessage", self.token),
        );
        self.chats
            .iter()
            .map(|(chat, thread)| {
                let mut body = serde_json::json!({
                    "chat_id": chat,
                    "text": format!("{}\n\n{}", n.title, n.text),
                    "disable_web_page_preview": true,
                });
                if let Some(t) = thread {
                    body["message_thread_id"] = (*t).into();
                }
                http.post(&url).json(&body)
            })
            .collect()
    }
}
