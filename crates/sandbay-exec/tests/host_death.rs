//! When the host process dies (a crash, `kill -9`), its jails die with it:
//! the first process of each run has a parent-death signal, and at the
//! namespaces level its death ends the whole PID namespace. Its cgroups
//! are swept by the next process that uses cgroups.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{jail, procs_with, sleep_marker, wait_empty, workspace};
use sandbay_core::{ExecRequest, Isolation};

const HELPER_ENV: &str = "SANDBAY_EXEC_TEST_HELPER";
/// The workspace the helper runs in: made (and removed) by the killing
/// test, since the killed helper cannot clean up after itself.
const HELPER_WS_ENV: &str = "SANDBAY_EXEC_TEST_HELPER_WS";

/// Not a test on its own: the host process that the tests below kill. It
/// runs the command in `SANDBAY_EXEC_TEST_HELPER` ("<level> <command>") and
/// blocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "helper process for host_death tests"]
async fn helper_host_process() {
    let spec = std::env::var(HELPER_ENV).expect("run by the host_death tests");
    let (level, command) = spec.split_once(' ').unwrap();
    let level = if level == "namespaces" {
        Isolation::Namespaces
    } else {
        Isolation::Limits
    };
    let jail = jail(level, |_| {}).unwrap();
    let ws = std::path::PathBuf::from(std::env::var(HELPER_WS_ENV).expect("a workspace"));
    let o = jail
        .run(
            &ws,
            ExecRequest::new(command).timeout(Duration::from_secs(120)),
        )
        .await;
    if command == "true" {
        // The sweeping helper: one short run, then a normal exit.
        assert_eq!(o.unwrap().exit_code, Some(0));
        return;
    }
    panic!("the command ended before the helper was killed");
}

per_level!(jails_die_with_the_host_process);

/// A sweeping helper of one test would sweep the other's leftovers too.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn jails_die_with_the_host_process(level: Isolation) {
    let _serial = ONE_AT_A_TIME.lock().await;
    if jail(level, |_| {}).is_none() {
        return;
    }
    let (m1, m2) = (sleep_marker(), sleep_marker());
    // At `limits` only the first process gets the signal (and `sleep` is
    // that process, the shell execs it); in a PID namespace its death
    // takes every other process along.
    let command = if level == Isolation::Namespaces {
        format!("sleep {m1} & exec sleep {m2}")
    } else {
        format!("exec sleep {m2}")
    };
    let ws = workspace();
    let mut helper = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "helper_host_process", "--nocapture"])
        .env(HELPER_ENV, format!("{} {command}", level.as_str()))
        .env(HELPER_WS_ENV, ws.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = {
        let mut ok = false;
        for _ in 0..500 {
            if !procs_with(&m2).is_empty() {
                ok = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        ok
    };
    if !started {
        let _ = helper.kill();
        let _ = helper.wait();
        panic!("the helper's command never started");
    }
    let dead = helper.id();
    helper.kill().unwrap();
    helper.wait().unwrap();
    for m in [&m1, &m2] {
        let left = wait_empty(Duration::from_secs(5), || procs_with(m)).await;
        assert!(
            left.is_empty(),
            "sleep {m} outlived its host process: {left:?}"
        );
    }
    // The killed process's cgroups (the jail's parent and the run's child)
    // are left behind; the next process to use cgroups sweeps them.
    let left = cgroups_of(dead);
    if left.is_empty() {
        skip_unless_no_cgroups(level);
        return;
    }
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "helper_host_process", "--nocapture"])
        .env(HELPER_ENV, format!("{} true", level.as_str()))
        .env(HELPER_WS_ENV, ws.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "the sweeping helper failed");
    let left = cgroups_of(dead);
    assert!(
        left.is_empty(),
        "stale cgroups of a killed process stay: {left:?}"
    );
}

/// The cgroup directories (jail parents and run children, every
/// controller) that process `pid` made.
fn cgroups_of(pid: u32) -> Vec<std::path::PathBuf> {
    let prefix = format!("{pid}-");
    let mut found = Vec::new();
    for controller in ["pids", "memory", "cpu"] {
        let Ok(rd) = std::fs::read_dir(format!("/sys/fs/cgroup/{controller}/sandbay")) else {
            continue;
        };
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                found.push(e.path());
                if let Ok(sub) = std::fs::read_dir(e.path()) {
                    found.extend(
                        sub.flatten()
                            .filter(|s| s.file_type().is_ok_and(|t| t.is_dir()))
                            .map(|s| s.path()),
                    );
                }
            }
        }
    }
    found
}

/// A killed root host process always leaves cgroups: none is only right
/// where the jail has none.
fn skip_unless_no_cgroups(level: Isolation) {
    let jail = jail(level, |_| {}).unwrap();
    let e = jail.enforcement();
    assert!(
        !(e.cgroup_pids || e.cgroup_memory || e.cgroup_cpu),
        "the killed host process left no cgroups to sweep"
    );
    common::skip("no cgroups here: nothing for a later process to sweep");
}
