//! `glob` and `grep` that leave the results directory out.
//!
//! Saved results (see [`crate::ToolConfig::results_dir`]) must neither
//! show up in searches of the workspace nor use up their limits. The
//! backends cannot leave a directory out of a search, so when the results
//! directory exists below the search path, the search is split: the
//! directories from the search path down to the results directory are
//! listed, and every other entry along the way is searched on its own (a
//! file, or a directory with everything below it). The parts are taken in
//! path order, each within what is left of the match budget, so the merged
//! result is that of one search that skipped the directory. Everything is
//! built from the backends' shared answers, so it is the same on every
//! backend.
//!
//! A search path that is the results directory or inside it is searched
//! as is, and so is everything when the directory does not exist.

use futures_util::stream::{self, StreamExt};

use sandbay_core::text::{GlobMatcher, GrepPlan, MAX_GREP_OUTPUT_BYTES, finish_glob};
use sandbay_core::{
    Backend, EntryKind, Error, GlobOutput, GlobRequest, GrepMode, GrepOutput, GrepRequest, Result,
    VPath,
};

/// Most parts a search is split into; a search path with more entries
/// along the way is searched whole and the results filtered afterwards.
const MAX_PARTS: usize = 256;
/// Parts searched at the same time.
const CONCURRENT_PARTS: usize = 4;

/// One part of a split search.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Part {
    path: VPath,
    dir: bool,
}

/// The parts of `base` that hold everything but `hidden`, in path order;
/// `None` when the search needs no split (or cannot be split).
async fn split(backend: &dyn Backend, base: &VPath, hidden: &VPath) -> Option<Vec<Part>> {
    if hidden.is_root() || hidden == base || !hidden.starts_with(base) {
        return None;
    }
    match backend.stat(hidden).await {
        Ok(entry) if entry.kind == EntryKind::Dir => {}
        _ => return None,
    }
    let names: Vec<&str> = hidden.strip_prefix(base)?.split('/').collect();
    let mut level = base.clone();
    let mut before = Vec::new();
    let mut after_levels = Vec::new();
    for name in names {
        let step = format!("{name}/");
        // Keys sort as full paths do: a directory's name with `/` added.
        let mut items: Vec<(String, Part)> = backend
            .ls(&level)
            .await
            .ok()?
            .into_iter()
            .filter_map(|entry| {
                let dir = match entry.kind {
                    EntryKind::Dir => true,
                    EntryKind::File => false,
                    // searches never follow links or open special files
                    EntryKind::Symlink | EntryKind::Other => return None,
                };
                let name = entry.path.file_name()?;
                let key = if dir {
                    format!("{name}/")
                } else {
                    name.to_owned()
                };
                Some((
                    key,
                    Part {
                        path: entry.path,
                        dir,
                    },
                ))
            })
            .collect();
        // A step that is no directory (a link, say) is never walked into.
        if !items.iter().any(|(key, _)| *key == step) {
            return None;
        }
        items.sort_by(|a, b| a.0.cmp(&b.0));
        let (low, high): (Vec<_>, Vec<_>) = items
            .into_iter()
            .filter(|(key, _)| *key != step)
            .partition(|(key, _)| *key < step);
        before.extend(low.into_iter().map(|(_, part)| part));
        after_levels.push(high.into_iter().map(|(_, part)| part).collect::<Vec<_>>());
        level = level.child(name)?;
    }
    let mut parts = before;
    for after in after_levels.into_iter().rev() {
        parts.extend(after);
    }
    (parts.len() <= MAX_PARTS).then_some(parts)
}

