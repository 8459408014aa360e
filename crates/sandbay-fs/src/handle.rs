//! Opening things through the root capability: regular files for
//! reading, parents for writing, and symlink resolution for writes.

use std::ffi::OsString;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use cap_fs_ext::{FollowSymlinks, OpenOptionsFollowExt};
use cap_std::fs::{Dir, File, Metadata, MetadataExt, OpenOptions, OpenOptionsExt};
use sandbay_core::{Error, Result, VPath};

use crate::config::{FsConfig, HardLinkPolicy};
use crate::error::{HARD_LINKED, NOT_REGULAR, SYMLINK_LOOP, denied, map_io};

/// Symlink hops `write` and `edit` follow before giving up (Linux's limit).
const MAX_SYMLINK_HOPS: usize = 40;

/// The path relative to the root, as cap-std wants it (`.` for the root).
pub(crate) fn rel(path: &VPath) -> &Path {
    if path.is_root() {
        Path::new(".")
    } else {
        Path::new(path.relative())
    }
}

/// Options that open anything for reading without blocking: a FIFO opens
/// at once with `O_NONBLOCK` (and is then refused by type), and a
/// terminal never becomes the controlling one.
fn read_options(follow: FollowSymlinks) -> OpenOptions {
    let mut options = OpenOptions::new();
    options
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .follow(follow);
    options
}

/// A regular file opened for reading, with its metadata taken from the
/// open handle (so it describes exactly what will be read).
#[derive(Debug)]
pub(crate) struct OpenFile {
    pub(crate) file: File,
    pub(crate) meta: Metadata,
}

impl OpenFile {
    /// Reads the whole file, refusing (`too_large`) anything above `limit`.
    pub(crate) fn read_all_limited(self, path: &VPath, limit: u64) -> Result<Vec<u8>> {
        let size = self.meta.len();
        if size > limit {
            return Err(too_large(path, size, limit));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        // The file may grow after `fstat`: read one byte past the limit to notice.
        (&self.file)
            .take(limit.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|e| map_io(path, &e))?;
        if bytes.len() as u64 > limit {
            return Err(too_large(path, bytes.len() as u64, limit));
        }
        Ok(bytes)
    }

    /// Reads the file as it was when opened (up to the size `fstat` gave,
    /// which the caller has checked) into `buf`, reusing its memory. One
    /// `read` for a small file: no extra call to see the end. Bytes
    /// appended after the open are not seen; `grep` uses this, never a
    /// writer.
    pub(crate) fn read_snapshot(&self, path: &VPath, buf: &mut Vec<u8>) -> Result<()> {
        let size = self.meta.len() as usize;
        buf.clear();
        buf.resize(size, 0);
        let mut filled = 0;
        while filled < size {
            match (&self.file).read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(map_io(path, &e)),
            }
        }
        buf.truncate(filled);
        Ok(())
    }

    /// Reads the whole file without a size limit.
    pub(crate) fn read_all(self, path: &VPath) -> Result<Vec<u8>> {
        let mut bytes = Vec::with_capacity(self.meta.len() as usize);
        (&self.file)
            .read_to_end(&mut bytes)
            .map_err(|e| map_io(path, &e))?;
        Ok(bytes)
    }
}

/// The `too_large` error of text operations.
pub(crate) fn too_large(path: &VPath, size: u64, limit: u64) -> Error {
    Error::TooLarge {
        what: path.to_string(),
        size,
        limit,
    }
}

/// Opens `rel` below `dir` for reading and checks, on the open handle,
/// that it is a regular file the hard-link policy allows.
///
/// # Errors
/// `is_directory`, `permission_denied` (special file, hard link, escape,
/// symlink loop), `not_found`, `not_a_directory`.
pub(crate) fn open_regular(
    dir: &Dir,
    rel: &Path,
    follow: FollowSymlinks,
    path: &VPath,
    config: &FsConfig,
) -> Result<OpenFile> {
    let file = dir
        .open_with(rel, &read_options(follow))
        .map_err(|e| map_io(path, &e))?;
    let meta = file.metadata().map_err(|e| map_io(path, &e))?;
    check_regular(&meta, path, config)?;
    Ok(OpenFile { file, meta })
}

