//! One cap per sandbox: four concurrent runs of one jail, each a fork bomb
//! and a memory hog, stay inside the jail's single process and memory cap,
//! while another jail's `echo` keeps answering. Prints B's latency idle and
//! during the attack (timing is reported, not asserted: see the benches).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{count_uid_all, err, jail, out, procs_of_uid, run, skip, wait_empty, workspace};
use sandbay_core::{ExecRequest, Isolation};

per_level!(four_bombs_and_hogs_stay_inside_one_cap);

const T: Duration = Duration::from_secs(20);
/// Processes of the whole jail.
const CAP: u64 = 64;
/// Memory of the whole jail.
const MEMORY: u64 = 256 << 20;
/// What each run's hog holds: four of them need 3x the cap.
const HOG_MIB: u64 = 200;

/// Resident anonymous memory (KiB) of the `tail` processes of `uid`: the
/// hogs' buffers (private to each hog, so the sum is not inflated by pages
/// shared between forked processes).
fn hog_kib(uid: u32) -> u64 {
    let mut total = 0;
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return 0;
    };
    for e in rd.flatten() {
        if e.file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
            .is_none()
        {
            continue;
        }
        let Ok(status) = std::fs::read_to_string(e.path().join("status")) else {
            continue;
        };
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
        };
        if field("Name:").as_deref() != Some("tail") {
            continue;
        }
        let owner = field("Uid:").and_then(|u| u.split_whitespace().next()?.parse::<u32>().ok());
        if owner != Some(uid) {
            continue;
        }
        total += field("RssAnon:")
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0);
    }
    total
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// One attack at a time, so B's numbers belong to one.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn four_bombs_and_hogs_stay_inside_one_cap(level: Isolation) {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (Some(a), Some(b)) = (
        jail(level, |c| {
            c.limits.processes = CAP;
            c.limits.memory_bytes = MEMORY;
            c.max_concurrent = 4;
        }),
        jail(level, |_| {}),
    ) else {
        return;
    };
    let e = a.enforcement();
    if !(e.cgroup_pids && e.cgroup_memory && e.distinct_uid) {
        skip("one cap per sandbox needs a root host with cgroup v1 pids and memory controllers");
        return;
    }
    let ua = e.host_uid;
    let (wa, wb) = (workspace(), workspace());
    // B idle.
    let mut idle = Vec::new();
    for _ in 0..40 {
        let t = Instant::now();
        let o = run(&b, wb.path(), "echo hi", T).await;
        idle.push(t.elapsed());
        assert_eq!(out(&o), "hi\n");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    idle.sort();
    // Host-side samplers: A's processes (zombies included, as the pids
    // cgroup counts them) and its hogs' memory.
    let most_procs = Arc::new(AtomicUsize::new(0));
    let most_hog = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (mp, mh, stop) = (most_procs.clone(), most_hog.clone(), stop.clone());
        tokio::task::spawn_blocking(move || {
            while !stop.load(Ordering::Relaxed) {
                mp.fetch_max(count_uid_all(ua), Ordering::Relaxed);
                mh.fetch_max(hog_kib(ua), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    // A: four runs at once, each a memory hog (tail holds HOG_MIB while
    // its reader sleeps) and then a fork bomb (bash retries a failed fork,
    // so the population sits at the cap until the time limit).
    let attack = format!(
        "head -c {HOG_MIB}M /dev/zero | tail -c {HOG_MIB}M | sleep 3 & sleep 0.5; \
         exec bash -c 'f() {{ while :; do f & done; }}; f'"
    );
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let (a, ws, command) = (a.clone(), wa.path().to_path_buf(), attack.clone());
            tokio::spawn(async move {
                a.run(
                    &ws,
                    ExecRequest::new(command).timeout(Duration::from_secs(5)),
                )
                .await
            })
        })
        .collect();
    // B during the attack.
    let mut busy = Vec::new();
    let start = Instant::now();
    while !runs.iter().all(|r| r.is_finished()) {
        let t = Instant::now();
        let o = run(&b, wb.path(), "echo hi", T).await;
        busy.push(t.elapsed());
        assert_eq!(out(&o), "hi\n", "B failed during A's attack: {o:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "A's runs do not end"
        );
    }
    let mut outputs = Vec::new();
    for r in runs {
        outputs.push(r.await.unwrap().expect("A's run"));
    }
    stop.store(true, Ordering::Relaxed);
    sampler.await.unwrap();
    busy.sort();
    let (procs, hog) = (
        most_procs.load(Ordering::Relaxed),
        most_hog.load(Ordering::Relaxed),
    );
    println!(
        "[{}] B `echo hi` idle: p50 {:.1} ms, p95 {:.1} ms ({} runs); during A's 4 bombs + hogs: \
         p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms ({} runs); A's processes peaked at {procs} \
         (cap {CAP} for the sandbox), its hogs at {} MiB (cap {} MiB for the sandbox, {} MiB asked)",
        level.as_str(),
        ms(percentile(&idle, 0.5)),
        ms(percentile(&idle, 0.95)),
        idle.len(),
        ms(percentile(&busy, 0.5)),
        ms(percentile(&busy, 0.95)),
        ms(*busy.last().unwrap()),
        busy.len(),
        hog / 1024,
        MEMORY >> 20,
        4 * HOG_MIB,
    );
    assert!(busy.len() >= 3, "B answered only {} times", busy.len());
    assert!(
        procs <= CAP as usize,
        "A's four runs had {procs} processes, over the sandbox's cap of {CAP}"
    );
    assert!(
        procs >= CAP as usize / 2,
        "the bombs never came near the cap ({procs})"
    );
    assert!(
        hog * 1024 <= MEMORY,
        "A's hogs held {} MiB together, over the sandbox's cap of {} MiB",
        hog / 1024,
        MEMORY >> 20
    );
    assert!(
        hog * 1024 >= (HOG_MIB << 20) / 2,
        "the hogs never got going ({} MiB)",
        hog / 1024
    );
    assert!(
        outputs.iter().any(|o| err(o).contains("fork")),
        "forks failed at the cap: {}",
        &err(&outputs[0])[..err(&outputs[0]).len().min(300)]
    );
    let left = wait_empty(Duration::from_secs(5), || procs_of_uid(ua)).await;
    assert!(left.is_empty(), "A's processes survived: {left:?}");
    // A works again afterwards.
    let o = run(&a, wa.path(), "echo alive", T).await;
    assert_eq!(out(&o), "alive\n");
}
