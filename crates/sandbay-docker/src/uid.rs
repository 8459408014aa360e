//! Leases of distinct host uids, one per live container, so that per-uid
//! kernel budgets (inotify instances and watches, message-queue bytes,
//! `RLIMIT_NPROC`, ...) are per container, never shared between users.

use std::collections::BTreeSet;
use std::ops::Range;
use std::sync::{Mutex, PoisonError};

/// The host uids (and equal gids) containers' commands run as: 65,536 ids
/// from `0x7100_0000`, beside and disjoint from the local jail's
/// `sandbay_exec::UID_RANGE` (`0x7000_0000..0x7001_0000`), in a part of
/// the id space no distribution or systemd assigns.
///
/// Each container of a process holds a distinct uid for its lifetime. A
/// lease skips every uid some process on the host still runs as (a
/// container of an earlier or another host process, being torn down
/// included), and each process starts its search at a random point.
pub const CONTAINER_UID_RANGE: Range<u32> = 0x7100_0000..0x7101_0000;

/// Leased uids, and where the next search starts (0: not chosen yet).
static LEASED: Mutex<(BTreeSet<u32>, u32)> = Mutex::new((BTreeSet::new(), 0));

/// The uids of the range that processes on this host run as now (the
/// owner of `/proc/<pid>`; containers' processes are visible from the
/// host's pid namespace).
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
        if let Ok(meta) = entry.metadata() {
            let uid = std::os::unix::fs::MetadataExt::uid(&meta);
            if CONTAINER_UID_RANGE.contains(&uid) {
                busy.insert(uid);
            }
        }
    }
    busy
}

fn random_start() -> u32 {
    let r = uuid::Uuid::new_v4().as_u128() as u32;
    CONTAINER_UID_RANGE.start + r % (CONTAINER_UID_RANGE.end - CONTAINER_UID_RANGE.start)
}

/// A uid taken from [`CONTAINER_UID_RANGE`], given back when dropped.
#[derive(Debug)]
pub(crate) struct UidLease {
    uid: u32,
}

impl UidLease {
    /// Takes the next free uid after the last one taken (round robin: a
    /// uid just given back is not handed out again at once), skipping uids
    /// that processes still run as; `None` when all are taken.
    pub(crate) fn take() -> Option<UidLease> {
        let busy = in_use();
        let mut guard = LEASED.lock().unwrap_or_else(PoisonError::into_inner);
        let (leased, next) = &mut *guard;
        if *next == 0 {
            *next = random_start();
        }
        let uid = (*next..CONTAINER_UID_RANGE.end)
            .chain(CONTAINER_UID_RANGE.start..*next)
            .find(|u| !leased.contains(u) && !busy.contains(u))?;
        leased.insert(uid);
        *next = if uid + 1 >= CONTAINER_UID_RANGE.end {
            CONTAINER_UID_RANGE.start
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

    #[test]
    fn leases_are_distinct_returned_and_not_reused_at_once() {
        let a = UidLease::take().unwrap();
        let b = UidLease::take().unwrap();
        assert_ne!(a.uid(), b.uid());
        assert!(CONTAINER_UID_RANGE.contains(&a.uid()));
        assert!(CONTAINER_UID_RANGE.contains(&b.uid()));
        let freed = a.uid();
        drop(a);
        assert!(!LEASED.lock().unwrap().0.contains(&freed));
        let c = UidLease::take().unwrap();
        assert_ne!(c.uid(), freed);
        assert!(!sandbay_ranges_overlap());
    }

    fn sandbay_ranges_overlap() -> bool {
        // the local jail's range
        let exec = 0x7000_0000u32..0x7001_0000;
        CONTAINER_UID_RANGE.start < exec.end && exec.start < CONTAINER_UID_RANGE.end
    }
}
