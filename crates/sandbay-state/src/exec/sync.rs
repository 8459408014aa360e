//! From a run's scratch directory back into the workspace: the diff
//! against the files the run started with, and its application to the
//! workspace as it is now (see the crate docs, "Concurrent changes").

use std::collections::BTreeMap;
use std::sync::Arc;

use sandbay_core::VPath;

use super::scratch::{Entry, Seen};
use crate::tree::{Node, Tree};

/// One change a command made.
#[derive(Debug)]
pub(crate) enum Change {
    /// A file or directory it removed (or replaced by another kind).
    Remove {
        /// The path.
        path: VPath,
        /// It was a directory when the run started.
        was_dir: bool,
    },
    /// A directory it created.
    Mkdir(VPath),
    /// A file it created or changed.
    Put(VPath, Arc<[u8]>),
}

/// The changes between `before` (what the run started with) and `after`
/// (the scratch directory when it ended): removals deepest first, then
/// new directories parents first, then files.
pub(crate) fn diff(before: &BTreeMap<VPath, Entry>, after: BTreeMap<VPath, Seen>) -> Vec<Change> {
    let mut removes = Vec::new();
    let mut mkdirs = Vec::new();
    let mut puts = Vec::new();
    for (path, entry) in before {
        let was_dir = matches!(entry, Entry::Dir);
        let kept = match after.get(path) {
            None => false,
            Some(Seen::Dir) => was_dir,
            Some(Seen::Same | Seen::File(_)) => !was_dir,
        };
        if !kept {
            removes.push(Change::Remove {
                path: path.clone(),
                was_dir,
            });
        }
    }
    for (path, seen) in after {
        match seen {
            Seen::Same => {}
            Seen::Dir => {
                if !matches!(before.get(&path), Some(Entry::Dir)) {
                    mkdirs.push(Change::Mkdir(path));
                }
            }
            Seen::File(bytes) => puts.push(Change::Put(path, Arc::from(bytes))),
        }
    }
    // `before` iterates in path order, where a parent sorts before its
    // children: reversed, children go first.
    removes.reverse();
    removes.extend(mkdirs);
    removes.extend(puts);
    removes
}

/// Applies `changes` to a copy of `current` and returns it with a note for
/// every change that could not be applied because the workspace changed
/// through the API meanwhile (the API's version is kept there).
pub(crate) fn apply(current: &Tree, changes: Vec<Change>) -> (Tree, Vec<String>) {
    let mut next = current.clone();
    let mut notes = Vec::new();
    let kept = |path: &VPath| {
        format!(
            "{path}: changed through the workspace while the command ran; that version was kept"
        )
    };
    for change in changes {
        match change {
            Change::Remove { path, was_dir } => match next.get(&path) {
                Err(_) => {} // already gone
                Ok(Node::File(_)) if !was_dir => {
                    let _ = next.remove(&path);
                }
                Ok(Node::Dir(d)) if was_dir => {
                    if d.children.is_empty() {
                        let _ = next.remove(&path);
                    } else {
                        notes.push(format!(
                            "{path}: entries were added to it through the workspace while the command ran; the directory was kept"
                        ));
                    }
                }
                Ok(_) => notes.push(kept(&path)),
            },
            Change::Mkdir(path) => {
                if next.mkdir_all(&path).is_err() {
                    notes.push(kept(&path));
                }
            }
            Change::Put(path, data) => {
                if next.check_put(&path).is_err() || next.put(&path, data).is_err() {
                    notes.push(kept(&path));
                }
            }
        }
    }
    (next, notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> VPath {
        VPath::parse(s).unwrap()
    }

    fn file(s: &str) -> Entry {
        Entry::File(Arc::from(s.as_bytes()))
    }

    #[test]
    fn diff_orders_removals_deepest_first() {
        let before: BTreeMap<VPath, Entry> = [
            (p("/d"), Entry::Dir),
            (p("/d/e"), Entry::Dir),
            (p("/d/e/f"), file("x")),
            (p("/keep"), file("k")),
            (p("/x"), file("old")),
        ]
        .into_iter()
        .collect();
        let after: BTreeMap<VPath, Seen> = [
            (p("/keep"), Seen::Same),
            (p("/x"), Seen::Dir),
            (p("/x/new"), Seen::File(b"n".to_vec())),
        ]
        .into_iter()
        .collect();
        let order: Vec<String> = diff(&before, after)
            .iter()
            .map(|c| match c {
                Change::Remove { path, .. } => format!("rm {path}"),
                Change::Mkdir(path) => format!("mkdir {path}"),
                Change::Put(path, _) => format!("put {path}"),
            })
            .collect();
        assert_eq!(
            order,
            [
                "rm /x",
                "rm /d/e/f",
                "rm /d/e",
                "rm /d",
                "mkdir /x",
                "put /x/new"
            ]
        );
    }

    #[test]
    fn api_changes_during_the_run_are_kept() {
        let mut tree = Tree::default();
        tree.put(&p("/d/f"), Arc::from(&b"x"[..])).unwrap();
        // Meanwhile, through the API: a file in the directory the command removes.
        tree.put(&p("/d/api"), Arc::from(&b"api"[..])).unwrap();
        let changes = vec![
            Change::Remove {
                path: p("/d/f"),
                was_dir: false,
            },
            Change::Remove {
                path: p("/d"),
                was_dir: true,
            },
            Change::Put(p("/d/api/below"), Arc::from(&b"y"[..])),
        ];
        let (next, notes) = apply(&tree, changes);
        assert!(next.get(&p("/d/f")).is_err());
        assert!(matches!(next.get(&p("/d/api")), Ok(Node::File(_))));
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes[0].starts_with("/d: entries were added"), "{notes:?}");
        assert!(
            notes[1].starts_with("/d/api/below: changed through"),
            "{notes:?}"
        );
        // the original is untouched
        assert!(matches!(tree.get(&p("/d/f")), Ok(Node::File(_))));
    }
}
