//! Local receivers for the notifiers' tests: an HTTP server that records every request
//! (method, path with query, headers, body) whatever its path, and a real SMTP server
//! (Debian's aiosmtpd, run with /usr/bin/python3) that writes each mail to a folder, in
//! clear, with STARTTLS or with TLS (its certificate made here, see [`Pems`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use axum::extract::{Request, State};
use axum::Router;

/// One request as a receiver got it.
#[derive(Debug, Clone)]
pub struct Got {
    /// `POST`.
    pub method: String,
    /// The path and query.
    pub path: String,
    /// Headers, lower-case names.
    pub headers: BTreeMap<String, String>,
    /// The body as text.
    pub body: String,
}

impl Got {
    /// The body as JSON (`Null` if it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// A running HTTP receiver on 127.0.0.1, answering 200 to everything.
#[derive(Clone)]
pub struct Receiver {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    got: Arc<Mutex<Vec<Got>>>,
}

impl Receiver {
    /// Starts one.
    pub fn start() -> Receiver {
        let got = Arc::new(Mutex::new(Vec::new()));
        let state = got.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                let app = Router::new().fallback(record).with_state(state);
                axum::serve(listener, app).await.unwrap();
            });
        });
        let addr = rx.recv().unwrap().to_string();
        Receiver {
            base: format!("http://{addr}"),
            addr,
            got,
        }
    }

    /// Everything received so far (a notifier's own credentials are in its requests, as
    /// they must be; a bot token never is: each request goes through the leak check).
    pub fn got(&self) -> Vec<Got> {
        let got = self.got.lock().unwrap().clone();
        for g in &got {
            super::assert_no_secret(&format!("{g:?}"));
        }
        got
    }

    /// Waits up to `secs` for `n` requests.
    pub fn wait_for(&self, n: usize, secs: f64) -> Vec<Got> {
        super::wait_until(secs, || self.got.lock().unwrap().len() >= n);
        self.got()
    }
}

async fn record(State(got): State<Arc<Mutex<Vec<Got>>>>, req: Request) -> &'static str {
    let method = req.method().to_string();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let body = String::from_utf8_lossy(&body).to_string();
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&body) {
        super::recorder::dump(&serde_json::json!({ "path": path, "body": v }));
    }
    got.lock().unwrap().push(Got {
        method,
        path,
        headers,
        body,
    });
    "{\"ok\":true}"
}

/// How an [`Smtp`] server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpMode {
    /// In clear, AUTH allowed without TLS (for `encryption=none`).
    Plain,
    /// STARTTLS offered and required: no MAIL, and no AUTH, before it.
    StartTls,
    /// TLS from the first byte (what port 465 speaks).
    Tls,
    /// No STARTTLS, and AUTH accepted in clear: a trap that records a password sent in clear.
    NoStartTls,
}

impl SmtpMode {
    fn arg(self) -> &'static str {
        match self {
            SmtpMode::Plain => "plain",
            SmtpMode::StartTls => "starttls",
            SmtpMode::Tls => "tls",
            SmtpMode::NoStartTls => "nostarttls",
        }
    }
}

/// One mail as the server got it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Mail {
    /// The envelope's recipients.
    pub rcpt_tos: Vec<String>,
    /// The envelope's sender.
    pub mail_from: String,
    /// Whether the connection was TLS (STARTTLS or TLS) when the mail came.
    pub tls: bool,
    /// Who had logged in on that connection, if anyone.
    pub login: Option<String>,
    /// The message, headers and body.
    pub content: String,
}

/// One AUTH as the server got it (the password is checked, never written down).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Login {
    /// The user name (none if the mechanism gave none).
    pub login: Option<String>,
    /// Whether the connection was TLS when the password came.
    pub tls: bool,
    /// Whether user and password were the right ones.
    pub ok: bool,
}

/// The certificates of the TLS tests, made once per test process with openssl: a CA, a
/// server certificate it signed for 127.0.0.1 and localhost, and a stranger CA that signed
/// nothing of ours.
pub struct Pems {
    /// The CA that signed the server's certificate.
    pub ca: String,
    /// Another CA.
    pub stranger_ca: String,
    cert: String,
    key: String,
}

impl Pems {
    /// Made on the first call (the files are kept in memory, their folder removed).
    pub fn get() -> &'static Pems {
        static PEMS: OnceLock<Pems> = OnceLock::new();
        PEMS.get_or_init(make_pems)
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl is missing: run `bash scripts/install.sh openssl`");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn make_pems() -> Pems {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    for (name, cn) in [("ca", "token-rotator test CA"), ("stranger", "stranger CA")] {
        let (key, pem, subj) = (
            format!("{name}.key"),
            format!("{name}.pem"),
            format!("/CN={cn}"),
        );
        let mut args = vec!["req", "-x509", "-days", "2", "-subj", &subj];
        args.extend(ec);
        args.extend(["-keyout", &key, "-out", &pem]);
        args.extend(["-addext", "basicConstraints=critical,CA:TRUE"]);
        args.extend(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
        openssl(d, &args);
    }
    let mut args = vec!["req", "-subj", "/CN=localhost", "-keyout", "server.key"];
    args.extend(ec);
    args.extend(["-out", "server.csr"]);
    openssl(d, &args);
    std::fs::write(
        d.join("ext.cnf"),
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
         extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.pem",
        ],
    );
    let read = |n: &str| std::fs::read_to_string(d.join(n)).unwrap();
    Pems {
        ca: read("ca.pem"),
        stranger_ca: read("stranger.pem"),
        cert: read("server.pem"),
        key: read("server.key"),
    }
}

