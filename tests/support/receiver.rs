//! Local receivers for the notifiers' tests: an HTTP server that records every request
//! (method, path with query, headers, body) whatever its path, and a real SMTP server
//! (Debian's aiosmtpd, run with /usr/bin/python3) that writes each mail to a folder.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

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
    got.lock().unwrap().push(Got {
        method,
        path,
        headers,
        body,
    });
    "{\"ok\":true}"
}

/// A real SMTP server (aiosmtpd) on 127.0.0.1 that accepts one login (AUTH without TLS, for
/// the test) and writes each message to a folder.
pub struct Smtp {
    /// Its port.
    pub port: u16,
    dir: tempfile::TempDir,
    child: std::process::Child,
}

const HANDLER: &str = r#"
import asyncio, os, sys, time
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
folder, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
def check(server, session, envelope, mechanism, data):
    ok = isinstance(data, LoginPassword) and data.login.decode() == user and data.password.decode() == password
    return AuthResult(success=ok)
class Save:
    async def handle_DATA(self, server, session, envelope):
        name = os.path.join(folder, "%d-%d.eml" % (time.time_ns(), os.getpid()))
        with open(name + ".tmp", "wb") as f:
            f.write(("X-Rcpt: %s\r\nX-Mail-From: %s\r\n" % (",".join(envelope.rcpt_tos), envelope.mail_from)).encode())
            f.write(envelope.original_content)
        os.rename(name + ".tmp", name)
        return "250 OK"
c = Controller(Save(), hostname="127.0.0.1", port=port, authenticator=check, auth_require_tls=False)
c.start()
print("ready", flush=True)
while True:
    time.sleep(3600)
"#;

impl Smtp {
    /// Starts aiosmtpd; fails naming the command that installs it when it is missing.
    pub fn start(user: &str, password: &str) -> Smtp {
        let ok = std::process::Command::new("/usr/bin/python3")
            .args(["-c", "import aiosmtpd"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "aiosmtpd is missing: run `bash scripts/install.sh python3-aiosmtpd` (scripts/test.sh does)");
        let dir = tempfile::tempdir().unwrap();
        let port = super::free_port();
        let mut child = std::process::Command::new("/usr/bin/python3")
            .args(["-c", HANDLER])
            .arg(dir.path())
            .arg(port.to_string())
            .args([user, password])
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

    /// The messages received so far (headers and body as text), oldest first.
    pub fn messages(&self) -> Vec<String> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        names.sort();
        let all: Vec<String> = names
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect();
        for m in &all {
            super::assert_no_secret(m);
        }
        all
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
