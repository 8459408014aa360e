//! Looking at files: `ls`, `stat`, `read` and `download`.

use std::io::{self, BufReader};

use cap_fs_ext::FollowSymlinks;
use cap_std::fs::{Dir, FileType};
use sandbay_core::text::{window_lines, window_slice};
use sandbay_core::{DirEntry, EntryKind, Error, ReadRequest, Result, TextWindow, VPath};

use crate::config::FsConfig;
use crate::error::map_io;
use crate::handle::{open_regular, rel};

/// Buffer of the reader behind `read`: the window is streamed through it,
/// so memory stays bounded whatever the file size.
const READ_BUFFER: usize = 64 * 1024;
/// Files up to this size are read whole for `read`; larger ones stream.
const WHOLE_FILE_MAX: u64 = 256 * 1024;

/// The kind of a directory entry, from a type that was not followed.
pub(crate) fn kind_of(file_type: FileType) -> EntryKind {
    if file_type.is_symlink() {
        EntryKind::Symlink
    } else if file_type.is_dir() {
        EntryKind::Dir
    } else if file_type.is_file() {
        EntryKind::File
    } else {
        EntryKind::Other
    }
}

/// Lists a directory (a symlinked directory inside the root is followed),
/// entries sorted by name; symlinks are reported, not followed.
///
/// Names that cannot be virtual path components (not UTF-8, control
/// characters, backslashes) are left out.
pub(crate) fn ls(root: &Dir, path: &VPath) -> Result<Vec<DirEntry>> {
    let dir = root.open_dir(rel(path)).map_err(|e| map_io(path, &e))?;
    let entries = dir.entries().map_err(|e| map_io(path, &e))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| map_io(path, &e))?;
        let name = entry.file_name();
        let Some(child) = name.to_str().and_then(|n| path.child(n)) else {
            tracing::debug!(dir = %path, "skipping a name that is not a valid virtual path");
            continue;
        };
        // The type comes with the directory entry (a `stat`, not
        // following symlinks, only where the file system does not say);
        // only files and symlinks need a `stat` for their size.
        let file_type = match entry.file_type() {
            Ok(file_type) => file_type,
            // removed while we looked
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(map_io(&child, &e)),
        };
        let mut kind = kind_of(file_type);
        let size = match kind {
            // `DirEntry::metadata` does not follow symlinks.
            EntryKind::File | EntryKind::Symlink => match entry.metadata() {
                Ok(meta) => {
                    // replaced by something else since the listing
                    kind = kind_of(meta.file_type());
                    if matches!(kind, EntryKind::File | EntryKind::Symlink) {
                        meta.len()
                    } else {
                        0
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(map_io(&child, &e)),
            },
            EntryKind::Dir | EntryKind::Other => 0,
        };
        out.push(DirEntry {
            path: child,
            kind,
            size,
        });
    }
    out.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Describes a path, following symlinks that stay inside.
pub(crate) fn stat(root: &Dir, path: &VPath) -> Result<DirEntry> {
    let meta = root.metadata(rel(path)).map_err(|e| map_io(path, &e))?;
    let kind = kind_of(meta.file_type());
    let size = if kind == EntryKind::File {
        meta.len()
    } else {
        0
    };
    Ok(DirEntry {
        path: path.clone(),
        kind,
        size,
    })
}

/// Reads a window of lines, streaming the file.
pub(crate) fn read(
    root: &Dir,
    path: &VPath,
    request: ReadRequest,
    config: &FsConfig,
) -> Result<TextWindow> {
    let file = open_regular(root, rel(path), FollowSymlinks::Yes, path, config)?;
    if file.meta.len() <= WHOLE_FILE_MAX {
        // Small enough to hold: one read, and the faster in-memory rules.
        let mut bytes = Vec::new();
        file.read_snapshot(path, &mut bytes)?;
        return window_slice(path, &bytes, request, config.limits.max_window_bytes);
    }
    // A small file fits the buffer whole (plus one byte to see the end).
    let capacity = usize::try_from(file.meta.len())
        .unwrap_or(READ_BUFFER)
        .saturating_add(1)
        .clamp(512, READ_BUFFER);
    let reader = BufReader::with_capacity(capacity, file.file);
    window_lines(path, reader, request, config.limits.max_window_bytes)
}

/// Reads one whole file, binary safe.
pub(crate) fn read_bytes(root: &Dir, path: &VPath, config: &FsConfig) -> Result<Vec<u8>> {
    if path.is_root() {
        return Err(Error::IsDirectory { path: path.clone() });
    }
    open_regular(root, rel(path), FollowSymlinks::Yes, path, config)?.read_all(path)
}
