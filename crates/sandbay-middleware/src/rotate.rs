//! Saved results do not pile up: the results directory keeps the
//! [`MAX_SAVED_RESULTS`] most recently saved ones.
//!
//! Backends report no modification times, so the directory holds an index,
//! [`INDEX_NAME`], listing the saved results oldest first. Each save moves
//! its file to the end and deletes the oldest files past the limit. Result
//! files missing from the index (an index lost or written by a concurrent
//! toolbox) count as the oldest. Only files named like saved results
//! (`<tool>-<12 hex digits>.txt`) are ever deleted.

use std::collections::HashSet;

use sandbay_core::{Backend, BackendExt, EntryKind, VPath};

use crate::spec::ToolName;

/// Saved results kept at most; saving one more deletes the oldest.
pub(crate) const MAX_SAVED_RESULTS: usize = 32;
/// The index of saved results, in the results directory.
pub(crate) const INDEX_NAME: &str = ".order";

/// Whether `name` is the name of a saved result.
fn is_result_name(name: &str) -> bool {
    let Some(stem) = name.strip_suffix(".txt") else {
        return false;
    };
    let Some((tool, id)) = stem.rsplit_once('-') else {
        return false;
    };
    ToolName::parse(tool).is_some()
        && id.len() == 12
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Records that `saved` (a file in `dir`) was just saved and deletes the
/// oldest saved results past [`MAX_SAVED_RESULTS`]. Failures are logged:
/// the result itself is saved already.
pub(crate) async fn after_save(backend: &dyn Backend, dir: &VPath, saved: &VPath) {
    let (Some(index), Some(saved_name)) = (dir.child(INDEX_NAME), saved.file_name()) else {
        return;
    };
    if dir.is_root() {
        return;
    }
    let present: HashSet<String> = match backend.ls(dir).await {
        Ok(entries) => entries
            .into_iter()
            .filter(|e| e.kind == EntryKind::File)
            .filter_map(|e| e.path.file_name().map(str::to_owned))
            .filter(|n| is_result_name(n))
            .collect(),
        Err(err) => {
            tracing::warn!(error = %err, "could not list the saved results");
            return;
        }
    };
    let listed: Vec<String> = match backend.read_to_string(&index).await {
        Ok(text) => text
            .lines()
            .filter(|n| is_result_name(n))
            .take(4 * MAX_SAVED_RESULTS)
            .map(str::to_owned)
            .collect(),
        Err(_) => Vec::new(),
    };
    let listed_set: HashSet<&String> = listed.iter().collect();
    let mut unlisted: Vec<&String> = present
        .iter()
        .filter(|n| !listed_set.contains(n) && n.as_str() != saved_name)
        .collect();
    unlisted.sort();
    let mut order: Vec<String> = unlisted.into_iter().cloned().collect();
    order.extend(
        listed
            .iter()
            .filter(|n| present.contains(*n) && n.as_str() != saved_name)
            .cloned(),
    );
    let mut seen = HashSet::new();
    order.retain(|n| seen.insert(n.clone()));
    order.push(saved_name.to_owned());
    let excess = order.len().saturating_sub(MAX_SAVED_RESULTS);
    for old in order.drain(..excess) {
        let Some(path) = dir.child(&old) else {
            continue;
        };
        if let Err(err) = backend.delete(&path).await {
            tracing::warn!(error = %err, "could not delete an old saved result");
        }
    }
    let mut text = order.join("\n");
    text.push('\n');
    if let Err(err) = backend.write(&index, &text).await {
        tracing::warn!(error = %err, "could not write the index of saved results");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_result_names_count() {
        assert!(is_result_name("grep-0123456789ab.txt"));
        assert!(is_result_name("read_file-0123456789ab.txt"));
        assert!(!is_result_name("grep-0123456789AB.txt"));
        assert!(!is_result_name("grep-0123456789a.txt"));
        assert!(!is_result_name("notes-0123456789ab.txt"));
        assert!(!is_result_name("grep-0123456789ab.md"));
        assert!(!is_result_name(INDEX_NAME));
    }
}
