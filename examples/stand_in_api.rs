//! The test suite's stand-in for the Anthropic API, as a process for the demo.
//!
//! `stand_in_api [--listen-file F] [--accept TOKEN_FILE]... [--revoke TOKEN_FILE]...`
//! Tokens are read from files so they never appear in a process argument. Prints the
//! base URL on stdout (and writes it to `--listen-file`), then serves until killed.

#[path = "../tests/support/api.rs"]
mod api;

use api::{Behaviour, StandInApi};

fn main() {
    let api = StandInApi::start();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .unwrap_or_else(|| panic!("{flag} needs a value"));
        let read = |path: &str| {
            std::fs::read_to_string(path)
                .unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
                .split_whitespace()
                .collect::<String>()
        };
        match flag.as_str() {
            "--accept" => api.set(&read(&value), Behaviour::Accept),
            "--revoke" => api.set(&read(&value), Behaviour::Revoked),
            "--listen-file" => std::fs::write(&value, api.base_url()).expect("write listen file"),
            other => panic!("unknown flag {other}"),
        }
    }
    println!("{}", api.base_url());
    loop {
        std::thread::park();
    }
}
