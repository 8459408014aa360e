//! Labels that mark what sandbay created, and the identity of the owning
//! process (so a reaper can tell an orphan from a live sandbox).

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

/// `true` on every container and volume sandbay creates.
pub const MANAGED: &str = "sandbay.managed";
/// The owner given in the config (a user id).
pub const OWNER: &str = "sandbay.owner";
/// Creation time, seconds since the Unix epoch.
pub const CREATED: &str = "sandbay.created";
/// The sandbox id.
pub const SANDBOX: &str = "sandbay.sandbox";
/// The owning process: `<boot id>:<pid>:<start time>`.
pub const PROCESS: &str = "sandbay.process";

/// This process's identity, stable for its lifetime and unique per boot.
pub(crate) fn process_identity() -> String {
    let pid = std::process::id();
    format!("{}:{pid}:{}", boot_id(), start_time(pid).unwrap_or(0))
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown-boot".into())
}

/// Start time of a process in clock ticks since boot (field 22 of `stat`).
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // the command name (field 2) may contain spaces: parse after its `)`
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// What a reaper knows about the process named in a `sandbay.process` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Liveness {
    /// This very process.
    Me,
    /// Another process on this machine that is still running.
    Alive,
    /// A process of this boot that is gone.
    Dead,
    /// Another machine or boot: cannot tell.
    Unknown,
}

/// Classifies a `sandbay.process` label value.
pub(crate) fn liveness(label: &str) -> Liveness {
    let mut parts = label.rsplitn(3, ':');
    let (Some(start), Some(pid), Some(boot)) = (parts.next(), parts.next(), parts.next()) else {
        return Liveness::Unknown;
    };
    let (Ok(pid), Ok(start)) = (pid.parse::<u32>(), start.parse::<u64>()) else {
        return Liveness::Unknown;
    };
    if boot != boot_id() {
        return Liveness::Unknown;
    }
    if pid == std::process::id() && start_time(pid) == Some(start) {
        return Liveness::Me;
    }
    match start_time(pid) {
        Some(t) if t == start => Liveness::Alive,
        _ => Liveness::Dead,
    }
}

/// The labels of a new container or volume.
pub(crate) fn for_sandbox(
    sandbox: &str,
    owner: &str,
    extra: &std::collections::BTreeMap<String, String>,
) -> HashMap<String, String> {
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut labels: HashMap<String, String> = extra.clone().into_iter().collect();
    labels.insert(MANAGED.into(), "true".into());
    labels.insert(OWNER.into(), owner.into());
    labels.insert(CREATED.into(), created.to_string());
    labels.insert(SANDBOX.into(), sandbox.into());
    labels.insert(PROCESS.into(), process_identity());
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liveness_of_labels() {
        assert_eq!(liveness(&process_identity()), Liveness::Me);
        assert_eq!(liveness("garbage"), Liveness::Unknown);
        assert_eq!(liveness("other-boot:1:1"), Liveness::Unknown);
        // pid 1 exists, but not with start time u64::MAX - 1
        let fake = format!("{}:1:{}", boot_id(), u64::MAX - 1);
        assert_eq!(liveness(&fake), Liveness::Dead);
        // a pid that cannot exist
        let gone = format!("{}:4294967294:5", boot_id());
        assert_eq!(liveness(&gone), Liveness::Dead);
    }

    #[test]
    fn sandbox_labels() {
        let mut extra = std::collections::BTreeMap::new();
        extra.insert("sandbay.test".to_string(), "t1".to_string());
        let l = for_sandbox("abc", "alice", &extra);
        assert_eq!(l[MANAGED], "true");
        assert_eq!(l[OWNER], "alice");
        assert_eq!(l[SANDBOX], "abc");
        assert_eq!(l["sandbay.test"], "t1");
        assert!(l[CREATED].parse::<u64>().unwrap() > 1_600_000_000);
    }
}
