//! Leases of distinct host uids for jails (`Identity::Auto` as root).

use std::collections::BTreeSet;
use std::ops::Range;
use std::sync::{Mutex, PoisonError};

/// The host uids (and equal gids) that [`crate::Identity::Auto`] leases
/// from when the host process is root: 65,536 ids from `0x7000_0000`, a
/// range that no distribution or systemd assigns (systemd's container
/// ranges end below it, its "foreign" range starts above it).
///
/// Each jail of a process holds a distinct uid for its lifetime. Two host
/// processes leasing from this range at once may pick the same uid; give
/// each process jails with [`crate::Identity::Fixed`] ids from its own range
/// in that case.
pub const UID_RANGE: Range<u32> = 0x7000_0000..0x7001_0000;

/// Leased uids, and where the next search starts.
static LEASED: Mutex<(BTreeSet<u32>, u32)> = Mutex::new((BTreeSet::new(), UID_RANGE.start));

/// A uid taken from [`UID_RANGE`], returned when dropped.
#[derive(Debug)]
pub(crate) struct UidLease {
    uid: u32,
}

impl UidLease {
    /// Takes the next free uid after the last one taken (round robin, so a
    /// uid just given back, whose killed processes the kernel may still be
    /// tearing down, is not handed out again at once), or `None` when all
    /// are leased.
    pub(crate) fn take() -> Option<UidLease> {
        let mut guard = LEASED.lock().unwrap_or_else(PoisonError::into_inner);
        let (leased, next) = &mut *guard;
        let uid = (*next..UID_RANGE.end)
            .chain(UID_RANGE.start..*next)
            .find(|u| !leased.contains(u))?;
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

    #[test]
    fn leases_are_distinct_and_returned() {
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
}
