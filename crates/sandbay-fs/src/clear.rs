//! Emptying a workspace through its handle, raw names included.
//!
//! `ls` shows only names that are valid virtual path components, so a
//! wipe built on it would leave `a\nb`, `x\xffy` or `back\slash` (and
//! whatever is below them) for the next user. This walk works on the raw
//! directory entries of the root handle: every entry is removed without
//! following a link (a symlink is unlinked itself; cap-std removes a
//! directory tree without following links inside it), and emptiness is
//! checked by listing the raw entries again.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;

use cap_std::fs::Dir;
use sandbay_core::{Error, Result, VPath};

use crate::error::map_io;

/// The raw names in `dir` (never `.` or `..`).
fn names(dir: &Dir) -> Result<Vec<OsString>> {
    let root = VPath::root();
    let mut out = Vec::new();
    for entry in dir.entries().map_err(|e| map_io(&root, &e))? {
        let entry = entry.map_err(|e| map_io(&root, &e))?;
        out.push(entry.file_name());
    }
    out.sort();
    Ok(out)
}

/// The virtual path of a raw top-level name, or the root for a name no
/// virtual path can carry.
fn shown(name: &OsStr) -> VPath {
    name.to_str()
        .and_then(|n| VPath::root().child(n))
        .unwrap_or_else(VPath::root)
}

/// Removes one entry of `dir`, never following a link.
fn remove(dir: &Dir, name: &OsStr) -> io::Result<()> {
    let meta = match dir.symlink_metadata(name) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let removed = if meta.is_dir() {
        dir.remove_dir_all(name)
    } else {
        dir.remove_file(name)
    };
    match removed {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Removes every entry below `root`; returns how many top-level entries
/// there were. Fails with the first failed removal, or `permission_denied`
/// when entries are left.
pub(crate) fn clear(root: &Dir) -> Result<usize> {
    let found = names(root)?;
    for name in &found {
        remove(root, name).map_err(|e| map_io(&shown(name), &e))?;
    }
    let left = names(root)?;
    if let Some(first) = left.first() {
        return Err(Error::PermissionDenied {
            path: shown(first),
            reason: format!(
                "{} entries could not be removed, the first named {:?}",
                left.len(),
                String::from_utf8_lossy(first.as_bytes())
            ),
        });
    }
    Ok(found.len())
}
