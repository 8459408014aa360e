//! When the host process dies (a crash, `kill -9`), its jails die with it:
//! the first process of each run has a parent-death signal, and at the
//! namespaces level its death ends the whole PID namespace.

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
    let _ = jail
        .run(
            &ws,
            ExecRequest::new(command).timeout(Duration::from_secs(120)),
        )
        .await;
    panic!("the command ended before the helper was killed");
}

per_level!(jails_die_with_the_host_process);

async fn jails_die_with_the_host_process(level: Isolation) {
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
    helper.kill().unwrap();
    helper.wait().unwrap();
    for m in [&m1, &m2] {
        let left = wait_empty(Duration::from_secs(5), || procs_with(m)).await;
        assert!(
            left.is_empty(),
            "sleep {m} outlived its host process: {left:?}"
        );
    }
}
