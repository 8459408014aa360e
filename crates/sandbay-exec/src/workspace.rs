//! The workspace directory of a run: resolved, checked, handed over.
//!
//! A root host process hands the whole workspace tree over to the jail's
//! uid before a run, so the directory it is given must be one that may be
//! taken over. [`prepare`] refuses, with `permission_denied` and a fixed
//! reason (never the host path):
//!
//! - `/` and every top-level directory (`/tmp`, `/home`, ...): a workspace
//!   is at least two levels below the host root;
//! - anything in a system tree ([`SYSTEM_TREES`]: `/usr`, `/etc`, `/proc`,
//!   `/sys`, `/dev`, ...), except below `/dev/shm`, the shared tmpfs that
//!   is as much everyone's scratch space as `/tmp`;
//! - a mount point (a file system mounted for something else, like a home
//!   or `/var/lib/docker`; mount one above the workspaces instead);
//! - a directory owned by anyone but root, the host process's user, the
//!   jail's uid or a sandbox uid of [`UID_RANGE`] (a workspace an earlier
//!   jail left, say after a crash): someone's home or project.

use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use sandbay_core::{Error, Result, VPath};

use crate::launch::HostIds;
use crate::uid::UID_RANGE;

/// Host trees no workspace may be in.
pub(crate) const SYSTEM_TREES: &[&str] = &[
    "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/sbin",
    "/sys", "/usr",
];

/// The shared tmpfs below which workspaces may be, in spite of `/dev`.
const SHARED_TMPFS: &str = "/dev/shm";

fn denied(reason: &str) -> Error {
    Error::PermissionDenied {
        path: VPath::root(),
        reason: reason.into(),
    }
}

/// Resolves the workspace, checks that a jail may take it over (see the
/// module docs) and hands it over to the sandbox uid (root hosts).
pub(crate) fn prepare(path: &Path, ids: HostIds) -> Result<PathBuf> {
    let root = VPath::root();
    let canonical = std::fs::canonicalize(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::NotFound { path: root.clone() },
        kind => Error::Io {
            path: Some(root.clone()),
            kind,
        },
    })?;
    let meta = std::fs::metadata(&canonical).map_err(|e| Error::io(&root, &e))?;
    if !meta.is_dir() {
        return Err(Error::NotADirectory { path: root });
    }
    check(&canonical, &meta, ids)?;
    if ids.privileged {
        crate::ownership::hand_over(&canonical, ids.uid, ids.gid)
            .map_err(|e| Error::io(&root, &e))?;
    }
    Ok(canonical)
}

/// Refuses a directory a jail must not take over (see the module docs).
fn check(canonical: &Path, meta: &std::fs::Metadata, ids: HostIds) -> Result<()> {
    let depth = canonical
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .count();
    if depth < 2 {
        return Err(denied(
            "a workspace must be a directory at least two levels below the host root",
        ));
    }
    if SYSTEM_TREES.iter().any(|tree| canonical.starts_with(tree))
        && !canonical.starts_with(SHARED_TMPFS)
    {
        return Err(denied("a workspace may not be in a system directory"));
    }
    if is_mount_point(canonical, meta) {
        return Err(denied("a workspace may not be a mount point"));
    }
    let owner = meta.uid();
    let ours = owner == 0
        || owner == nix::unistd::geteuid().as_raw()
        || owner == ids.uid
        || UID_RANGE.contains(&owner);
    if !ours {
        return Err(denied("the workspace directory belongs to another user"));
    }
    Ok(())
}

/// Whether `canonical` is a mount point: as the kernel says (`statx`), or
/// on older kernels, on another device than its parent or listed in the
/// mount table.
fn is_mount_point(canonical: &Path, meta: &std::fs::Metadata) -> bool {
    if let Ok(dir) = std::fs::File::open(canonical)
        && let Some(root) = crate::sys::is_mount_root(dir.as_fd())
    {
        return root;
    }
    let parent_dev = canonical
        .parent()
        .and_then(|p| std::fs::metadata(p).ok())
        .map(|m| m.dev());
    if parent_dev.is_some_and(|dev| dev != meta.dev()) {
        return true;
    }
    // bind mounts of the same file system keep the device
    let Ok(table) = std::fs::read("/proc/self/mountinfo") else {
        return false;
    };
    in_mount_table(&table, canonical)
}

/// Whether `/proc/self/mountinfo` text `table` lists `path` as a mount point.
fn in_mount_table(table: &[u8], path: &Path) -> bool {
    let wanted = path.as_os_str().as_encoded_bytes();
    table.split(|&b| b == b'\n').any(|line| {
        line.split(|&b| b == b' ')
            .nth(4)
            .is_some_and(|point| unescape(point) == wanted)
    })
}

/// Undoes the octal escapes (`\040` for a space) of a mount table field.
fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let digits = field.get(i + 1..i + 4);
        if field[i] == b'\\'
            && let Some(d) = digits.filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)))
        {
            let value =
                u16::from(d[0] - b'0') * 64 + u16::from(d[1] - b'0') * 8 + u16::from(d[2] - b'0');
            out.push(value as u8);
            i += 4;
        } else {
            out.push(field[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_table_escapes() {
        assert_eq!(unescape(br"/a\040b\134c"), b"/a b\\c");
        assert_eq!(unescape(br"/x\9"), br"/x\9");
        assert!(is_mount_point(
            Path::new("/proc"),
            &std::fs::metadata("/proc").unwrap()
        ));
        let here = tempfile::tempdir().unwrap();
        let meta = std::fs::metadata(here.path()).unwrap();
        assert!(!is_mount_point(here.path(), &meta));
        let table = std::fs::read("/proc/self/mountinfo").unwrap();
        assert!(in_mount_table(&table, Path::new("/proc")));
        assert!(!in_mount_table(&table, here.path()));
        let line = b"36 35 98:0 /mnt1 /mnt/with\\040space rw - ext3 /dev/root rw\n";
        assert!(in_mount_table(line, Path::new("/mnt/with space")));
    }
}
