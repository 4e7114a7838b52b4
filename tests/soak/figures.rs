//! What the soak measures: convergence times per fault kind, the daemon's RSS and open fds
//! over each of its lifetimes, and the summary written as JSON and markdown.

use std::collections::BTreeMap;

use serde_json::{json, Value};

/// One sample of the daemon: VmRSS in KiB and the number of open fds.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub rss_kib: u64,
    pub fds: u64,
}

/// Reads /proc/PID/status's VmRSS and counts /proc/PID/fd.
pub fn sample(pid: u32) -> Option<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some(Sample { rss_kib, fds })
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(0.0, f64::max)
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// RSS and fds of the first and the last quarter of the longest lifetime (a restarted daemon
/// starts a new one), as medians; `None` with fewer than 8 samples.
pub fn flatness(lifetimes: &[Vec<Sample>]) -> Option<Value> {
    let longest = lifetimes.iter().max_by_key(|l| l.len())?;
    if longest.len() < 8 {
        return None;
    }
    let q = longest.len() / 4;
    let m = |s: &[Sample], f: fn(&Sample) -> u64| {
        median(&s.iter().map(|x| f(x) as f64).collect::<Vec<_>>())
    };
    let (first, last) = (&longest[..q], &longest[longest.len() - q..]);
    Some(json!({
        "samples": longest.len(),
        "rss_kib_first_quarter": m(first, |s| s.rss_kib),
        "rss_kib_last_quarter": m(last, |s| s.rss_kib),
        "fds_first_quarter": m(first, |s| s.fds),
        "fds_last_quarter": m(last, |s| s.fds),
        "rss_kib_max": longest.iter().map(|s| s.rss_kib).max(),
        "fds_max": longest.iter().map(|s| s.fds).max(),
    }))
}

/// Whether the flatness figures show growth beyond noise: RSS up by more than a quarter
/// plus 4 MiB, or more than 6 fds more.
pub fn grows(flat: &Value) -> bool {
    let f = |k: &str| flat[k].as_f64().unwrap_or(0.0);
    f("rss_kib_last_quarter") > f("rss_kib_first_quarter") * 1.25 + 4096.0
        || f("fds_last_quarter") > f("fds_first_quarter") + 6.0
}

/// Convergence times by what preceded them (`update` or a fault kind), in seconds.
#[derive(Default)]
pub struct Times(pub BTreeMap<&'static str, Vec<f64>>);

impl Times {
    pub fn record(&mut self, what: &'static str, secs: f64) {
        self.0.entry(what).or_default().push(secs);
    }

    /// `{what: {count, converge_median_s, converge_max_s}}`.
    pub fn json(&self) -> Value {
        let mut out = serde_json::Map::new();
        for (what, v) in &self.0 {
            out.insert(
                what.to_string(),
                json!({"count": v.len(), "converge_median_s": round3(median(v)), "converge_max_s": round3(max(v))}),
            );
        }
        Value::Object(out)
    }
}

/// The markdown summary of the figures JSON.
pub fn markdown(f: &Value) -> String {
    let mut md = format!(
        "# Soak figures\n\n- result: {}\n- seed: {}\n- updates: {}, faults: {}, bots: {}\n- wall time: {} s\n- lost: {}\n- machine: {}\n- replay: `{}`\n\n| after | count | convergence median (s) | max (s) |\n|---|---|---|---|\n",
        f["result"], f["seed"], f["updates"], f["faults"], f["bots"], f["wall_s"], f["lost"], f["machine"], f["replay"].as_str().unwrap_or("")
    );
    for (what, v) in f["convergence"].as_object().into_iter().flatten() {
        md.push_str(&format!(
            "| {what} | {} | {} | {} |\n",
            v["count"], v["converge_median_s"], v["converge_max_s"]
        ));
    }
    md.push_str(&format!(
        "\nRounds whose rotation ended rolled_back and needed the file written again: {}\n",
        f["rewrites_needed"]
    ));
    md.push_str(&format!("\nDaemon (longest lifetime): {}\n", f["daemon"]));
    if let Some(e) = f["failure"].as_str() {
        md.push_str(&format!("\nFAILURE: {e}\n"));
    }
    md
}
