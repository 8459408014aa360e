//! [`Snapshot`]: a whole workspace as a serde value, JSON safe.

use std::sync::Arc;

use sandbay_core::{Error, Result, VPath};
use serde::{Deserialize, Serialize};

use crate::tree::{Node, Tree};

/// The snapshot format written by this version.
pub const SNAPSHOT_FORMAT: u32 = 1;

/// A serialisable copy of a whole workspace.
///
/// Every directory and file is one [`SnapshotEntry`], sorted by path.
/// Files that are valid UTF-8 are stored as strings, anything else as
/// base64, so the snapshot survives JSON (or any serde format) byte for
/// byte:
///
/// ```json
/// {"format":1,"entries":[
///   {"kind":"dir","path":"/src"},
///   {"kind":"text","path":"/src/main.py","text":"print('hi')\n"},
///   {"kind":"binary","path":"/logo.png","base64":"iVBORw0KGgo="}]}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Format version ([`SNAPSHOT_FORMAT`]); restore refuses others.
    pub format: u32,
    /// Directories and files, sorted by path.
    pub entries: Vec<SnapshotEntry>,
}

/// One directory or file of a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SnapshotEntry {
    /// A directory (kept even when empty).
    Dir {
        /// Its path.
        path: VPath,
    },
    /// A file whose bytes are valid UTF-8.
    Text {
        /// Its path.
        path: VPath,
        /// Its content.
        text: String,
    },
    /// A file whose bytes are not valid UTF-8, base64 in serialised form.
    Binary {
        /// Its path.
        path: VPath,
        /// Its content.
        #[serde(rename = "base64", with = "base64_bytes")]
        bytes: Vec<u8>,
    },
}

impl SnapshotEntry {
    /// The path of the entry.
    pub fn path(&self) -> &VPath {
        match self {
            SnapshotEntry::Dir { path }
            | SnapshotEntry::Text { path, .. }
            | SnapshotEntry::Binary { path, .. } => path,
        }
    }

    /// The file content, `None` for a directory.
    pub fn bytes(&self) -> Option<&[u8]> {
        match self {
            SnapshotEntry::Dir { .. } => None,
            SnapshotEntry::Text { text, .. } => Some(text.as_bytes()),
            SnapshotEntry::Binary { bytes, .. } => Some(bytes),
        }
    }

    /// A file entry, text when the bytes are UTF-8.
    pub fn file(path: VPath, bytes: Vec<u8>) -> SnapshotEntry {
        match String::from_utf8(bytes) {
            Ok(text) => SnapshotEntry::Text { path, text },
            Err(e) => SnapshotEntry::Binary {
                path,
                bytes: e.into_bytes(),
            },
        }
    }
}

impl Default for Snapshot {
    fn default() -> Self {
        Snapshot {
            format: SNAPSHOT_FORMAT,
            entries: Vec::new(),
        }
    }
}

impl Snapshot {
    /// Sum of the sizes of all files.
    pub fn total_bytes(&self) -> u64 {
        self.entries
            .iter()
            .filter_map(SnapshotEntry::bytes)
            .map(|b| b.len() as u64)
            .sum()
    }

    /// Copies a tree (called under the read lock).
    pub(crate) fn of(tree: &Tree) -> Snapshot {
        let mut entries = Vec::new();
        tree.root().visit(&mut |node| match node {
            Node::Dir(d) if d.path.is_root() => {}
            Node::Dir(d) => entries.push(SnapshotEntry::Dir {
                path: d.path.clone(),
            }),
            Node::File(f) => entries.push(SnapshotEntry::file(f.path.clone(), f.data.to_vec())),
        });
        entries.sort_by(|a, b| a.path().cmp(b.path()));
        Snapshot {
            format: SNAPSHOT_FORMAT,
            entries,
        }
    }

    /// Builds a tree, refusing inconsistent snapshots and quota overruns.
    pub(crate) fn into_tree(self, max_total_bytes: Option<u64>) -> Result<Tree> {
        if self.format != SNAPSHOT_FORMAT {
            return Err(Error::invalid_argument(format!(
                "snapshot format {} is not supported; this version reads format {SNAPSHOT_FORMAT}",
                self.format
            )));
        }
        if let Some(limit) = max_total_bytes {
            let size = self.total_bytes();
            if size > limit {
                tracing::debug!(size, limit, "state quota refused a snapshot");
                return Err(Error::QuotaExceeded {
                    path: VPath::root(),
                    limit: Some(limit),
                });
            }
        }
        let mut tree = Tree::default();
        let conflict = |path: &VPath, why: &str| {
            Error::invalid_argument(format!("snapshot entry {path}: {why}"))
        };
        let mut entries = self.entries;
        entries.sort_by(|a, b| a.path().cmp(b.path()));
        for pair in entries.windows(2) {
            if pair[0].path() == pair[1].path() {
                return Err(conflict(pair[1].path(), "the path appears twice"));
            }
        }
        for entry in entries {
            match entry {
                SnapshotEntry::Dir { path } => tree
                    .mkdir_all(&path)
                    .map_err(|_| conflict(&path, "a parent is a file"))?,
                SnapshotEntry::Text { path, text } => {
                    put_entry(&mut tree, &path, text.into_bytes())
                        .map_err(|e| conflict(&path, &e))?
                }
                SnapshotEntry::Binary { path, bytes } => {
                    put_entry(&mut tree, &path, bytes).map_err(|e| conflict(&path, &e))?
                }
            }
        }
        Ok(tree)
    }
}

fn put_entry(tree: &mut Tree, path: &VPath, bytes: Vec<u8>) -> std::result::Result<(), String> {
    match tree.check_put(path) {
        Ok(_) => tree
            .put(path, Arc::from(bytes))
            .map_err(|e| e.code().as_str().replace('_', " ")),
        Err(e) => Err(match e.code().as_str() {
            "permission_denied" => "the root cannot be a file".to_owned(),
            "is_directory" => "a directory has the same path".to_owned(),
            _ => "a parent is a file".to_owned(),
        }),
    }
}

/// Serde adapter: bytes as a standard base64 string.
mod base64_bytes {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        STANDARD
            .decode(text.as_bytes())
            .map_err(|e| serde::de::Error::custom(format!("invalid base64: {e}")))
    }
}