/// A glob pattern meaning the same below any directory as `pattern` below
/// `base`: a pattern relative to the search path becomes absolute.
fn rebase(pattern: &str, base: &VPath) -> String {
    if pattern.starts_with('/') || !pattern.contains('/') {
        return pattern.to_owned();
    }
    let body = pattern.trim_start_matches("./");
    if base.is_root() {
        return format!("/{body}");
    }
    let mut out = String::with_capacity(base.as_str().len() + body.len() + 8);
    for c in base.as_str().chars() {
        if matches!(c, '\\' | '*' | '?' | '[' | ']' | '{' | '}') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('/');
    out.push_str(body);
    out
}

/// Whether a part's error means it went away or cannot be searched, which
/// a whole-tree walk skips silently.
fn vanished(error: &Error) -> bool {
    matches!(
        error,
        Error::NotFound { .. }
            | Error::NotADirectory { .. }
            | Error::IsDirectory { .. }
            | Error::PermissionDenied { .. }
    )
}

/// What `max_matches` counts: files in files-with-matches mode, matching
/// lines otherwise.
fn units(output: &GrepOutput, mode: GrepMode) -> usize {
    match mode {
        GrepMode::FilesWithMatches => output.files.len(),
        GrepMode::Content | GrepMode::Count => output.files.iter().map(|f| f.matches).sum(),
    }
}

/// `grep` over `request.path` without `hidden` (see the module docs).
pub(crate) async fn grep(
    backend: &dyn Backend,
    request: &GrepRequest,
    hidden: &VPath,
) -> Result<GrepOutput> {
    let Some(parts) = split(backend, &request.path, hidden).await else {
        return backend.grep(request).await;
    };
    // the errors one search would give, once
    GrepPlan::new(request)?;
    let glob = request.glob.as_deref().filter(|g| !g.is_empty());
    let filter = glob.map(GlobMatcher::new).transpose()?;
    let dir_glob = glob.map(|g| rebase(g, &request.path));
    let requests: Vec<GrepRequest> = parts
        .into_iter()
        .filter_map(|part| {
            let mut sub = request.clone();
            if part.dir {
                sub.glob = dir_glob.clone();
            } else if filter
                .as_ref()
                .is_none_or(|f| f.is_match(&request.path, &part.path))
            {
                sub.glob = None;
            } else {
                return None;
            }
            sub.path = part.path;
            Some(sub)
        })
        .collect();
    // Indices, not references, go through the closure: a closure taking a
    // reference would have to be general over its lifetime, which the
    // `Send` check of callers' futures cannot prove.
    let requests = &requests;
    let mut results = stream::iter(0..requests.len())
        .map(|i| async move { (&requests[i], backend.grep(&requests[i]).await) })
        .buffered(CONCURRENT_PARTS);
    let mut out = GrepOutput::default();
    let mut left = request.max_matches;
    let mut bytes = 0usize;
    while let Some((sub, result)) = results.next().await {
        let mut part = match result {
            Ok(part) => part,
            Err(e) if vanished(&e) => continue,
            Err(e) => return Err(e),
        };
        let found = units(&part, request.mode);
        if found == 0 {
            continue;
        }
        if left == 0 {
            // one more match past the budget: what one search reports
            out.truncated = true;
            break;
        }
        if found > left {
            // the part with the budget one search would have had left
            let mut cut = sub.clone();
            cut.max_matches = left;
            part = match backend.grep(&cut).await {
                Ok(part) => part,
                Err(e) if vanished(&e) => continue,
                Err(e) => return Err(e),
            };
        }
        left = left.saturating_sub(units(&part, request.mode));
        bytes += part
            .files
            .iter()
            .flat_map(|f| &f.lines)
            .map(|l| l.text.len())
            .sum::<usize>();
        out.files.extend(part.files);
        if part.truncated || bytes > MAX_GREP_OUTPUT_BYTES {
            out.truncated = true;
            break;
        }
    }
    Ok(out)
}

/// `glob` below `request.path` without `hidden` (see the module docs).
pub(crate) async fn glob(
    backend: &dyn Backend,
    request: &GlobRequest,
    hidden: &VPath,
) -> Result<GlobOutput> {
    let Some(parts) = split(backend, &request.path, hidden).await else {
        return backend.glob(request).await;
    };
    let matcher = GlobMatcher::new(&request.pattern)?;
    let pattern = rebase(&request.pattern, &request.path);
    let (matcher, pattern) = (&matcher, &pattern);
    let mut results = stream::iter(parts)
        .map(|part| async move {
            if !part.dir {
                let paths = if matcher.is_match(&request.path, &part.path) {
                    vec![part.path]
                } else {
                    Vec::new()
                };
                return Ok(GlobOutput {
                    paths,
                    truncated: false,
                });
            }
            let sub = GlobRequest {
                pattern: pattern.clone(),
                path: part.path,
                limit: request.limit,
            };
            backend.glob(&sub).await
        })
        .buffered(CONCURRENT_PARTS);
    let mut found = Vec::new();
    let mut truncated = false;
    while let Some(result) = results.next().await {
        let part = match result {
            Ok(part) => part,
            Err(e) if vanished(&e) => continue,
            Err(e) => return Err(e),
        };
        truncated |= part.truncated;
        found.extend(part.paths);
        // parts come in path order: past the limit, the rest cannot matter
        if truncated || found.len() > request.limit {
            break;
        }
    }
    let mut out = finish_glob(found, request.limit);
    out.truncated |= truncated;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> VPath {
        VPath::parse(s).unwrap()
    }

    #[test]
    fn rebased_patterns_match_the_same_paths() {
        let cases = [
            ("*.rs", "/a", "/a/b/x.rs"),
            ("b/*.rs", "/a", "/a/b/x.rs"),
            ("./b/*.rs", "/a", "/a/b/x.rs"),
            ("**/x.rs", "/a", "/a/x.rs"),
            ("**/x.rs", "/a", "/a/b/c/x.rs"),
            ("/a/**/x.rs", "/a", "/a/b/x.rs"),
            ("src/{a,b}/*.rs", "/", "/src/b/x.rs"),
            ("b/*.rs", "/", "/b/x.rs"),
            // glob characters in the search path are taken literally
            ("c/*", "/w*[x]{y,z}?", "/w*[x]{y,z}?/c/f"),
        ];
        for (pattern, base, path) in cases {
            let (base, path) = (v(base), v(path));
            let rebased = rebase(pattern, &base);
            let want = GlobMatcher::new(pattern).unwrap().is_match(&base, &path);
            assert!(want, "{pattern} {base} {path}");
            let m = GlobMatcher::new(&rebased).unwrap();
            assert!(m.is_match(&path, &path), "{rebased} {path}");
        }
        let m = GlobMatcher::new(&rebase("c/*", &v("/w*"))).unwrap();
        assert!(
            !m.is_match(&VPath::root(), &v("/wx/c/f")),
            "`*` stays literal"
        );
        assert!(!m.is_match(&VPath::root(), &v("/w*/d/c/f")));
    }
}
