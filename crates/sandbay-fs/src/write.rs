//! Changing files: atomic writes, edits and deletes.
//!
//! Every write builds the new content in a temporary file inside the
//! target directory (an anonymous `O_TMPFILE` where the kernel has it,
//! via `cap-tempfile`) and renames it over the name. A reader sees the old
//! or the new content, never a mix; on any failure the temporary file is
//! removed and the old content is untouched. The rename replaces only the
//! one name, so a write never changes the target of a hard link.

use std::ffi::OsStr;
use std::io::{self, Write};

use cap_fs_ext::FollowSymlinks;
use cap_std::fs::{Dir, Permissions};
use cap_tempfile::TempFile;
use sandbay_core::text::apply_edit;
use sandbay_core::{EditOutcome, EditRequest, Error, Result, VPath};

use crate::config::FsConfig;
use crate::error::{ROOT, denied, map_io};
use crate::handle::{open_regular, open_target_dir, rel, resolve_target};
use crate::quota::Budget;

/// Writes `bytes` to `path` atomically, creating parent directories; a
/// symlink in the last component is followed while it stays inside.
///
/// With a `budget` (a quota counted by the file API), a write that would
/// take the workspace over it fails with `quota_exceeded` before anything
/// is written.
pub(crate) fn write(
    root: &Dir,
    path: &VPath,
    bytes: &[u8],
    config: &FsConfig,
    budget: Option<&Budget>,
) -> Result<()> {
    if path.is_root() {
        return Err(denied(path, ROOT));
    }
    let held = budget.map(|b| b.hold(root)).transpose()?;
    let target = resolve_target(root, path)?;
    let dir = open_target_dir(root, path, &target)?;
    // Keep the mode of a file being replaced (an executable stays one);
    // refuse to replace a directory before writing anything.
    let (permissions, old) = match dir.symlink_metadata(&target.name) {
        Ok(meta) if meta.is_dir() => return Err(Error::IsDirectory { path: path.clone() }),
        Ok(meta) if meta.is_file() => (Some(meta.permissions()), meta.len()),
        Ok(_) => (None, 0),
        Err(e) if e.kind() == io::ErrorKind::NotFound => (None, 0),
        Err(e) => return Err(map_io(path, &e)),
    };
    let new = bytes.len() as u64;
    if let Some(held) = &held {
        held.admit(path, old, new)?;
    }
    replace(&dir, &target.name, bytes, permissions, config).map_err(|e| map_io(path, &e))?;
    if let Some(held) = held {
        held.commit(old, new);
    }
    Ok(())
}

/// Writes a temporary file in `dir` and renames it to `name`.
fn replace(
    dir: &Dir,
    name: &OsStr,
    bytes: &[u8],
    permissions: Option<Permissions>,
    config: &FsConfig,
) -> io::Result<()> {
    let mut temp = TempFile::new(dir)?;
    temp.write_all(bytes)?;
    if let Some(permissions) = permissions {
        // Only the rwx bits carry over: a setuid/setgid/sticky bit set by a
        // command must never reappear on a file the host (maybe root) wrote.
        use cap_std::fs::PermissionsExt;
        let mode = permissions.mode() & 0o777;
        temp.as_file().set_permissions(Permissions::from_std(
            std::os::unix::fs::PermissionsExt::from_mode(mode),
        ))?;
    }
    if config.sync_writes {
        temp.as_file().sync_all()?;
    }
    // On error the temporary file is removed when `temp` drops.
    temp.replace(name)?;
    if config.sync_writes {
        dir.open(".")?.sync_all()?;
    }
    Ok(())
}

/// Applies an exact-string edit atomically (following a symlink that stays
/// inside).
pub(crate) fn edit(
    root: &Dir,
    path: &VPath,
    request: &EditRequest,
    config: &FsConfig,
    budget: Option<&Budget>,
) -> Result<EditOutcome> {
    edit_up_to(root, path, request, config, budget, u64::MAX)
        .map(|done| done.expect("no size is over u64::MAX"))
}

/// [`edit`] of a file of at most `max_size` bytes: a larger file is left
/// alone (`Ok(None)`, nothing changed) for the caller to edit elsewhere.
pub(crate) fn edit_up_to(
    root: &Dir,
    path: &VPath,
    request: &EditRequest,
    config: &FsConfig,
    budget: Option<&Budget>,
    max_size: u64,
) -> Result<Option<EditOutcome>> {
    // Checks run in the order every backend uses: the file (not_found,
    // is_directory), its size, text or not, then the edit rules (which
    // refuse an empty `old`).
    if path.is_root() {
        return Err(Error::IsDirectory { path: path.clone() });
    }
    let held = budget.map(|b| b.hold(root)).transpose()?;
    let target = resolve_target(root, path)?;
    let dir = root.open_dir(&target.dir).map_err(|e| map_io(path, &e))?;
    // The target is not a symlink now; if one is swapped in, `O_NOFOLLOW`
    // makes the open fail instead of following it.
    let file = open_regular(&dir, target.name.as_ref(), FollowSymlinks::No, path, config)?;
    if file.meta.len() > max_size {
        return Ok(None);
    }
    let permissions = file.meta.permissions();
    let bytes = file.read_all_limited(path, config.limits.max_text_file_bytes)?;
    let text = match String::from_utf8(bytes) {
        Ok(text) if !text.contains('\0') => text,
        _ => return Err(Error::BinaryFile { path: path.clone() }),
    };
    let (new, replacements) = apply_edit(path, &text, request, config.limits.max_text_file_bytes)?;
    let (old_len, new_len) = (text.len() as u64, new.len() as u64);
    if let Some(held) = &held {
        held.admit(path, old_len, new_len)?;
    }
    replace(
        &dir,
        &target.name,
        new.as_bytes(),
        Some(permissions),
        config,
    )
    .map_err(|e| map_io(path, &e))?;
    if let Some(held) = held {
        held.commit(old_len, new_len);
    }
    Ok(Some(EditOutcome { replacements }))
}

/// Removes a file, a symlink (never its target) or a directory tree.
pub(crate) fn delete(root: &Dir, path: &VPath) -> Result<()> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(denied(path, ROOT));
    };
    let dir = root.open_dir(rel(&parent)).map_err(|e| map_io(path, &e))?;
    let meta = dir.symlink_metadata(name).map_err(|e| map_io(path, &e))?;
    let removed = if meta.is_dir() {
        // cap-std never follows symlinks inside the tree it removes.
        dir.remove_dir_all(name)
    } else {
        dir.remove_file(name)
    };
    removed.map_err(|e| map_io(path, &e))
}
