//! A neighbour's latency while one sandbox attacks: sandbox B runs
//! `echo hi` in a loop, idle and while sandbox A runs four commands at
//! once, each a memory hog and a fork bomb, inside A's single cap
//! (namespaces level, cgroups). B is measured with and without its own
//! cgroups (moving a process into a cgroup v1 waits for forks in flight
//! on the whole host, and for an RCU grace period when no move happened
//! just before), interleaved so both see the same load. B's samples
//! during the attack span all of it, from the first fork to the kill.

use std::time::{Duration, Instant};

use sandbay_core::{ExecRequest, Isolation};
use sandbay_exec::{Jail, JailConfig};

use super::{Report, Stats};

/// How long A's attack lasts (each of its four commands' time limit).
const ATTACK: Duration = Duration::from_secs(8);
/// Idle samples per B subject.
const IDLE: usize = 100;

pub(crate) async fn run(report: &mut Report) {
    if let Err(e) = Jail::host_support().check(Isolation::Namespaces) {
        eprintln!("bench exec neighbour skipped: {e}");
        return;
    }
    let a = {
        let mut c = JailConfig::new(Isolation::Namespaces);
        c.limits.processes = 64;
        c.limits.memory_bytes = 256 << 20;
        c.max_concurrent = 4;
        match Jail::new(c) {
            Ok(j) => j,
            Err(e) => {
                eprintln!("bench exec neighbour: {e}");
                return;
            }
        }
    };
    let e = a.enforcement();
    if !(e.cgroup_pids && e.cgroup_memory) {
        eprintln!("bench exec neighbour skipped: no cgroup caps (needs root and cgroup v1)");
        return;
    }
    let mut bs = Vec::new();
    for cgroups in [true, false] {
        let mut c = JailConfig::new(Isolation::Namespaces);
        c.cgroups = cgroups;
        match Jail::new(c) {
            Ok(j) => bs.push((if cgroups { "B+cgroups" } else { "B" }, j)),
            Err(e) => {
                eprintln!("bench exec neighbour: {e}");
                return;
            }
        }
    }
    let dirs: Vec<_> = (0..2)
        .filter_map(|_| {
            tempfile::Builder::new()
                .prefix("sandbay-bench-neighbour-")
                .tempdir()
                .ok()
        })
        .collect();
    let [wa, wb] = &dirs[..] else {
        eprintln!("bench exec neighbour: no temp dirs");
        return;
    };
    // Warm up, then B idle.
    for (_, b) in &bs {
        for _ in 0..5 {
            echo(b, wb.path()).await;
        }
    }
    let mut idle: Vec<Vec<Duration>> = vec![Vec::new(); bs.len()];
    let idle_start = Instant::now();
    for _ in 0..IDLE {
        for (i, (_, b)) in bs.iter().enumerate() {
            idle[i].push(echo(b, wb.path()).await);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let idle_wall = idle_start.elapsed();
    // A attacks; B keeps asking.
    let attack = "head -c 200M /dev/zero | tail -c 200M | sleep 3 & sleep 0.5; \
                  exec bash -c 'f() { while :; do f & done; }; f'";
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let (a, ws) = (a.clone(), wa.path().to_path_buf());
            tokio::spawn(async move { a.run(&ws, ExecRequest::new(attack).timeout(ATTACK)).await })
        })
        .collect();
    let mut busy: Vec<Vec<Duration>> = vec![Vec::new(); bs.len()];
    let busy_start = Instant::now();
    while !runs.iter().all(|r| r.is_finished()) {
        for (i, (_, b)) in bs.iter().enumerate() {
            busy[i].push(echo(b, wb.path()).await);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let busy_wall = busy_start.elapsed();
    for r in runs {
        match r.await {
            Ok(Ok(_)) => {}
            other => eprintln!("bench exec neighbour: an attacking run failed: {other:?}"),
        }
    }
    for (i, (name, _)) in bs.iter().enumerate() {
        let quiet = Stats::from_samples(std::mem::take(&mut idle[i]), idle_wall);
        let loud = Stats::from_samples(std::mem::take(&mut busy[i]), busy_wall);
        let ratio = loud.p95_us / quiet.p95_us.max(1.0);
        println!(
            "exec neighbour {name:<10} idle p50 {:>7.0} µs p95 {:>7.0} µs | during A's attack p50 {:>7.0} µs p95 {:>7.0} µs ({ratio:.1}x p95)",
            quiet.p50_us, quiet.p95_us, loud.p50_us, loud.p95_us
        );
        report.add(
            "exec",
            name,
            "neighbour `echo hi`, idle",
            quiet,
            "namespaces level; B's own cgroups as named",
        );
        report.add(
            "exec",
            name,
            "neighbour `echo hi`, A attacks",
            loud,
            &format!(
                "A: 4 concurrent runs, each a 200 MiB hog + fork bomb, one cap (64 processes, 256 MiB, 1 core); p95 {ratio:.1}x idle"
            ),
        );
    }
}

/// One `echo hi` in `b`, timed.
async fn echo(b: &Jail, ws: &std::path::Path) -> Duration {
    let start = Instant::now();
    let out = b
        .run(
            ws,
            ExecRequest::new("echo hi").timeout(Duration::from_secs(30)),
        )
        .await;
    let took = start.elapsed();
    assert!(
        matches!(&out, Ok(o) if o.stdout == b"hi\n"),
        "neighbour's echo failed: {out:?}"
    );
    took
}
