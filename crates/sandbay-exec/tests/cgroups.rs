//! The jail's cgroups: one parent per jail carries the configured caps for
//! all its runs together, each run's processes sit in a child of it, and
//! none is left once the jail is gone.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use common::{jail, skip, wait_file, workspace};
use sandbay_core::{ExecRequest, Isolation};
use tokio::sync::Mutex;

/// The tests count this process's cgroup directories: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

per_level!(
    run_cgroups_carry_the_caps_and_are_removed,
    a_panic_with_a_live_jail_leaves_no_cgroup
);

/// This process's jail cgroups under one controller.
fn mine(controller: &str) -> BTreeSet<PathBuf> {
    let prefix = format!("{}-", std::process::id());
    std::fs::read_dir(format!("/sys/fs/cgroup/{controller}/sandbay"))
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

async fn gone_within(controller: &str, before: &BTreeSet<PathBuf>, within: Duration) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < within {
        if mine(controller) == *before {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

async fn run_cgroups_carry_the_caps_and_are_removed(level: Isolation) {
    let _serial = ONE_AT_A_TIME.lock().await;
    let Some(jail) = jail(level, |c| {
        c.limits.processes = 77;
        c.limits.memory_bytes = 300 << 20;
        c.limits.cpu_cores = Some(0.5);
    }) else {
        return;
    };
    let e = jail.enforcement();
    if !(e.cgroup_pids && e.cgroup_memory && e.cgroup_cpu) {
        skip("cgroup v1 pids, memory and cpu controllers are not all usable here");
        return;
    }
    let before: Vec<BTreeSet<PathBuf>> =
        ["pids", "memory", "cpu"].iter().map(|c| mine(c)).collect();
    let ws = workspace();
    let task = {
        let jail = jail.clone();
        let ws = ws.path().to_path_buf();
        tokio::spawn(async move {
            jail.run(
                &ws,
                ExecRequest::new("touch ready; sleep 60").timeout(Duration::from_secs(90)),
            )
            .await
        })
    };
    assert!(wait_file(&ws.path().join("ready"), Duration::from_secs(10)).await);
    let new_pids: Vec<PathBuf> = mine("pids").difference(&before[0]).cloned().collect();
    let new_mem: Vec<PathBuf> = mine("memory").difference(&before[1]).cloned().collect();
    let new_cpu: Vec<PathBuf> = mine("cpu").difference(&before[2]).cloned().collect();
    assert_eq!(
        (new_pids.len(), new_mem.len(), new_cpu.len()),
        (1, 1, 1),
        "one parent cgroup per controller for the jail"
    );
    let read = |p: &PathBuf, f: &str| {
        std::fs::read_to_string(p.join(f))
            .unwrap()
            .trim()
            .to_string()
    };
    // The caps sit on the jail's parent...
    assert_eq!(read(&new_pids[0], "pids.max"), "77");
    assert_eq!(
        read(&new_mem[0], "memory.limit_in_bytes"),
        (300u64 << 20).to_string()
    );
    assert_eq!(read(&new_cpu[0], "cpu.cfs_quota_us"), "50000");
    // ...and the run's processes in one child of it.
    let runs = |parent: &PathBuf| -> Vec<PathBuf> { children(parent) };
    assert_eq!(runs(&new_pids[0]).len(), 1, "one child cgroup for the run");
    let run_pids = runs(&new_pids[0]).remove(0);
    let run_mem = runs(&new_mem[0]).remove(0);
    assert_eq!(
        read(&new_pids[0], "cgroup.procs"),
        "",
        "no process sits in the parent"
    );
    let procs = read(&run_pids, "cgroup.procs");
    assert!(!procs.is_empty(), "the run's processes are in its cgroup");
    assert_eq!(procs, read(&run_mem, "cgroup.procs"));
    // Cancel: the run's cgroup is emptied and removed; the jail's stays.
    task.abort();
    let _ = task.await;
    let start = std::time::Instant::now();
    while (run_pids.exists() || run_mem.exists()) && start.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !run_pids.exists() && !run_mem.exists(),
        "cgroup of a cancelled run left"
    );
    assert!(new_pids[0].exists(), "the jail's cgroup outlives one run");
    // A finished run leaves its emptied cgroup to the jail's next run...
    let o = jail
        .run(ws.path(), ExecRequest::new("echo done"))
        .await
        .unwrap();
    assert_eq!(o.stdout, b"done\n");
    let idle = runs(&new_pids[0]);
    assert_eq!(idle.len(), 1);
    assert_eq!(
        read(&idle[0], "cgroup.procs"),
        "",
        "the kept cgroup is empty"
    );
    // ...and the jail removes everything when dropped.
    drop(jail);
    for (i, c) in ["pids", "memory", "cpu"].iter().enumerate() {
        assert!(
            gone_within(c, &before[i], Duration::from_secs(5)).await,
            "{c} cgroup outlived its jail"
        );
    }
}

/// The sub-cgroups (directories) of a cgroup directory.
fn children(dir: &PathBuf) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

async fn a_panic_with_a_live_jail_leaves_no_cgroup(level: Isolation) {
    let _serial = ONE_AT_A_TIME.lock().await;
    let Some(probe) = jail(level, |_| {}) else {
        return;
    };
    let e = probe.enforcement();
    drop(probe);
    if !(e.cgroup_pids || e.cgroup_memory) {
        skip("no cgroups here");
        return;
    }
    let before: Vec<BTreeSet<PathBuf>> =
        ["pids", "memory", "cpu"].iter().map(|c| mine(c)).collect();
    let ws = workspace();
    let path = ws.path().to_path_buf();
    let pids_before = before[0].clone();
    // A test that panics while its jail has a finished run, one in flight
    // and a place taken.
    let task = tokio::spawn(async move {
        let jail = jail(level, |_| {}).unwrap();
        let o = jail.run(&path, ExecRequest::new("echo one")).await.unwrap();
        assert_eq!(o.stdout, b"one\n");
        let running = {
            let (jail, path) = (jail.clone(), path.clone());
            tokio::spawn(async move {
                jail.run(
                    &path,
                    ExecRequest::new("touch two; sleep 60").timeout(Duration::from_secs(90)),
                )
                .await
            })
        };
        assert!(wait_file(&path.join("two"), Duration::from_secs(10)).await);
        assert_ne!(mine("pids"), pids_before, "the jail has cgroups now");
        running.abort();
        panic!("a failing test");
    });
    assert!(task.await.unwrap_err().is_panic());
    for (i, c) in ["pids", "memory", "cpu"].iter().enumerate() {
        assert!(
            gone_within(c, &before[i], Duration::from_secs(5)).await,
            "{c} cgroup outlived a panicking test"
        );
    }
}
