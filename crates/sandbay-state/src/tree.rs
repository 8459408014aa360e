//! The in-memory directory tree: explicit directory nodes, files as
//! shared byte buffers, every lookup answering with the same error a
//! POSIX filesystem would give for the requested path.

use std::collections::BTreeMap;
use std::sync::Arc;

use sandbay_core::{DirEntry, EntryKind, Error, Result, VPath};

/// A file: its virtual path (kept so listings and searches never re-parse)
/// and its bytes, shared so readers can work outside the lock.
#[derive(Debug, Clone)]
pub(crate) struct FileNode {
    pub(crate) path: VPath,
    pub(crate) data: Arc<[u8]>,
    /// The same bytes as a string when the file is text (checked once, on
    /// write, so reads and greps skip the check); shares `data`'s buffer.
    pub(crate) text: Option<Arc<str>>,
}

impl FileNode {
    fn with_content(path: VPath, content: Content) -> FileNode {
        FileNode {
            path,
            data: content.data,
            text: content.text,
        }
    }

    fn set_content(&mut self, content: Content) {
        (self.data, self.text) = (content.data, content.text);
    }
}

/// The bytes of a file and, when they are text, one `Arc<str>` sharing
/// their buffer: what a [`FileNode`] holds, built before the lock is taken.
#[derive(Debug, Clone)]
pub(crate) struct Content {
    pub(crate) data: Arc<[u8]>,
    pub(crate) text: Option<Arc<str>>,
}

impl Content {
    /// Bytes of unknown kind: checked for text (UTF-8 without NUL).
    pub(crate) fn from_bytes(data: Arc<[u8]>) -> Content {
        if !sandbay_core::text::is_text(&data) {
            return Content { data, text: None };
        }
        match std::str::from_utf8(&data) {
            Ok(s) => Self::from_text(s),
            Err(_) => Content { data, text: None },
        }
    }

    /// A string, UTF-8 already: one copy, and only the NUL check.
    pub(crate) fn from_text(s: &str) -> Content {
        let text: Arc<str> = Arc::from(s);
        Self::shared(text)
    }

    /// The result of an edit of text (which holds no NUL byte) that
    /// inserted none: one copy, and no scan for NUL.
    pub(crate) fn from_edited_text(s: &str) -> Content {
        let text: Arc<str> = Arc::from(s);
        debug_assert!(!text.as_bytes().contains(&0));
        Content {
            data: Arc::from(text.clone()),
            text: Some(text),
        }
    }

    fn shared(text: Arc<str>) -> Content {
        if text.as_bytes().contains(&0) {
            return Content {
                data: Arc::from(text),
                text: None,
            };
        }
        Content {
            data: Arc::from(text.clone()),
            text: Some(text),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.data.len()
    }
}

/// A directory with its children, sorted by name in byte order.
#[derive(Debug, Clone)]
pub(crate) struct DirNode {
    pub(crate) path: VPath,
    pub(crate) children: BTreeMap<String, Node>,
}

/// One node of the tree.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    File(FileNode),
    Dir(DirNode),
}

impl Node {
    /// The listing entry of this node.
    pub(crate) fn entry(&self) -> DirEntry {
        match self {
            Node::File(f) => DirEntry {
                path: f.path.clone(),
                kind: EntryKind::File,
                size: f.data.len() as u64,
            },
            Node::Dir(d) => DirEntry {
                path: d.path.clone(),
                kind: EntryKind::Dir,
                size: 0,
            },
        }
    }

    /// Total bytes of the files in this subtree.
    fn bytes(&self) -> u64 {
        match self {
            Node::File(f) => f.data.len() as u64,
            Node::Dir(d) => d.children.values().map(Node::bytes).sum(),
        }
    }

    /// Appends every file of this subtree (in name order, not path order).
    pub(crate) fn collect_files<'a>(&'a self, out: &mut Vec<&'a FileNode>) {
        match self {
            Node::File(f) => out.push(f),
            Node::Dir(d) => d.children.values().for_each(|c| c.collect_files(out)),
        }
    }

    /// Visits every node of this subtree, the node itself first.
    pub(crate) fn visit<'a>(&'a self, f: &mut impl FnMut(&'a Node)) {
        f(self);
        if let Node::Dir(d) = self {
            d.children.values().for_each(|c| c.visit(f));
        }
    }
}

/// The parent components of a path and its last one (`None` for the
/// root), without collecting them.
fn split_last(path: &VPath) -> Option<(impl Iterator<Item = &str>, &str)> {
    let rel = path.relative();
    if rel.is_empty() {
        return None;
    }
    let (parents, last) = rel.rsplit_once('/').unwrap_or(("", rel));
    Some((parents.split('/').filter(|c| !c.is_empty()), last))
}

/// The refusal for writing or deleting the workspace root (the same
/// fixed reason as the disk backend's).
pub(crate) fn root_refused(path: &VPath) -> Error {
    Error::PermissionDenied {
        path: path.clone(),
        reason: "the workspace root itself cannot be changed".into(),
    }
}

