//! [`Arena`]: the host-side scene of an attack. The workspace root, a
//! directory *outside* it holding a secret, and the checks that nothing
//! crossed the line.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use sandbay_core::{Backend, Error, ErrorCode, Result, VPath};

use crate::Fixture;

/// What an attack may see and what it must never see or touch.
///
/// Created from a [`Fixture`] whose `host_root` is set. It makes a
/// directory next to the root (a sibling, so `../<name>` from the root
/// reaches it) named `sandbay-attack-outside-*`, fills it with files that
/// contain a unique secret marker (in contents *and* in one file name),
/// and removes it on drop.
pub struct Arena {
    backend: Arc<dyn Backend>,
    root: PathBuf,
    outside: tempfile::TempDir,
    secret: String,
    forbidden: Vec<String>,
}

impl Debug for Arena {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Arena")
            .field("backend", &self.backend.name())
            .field("root", &self.root)
            .field("outside", &self.outside.path())
            .finish_non_exhaustive()
    }
}

/// One entry of an [`OutsideState`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutsideEntry {
    /// A regular file: inode, modification time and content.
    File {
        /// Inode number (a replacement by rename changes it).
        ino: u64,
        /// Modification time.
        modified: Option<SystemTime>,
        /// The bytes.
        content: Vec<u8>,
    },
    /// A directory.
    Dir {
        /// Inode number.
        ino: u64,
    },
    /// A symlink and its target.
    Symlink(PathBuf),
    /// Anything else.
    Other,
}

/// Everything below the outside directory, by relative path.
pub type OutsideState = BTreeMap<PathBuf, OutsideEntry>;

impl Arena {
    /// Sets the scene for `fx`.
    ///
    /// # Panics
    /// If the fixture has no host root, or the outside directory cannot
    /// be made next to it.
    pub fn new(fx: &Fixture) -> Arena {
        let root = fx
            .host_root
            .clone()
            .expect("the attack suite needs a fixture with a host root");
        let parent = root.parent().expect("the host root has a parent");
        let outside = tempfile::Builder::new()
            .prefix("sandbay-attack-outside-")
            .tempdir_in(parent)
            .expect("a directory next to the host root");
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let secret = format!("SANDBAY-SECRET-{}-{nanos:x}", std::process::id());
        let out = outside.path();
        std::fs::create_dir_all(out.join("sub")).unwrap();
        std::fs::write(out.join("secret.txt"), format!("{secret}\ntick\n")).unwrap();
        std::fs::write(out.join("f.txt"), format!("{secret} tick\n")).unwrap();
        std::fs::write(out.join("victim.txt"), format!("{secret} victim\n")).unwrap();
        std::fs::write(out.join("sub/g.txt"), format!("{secret} g\n")).unwrap();
        std::fs::write(out.join(format!("only-outside-{secret}.txt")), "x\n").unwrap();
        let mut forbidden = Vec::new();
        for dir in [&root, &out.to_path_buf()] {
            forbidden.push(dir.display().to_string());
            if let Ok(real) = dir.canonicalize() {
                forbidden.push(real.display().to_string());
            }
            // a random directory name is as telling as the whole path
            // (short names could be ordinary virtual names: skip those)
            if let Some(name) = dir.file_name().map(|n| n.to_string_lossy().into_owned())
                && name.len() >= 8
            {
                forbidden.push(name);
            }
        }
        forbidden.sort();
        forbidden.dedup();
        Arena {
            backend: fx.backend.clone(),
            root,
            outside,
            secret,
            forbidden,
        }
    }

    /// The backend under attack.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// The workspace root on the host.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A host path below the root.
    pub fn host(&self, rel: &str) -> PathBuf {
        self.root.join(rel.trim_start_matches('/'))
    }

    /// The outside directory on the host.
    pub fn outside(&self) -> &Path {
        self.outside.path()
    }

    /// The outside directory as seen from the root: `../<name>`.
    pub fn outside_from_root(&self) -> String {
        let name = self.outside.path().file_name().expect("a named directory");
        format!("../{}", name.to_string_lossy())
    }

    /// The secret marker that must never come back.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// Parses a virtual path (test input is trusted).
    pub fn path(&self, path: &str) -> VPath {
        VPath::parse(path).unwrap_or_else(|e| panic!("test path {path:?}: {e}"))
    }

