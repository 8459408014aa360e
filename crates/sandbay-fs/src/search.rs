//! `glob` and `grep` over the capability walk.

use std::ops::ControlFlow;

use cap_fs_ext::FollowSymlinks;
use cap_std::fs::Dir;
use sandbay_core::text::{GlobMatcher, GrepPlan, GrepSearch, finish_glob};
use sandbay_core::{Error, GlobOutput, GlobRequest, GrepOutput, GrepRequest, Result, VPath};

use crate::config::FsConfig;
use crate::error::{NOT_REGULAR, denied, map_io};
use crate::handle::{open_regular, rel};
use crate::walk::walk_files;

/// Finds regular files matching a glob below a directory.
pub(crate) fn glob(root: &Dir, request: &GlobRequest) -> Result<GlobOutput> {
    let matcher = GlobMatcher::new(&request.pattern)?;
    let base = &request.path;
    let dir = root.open_dir(rel(base)).map_err(|e| map_io(base, &e))?;
    let mut found = Vec::new();
    walk_files(dir, base.clone(), |_, _, path| {
        if matcher.is_match(base, &path) {
            found.push(path);
            // Files come in path order: one past the limit decides `truncated`.
            if found.len() > request.limit {
                return Ok(ControlFlow::Break(()));
            }
        }
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(finish_glob(found, request.limit))
}

/// Searches the text files below a path (or one file).
pub(crate) fn grep(root: &Dir, request: &GrepRequest, config: &FsConfig) -> Result<GrepOutput> {
    let plan = GrepPlan::new(request)?;
    let mut search = plan.start();
    let mut buffer = Vec::new();
    let base = &request.path;
    let meta = root.metadata(rel(base)).map_err(|e| map_io(base, &e))?;
    if meta.is_dir() {
        let dir = root.open_dir(rel(base)).map_err(|e| map_io(base, &e))?;
        walk_files(dir, base.clone(), |dir, name, path| {
            if plan.wants(&path) {
                search_one(
                    dir,
                    name.as_ref(),
                    false,
                    &path,
                    config,
                    &mut search,
                    &mut buffer,
                )?;
            }
            Ok(if search.is_done() {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            })
        })?;
    } else if meta.is_file() {
        if plan.wants(base) {
            search_one(
                root,
                rel(base),
                true,
                base,
                config,
                &mut search,
                &mut buffer,
            )?;
        }
    } else {
        return Err(denied(base, NOT_REGULAR));
    }
    Ok(search.finish())
}

/// Feeds one file to the search.
///
/// A file met by the walk is skipped silently when grep cannot use it: a
/// special file, a file the hard-link policy refuses, one that vanished
/// or was swapped for something else meanwhile. A file named `explicit`ly
/// as the search path reports those errors instead (following a symlink
/// that stays inside). Files over the text size limit are skipped in both
/// cases, as the shared grep rules say.
fn search_one(
    dir: &Dir,
    rel: &std::path::Path,
    explicit: bool,
    path: &VPath,
    config: &FsConfig,
    search: &mut GrepSearch<'_>,
    buffer: &mut Vec<u8>,
) -> Result<()> {
    let follow = if explicit {
        FollowSymlinks::Yes
    } else {
        FollowSymlinks::No
    };
    let file = match open_regular(dir, rel, follow, path, config) {
        Ok(file) => file,
        Err(e) if explicit => return Err(e),
        Err(
            Error::PermissionDenied { .. }
            | Error::NotFound { .. }
            | Error::IsDirectory { .. }
            | Error::NotADirectory { .. },
        ) => return Ok(()),
        Err(e) => return Err(e),
    };
    if file.meta.len() > config.limits.max_text_file_bytes {
        return Ok(());
    }
    file.read_snapshot(path, buffer)?;
    search.file(path, buffer);
    Ok(())
}
