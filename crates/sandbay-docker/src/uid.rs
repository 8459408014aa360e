//! The host uids containers' commands run as: one per live container,
//! leased through `sandbay-exec`'s [`UidPool`], so that per-uid kernel
//! budgets (inotify instances and watches, message-queue bytes,
//! `RLIMIT_NPROC`, ...) are per container, never shared between users.

use std::ops::Range;

use sandbay_exec::UidPool;

/// The host uids (and equal gids) containers' commands run as: 65,536 ids
/// from `0x7100_0000`, beside and disjoint from the local jail's
/// `sandbay_exec::UID_RANGE` (`0x7000_0000..0x7001_0000`), in a part of
/// the id space no distribution or systemd assigns.
///
/// Each container of a process holds a distinct uid for its lifetime. A
/// lease skips every uid some process on the host still runs as (a
/// container of an earlier or another host process, being torn down
/// included), and each process starts its search at a random point (see
/// [`UidPool`]).
pub const CONTAINER_UID_RANGE: Range<u32> = 0x7100_0000..0x7101_0000;

/// The pool containers lease their uids from.
pub(crate) static CONTAINER_UIDS: UidPool = UidPool::new(CONTAINER_UID_RANGE);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_are_distinct_and_apart_from_the_jails() {
        let a = CONTAINER_UIDS.take().unwrap();
        let b = CONTAINER_UIDS.take().unwrap();
        assert_ne!(a.uid(), b.uid());
        assert!(CONTAINER_UID_RANGE.contains(&a.uid()));
        assert!(CONTAINER_UID_RANGE.contains(&b.uid()));
        assert!(!sandbay_exec::JAIL_UIDS.is_leased(a.uid()));
        let exec = sandbay_exec::UID_RANGE;
        assert!(CONTAINER_UID_RANGE.start >= exec.end || exec.start >= CONTAINER_UID_RANGE.end);
        let freed = a.uid();
        drop(a);
        assert!(!CONTAINER_UIDS.is_leased(freed));
    }
}
