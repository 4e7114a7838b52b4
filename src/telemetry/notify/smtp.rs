//! Email over SMTP, through lettre (rustls):
//! `smtp://[USER:PASS@]HOST:PORT/?from=ADDR&to=ADDR[,ADDR][&encryption=starttls|tls|none]`.
//! Shoutrrr's names work too (`fromAddress`, `toAddresses`, `fromName`, and `encryption`
//! `ExplicitTLS`, `ImplicitTLS`, `None`, `Auto`; `useStartTLS=no` with `Auto`). The default,
//! `auto`, is TLS on port 465 and STARTTLS (required) on any other: a password never
//! goes out in clear unless `encryption=none` says so.
//!
//! The server's certificate is checked against the roots bundled in the binary (a scratch
//! image has no CA store), for the URL's host. [`TEST_CA_VAR`] adds one root, for tests.

use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
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

/// A PEM file of one more root certificate that SMTP's TLS trusts, beside the bundled ones.
/// It exists because the tests start a real SMTP server with STARTTLS and TLS, whose
/// certificate they make: without it those could only pass by trusting any certificate,
/// which production must never do. Test-only: never set it in a deployment. It adds a root;
/// verification (chain, name, dates) stays whole, and without it nothing changes.
pub const TEST_CA_VAR: &str = "TOKEN_ROTATOR_NOTIFY_TEST_CA";

/// Why a mail could not be sent; never carries the URL or the password.
#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    /// `encryption=starttls` (or `auto`), and the server does not offer STARTTLS.
    #[error("the server offers no STARTTLS, which encryption=starttls requires (encryption=tls for port 465); nothing was sent, no login either: {0}")]
    NoStartTls(#[source] lettre::transport::smtp::Error),
    /// The TLS handshake failed: often a certificate not trusted, or not for this host.
    #[error(
        "TLS with the server failed (its certificate must be trusted and name the URL's host): {0}"
    )]
    Tls(#[source] lettre::transport::smtp::Error),
    /// The server refused the login.
    #[error("the server refused the login (user or password): {0}")]
    Login(#[source] lettre::transport::smtp::Error),
    /// Anything else: unreachable, a refused sender or recipient, a timeout.
    #[error("{0}")]
    Other(#[source] lettre::transport::smtp::Error),
}

impl SmtpError {
    fn of(e: lettre::transport::smtp::Error) -> Self {
        let text = e.to_string();
        // lettre has no kind for these two; its own words say which it is.
        if e.is_client() && text.contains("STARTTLS is not supported") {
            SmtpError::NoStartTls(e)
        } else if e.is_tls() || text.contains("invalid peer certificate") {
            SmtpError::Tls(e)
        } else if e.status().is_some_and(|c| c.to_string() == "535") {
            SmtpError::Login(e)
        } else {
            SmtpError::Other(e)
        }
    }
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
        let tls = match enc {
            Encryption::None => Tls::None,
            Encryption::StartTls => Tls::Required(tls_parameters(host)?),
            Encryption::Tls => Tls::Wrapper(tls_parameters(host)?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .tls(tls)
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
            .map_err(|e| DeliveryError::Smtp(SmtpError::of(e)))
    }
}

/// TLS for `host`: the bundled roots, and the test-only root of [`TEST_CA_VAR`] if set.
fn tls_parameters(host: &str) -> Result<TlsParameters, String> {
    let mut builder = TlsParameters::builder(host.to_string());
    if let Some(path) = std::env::var_os(TEST_CA_VAR) {
        let pem = std::fs::read(&path)
            .map_err(|e| format!("{TEST_CA_VAR}: cannot read {}: {e}", path.to_string_lossy()))?;
        let not_pem = || format!("{TEST_CA_VAR}: not a PEM certificate");
        if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
            return Err(not_pem()); // lettre would take a file of none, silently
        }
        let root = Certificate::from_pem(&pem).map_err(|_| not_pem())?;
        builder = builder.add_root_certificate(root);
    }
    builder.build().map_err(|_| {
        let ca = std::env::var_os(TEST_CA_VAR).map_or("", |_| " (or the test CA is not usable)");
        format!("smtp:// the host is not a valid TLS server name{ca}")
    })
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