    /// A checker that can move into other tasks and threads.
    pub fn checker(&self) -> Checker {
        Checker {
            secret: self.secret.clone(),
            forbidden: self.forbidden.clone(),
        }
    }

    /// The state of everything below the outside directory.
    pub fn outside_state(&self) -> OutsideState {
        let mut state = OutsideState::new();
        let mut dirs = vec![PathBuf::new()];
        while let Some(rel) = dirs.pop() {
            let dir = self.outside.path().join(&rel);
            for entry in std::fs::read_dir(&dir).expect("the outside directory is readable") {
                let entry = entry.unwrap();
                let rel = rel.join(entry.file_name());
                let path = entry.path();
                let meta = std::fs::symlink_metadata(&path).unwrap();
                let item = if meta.file_type().is_symlink() {
                    OutsideEntry::Symlink(std::fs::read_link(&path).unwrap())
                } else if meta.is_dir() {
                    dirs.push(rel.clone());
                    OutsideEntry::Dir { ino: meta.ino() }
                } else if meta.is_file() {
                    OutsideEntry::File {
                        ino: meta.ino(),
                        modified: meta.modified().ok(),
                        content: std::fs::read(&path).unwrap(),
                    }
                } else {
                    OutsideEntry::Other
                };
                state.insert(rel, item);
            }
        }
        state
    }

    /// Asserts that nothing outside was created, removed or changed since
    /// `before` was taken.
    #[track_caller]
    pub fn assert_outside_unchanged(&self, before: &OutsideState, what: &str) {
        let after = self.outside_state();
        assert!(
            before == &after,
            "{what}: the directory outside the workspace changed:\nbefore: {before:?}\nafter:  {after:?}"
        );
    }

    /// Asserts that a result leaks nothing: an `Ok` value shows no secret
    /// and no host path, an error names no host path.
    #[track_caller]
    pub fn assert_clean<T: Debug>(&self, result: &Result<T>, what: &str) {
        if let Some(problem) = self.checker().problem(result) {
            panic!("{what}: {problem}");
        }
    }

    /// Asserts that `result` failed with `code` and leaks nothing.
    #[track_caller]
    pub fn expect_err<T: Debug>(&self, result: Result<T>, code: ErrorCode, what: &str) -> Error {
        self.assert_clean(&result, what);
        match result {
            Ok(v) => panic!("{what}: expected `{code}`, got Ok({v:?})"),
            Err(e) => {
                assert_eq!(e.code(), code, "{what}: wrong code; the error was: {e}");
                e
            }
        }
    }

    /// Asserts that `result` succeeded and leaks nothing.
    #[track_caller]
    pub fn expect_ok<T: Debug>(&self, result: Result<T>, what: &str) -> T {
        self.assert_clean(&result, what);
        result.unwrap_or_else(|e| panic!("{what}: expected success, got: {e}"))
    }
}

/// The leak checks of an [`Arena`], owned, for other tasks and threads.
#[derive(Debug, Clone)]
pub struct Checker {
    secret: String,
    forbidden: Vec<String>,
}

impl Checker {
    /// What is wrong with a result, if anything: the secret in an `Ok`
    /// value or an error, or a host path in either.
    pub fn problem<T: Debug>(&self, result: &Result<T>) -> Option<String> {
        let shown = match result {
            Ok(value) => format!("{value:?}"),
            Err(err) => format!("{err} {err:?}"),
        };
        self.problem_in(&shown)
    }

    /// The same check on any text.
    pub fn problem_in(&self, shown: &str) -> Option<String> {
        if shown.contains(&self.secret) {
            return Some(format!("the outside secret came back: {}", shorten(shown)));
        }
        self.forbidden
            .iter()
            .find(|form| shown.contains(form.as_str()))
            .map(|form| format!("a host path ({form}) shows: {}", shorten(shown)))
    }

    /// Bytes (e.g. a download) must not contain the secret.
    pub fn bytes_problem(&self, bytes: &[u8]) -> Option<String> {
        let needle = self.secret.as_bytes();
        bytes
            .windows(needle.len())
            .any(|w| w == needle)
            .then(|| "the outside secret came back in downloaded bytes".to_string())
    }
}

fn shorten(s: &str) -> String {
    if s.len() <= 400 {
        return s.to_string();
    }
    let mut end = 400;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
