//! Clean-up of mounts a test made (workspace slots, quota images), for
//! guards that must leave nothing behind, also when the test fails.

use std::path::{Path, PathBuf};

/// The mount points at or below `dir` (after resolving it), deepest first.
pub fn mounts_below(dir: &Path) -> Vec<PathBuf> {
    let Ok(base) = std::fs::canonicalize(dir) else {
        return Vec::new();
    };
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut below: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(PathBuf::from)
        .filter(|m| m.starts_with(&base))
        .collect();
    below.reverse();
    below
}

/// Lazily unmounts every mount at or below `dir`, deepest first; errors
/// are ignored (for `Drop` guards).
pub fn unmount_below(dir: &Path) {
    for m in mounts_below(dir) {
        let _ = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH);
    }
}
