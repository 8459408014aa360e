//! Striped per-path locks that make `write`, `upload`, `edit` and
//! `delete` through one backend atomic with respect to each other.
//!
//! An edit reads, changes and renames; without a lock, two edits of one
//! file through the same backend could both read the old text and the
//! second rename would drop the first change. The lock is keyed by the
//! requested virtual path, so it covers every change made through this
//! backend (and its clones) under that name. Changes made by other
//! processes, or through another name of the same file (a symlink), are
//! not serialised: the rename still keeps every single change atomic.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};

use sandbay_core::VPath;

/// Number of stripes: enough that unrelated paths rarely wait.
const STRIPES: usize = 64;

/// A fixed set of mutexes, one chosen per path by hash.
#[derive(Debug)]
pub(crate) struct PathLocks {
    stripes: Vec<Mutex<()>>,
}

impl Default for PathLocks {
    fn default() -> Self {
        PathLocks {
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
        }
    }
}

impl PathLocks {
    /// The stripe of `path`.
    fn stripe(&self, path: &VPath) -> &Mutex<()> {
        let mut hasher = DefaultHasher::new();
        path.hash(&mut hasher);
        &self.stripes[(hasher.finish() % STRIPES as u64) as usize]
    }

    /// Locks the stripe of `path` (blocking; call on the blocking pool).
    pub(crate) fn lock(&self, path: &VPath) -> MutexGuard<'_, ()> {
        // The guarded data is `()`: a panic elsewhere leaves nothing broken.
        self.stripe(path)
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Locks the stripe of `path` if nobody holds it; never waits (for
    /// work done on the calling task, which must not block on a lock).
    pub(crate) fn try_lock(&self, path: &VPath) -> Option<MutexGuard<'_, ()>> {
        match self.stripe(path).try_lock() {
            Ok(guard) => Some(guard),
            Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }
}