/// [`open_regular`] of the single name `name` in `dir`, not following a
/// symlink there: `Ok(None)` when the name is a symlink, for the caller to
/// resolve (an open with `O_NOFOLLOW` fails with `ELOOP` on exactly that).
pub(crate) fn open_regular_unless_symlink(
    dir: &Dir,
    name: &std::ffi::OsStr,
    path: &VPath,
    config: &FsConfig,
) -> Result<Option<OpenFile>> {
    let file = match dir.open_with(name, &read_options(FollowSymlinks::No)) {
        Ok(file) => file,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Ok(None),
        Err(e) => return Err(map_io(path, &e)),
    };
    let meta = file.metadata().map_err(|e| map_io(path, &e))?;
    check_regular(&meta, path, config)?;
    Ok(Some(OpenFile { file, meta }))
}

/// The checks `open_regular` makes on an open handle's metadata.
pub(crate) fn check_regular(meta: &Metadata, path: &VPath, config: &FsConfig) -> Result<()> {
    if meta.is_dir() {
        return Err(Error::IsDirectory { path: path.clone() });
    }
    if !meta.is_file() {
        return Err(denied(path, NOT_REGULAR));
    }
    if config.hard_links == HardLinkPolicy::Refuse && meta.nlink() > 1 {
        return Err(denied(path, HARD_LINKED));
    }
    Ok(())
}

/// Where a write lands: a name in a directory, both relative to the root.
/// `dir` may contain `..` left by a relative symlink; the kernel resolves
/// it physically and cap-std keeps it below the root.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// The directory, relative to the root (`.` for the root).
    pub(crate) dir: PathBuf,
    /// The final name inside `dir`.
    pub(crate) name: OsString,
    /// Whether a symlink was followed to get here.
    pub(crate) via_symlink: bool,
}

/// Resolves where a write to `path` lands, following a symlink in the
/// *last* component (and chains of them) as long as it stays inside.
/// Symlinks in earlier components are followed by cap-std itself.
///
/// # Errors
/// `permission_denied` for an absolute link, a link leading out, or a
/// loop; `is_directory` when a link points at a directory.
pub(crate) fn resolve_target(root: &Dir, path: &VPath) -> Result<Target> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(Error::IsDirectory { path: path.clone() });
    };
    let mut target = Target {
        dir: rel(&parent).to_path_buf(),
        name: name.into(),
        via_symlink: false,
    };
    for _ in 0..MAX_SYMLINK_HOPS {
        let full = target.dir.join(&target.name);
        let meta = match root.symlink_metadata(&full) {
            Ok(meta) => meta,
            // a missing name (or missing parent, reported later) is a write target
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(target),
            Err(e) => return Err(map_io(path, &e)),
        };
        if !meta.file_type().is_symlink() {
            return Ok(target);
        }
        // `read_link` refuses absolute targets as an escape. `EINVAL`: the
        // link was replaced by something else meanwhile; look again.
        let link = match root.read_link(&full) {
            Ok(link) => link,
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => continue,
            Err(e) => return Err(map_io(path, &e)),
        };
        let link_dir = link.parent().unwrap_or(Path::new(""));
        match link.file_name() {
            Some(name) => {
                target.dir = target.dir.join(link_dir);
                target.name = name.to_os_string();
                target.via_symlink = true;
            }
            None => {
                // The link ends in `.` or `..`: it names a directory, or
                // leads out. Let cap-std tell which.
                let dir = target.dir.join(&link);
                return match root.metadata(&dir) {
                    Ok(_) => Err(Error::IsDirectory { path: path.clone() }),
                    Err(e) => Err(map_io(path, &e)),
                };
            }
        }
    }
    Err(denied(path, SYMLINK_LOOP))
}

/// Opens the directory a write lands in, creating missing directories
/// when the target was not reached through a symlink.
///
/// # Errors
/// `not_a_directory` if a component is a file, `not_found` if a
/// symlinked target's directory is missing, `permission_denied` on escape.
pub(crate) fn open_target_dir(root: &Dir, path: &VPath, target: &Target) -> Result<Dir> {
    match root.open_dir(&target.dir) {
        Ok(dir) => return Ok(dir),
        Err(e) if e.kind() == io::ErrorKind::NotFound && !target.via_symlink => {}
        Err(e) => return Err(map_io(path, &e)),
    }
    // Create each missing level. A file in the way shows up as ENOTDIR on
    // the next level (or on the final open), a symlink is followed by
    // cap-std as long as it stays inside.
    let mut prefix = PathBuf::new();
    for component in target.dir.components() {
        prefix.push(component);
        match root.create_dir(&prefix) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(map_io(path, &e)),
        }
    }
    root.open_dir(&target.dir).map_err(|e| map_io(path, &e))
}
