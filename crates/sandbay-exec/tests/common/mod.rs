//! Shared helpers of the jail tests: level selection with honest skips,
//! labelled workspaces, host-side process inspection.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sandbay_core::{ExecOutput, ExecRequest, Isolation};
use sandbay_exec::{Jail, JailConfig};

/// Skips (locally) or fails (under CI) for a missing host feature.
pub fn skip(reason: &str) {
    sandbay_testkit::skip::skip(reason);
}

/// A jail at `level` with `tweak` applied, or `None` after reporting a skip.
pub fn jail(level: Isolation, tweak: impl FnOnce(&mut JailConfig)) -> Option<Jail> {
    if let Err(e) = Jail::host_support().check(level) {
        skip(&e.to_string());
        return None;
    }
    let mut config = JailConfig::new(level);
    tweak(&mut config);
    Some(Jail::new(config).expect("jail"))
}

/// A fresh workspace directory, labelled and removed on drop.
pub fn workspace() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("sandbay-exec-test-ws-")
        .tempdir()
        .expect("tempdir")
}

/// A random-enough suffix for markers (pid and time).
pub fn unique() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{}{:09}", std::process::id() % 1000, nanos)
}

/// A `sleep` argument unique to one test, to find its processes by cmdline.
pub fn sleep_marker() -> String {
    format!("3600.{}", unique())
}

/// Runs `command` with `timeout`.
pub async fn run(jail: &Jail, ws: &Path, command: &str, timeout: Duration) -> ExecOutput {
    jail.run(ws, ExecRequest::new(command).timeout(timeout))
        .await
        .unwrap_or_else(|e| panic!("run {command:?}: {e}"))
}

/// Text of stdout.
pub fn out(o: &ExecOutput) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Text of stderr.
pub fn err(o: &ExecOutput) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn live_pids() -> Vec<(i32, PathBuf)> {
    let mut all = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            if let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) {
                all.push((pid, e.path()));
            }
        }
    }
    all
}

fn status_field(dir: &Path, field: &str) -> Option<String> {
    let status = std::fs::read_to_string(dir.join("status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field).map(|v| v.trim().to_string()))
}

fn is_zombie(dir: &Path) -> bool {
    status_field(dir, "State:").is_some_and(|s| s.starts_with('Z'))
}

/// Host pids of live (non-zombie) `sleep <marker>` processes (exact argv,
/// so the shell whose script mentions the marker does not count).
pub fn procs_with(marker: &str) -> Vec<i32> {
    let argv = format!("sleep\0{marker}\0");
    live_pids()
        .into_iter()
        .filter(|(_, dir)| {
            std::fs::read(dir.join("cmdline"))
                .map(|c| c == argv.as_bytes())
                .unwrap_or(false)
                && !is_zombie(dir)
        })
        .map(|(pid, _)| pid)
        .collect()
}

fn uid_of(dir: &Path) -> Option<u32> {
    status_field(dir, "Uid:").and_then(|u| u.split_whitespace().next().and_then(|v| v.parse().ok()))
}

/// Host pids of live (non-zombie) processes whose real uid is `uid`.
pub fn procs_of_uid(uid: u32) -> Vec<i32> {
    live_pids()
        .into_iter()
        .filter(|(_, dir)| uid_of(dir) == Some(uid) && !is_zombie(dir))
        .map(|(pid, _)| pid)
        .collect()
}

/// How many processes (zombies included, as the kernel counts them for
/// `RLIMIT_NPROC`) have real uid `uid`.
pub fn count_uid_all(uid: u32) -> usize {
    live_pids()
        .into_iter()
        .filter(|(_, dir)| uid_of(dir) == Some(uid))
        .count()
}

/// Polls `probe` until it returns an empty list or `within` passes;
/// returns the last list.
pub async fn wait_empty(within: Duration, probe: impl Fn() -> Vec<i32>) -> Vec<i32> {
    let start = Instant::now();
    loop {
        let left = probe();
        if left.is_empty() || start.elapsed() > within {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `path` exists (bounded).
pub async fn wait_file(path: &Path, within: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < within {
        if path.exists() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    path.exists()
}

/// Resident memory of this process in KiB.
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Defines one `#[tokio::test]` per isolation level for each named
/// `async fn name(level: Isolation)` of the calling file.
#[macro_export]
macro_rules! per_level {
    ($($name:ident),* $(,)?) => {
        mod limits {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(sandbay_core::Isolation::Limits).await
                }
            )*
        }
        mod namespaces {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(sandbay_core::Isolation::Namespaces).await
                }
            )*
        }
    };
}
