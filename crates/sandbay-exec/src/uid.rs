//! Leases of distinct host uids for jails (`Identity::Auto` as root).

use std::collections::BTreeSet;
use std::ops::Range;
use std::sync::{Mutex, PoisonError};

/// The host uids (and equal gids) that [`crate::Identity::Auto`] leases
/// from when the host process is root: 65,536 ids from `0x7000_0000`, a
/// range that no distribution or systemd assigns (systemd's container
/// ranges end below it, its "foreign" range starts above it).
///
/// Each jail of a process holds a distinct uid for its lifetime. A lease
/// skips every uid that some process on the host still runs as (a jail of
/// an earlier or another host process, zombies included), and each process
/// starts its search at a random point of the range. Two host processes
/// leasing at the same instant could still pick the same uid; give them
/// [`crate::Identity::Fixed`] ids from ranges of their own if they run side
/// by side.
pub const UID_RANGE: Range<u32> = 0x7000_0000..0x7001_0000;

/// Leased uids, and where the next search starts (0: not chosen yet).
static LEASED: Mutex<(BTreeSet<u32>, u32)> = Mutex::new((BTreeSet::new(), 0));

/// The uids of [`UID_RANGE`] that processes on this host run as now.
fn in_use() -> BTreeSet<u32> {
    let mut busy = BTreeSet::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return busy;
    };
    for entry in entries.flatten() {
        let is_pid = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()));
        if !is_pid {
            continue;
        }
        // The owner of /proc/<pid> is the process's uid.
        if let Ok(meta) = entry.metadata() {
            let uid = std::os::unix::fs::MetadataExt::uid(&meta);
            if UID_RANGE.contains(&uid) {
                busy.insert(uid);
            }
        }
    }
    busy
}

/// A pseudo-random starting point in [`UID_RANGE`] for this process.
fn random_start() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mixed = nanos ^ std::process::id().wrapping_mul(0x9E37_79B9);
    UID_RANGE.start + mixed % (UID_RANGE.end - UID_RANGE.start)
}

/// A uid taken from [`UID_RANGE`], returned when dropped.
#[derive(Debug)]
pub(crate) struct UidLease {
    uid: u32,
}

impl UidLease {
    /// Takes the next free uid after the last one taken (round robin, so a
    /// uid just given back, whose killed processes the kernel may still be
    /// tearing down, is not handed out again at once), skipping uids that
    /// processes still run as; `None` when all are taken.
    pub(crate) fn take() -> Option<UidLease> {
        let busy = in_use();
        let mut guard = LEASED.lock().unwrap_or_else(PoisonError::into_inner);
        let (leased, next) = &mut *guard;
        if *next == 0 {
            *next = random_start();
        }
        let uid = (*next..UID_RANGE.end)
            .chain(UID_RANGE.start..*next)
            .find(|u| !leased.contains(u) && !busy.contains(u))?;
        leased.insert(uid);
        *next = if uid + 1 >= UID_RANGE.end {
            UID_RANGE.start
        } else {
            uid + 1
        };
        Some(UidLease { uid })
    }

    /// The leased uid (the gid has the same number).
    pub(crate) fn uid(&self) -> u32 {
        self.uid
    }
}

impl Drop for UidLease {
    fn drop(&mut self) {
        LEASED
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .0
            .remove(&self.uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tests share the process-wide lease table.
    static SERIAL: Mutex<()> = Mutex::new(());

    #[test]
    fn leases_are_distinct_and_returned() {
        let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
        let a = UidLease::take().unwrap();
        let b = UidLease::take().unwrap();
        assert_ne!(a.uid(), b.uid());
        assert!(UID_RANGE.contains(&a.uid()) && UID_RANGE.contains(&b.uid()));
        let freed = a.uid();
        drop(a);
        assert!(!LEASED.lock().unwrap().0.contains(&freed));
        let c = UidLease::take().unwrap();
        assert_ne!(
            c.uid(),
            freed,
            "a uid just given back is not reused at once"
        );
        drop(b);
    }

    #[test]
    fn a_uid_that_processes_run_as_is_skipped() {
        use std::os::unix::process::CommandExt;
        let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
        if !nix::unistd::geteuid().is_root() {
            sandbay_testkit::skip::skip("running a process as another uid needs root");
            return;
        }
        let busy = UID_RANGE.end - 7;
        let mut sleeper = std::process::Command::new("sleep")
            .arg("30")
            .uid(busy)
            .gid(busy)
            .spawn()
            .unwrap();
        LEASED.lock().unwrap().1 = busy;
        let lease = UidLease::take();
        let _ = sleeper.kill();
        let _ = sleeper.wait();
        let lease = lease.unwrap();
        assert_ne!(lease.uid(), busy, "the uid of a running process was leased");
        assert_eq!(lease.uid(), busy + 1);
    }
}
