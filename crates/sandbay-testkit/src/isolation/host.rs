//! Host-side helpers for the execute and isolation cases: unique markers,
//! process lookups in the host's `/proc`, honest skips.
//!
//! Processes are found by their exact command line (`sleep <marker>`),
//! which works whatever PID namespace or container they run in, as long as
//! they run on this kernel (the local jail, a local Docker daemon).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Digits unique to this call in this process (pid, time, counter).
pub fn unique() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed) % 1000;
    format!("{}{nanos:09}{n:03}", std::process::id() % 10_000)
}

/// A `sleep` argument of about `seconds` seconds that no other process
/// has: `<seconds>.<unique digits>`. Find its processes with
/// [`procs_with`].
pub fn sleep_marker(seconds: u32) -> String {
    format!("{seconds}.{}", unique())
}

fn status_field(dir: &Path, field: &str) -> Option<String> {
    let status = std::fs::read_to_string(dir.join("status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field).map(|v| v.trim().to_string()))
}

/// Host pids of live (not zombie) processes whose command line is exactly
/// `sleep <marker>`, in any PID namespace or container of this kernel.
///
/// # Panics
/// When `/proc` cannot be read.
pub fn procs_with(marker: &str) -> Vec<i32> {
    let argv = format!("sleep\0{marker}\0");
    // an unreadable /proc would make every "nothing survived" check pass
    let entries = std::fs::read_dir("/proc").expect("the host's /proc must be readable");
    entries
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.parse::<i32>().ok()?;
            let dir = e.path();
            let cmdline = std::fs::read(dir.join("cmdline")).ok()?;
            let zombie = status_field(&dir, "State:").is_none_or(|s| s.starts_with('Z'));
            (cmdline == argv.as_bytes() && !zombie).then_some(pid)
        })
        .collect()
}

/// Polls `probe` every 10 ms until it returns `true` or `within` passes;
/// returns the last answer.
pub async fn wait_until(within: Duration, mut probe: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if probe() {
            return true;
        }
        if start.elapsed() > within {
            return probe();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits (up to `within`) until no `sleep <marker>` process is left;
/// returns the pids still there.
pub async fn wait_gone(within: Duration, marker: &str) -> Vec<i32> {
    wait_until(within, || procs_with(marker).is_empty()).await;
    procs_with(marker)
}

/// Resident memory of this process in KiB.
///
/// # Panics
/// When `/proc/self/status` cannot be read or has no `VmRSS` line: a
/// memory check must not pass on an unknown figure.
pub fn rss_kib() -> u64 {
    let status =
        std::fs::read_to_string("/proc/self/status").expect("/proc/self/status must be readable");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("a VmRSS line in /proc/self/status")
}
