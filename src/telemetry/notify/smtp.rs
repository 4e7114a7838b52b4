//! Email over SMTP, through lettre (rustls):
//! `smtp://[USER:PASS@]HOST:PORT/?from=ADDR&to=ADDR[,ADDR][&encryption=starttls|tls|none]`.
//! Shoutrrr's names work too (`fromAddress`, `toAddresses`, `fromName`, and `encryption`
//! `ExplicitTLS`, `ImplicitTLS`, `None`, `Auto`; `useStartTLS=no` with `Auto`). The default,
//! `auto`, is TLS on port 465 and STARTTLS (required) on any other: a password never
//! goes out in clear unless `encryption=none` says so.

use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::query::Query;
use super::{decoded, DeliveryError, Notice};

/// One mail server and the mail it sends.
#[derive(Clone)]
pub struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
}

/// How the connection is encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encryption {
    /// STARTTLS, required.
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
    /// None (a relay on the same host or network).
    None,
}

const FORM: &str =
    "smtp:// must be smtp://[USER:PASS@]HOST:PORT/?from=ADDRESS&to=ADDRESS[,ADDRESS]";

impl Smtp {
    /// How many recipients each mail has.
    pub fn recipients(&self) -> usize {
        self.to.len()
    }

    /// From a parsed `smtp://` URL.
    pub fn parse(url: &reqwest::Url, q: &mut Query) -> Result<Self, String> {
        let host = url.host_str().filter(|h| !h.is_empty()).ok_or(FORM)?;
        let port = url.port().unwrap_or(25);
        let from = q.take(&["from", "fromaddress"]).ok_or(FORM)?;
        let name = q.take(&["fromname"]);
        let from = mailbox(&from, name)?;
        let to = q.take(&["to", "toaddresses"]).ok_or(FORM)?;
        let to = to
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(|a| mailbox(a, None))
            .collect::<Result<Vec<_>, _>>()?;
        if to.is_empty() {
            return Err(FORM.into());
        }
        let starttls = q.take(&["usestarttls", "starttls"]);
        let enc = encryption(
            q.take(&["encryption"]).as_deref(),
            starttls.as_deref(),
            port,
        )?;
        let builder = match enc {
            Encryption::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
            Encryption::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
                .map_err(|_| "smtp:// the host is not a valid TLS server name")?,
            Encryption::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host)
                .map_err(|_| "smtp:// the host is not a valid TLS server name")?,
        };
        let mut builder = builder
            .port(port)
            .timeout(Some(std::time::Duration::from_secs(10)));
        let user = decoded(url.username());
        if !user.is_empty() {
            let pass = url.password().map(decoded).unwrap_or_default();
            builder = builder.credentials(Credentials::new(user, pass));
        }
        Ok(Smtp {
            transport: builder.build(),
            from,
            to,
        })
    }

    /// Sends the notice as a plain-text mail, its title the subject.
    pub async fn send(&self, n: &Notice) -> Result<(), DeliveryError> {
        let mut message = Message::builder()
            .from(self.from.clone())
            .subject(n.title.clone())
            .header(lettre::message::header::ContentType::TEXT_PLAIN);
        for to in &self.to {
            message = message.to(to.clone());
        }
        let mail = message.body(n.text.clone()).map_err(DeliveryError::Email)?;
        self.transport
            .send(mail)
            .await
            .map(|_| ())
            .map_err(DeliveryError::Smtp)
    }
}

fn mailbox(address: &str, name: Option<String>) -> Result<Mailbox, String> {
    let addr = address
        .parse()
        .map_err(|_| "smtp:// from= and to= must be email addresses (to= a comma list)")?;
    Ok(Mailbox::new(name, addr))
}

/// `encryption=` (ours and shoutrrr's names), with `useStartTLS=` for `auto`.
pub fn encryption(
    value: Option<&str>,
    starttls: Option<&str>,
    port: u16,
) -> Result<Encryption, String> {
    let value = value.unwrap_or("auto").to_ascii_lowercase();
    Ok(match value.as_str() {
        "starttls" | "explicittls" => Encryption::StartTls,
        "tls" | "implicittls" => Encryption::Tls,
        "none" => Encryption::None,
        "auto" if port == 465 => Encryption::Tls,
        "auto" => match starttls.map(str::to_ascii_lowercase).as_deref() {
            Some("no" | "false" | "0") => Encryption::None,
            _ => Encryption::StartTls,
        },
        _ => return Err("smtp:// encryption= must be starttls, tls, none or auto".into()),
    })
}