/// A whole workspace: the root directory and the running byte total.
#[derive(Debug, Clone)]
pub(crate) struct Tree {
    root: Node,
    total_bytes: u64,
}

impl Default for Tree {
    fn default() -> Self {
        Tree {
            root: Node::Dir(DirNode {
                path: VPath::root(),
                children: BTreeMap::new(),
            }),
            total_bytes: 0,
        }
    }
}

impl Tree {
    /// Sum of the sizes of all files.
    pub(crate) fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// The root node.
    pub(crate) fn root(&self) -> &Node {
        &self.root
    }

    /// Looks a path up. A file met on the way gives `not_a_directory`, a
    /// missing component `not_found`; both name the requested path.
    pub(crate) fn get(&self, path: &VPath) -> Result<&Node> {
        let mut node = &self.root;
        for name in path.components() {
            let Node::Dir(dir) = node else {
                return Err(Error::NotADirectory { path: path.clone() });
            };
            node = dir
                .children
                .get(name)
                .ok_or_else(|| Error::NotFound { path: path.clone() })?;
        }
        Ok(node)
    }

    /// Checks that a file can be stored at `path` and returns the size of
    /// the file it would replace (0 if none). Changes nothing.
    ///
    /// # Errors
    /// `permission_denied` for the root, `not_a_directory` when a parent is
    /// a file, `is_directory` when `path` is a directory.
    pub(crate) fn check_put(&self, path: &VPath) -> Result<u64> {
        let Some((parents, last)) = split_last(path) else {
            return Err(root_refused(path));
        };
        let mut node = &self.root;
        for name in parents {
            match node {
                Node::Dir(d) => match d.children.get(name) {
                    Some(child) => node = child,
                    None => return Ok(0), // the rest of the chain will be created
                },
                Node::File(_) => return Err(Error::NotADirectory { path: path.clone() }),
            }
        }
        match node {
            Node::File(_) => Err(Error::NotADirectory { path: path.clone() }),
            Node::Dir(d) => match d.children.get(last) {
                Some(Node::Dir(_)) => Err(Error::IsDirectory { path: path.clone() }),
                Some(Node::File(f)) => Ok(f.data.len() as u64),
                None => Ok(0),
            },
        }
    }

    /// Stores a file, creating missing parent directories. Call
    /// [`Tree::check_put`] first: this re-checks but a failure here after
    /// a passed check cannot happen, so nothing is ever half-done.
    pub(crate) fn put(&mut self, path: &VPath, data: Arc<[u8]>) -> Result<()> {
        let old = self.check_put(path)?;
        self.put_checked(path, old, Content::from_bytes(data))
    }

    /// [`Tree::put`] after [`Tree::check_put`] said `old` for this path
    /// under the same lock (nothing changed since), without checking again.
    pub(crate) fn put_checked(&mut self, path: &VPath, old: u64, content: Content) -> Result<()> {
        let Some((parents, last)) = split_last(path) else {
            return Err(root_refused(path));
        };
        let mut dir = match &mut self.root {
            Node::Dir(d) => d,
            Node::File(_) => unreachable!("the root is always a directory"),
        };
        for name in parents {
            if !dir.children.contains_key(name) {
                let child_path = dir
                    .path
                    .child(name)
                    .ok_or_else(|| Error::NotFound { path: path.clone() })?;
                dir.children.insert(
                    (name).to_owned(),
                    Node::Dir(DirNode {
                        path: child_path,
                        children: BTreeMap::new(),
                    }),
                );
            }
            dir = match dir.children.get_mut(name) {
                Some(Node::Dir(d)) => d,
                _ => return Err(Error::NotADirectory { path: path.clone() }),
            };
        }
        let new = content.len() as u64;
        // replace the node of an existing file in place (no new key)
        if let Some(Node::File(f)) = dir.children.get_mut(last) {
            f.set_content(content);
        } else {
            dir.children.insert(
                (last).to_owned(),
                Node::File(FileNode::with_content(path.clone(), content)),
            );
        }
        self.total_bytes = self.total_bytes - old + new;
        Ok(())
    }

    /// Creates a directory and its parents (used by snapshot restore).
    ///
    /// # Errors
    /// `not_a_directory` if the path or a parent is a file.
    pub(crate) fn mkdir_all(&mut self, path: &VPath) -> Result<()> {
        let mut dir = match &mut self.root {
            Node::Dir(d) => d,
            Node::File(_) => unreachable!("the root is always a directory"),
        };
        for name in path.components() {
            if !dir.children.contains_key(name) {
                let child_path = dir
                    .path
                    .child(name)
                    .ok_or_else(|| Error::NotFound { path: path.clone() })?;
                dir.children.insert(
                    name.to_owned(),
                    Node::Dir(DirNode {
                        path: child_path,
                        children: BTreeMap::new(),
                    }),
                );
            }
            dir = match dir.children.get_mut(name) {
                Some(Node::Dir(d)) => d,
                _ => return Err(Error::NotADirectory { path: path.clone() }),
            };
        }
        Ok(())
    }