/// A real SMTP server (aiosmtpd) on 127.0.0.1 that accepts one login and writes each
/// message, and each login, to a folder.
pub struct Smtp {
    /// Its port.
    pub port: u16,
    dir: tempfile::TempDir,
    child: std::process::Child,
}

const HANDLER: &str = r#"
import json, logging, os, ssl, sys, time, warnings
# The tests expect refused handshakes; aiosmtpd's own deprecation (login_data) is not ours.
logging.getLogger("mail.log").setLevel(logging.CRITICAL)
warnings.filterwarnings("ignore", message="Session.login_data")
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
folder, port, mode, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
def tls(server):
    return server.transport is not None and server.transport.get_extra_info("ssl_object") is not None
def record(kind, what):
    name = os.path.join(folder, "%d-%s" % (time.time_ns(), kind))
    with open(name + ".tmp", "w") as f:
        json.dump(what, f)
    os.rename(name + ".tmp", name + ".json")
def check(server, session, envelope, mechanism, data):
    ok = isinstance(data, LoginPassword) and data.login.decode() == user and data.password.decode() == password
    login = data.login.decode() if isinstance(data, LoginPassword) else None
    record("login", {"login": login, "tls": tls(server), "ok": ok})
    return AuthResult(success=ok, handled=False, auth_data=login)  # handled=False: answer 535
class Save:
    async def handle_DATA(self, server, session, envelope):
        record("mail", {"rcpt_tos": envelope.rcpt_tos, "mail_from": envelope.mail_from, "tls": tls(server),
                        "login": session.auth_data if session.authenticated else None,
                        "content": envelope.original_content.decode("utf-8", "replace")})
        return "250 OK"
kw = {"authenticator": check}
if mode in ("starttls", "tls"):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(os.path.join(folder, "server.pem"), os.path.join(folder, "server.key"))
if mode == "starttls":
    kw.update(tls_context=ctx, require_starttls=True, auth_require_tls=True)
elif mode == "tls":
    kw.update(ssl_context=ctx, auth_require_tls=False)  # TLS from the first byte
else:
    kw.update(auth_require_tls=False)
c = Controller(Save(), hostname="127.0.0.1", port=port, **kw)
c.start()
print("ready", flush=True)
while True:
    time.sleep(3600)
"#;

impl Smtp {
    /// Starts aiosmtpd in clear (AUTH without TLS); see [`Smtp::start_with`].
    pub fn start(user: &str, password: &str) -> Smtp {
        Smtp::start_with(SmtpMode::Plain, user, password)
    }

    /// Starts aiosmtpd speaking `mode`, with the certificate of [`Pems`]; fails naming the
    /// command that installs it when it is missing.
    pub fn start_with(mode: SmtpMode, user: &str, password: &str) -> Smtp {
        let ok = std::process::Command::new("/usr/bin/python3")
            .args(["-c", "import aiosmtpd"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "aiosmtpd is missing: run `bash scripts/install.sh python3-aiosmtpd` (scripts/test.sh does)");
        let dir = tempfile::tempdir().unwrap();
        if matches!(mode, SmtpMode::StartTls | SmtpMode::Tls) {
            let pems = Pems::get();
            std::fs::write(dir.path().join("server.pem"), &pems.cert).unwrap();
            std::fs::write(dir.path().join("server.key"), &pems.key).unwrap();
        }
        let port = super::free_port();
        let mut child = std::process::Command::new("/usr/bin/python3")
            .args(["-c", HANDLER])
            .arg(dir.path())
            .arg(port.to_string())
            .args([mode.arg(), user, password])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start aiosmtpd");
        let mut line = String::new();
        use std::io::BufRead;
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "aiosmtpd did not start");
        Smtp { port, dir, child }
    }

    /// A file holding `pem` (for `TOKEN_ROTATOR_NOTIFY_TEST_CA`), in this server's folder.
    pub fn pem_file(&self, name: &str, pem: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, pem).unwrap();
        path
    }

    /// The records of `kind` (`mail` or `login`) so far, oldest first.
    fn records<T: serde::de::DeserializeOwned>(&self, kind: &str) -> Vec<T> {
        let suffix = format!("-{kind}.json");
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.to_string_lossy().ends_with(&suffix))
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| {
                let text = std::fs::read_to_string(p).unwrap();
                super::assert_no_secret(&text);
                serde_json::from_str(&text).unwrap()
            })
            .collect()
    }

    /// The mails received so far, oldest first.
    pub fn mails(&self) -> Vec<Mail> {
        self.records("mail")
    }

    /// The logins tried so far, oldest first.
    pub fn logins(&self) -> Vec<Login> {
        self.records("login")
    }

    /// The messages received so far (headers and body as text), oldest first, each after
    /// `X-Rcpt:` and `X-Mail-From:` lines of its envelope.
    pub fn messages(&self) -> Vec<String> {
        self.mails()
            .iter()
            .map(|m| {
                let rcpt = m.rcpt_tos.join(",");
                format!(
                    "X-Rcpt: {rcpt}\r\nX-Mail-From: {}\r\n{}",
                    m.mail_from, m.content
                )
            })
            .collect()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
