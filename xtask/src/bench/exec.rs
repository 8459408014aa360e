//! Spawn overhead of the local jail: `sh -c true` through a plain
//! `tokio::process::Command` (stdout and stderr captured) against a
//! `sandbay-exec` jail at each isolation level, with and without the jail's
//! cgroups (a child of the jail's capped cgroup per run). 200 runs per
//! subject, interleaved in rounds of 20 so that load changes on the
//! machine hit every subject alike.

use std::time::{Duration, Instant};

use sandbay_core::{ExecRequest, Isolation};
use sandbay_exec::{Jail, JailConfig};

use super::{Report, Stats};

const ROUNDS: usize = 10;
const PER_ROUND: usize = 20;

/// One thing to time.
enum Subject {
    Plain,
    Jail(Jail),
}

pub(crate) async fn run(report: &mut Report) {
    let support = Jail::host_support();
    let ws = match tempfile::Builder::new()
        .prefix("sandbay-bench-exec-")
        .tempdir()
    {
        Ok(d) => d,
        Err(e) => {
            eprintln!("bench exec: no temp dir: {e}");
            return;
        }
    };
    let mut subjects: Vec<(String, Subject)> = vec![("plain".into(), Subject::Plain)];
    for level in [Isolation::Limits, Isolation::Namespaces] {
        if let Err(e) = support.check(level) {
            eprintln!("bench exec: {} skipped: {e}", level.as_str());
            continue;
        }
        for cgroups in [false, true] {
            if cgroups && !(support.cgroup_pids || support.cgroup_memory) {
                continue;
            }
            let mut config = JailConfig::new(level);
            config.cgroups = cgroups;
            match Jail::new(config) {
                Ok(jail) => {
                    let name = format!(
                        "{}{}",
                        level.as_str(),
                        if cgroups { "+cgroups" } else { "" }
                    );
                    subjects.push((name, Subject::Jail(jail)));
                }
                Err(e) => eprintln!("bench exec: {} unavailable: {e}", level.as_str()),
            }
        }
    }
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); subjects.len()];
    let mut walls = vec![Duration::ZERO; subjects.len()];
    // Warm up (probe, page cache, cgroup directories).
    for (_, subject) in &subjects {
        for _ in 0..5 {
            once(subject, ws.path()).await;
        }
    }
    for _ in 0..ROUNDS {
        for (i, (_, subject)) in subjects.iter().enumerate() {
            let wall = Instant::now();
            for _ in 0..PER_ROUND {
                let start = Instant::now();
                once(subject, ws.path()).await;
                samples[i].push(start.elapsed());
            }
            walls[i] += wall.elapsed();
        }
    }
    let stats: Vec<Stats> = samples
        .into_iter()
        .zip(&walls)
        .map(|(s, w)| Stats::from_samples(s, *w))
        .collect();
    let plain_p50 = stats[0].p50_us;
    let plain_p95 = stats[0].p95_us;
    for ((name, subject), stats) in subjects.iter().zip(stats) {
        let note = match subject {
            Subject::Plain => "tokio::process::Command, output captured".to_string(),
            Subject::Jail(jail) => {
                let e = jail.enforcement();
                format!(
                    "{:+.0} µs p50 / {:+.0} µs p95 over plain; cgroups pids={} memory={} cpu={}",
                    stats.p50_us - plain_p50,
                    stats.p95_us - plain_p95,
                    e.cgroup_pids,
                    e.cgroup_memory,
                    e.cgroup_cpu
                )
            }
        };
        println!(
            "exec {name:<20} p50 {:>8.0} µs  p95 {:>8.0} µs  {note}",
            stats.p50_us, stats.p95_us
        );
        report.add("exec", name, "spawn `sh -c true`", stats, &note);
    }
}

async fn once(subject: &Subject, ws: &std::path::Path) {
    match subject {
        Subject::Plain => {
            let out = tokio::process::Command::new("/bin/sh")
                .args(["-c", "true"])
                .current_dir(ws)
                .output()
                .await;
            assert!(out.is_ok_and(|o| o.status.success()), "plain spawn failed");
        }
        Subject::Jail(jail) => {
            let out = jail
                .run(
                    ws,
                    ExecRequest::new("true").timeout(Duration::from_secs(30)),
                )
                .await;
            assert!(
                matches!(&out, Ok(o) if o.exit_code == Some(0)),
                "jailed spawn failed: {out:?}"
            );
        }
    }
}
