//! `cargo xtask bench`: one module per area, one shared report.
//!
//! Each area module exposes `pub(crate) async fn run(report: &mut Report)`
//! and records rows; the report is written to `target/bench/report.json`
//! and `target/bench/report.md`.

mod docker;
mod exec;
mod exec_neighbour;
mod files;
mod pool;
mod serve;
mod storage;

use std::time::Duration;

use serde::Serialize;

/// Summary statistics of repeated timings.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Stats {
    /// Number of timed operations.
    pub(crate) count: usize,
    /// Operations per second over the whole timed run.
    pub(crate) ops_per_sec: f64,
    /// Median latency in microseconds.
    pub(crate) p50_us: f64,
    /// 95th percentile latency in microseconds.
    pub(crate) p95_us: f64,
    /// 99th percentile latency in microseconds.
    pub(crate) p99_us: f64,
}

impl Stats {
    /// Computes statistics from individual latencies and the total wall time.
    pub(crate) fn from_samples(mut samples: Vec<Duration>, wall: Duration) -> Stats {
        samples.sort_unstable();
        let pick = |q: f64| -> f64 {
            if samples.is_empty() {
                return 0.0;
            }
            let i = ((samples.len() - 1) as f64 * q).round() as usize;
            samples[i].as_secs_f64() * 1e6
        };
        Stats {
            count: samples.len(),
            ops_per_sec: samples.len() as f64 / wall.as_secs_f64().max(1e-9),
            p50_us: pick(0.5),
            p95_us: pick(0.95),
            p99_us: pick(0.99),
        }
    }
}

/// One measured line of the report.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Row {
    /// Report section, e.g. `"files"`, `"exec"`, `"docker"`.
    pub(crate) section: String,
    /// Backend or subject, e.g. `"state"`, `"fs"`, `"rg"`.
    pub(crate) subject: String,
    /// Operation, e.g. `"read"`.
    pub(crate) op: String,
    /// The numbers.
    pub(crate) stats: Stats,
    /// Free-form remark (workload, units).
    pub(crate) note: String,
}

/// All rows of one bench run.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Report {
    pub(crate) rows: Vec<Row>,
}

impl Report {
    /// Adds one row.
    pub(crate) fn add(&mut self, section: &str, subject: &str, op: &str, stats: Stats, note: &str) {
        self.rows.push(Row {
            section: section.into(),
            subject: subject.into(),
            op: op.into(),
            stats,
            note: note.into(),
        });
    }

    /// The report as a markdown table.
    pub(crate) fn markdown(&self) -> String {
        let mut out = String::from(
            "| section | subject | op | count | ops/s | p50 µs | p95 µs | p99 µs | note |\n|---|---|---|---:|---:|---:|---:|---:|---|\n",
        );
        for r in &self.rows {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {:.0} | {:.1} | {:.1} | {:.1} | {} |\n",
                r.section,
                r.subject,
                r.op,
                r.stats.count,
                r.stats.ops_per_sec,
                r.stats.p50_us,
                r.stats.p95_us,
                r.stats.p99_us,
                r.note
            ));
        }
        out
    }
}

/// `cargo xtask bench`: runs every area and writes the report.
pub(crate) fn main(args: &[&str]) -> std::process::ExitCode {
    if cfg!(debug_assertions) {
        // benchmarks are only meaningful in release builds: re-run as one
        let status =
            std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .current_dir(crate::testrun::workspace_root())
                .args([
                    "run",
                    "--quiet",
                    "--release",
                    "--package",
                    "xtask",
                    "--",
                    "bench",
                ])
                .args(args)
                .status();
        return match status {
            Ok(s) if s.success() => std::process::ExitCode::SUCCESS,
            _ => std::process::ExitCode::FAILURE,
        };
    }
    let only: Vec<&str> = args.to_vec();
    let wants = |area: &str| only.is_empty() || only.contains(&area);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut report = Report::default();
    runtime.block_on(async {
        if wants("files") {
            files::run(&mut report).await;
        }
        if wants("serve") {
            serve::run(&mut report).await;
        }
        if wants("exec") {
            exec::run(&mut report).await;
        }
        if wants("exec") || wants("neighbour") {
            exec_neighbour::run(&mut report).await;
        }
        if wants("docker") {
            docker::run(&mut report).await;
        }
        if wants("pool") {
            pool::run(&mut report).await;
        }
        if wants("storage") {
            storage::run(&mut report).await;
        }
    });
    let dir = crate::testrun::workspace_root().join("target/bench");
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("xtask: cannot create {}: {e}", dir.display());
        return std::process::ExitCode::FAILURE;
    }
    let json = serde_json::to_string_pretty(&report).expect("report serialises");
    let md = report.markdown();
    if std::fs::write(dir.join("report.json"), json).is_err()
        || std::fs::write(dir.join("report.md"), &md).is_err()
    {
        eprintln!("xtask: cannot write the report");
        return std::process::ExitCode::FAILURE;
    }
    println!("{md}");
    println!("report: target/bench/report.json, target/bench/report.md");
    std::process::ExitCode::SUCCESS
}
