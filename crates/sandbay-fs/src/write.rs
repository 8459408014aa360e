//! Changing files: atomic writes, edits and deletes.
//!
//! Every write builds the new content in a temporary file inside the
//! target directory (an anonymous `O_TMPFILE` where the kernel has it,
//! via `cap-tempfile`) and renames it over the name. A reader sees the old
//! or the new content, never a mix; on any failure the temporary file is
//! removed and the old content is untouched. The rename replaces only the
//! one name, so a write never changes the target of a hard link.

use std::ffi::{OsStr, OsString};
use std::io::{self, Write};

use cap_fs_ext::FollowSymlinks;
use cap_std::fs::{Dir, Metadata, Permissions};
use cap_tempfile::TempFile;
use sandbay_core::text::apply_edit;
use sandbay_core::{EditOutcome, EditRequest, Error, Result, VPath};

use crate::config::FsConfig;
use crate::error::{ROOT, denied, map_io};
use crate::handle::{
    OpenFile, Target, open_regular, open_regular_unless_symlink, open_target_dir, rel,
    resolve_target,
};
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
    let (dir, name, existing) = open_write_target(root, path)?;
    // Keep the mode of a file being replaced (an executable stays one);
    // refuse to replace a directory before writing anything.
    let (permissions, old) = match existing {
        Some(meta) if meta.is_dir() => return Err(Error::IsDirectory { path: path.clone() }),
        Some(meta) if meta.is_file() => (Some(meta.permissions()), meta.len()),
        _ => (None, 0),
    };
    let new = bytes.len() as u64;
    if let Some(held) = &held {
        held.admit(path, old, new)?;
    }
    replace(&dir, &name, bytes, permissions, config).map_err(|e| replace_error(&dir, path, &e))?;
    if let Some(held) = held {
        held.commit(old, new);
    }
    Ok(())
}

/// The error of a failed [`replace`]: `not_found` when the directory was
/// removed meanwhile (a session deleted under a running call; the kernel
/// refuses a temporary file there with `EPERM`), else as [`map_io`] says.
fn replace_error(dir: &Dir, path: &VPath, err: &io::Error) -> Error {
    use cap_std::fs::MetadataExt;
    match dir.dir_metadata() {
        Ok(meta) if meta.nlink() == 0 => Error::NotFound { path: path.clone() },
        _ => map_io(path, err),
    }
}

/// Opens the directory a write to `path` lands in (creating missing
/// directories) and looks at the name there without following it: the
/// directory, the final name, and what is there now (`None`: nothing).
///
/// The common case costs one directory open and one `fstatat` through it.
/// Only when the name is a symlink does the write take the slow path,
/// [`resolve_target`], which follows the chain while it stays inside.
fn open_write_target(root: &Dir, path: &VPath) -> Result<(Dir, OsString, Option<Metadata>)> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(Error::IsDirectory { path: path.clone() });
    };
    let plain = Target {
        dir: rel(&parent).to_path_buf(),
        name: name.into(),
        via_symlink: false,
    };
    let dir = open_target_dir(root, path, &plain)?;
    match lstat(&dir, &plain.name, path)? {
        Some(meta) if meta.file_type().is_symlink() => {}
        found => return Ok((dir, plain.name, found)),
    }
    let target = resolve_target(root, path)?;
    let dir = open_target_dir(root, path, &target)?;
    let found = lstat(&dir, &target.name, path)?;
    Ok((dir, target.name, found))
}

/// `name`'s metadata in `dir`, not following a symlink; `None` if missing.
fn lstat(dir: &Dir, name: &OsStr, path: &VPath) -> Result<Option<Metadata>> {
    match dir.symlink_metadata(name) {
        Ok(meta) => Ok(Some(meta)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(map_io(path, &e)),
    }
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
    let (dir, name, file) = open_edit_target(root, path, config)?;
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
    replace(&dir, &name, new.as_bytes(), Some(permissions), config)
        .map_err(|e| replace_error(&dir, path, &e))?;
    if let Some(held) = held {
        held.commit(old_len, new_len);
    }
    Ok(Some(EditOutcome { replacements }))
}

/// Opens the file an edit of `path` changes and the directory it is in.
///
/// The common case opens the parent and the name in it with `O_NOFOLLOW`.
/// A symlink there takes the slow path: [`resolve_target`] follows the
/// chain while it stays inside, and the file it ends at is opened with
/// `O_NOFOLLOW` too, so a symlink swapped in meanwhile makes the open
/// fail instead of being followed.
fn open_edit_target(
    root: &Dir,
    path: &VPath,
    config: &FsConfig,
) -> Result<(Dir, OsString, OpenFile)> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(Error::IsDirectory { path: path.clone() });
    };
    let dir = root.open_dir(rel(&parent)).map_err(|e| map_io(path, &e))?;
    let name = OsStr::new(name);
    if let Some(file) = open_regular_unless_symlink(&dir, name, path, config)? {
        return Ok((dir, name.to_os_string(), file));
    }
    let target = resolve_target(root, path)?;
    let dir = root.open_dir(&target.dir).map_err(|e| map_io(path, &e))?;
    let file = open_regular(&dir, target.name.as_ref(), FollowSymlinks::No, path, config)?;
    Ok((dir, target.name, file))
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
