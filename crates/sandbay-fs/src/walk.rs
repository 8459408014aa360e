//! A tree walk over capability handles that never follows symlinks and
//! yields regular files in full-path byte order.
//!
//! Every directory is opened from its parent's handle with `O_NOFOLLOW`
//! (`open_dir_nofollow`), so swapping a directory for a symlink while the
//! walk runs makes that open fail instead of leading anywhere. No ambient
//! path is ever used.
//!
//! Order: the children of a directory are visited sorted by their name,
//! with `/` appended to directory names. That makes the depth-first order
//! equal to sorting all file paths as strings (`/a-c` comes before
//! `/a/b`, since `-` sorts before `/`), so results can be streamed and a
//! search can stop early without reading the rest of the tree.

use std::io;
use std::ops::ControlFlow;

use cap_fs_ext::DirExt;
use cap_std::fs::Dir;
use sandbay_core::{Result, VPath};

use crate::error::map_io;

/// One child to visit.
struct Child {
    key: String,
    name: String,
    is_dir: bool,
}

/// A directory being visited.
struct Frame {
    dir: Dir,
    path: VPath,
    children: std::vec::IntoIter<Child>,
}

/// Reads and sorts the children of `dir` that are directories or regular
/// files; symlinks and special files are left out.
fn children(dir: &Dir, path: &VPath) -> Result<Vec<Child>> {
    let mut out = Vec::new();
    for entry in dir.entries().map_err(|e| map_io(path, &e))? {
        let entry = entry.map_err(|e| map_io(path, &e))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        // The type from the directory entry, never following a symlink.
        let file_type = match entry.file_type() {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(map_io(path, &e)),
        };
        let is_dir = file_type.is_dir();
        if !is_dir && !file_type.is_file() {
            continue;
        }
        let key = if is_dir {
            format!("{name}/")
        } else {
            name.clone()
        };
        out.push(Child { key, name, is_dir });
    }
    out.sort_unstable_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

/// Walks the tree below `dir` (whose virtual path is `path`) and calls
/// `visit` with each regular file's directory handle, name and virtual
/// path, in path order, until `visit` breaks.
///
/// A subdirectory that cannot be opened (removed, swapped for a symlink,
/// unreadable) is skipped; an error in `dir` itself is returned.
pub(crate) fn walk_files<F>(dir: Dir, path: VPath, mut visit: F) -> Result<()>
where
    F: FnMut(&Dir, &str, VPath) -> Result<ControlFlow<()>>,
{
    let first = children(&dir, &path)?;
    let mut stack = vec![Frame {
        dir,
        path,
        children: first.into_iter(),
    }];
    while let Some(frame) = stack.last_mut() {
        let Some(child) = frame.children.next() else {
            stack.pop();
            continue;
        };
        // Names that are no valid virtual component (or would make the
        // path too long) cannot be addressed, so they are not reported.
        let Some(child_path) = frame.path.child(&child.name) else {
            continue;
        };
        if !child.is_dir {
            if visit(&frame.dir, &child.name, child_path)?.is_break() {
                return Ok(());
            }
            continue;
        }
        let sub = match frame.dir.open_dir_nofollow(&child.name) {
            Ok(sub) => sub,
            Err(e) => {
                tracing::debug!(dir = %child_path, kind = ?e.kind(), "skipping a directory that cannot be opened");
                continue;
            }
        };
        match children(&sub, &child_path) {
            Ok(list) => stack.push(Frame {
                dir: sub,
                path: child_path,
                children: list.into_iter(),
            }),
            Err(e) => {
                tracing::debug!(dir = %child_path, code = %e.code(), "skipping a directory that cannot be listed");
            }
        }
    }
    Ok(())
}