    /// Replaces the bytes of an existing file if they are still `expected`
    /// (pointer equality). Returns whether the swap happened.
    pub(crate) fn swap_file(
        &mut self,
        path: &VPath,
        expected: &Arc<[u8]>,
        content: Content,
    ) -> bool {
        let mut node = &mut self.root;
        for name in path.components() {
            let Node::Dir(dir) = node else { return false };
            match dir.children.get_mut(name) {
                Some(child) => node = child,
                None => return false,
            }
        }
        match node {
            Node::File(f) if Arc::ptr_eq(&f.data, expected) => {
                let (old, new) = (f.data.len() as u64, content.len() as u64);
                f.set_content(content);
                self.total_bytes = self.total_bytes - old + new;
                true
            }
            _ => false,
        }
    }

    /// Removes a file or a whole directory subtree.
    ///
    /// # Errors
    /// `permission_denied` for the root, `not_found`, `not_a_directory`.
    pub(crate) fn remove(&mut self, path: &VPath) -> Result<()> {
        let names: Vec<&str> = path.components().collect();
        let Some((last, parents)) = names.split_last() else {
            return Err(root_refused(path));
        };
        let mut node = &mut self.root;
        for name in parents {
            let Node::Dir(dir) = node else {
                return Err(Error::NotADirectory { path: path.clone() });
            };
            node = dir
                .children
                .get_mut(*name)
                .ok_or_else(|| Error::NotFound { path: path.clone() })?;
        }
        let Node::Dir(dir) = node else {
            return Err(Error::NotADirectory { path: path.clone() });
        };
        let removed = dir
            .children
            .remove(*last)
            .ok_or_else(|| Error::NotFound { path: path.clone() })?;
        self.total_bytes -= removed.bytes();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> VPath {
        VPath::parse(s).unwrap()
    }

    fn bytes(s: &str) -> Arc<[u8]> {
        Arc::from(s.as_bytes())
    }

    #[test]
    fn put_creates_parents_and_counts_bytes() {
        let mut t = Tree::default();
        t.put(&p("/a/b/c.txt"), bytes("hello")).unwrap();
        t.put(&p("/a/d.txt"), bytes("xy")).unwrap();
        assert_eq!(t.total_bytes(), 7);
        assert!(matches!(t.get(&p("/a/b")).unwrap(), Node::Dir(_)));
        t.put(&p("/a/d.txt"), bytes("x")).unwrap();
        assert_eq!(t.total_bytes(), 6);
        t.remove(&p("/a/b")).unwrap();
        assert_eq!(t.total_bytes(), 1);
        assert!(matches!(t.get(&p("/a")).unwrap(), Node::Dir(_)));
    }

    #[test]
    fn conflicts_name_the_requested_path() {
        let mut t = Tree::default();
        t.put(&p("/f"), bytes("x")).unwrap();
        let err = t.put(&p("/f/g/h"), bytes("y")).unwrap_err();
        assert_eq!(err.code().as_str(), "not_a_directory");
        assert!(err.to_string().starts_with("/f/g/h:"), "{err}");
        assert_eq!(
            t.get(&p("/f/g")).unwrap_err().code().as_str(),
            "not_a_directory"
        );
        assert_eq!(
            t.remove(&p("/f/g")).unwrap_err().code().as_str(),
            "not_a_directory"
        );
        t.put(&p("/d/x"), bytes("")).unwrap();
        assert_eq!(
            t.put(&p("/d"), bytes("")).unwrap_err().code().as_str(),
            "is_directory"
        );
        assert_eq!(
            t.remove(&VPath::root()).unwrap_err().code().as_str(),
            "permission_denied"
        );
        assert_eq!(
            t.check_put(&VPath::root()).unwrap_err().code().as_str(),
            "permission_denied"
        );
        assert_eq!(
            t.mkdir_all(&p("/f/z")).unwrap_err().code().as_str(),
            "not_a_directory"
        );
    }

    #[test]
    fn swap_only_when_unchanged() {
        let mut t = Tree::default();
        t.put(&p("/x"), bytes("one")).unwrap();
        // the buffer the tree holds now (text is re-shared on store)
        let first = match t.get(&p("/x")).unwrap() {
            Node::File(f) => f.data.clone(),
            Node::Dir(_) => unreachable!("a file was put"),
        };
        assert!(t.swap_file(&p("/x"), &first, Content::from_text("three")));
        assert_eq!(t.total_bytes(), 5);
        assert!(!t.swap_file(&p("/x"), &first, Content::from_text("four")));
        assert!(!t.swap_file(&p("/missing"), &first, Content::from_text("four")));
    }
}
