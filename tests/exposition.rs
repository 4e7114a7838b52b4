//! The daemon's `/metrics` in the format each scraper asks for, and its log lines in text
//! and JSON, end to end through the real binary. No engine is needed: the daemon serves
//! its endpoints while it waits for one (here at a socket that does not exist).

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What Prometheus 2.x sends.
const PROMETHEUS: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const CLASSIC: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A daemon on a port of its choosing, with no engine to reach; killed on drop.
struct Daemon {
    child: Child,
    addr: String,
    /// Its log lines up to the one that named the address.
    log: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Daemon {
    fn start(log_format: &str) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("token");
        std::fs::write(&secret, format!("sk-ant-oat01-{}\n", "x".repeat(60))).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_token-rotator"))
            .args(["--log-format", log_format, "run", "--listen", "127.0.0.1:0"])
            .arg("--secret-file")
            .arg(&secret)
            .args([
                "--container",
                "no-such-bot",
                "--api-base-url",
                "http://127.0.0.1:9",
            ])
            .env(
                "DOCKER_HOST",
                format!("unix://{}", dir.path().join("no-engine.sock").display()),
            )
            .env("TOKEN_ROTATOR_LOG", "info")
            .env_remove("NO_COLOR")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut log = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        let addr = loop {
            assert!(Instant::now() < deadline, "no address logged: {log:#?}");
            let Some(Ok(line)) = lines.next() else {
                panic!("the daemon stopped logging: {log:#?}");
            };
            log.push(line.clone());
            let serving = line.contains("serving /healthz");
            if let Some(at) = line.find("127.0.0.1:").filter(|_| serving) {
                let addr: String = line[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                    .collect();
                break addr;
            }
        };
        // The rest of its log is not read: drain it so the daemon never blocks on stderr.
        std::thread::spawn(move || for _ in lines {});
        Daemon {
            child,
            addr,
            log,
            _dir: dir,
        }
    }

    /// GET /metrics with `accept` (none: no Accept header): the headers, lower-cased
    /// names, and the body.
    fn metrics(&self, accept: Option<&str>) -> (Vec<(String, String)>, String) {
        let mut s = std::net::TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let accept = accept.map_or(String::new(), |a| format!("Accept: {a}\r\n"));
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: {}\r\n{accept}Connection: close\r\n\r\n",
            self.addr
        )
        .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
        let mut head = head.lines();
        assert!(head.next().unwrap().contains(" 200 "), "{text}");
        let headers = head
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        (headers, body.to_string())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn metrics_answer_in_the_format_asked_for() {
    let d = Daemon::start("text");
    let version = env!("CARGO_PKG_VERSION");
    let build = format!("token_rotator_build_info{{version=\"{version}\"}} 1\n");

    let (h, om) = d.metrics(Some(PROMETHEUS));
    assert_eq!(header(&h, "content-type"), Some(OPENMETRICS), "{h:?}");
    assert_eq!(header(&h, "vary"), Some("accept"), "{h:?}");
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert!(om.contains("# TYPE token_rotator_build info\n"), "{om}");
    assert!(om.contains(&build), "{om}");

    for accept in [None, Some("*/*"), Some("text/plain;version=0.0.4")] {
        let (h, text) = d.metrics(accept);
        assert_eq!(
            header(&h, "content-type"),
            Some(CLASSIC),
            "{accept:?}: {h:?}"
        );
        assert!(!text.contains("# EOF"), "{accept:?}: {text}");
        assert!(!text.contains("# UNIT"), "{accept:?}: {text}");
        assert!(
            text.contains("# TYPE token_rotator_build_info gauge\n"),
            "{text}"
        );
        assert!(text.contains(&build), "{text}");
        assert!(text.contains("# TYPE token_rotator_rotations_total counter\n"));
        assert!(text.contains("\ntoken_rotator_rotations_total{outcome=\"rotated\"} 0\n"));
    }
}

#[test]
fn text_logs_name_no_module_path_and_no_colour_into_a_pipe() {
    let d = Daemon::start("text");
    let line = d.log.last().unwrap();
    assert!(line.contains(" INFO serving /healthz"), "{line}");
    for l in &d.log {
        assert!(!l.contains("token_rotator::"), "a module path: {l}");
        assert!(!l.contains('\x1b'), "colour into a pipe: {l}");
    }
}

#[test]
fn json_logs_keep_the_target() {
    let d = Daemon::start("json");
    let line: serde_json::Value = serde_json::from_str(d.log.last().unwrap()).unwrap();
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["addr"], d.addr.as_str());
    assert!(line["target"]
        .as_str()
        .unwrap()
        .starts_with("token_rotator::"));
    assert!(line["message"].as_str().unwrap().starts_with("serving"));
}
