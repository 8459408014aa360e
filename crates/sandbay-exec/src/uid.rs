//! Leases of distinct host uids from a range: [`UidPool`] and
//! [`UidLease`], used for jails here (`Identity::Auto` as root,
//! [`JAIL_UIDS`]) and for containers by `sandbay-docker`.

use std::collections::BTreeSet;
use std::ops::Range;
use std::sync::{Mutex, PoisonError};

/// The host uids (and equal gids) that [`crate::Identity::Auto`] leases
/// from when the host process is root: 65,536 ids from `0x7000_0000`, a
/// range that no distribution or systemd assigns (systemd's container
/// ranges end below it, its "foreign" range starts above it).
///
/// Each jail of a process holds a distinct uid for its lifetime (see
/// [`UidPool`] for how leases are picked). Two host processes leasing at
/// the same instant could still pick the same uid; give them
/// [`crate::Identity::Fixed`] ids from ranges of their own if they run
/// side by side.
pub const UID_RANGE: Range<u32> = 0x7000_0000..0x7001_0000;

/// The pool jails lease their uids from ([`UID_RANGE`]).
pub static JAIL_UIDS: UidPool = UidPool::new(UID_RANGE);

/// Distinct host uids leased from one range, each held by one owner (a
/// jail, a container) for its lifetime, so per-uid kernel budgets
/// (`RLIMIT_NPROC`, inotify instances, message-queue bytes) are never
/// shared between owners.
///
/// A lease skips every uid that some process on the host still runs as
/// (a jail or container of an earlier or another host process, zombies
/// and processes being torn down included), goes round robin (a uid just
/// given back is not handed out again at once), and each process starts
/// its search at a pseudo-random point of the range. Keep pools in
/// `static`s: a lease refers to its pool.
///
/// ```
/// use sandbay_exec::UidPool;
/// static POOL: UidPool = UidPool::new(0x7200_0000..0x7200_0010);
/// let a = POOL.take().unwrap();
/// let b = POOL.take().unwrap();
/// assert_ne!(a.uid(), b.uid());
/// assert!(POOL.range().contains(&a.uid()));
/// ```
#[derive(Debug)]
pub struct UidPool {
    range: Range<u32>,
    /// Leased uids, and where the next search starts (0: not chosen yet).
    state: Mutex<(BTreeSet<u32>, u32)>,
}

impl UidPool {
    /// A pool over `range` (which must not be empty).
    pub const fn new(range: Range<u32>) -> UidPool {
        UidPool {
            range,
            state: Mutex::new((BTreeSet::new(), 0)),
        }
    }

    /// The range leases come from.
    pub fn range(&self) -> Range<u32> {
        self.range.clone()
    }

    /// The uids of the range that processes on this host run as now (the
    /// owner of `/proc/<pid>`; containers' processes are visible from the
    /// host's pid namespace).
    fn in_use(&self) -> BTreeSet<u32> {
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
            if let Ok(meta) = entry.metadata() {
                let uid = std::os::unix::fs::MetadataExt::uid(&meta);
                if self.range.contains(&uid) {
                    busy.insert(uid);
                }
            }
        }
        busy
    }

    /// A pseudo-random starting point in the range for this process.
    fn random_start(&self) -> u32 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let mixed = nanos ^ std::process::id().wrapping_mul(0x9E37_79B9);
        self.range.start + mixed % (self.range.end - self.range.start).max(1)
    }

    /// Takes the next free uid after the last one taken, skipping uids
    /// that processes still run as; `None` when all are taken.
    pub fn take(&'static self) -> Option<UidLease> {
        let busy = self.in_use();
        let mut guard = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (leased, next) = &mut *guard;
        if *next == 0 {
            *next = self.random_start();
        }
        let uid = (*next..self.range.end)
            .chain(self.range.start..*next)
            .find(|u| !leased.contains(u) && !busy.contains(u))?;
        leased.insert(uid);
        *next = if uid + 1 >= self.range.end {
            self.range.start
        } else {
            uid + 1
        };
        Some(UidLease { uid, pool: self })
    }

    /// Whether `uid` is leased from this pool now.
    pub fn is_leased(&self, uid: u32) -> bool {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .0
            .contains(&uid)
    }
}

/// A uid taken from a [`UidPool`], given back when dropped.
#[derive(Debug)]
pub struct UidLease {
    uid: u32,
    pool: &'static UidPool,
}

impl UidLease {
    /// The leased uid (use the same number as the gid).
    pub fn uid(&self) -> u32 {
        self.uid
    }
}

impl Drop for UidLease {
    fn drop(&mut self) {
        self.pool
            .state
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
        let a = JAIL_UIDS.take().unwrap();
        let b = JAIL_UIDS.take().unwrap();
        assert_ne!(a.uid(), b.uid());
        assert!(UID_RANGE.contains(&a.uid()) && UID_RANGE.contains(&b.uid()));
        let freed = a.uid();
        assert!(JAIL_UIDS.is_leased(freed));
        drop(a);
        assert!(!JAIL_UIDS.is_leased(freed));
        let c = JAIL_UIDS.take().unwrap();
        assert_ne!(
            c.uid(),
            freed,
            "a uid just given back is not reused at once"
        );
        drop(b);
    }

    #[test]
    fn pools_are_independent_and_run_out() {
        static SMALL: UidPool = UidPool::new(0x7300_0000..0x7300_0002);
        let a = SMALL.take().unwrap();
        let b = SMALL.take().unwrap();
        assert!(SMALL.take().is_none(), "a range of two gives two leases");
        assert!(!JAIL_UIDS.is_leased(a.uid()));
        drop(a);
        let c = SMALL.take().unwrap();
        assert_ne!(c.uid(), b.uid());
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
        JAIL_UIDS.state.lock().unwrap().1 = busy;
        let lease = JAIL_UIDS.take();
        let _ = sleeper.kill();
        let _ = sleeper.wait();
        let lease = lease.unwrap();
        assert_ne!(lease.uid(), busy, "the uid of a running process was leased");
        assert_eq!(lease.uid(), busy + 1);
    }
}
