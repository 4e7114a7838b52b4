//! fake-bot: behaves toward the API like Claude Code in a bot-bottle container.
//!
//! - `fake-bot serve` (default): log the token's fingerprint, then every
//!   `FAKE_BOT_INTERVAL` seconds (if `ANTHROPIC_BASE_URL` is set) authenticate and log
//!   the result; with `FAKE_BOT_EXIT_ON_AUTH_FAILURE=1` exit 1 when refused, as a bot
//!   that cannot work without its credential would. Exits 0 on SIGTERM or SIGINT.
//! - `fake-bot check`: one request, exit 0 if it authenticates, 1 if not, like
//!   `claude -p ping --max-turns 1`. Meant for `token-rotator --verify-exec`.
//! - `fake-bot health`: exit 0 unless `FAKE_BOT_UNHEALTHY=1`; for healthchecks.
//! - `fake-bot leak`: a careless bot for redaction tests: print the token whole, its halves
//!   on separate lines, and a long tail that ends in half of it (as a cut buffer would),
//!   then exit 1.
//!
//! The token is read from `FAKE_BOT_TOKEN_VAR` (default `BOT_BOTTLE_CLAUDE_OAUTH_TOKEN`),
//! else `CLAUDE_CODE_OAUTH_TOKEN`; `ANTHROPIC_API_KEY` takes precedence, as in Claude Code. The token is never printed, only its fingerprint.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use sha2::{Digest, Sha256};

extern "C" fn on_signal(_: libc::c_int) {
    // As PID 1 in a container the default action would be to ignore SIGTERM.
    unsafe { libc::_exit(0) };
}

fn main() {
    unsafe {
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
    }
    let mode = std::env::args().nth(1).unwrap_or_else(|| "serve".into());
    let code = match mode.as_str() {
        "serve" => serve(),
        "check" => check(),
        "health" => i32::from(env("FAKE_BOT_UNHEALTHY").as_deref() == Some("1")),
        "leak" => leak(),
        other => {
            eprintln!("fake-bot: unknown mode {other:?} (serve, check, health)");
            64
        }
    };
    std::process::exit(code);
}

fn leak() -> i32 {
    let tok = token().unwrap_or_default();
    let half = tok.len() / 2;
    println!("debug: my token is {tok}");
    eprintln!("error: auth failed for {}", &tok[..half]);
    eprintln!("{}{}", "x".repeat(500), &tok[half..]);
    1
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn token() -> Option<String> {
    // As in Claude Code, an API key in the environment takes precedence over the token.
    if let Some(key) = env("ANTHROPIC_API_KEY") {
        return Some(key);
    }
    let var = env("FAKE_BOT_TOKEN_VAR").unwrap_or_else(|| "BOT_BOTTLE_CLAUDE_OAUTH_TOKEN".into());
    env(&var).or_else(|| env("CLAUDE_CODE_OAUTH_TOKEN"))
}

fn fingerprint(t: &str) -> String {
    Sha256::digest(t.as_bytes())[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn serve() -> i32 {
    let Some(tok) = token() else {
        println!("fake-bot: started without a token");
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    };
    println!("fake-bot: started with token {}", fingerprint(&tok));
    let interval = env("FAKE_BOT_INTERVAL")
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(5.0);
    let exit_on_failure = env("FAKE_BOT_EXIT_ON_AUTH_FAILURE").as_deref() == Some("1");
    loop {
        if let Some(base) = env("ANTHROPIC_BASE_URL") {
            match authenticate(&base, &tok) {
                Ok(()) => println!("fake-bot: authenticated with token {}", fingerprint(&tok)),
                Err(e) => {
                    println!("fake-bot: Failed to authenticate. {e}");
                    if exit_on_failure {
                        return 1;
                    }
                }
            }
        }
        let _ = std::io::stdout().flush();
        std::thread::sleep(Duration::from_secs_f64(interval.max(0.05)));
    }
}

fn check() -> i32 {
    let Some(tok) = token() else {
        eprintln!("fake-bot: no token in the environment");
        return 1;
    };
    let Some(base) = env("ANTHROPIC_BASE_URL") else {
        eprintln!("fake-bot: ANTHROPIC_BASE_URL is not set");
        return 1;
    };
    match authenticate(&base, &tok) {
        Ok(()) => {
            println!("pong");
            0
        }
        Err(e) => {
            println!("Failed to authenticate. {e}");
            1
        }
    }
}

/// POST {base}/v1/messages?beta=true as Claude Code does; Ok on a 2xx answer.
fn authenticate(base: &str, tok: &str) -> Result<(), String> {
    let rest = base
        .strip_prefix("http://")
        .ok_or_else(|| format!("only http:// base URLs are supported, got {base}"))?;
    let (hostport, prefix) = match rest.split_once('/') {
        Some((h, p)) => (h, format!("/{}", p.trim_end_matches('/'))),
        None => (rest, String::new()),
    };
    let hostport = if hostport.contains(':') {
        hostport.to_string()
    } else {
        format!("{hostport}:80")
    };
    let body = r#"{"model":"claude-haiku-4-5","max_tokens":1,"messages":[{"role":"user","content":"ping"}]}"#;
    let request = format!(
        "POST {prefix}/v1/messages?beta=true HTTP/1.1\r\nHost: {hostport}\r\nAuthorization: Bearer {tok}\r\nanthropic-version: 2023-06-01\r\nanthropic-beta: claude-code-20250219,oauth-2025-04-20\r\nUser-Agent: claude-cli/2.1.330 (external, cli)\r\ncontent-type: application/json\r\ncontent-length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(&hostport).map_err(|e| format!("Connection error: {e}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("Connection error: {e}"))?;
    let mut response = Vec::new();
    let _ = stream.take(64 * 1024).read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response);
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| "API Error: no HTTP answer".to_string())?;
    if (200..300).contains(&status) {
        return Ok(());
    }
    let message = text
        .split("\"message\":\"")
        .nth(1)
        .and_then(|m| m.split('"').next())
        .unwrap_or("");
    Err(format!("API Error: {status} {message}"))
}
