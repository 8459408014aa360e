//! Model test: random operation sequences on two backends must agree.
//!
//! [`ops`] is a proptest strategy of operation sequences over a small path
//! alphabet (nested directories, names that are a file in one sequence and
//! a directory in another, hidden and unicode names), with text, CRLF,
//! binary and invalid UTF-8 content. [`run_pair`] runs one sequence on two
//! fixtures and demands equal results after every step (values equal;
//! errors equal in code *and* message) and equal trees at the end.
//! [`check`] drives it with shrinking, so a failure reports a minimal
//! sequence.
//!
//! ```no_run
//! use sandbay_testkit::{Fixture, model};
//! # fn make() -> Fixture { unimplemented!() }
//! model::check(64, || async { (make(), make()) });
//! ```

use std::fmt;
use std::future::Future;

use proptest::bool::weighted;
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use sandbay_core::{
    Backend, DirEntry, EditOutcome, EditRequest, EntryKind, Error, ErrorCode, GlobOutput,
    GlobRequest, GrepMode, GrepOutput, GrepRequest, ReadRequest, TextWindow, VPath,
};

use crate::Fixture;

/// Paths the operations pick from: nested, clashing, hidden, unicode.
pub const PATHS: &[&str] = &[
    "/",
    "/a",
    "/b",
    "/a/b",
    "/a/c.txt",
    "/a/b/c.txt",
    "/a/b/d.py",
    "/b.txt",
    "/a.txt",
    "/.h",
    "/a/.h.py",
    "/ü/x.py",
    "/a-c",
];

const TEXTS: &[&str] = &[
    "",
    "a",
    "ab\n",
    "a\nb\n",
    "a\r\nb\r\n",
    "héllo wörld\n",
    "x\ny\nx\n",
    "aaa",
    "a\rb\n",
];
const NEEDLES: &[&str] = &["a", "b", "ab", "\n", "é", "", "a\nb", "x", "\r\n", "aa"];
const GREP_PATTERNS: &[&str] = &[
    "a", "b", "b+", "^a", "é", "(", "a|b", "A", "a$", "x", "\\r", " ",
];
const GLOBS: &[&str] = &[
    "*",
    "*.py",
    "*.txt",
    "**/*",
    "a/*",
    "/a/**",
    "{a,b}.txt",
    ".h*",
    "[",
    "**",
    "c.*",
];
const GREP_GLOBS: &[&str] = &["*.py", "*.txt", "a/*", "**/c.*", "["];

/// One operation of a sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `write`.
    Write {
        /// Target.
        path: VPath,
        /// Text.
        content: String,
    },
    /// `upload` of a batch.
    Upload {
        /// Items.
        items: Vec<(VPath, Vec<u8>)>,
    },
    /// `edit`.
    Edit {
        /// Target.
        path: VPath,
        /// The request.
        request: EditRequest,
    },
    /// `delete`.
    Delete {
        /// Target.
        path: VPath,
    },
    /// `read`.
    Read {
        /// Target.
        path: VPath,
        /// The window.
        request: ReadRequest,
    },
    /// `ls`.
    Ls {
        /// Target.
        path: VPath,
    },
    /// `stat`.
    Stat {
        /// Target.
        path: VPath,
    },
    /// `glob`.
    Glob(GlobRequest),
    /// `grep`.
    Grep(GrepRequest),
    /// `download` of a batch.
    Download {
        /// Targets.
        paths: Vec<VPath>,
    },
}

fn path() -> impl Strategy<Value = VPath> {
    select(PATHS).prop_map(|p| VPath::parse(p).expect("alphabet paths are valid"))
}

/// A search base: mostly the root, so searches see the whole tree.
fn base() -> impl Strategy<Value = VPath> {
    prop_oneof![3 => Just(VPath::root()), 2 => path()]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        select(TEXTS).prop_map(String::from),
        "[ab\n\r é]{0,12}".prop_map(String::from),
    ]
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        text().prop_map(String::into_bytes),
        vec(any::<u8>(), 0..8),
        Just(vec![b'a', 0xff, b'\n']),
        Just(b"a\0b\n".to_vec()),
    ]
}

fn edit_request() -> impl Strategy<Value = EditRequest> {
    (select(NEEDLES), text(), any::<bool>()).prop_map(|(old, new, replace_all)| EditRequest {
        old: old.into(),
        new,
        replace_all,
    })
}

fn grep_request() -> impl Strategy<Value = GrepRequest> {
    let modes = select(
        &[
            GrepMode::FilesWithMatches,
            GrepMode::Content,
            GrepMode::Count,
        ][..],
    );
    (
        (
            select(GREP_PATTERNS),
            base(),
            weighted(0.25),
            weighted(0.25),
        ),
        (
            option::weighted(0.3, select(GREP_GLOBS)),
            modes,
            0..2usize,
            0..2usize,
        ),
        select(&[1usize, 2, 1000][..]),
    )
        .prop_map(
            |((pattern, path, literal, case_insensitive), (glob, mode, before, after), max)| {
                GrepRequest {
                    pattern: pattern.into(),
                    path,
                    literal,
                    case_insensitive,
                    glob: glob.map(String::from),
                    mode,
                    before,
                    after,
                    max_matches: max,
                }
            },
        )
}

fn glob_request() -> impl Strategy<Value = GlobRequest> {
    (select(GLOBS), base(), select(&[1usize, 2, 1000][..])).prop_map(|(pattern, path, limit)| {
        GlobRequest {
            pattern: pattern.into(),
            path,
            limit,
        }
    })
}

/// One random operation, writes weighted so that sequences build trees.
pub fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (path(), text()).prop_map(|(path, content)| Op::Write { path, content }),
        2 => vec((path(), bytes()), 1..3).prop_map(|items| Op::Upload { items }),
        3 => (path(), edit_request()).prop_map(|(path, request)| Op::Edit { path, request }),
        1 => path().prop_map(|path| Op::Delete { path }),
        2 => (path(), 0..4usize, 1..4usize)
            .prop_map(|(path, offset, limit)| Op::Read { path, request: ReadRequest { offset, limit } }),
        1 => path().prop_map(|path| Op::Ls { path }),
        1 => path().prop_map(|path| Op::Stat { path }),
        2 => glob_request().prop_map(Op::Glob),
        2 => grep_request().prop_map(Op::Grep),
        1 => vec(path(), 1..3).prop_map(|paths| Op::Download { paths }),
    ]
}

/// Sequences of up to `max_len` operations: a few writes and uploads
/// first (so searches have a tree to look at), then any operations.
pub fn ops(max_len: usize) -> impl Strategy<Value = Vec<Op>> {
    let max_len = max_len.max(2);
    let seed = prop_oneof![
        3 => (path(), text()).prop_map(|(path, content)| Op::Write { path, content }),
        1 => vec((path(), bytes()), 1..3).prop_map(|items| Op::Upload { items }),
    ];
    (
        vec(seed, 0..=(max_len / 4)),
        vec(op(), 1..=max_len - max_len / 4),
    )
        .prop_map(|(mut seed, rest)| {
            seed.extend(rest);
            seed
        })
}

/// An error reduced to what must agree between backends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The stable code.
    pub code: ErrorCode,
    /// The full message.
    pub message: String,
}

impl From<Error> for Failure {
    fn from(err: Error) -> Self {
        Failure {
            code: err.code(),
            message: err.to_string(),
        }
    }
}

/// What one operation gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `write` or `delete` succeeded.
    Done,
    /// `ls`.
    Entries(Vec<DirEntry>),
    /// `stat`.
    Entry(DirEntry),
    /// `read`.
    Window(TextWindow),
    /// `edit`.
    Edited(EditOutcome),
    /// `grep`.
    Grep(GrepOutput),
    /// `glob`.
    Glob(GlobOutput),
    /// `upload`, per item.
    Uploaded(Vec<Result<(), Failure>>),
    /// `download`, per item.
    Downloaded(Vec<Result<Vec<u8>, Failure>>),
}

/// Runs one operation.
pub async fn apply(backend: &dyn Backend, op: &Op) -> Result<Outcome, Failure> {
    let outcome = match op {
        Op::Write { path, content } => backend.write(path, content).await.map(|()| Outcome::Done),
        Op::Upload { items } => {
            let results = backend.upload(items.clone()).await;
            Ok(Outcome::Uploaded(
                results
                    .into_iter()
                    .map(|r| r.map_err(Failure::from))
                    .collect(),
            ))
        }
        Op::Edit { path, request } => backend.edit(path, request).await.map(Outcome::Edited),
        Op::Delete { path } => backend.delete(path).await.map(|()| Outcome::Done),
        Op::Read { path, request } => backend.read(path, *request).await.map(Outcome::Window),
        Op::Ls { path } => backend.ls(path).await.map(Outcome::Entries),
        Op::Stat { path } => backend.stat(path).await.map(Outcome::Entry),
        Op::Glob(request) => backend.glob(request).await.map(Outcome::Glob),
        Op::Grep(request) => backend.grep(request).await.map(Outcome::Grep),
        Op::Download { paths } => {
            let results = backend.download(paths).await;
            Ok(Outcome::Downloaded(
                results
                    .into_iter()
                    .map(|r| r.map_err(Failure::from))
                    .collect(),
            ))
        }
    };
    outcome.map_err(Failure::from)
}

/// One node of a [`dump`].
pub type DumpEntry = (VPath, EntryKind, Option<Vec<u8>>);

/// The whole tree: every entry below the root in listing order, with the
/// bytes of each file.
pub async fn dump(backend: &dyn Backend) -> Result<Vec<DumpEntry>, Failure> {
    let mut out = Vec::new();
    let mut pending = vec![VPath::root()];
    while let Some(dir) = pending.pop() {
        let entries = backend.ls(&dir).await?;
        for entry in entries.into_iter().rev() {
            match entry.kind {
                EntryKind::Dir => {
                    pending.push(entry.path.clone());
                    out.push((entry.path, EntryKind::Dir, None));
                }
                kind => {
                    let bytes = backend
                        .download(std::slice::from_ref(&entry.path))
                        .await
                        .pop()
                        .unwrap_or_else(|| {
                            Err(Error::NotFound {
                                path: entry.path.clone(),
                            })
                        })?;
                    out.push((entry.path, kind, Some(bytes)));
                }
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Where two backends disagreed.
#[derive(Debug, Clone)]
pub struct Divergence {
    /// Index of the operation, `None` for the final tree comparison.
    pub step: Option<usize>,
    /// The operation.
    pub op: Option<Op>,
    /// Names of the two backends.
    pub backends: (&'static str, &'static str),
    /// What the first backend gave.
    pub left: String,
    /// What the second backend gave.
    pub right: String,
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.step, &self.op) {
            (Some(step), Some(op)) => writeln!(f, "backends disagree at step {step}: {op:?}")?,
            _ => writeln!(f, "backends disagree on the final tree")?,
        }
        writeln!(f, "  {}: {}", self.backends.0, self.left)?;
        write!(f, "  {}: {}", self.backends.1, self.right)
    }
}

impl std::error::Error for Divergence {}

/// Runs `ops` on both fixtures, comparing every result and the final trees.
///
/// # Errors
/// The first [`Divergence`].
pub async fn run_pair(left: &Fixture, right: &Fixture, ops: &[Op]) -> Result<(), Divergence> {
    let backends = (left.backend.name(), right.backend.name());
    for (step, op) in ops.iter().enumerate() {
        let a = apply(left.backend.as_ref(), op).await;
        let b = apply(right.backend.as_ref(), op).await;
        if a != b {
            return Err(Divergence {
                step: Some(step),
                op: Some(op.clone()),
                backends,
                left: format!("{a:?}"),
                right: format!("{b:?}"),
            });
        }
        // errors must name no host path, on either side
        for (fx, outcome) in [(left, &a), (right, &b)] {
            if let Err(failure) = outcome {
                check_host_path(fx, &failure.message);
            }
        }
    }
    let a = dump(left.backend.as_ref()).await;
    let b = dump(right.backend.as_ref()).await;
    if a != b {
        return Err(Divergence {
            step: None,
            op: None,
            backends,
            left: format!("{a:?}"),
            right: format!("{b:?}"),
        });
    }
    Ok(())
}

fn check_host_path(fx: &Fixture, message: &str) {
    if let Some(root) = &fx.host_root {
        let root = root.display().to_string();
        assert!(
            !message.contains(&root),
            "an error message reveals the host root: {message}"
        );
    }
}

/// Runs `cases` random sequences (of up to 24 operations) through
/// [`run_pair`], each on a fresh pair of fixtures from `factory`, and
/// panics with a shrunk, minimal failing sequence on the first
/// divergence. `PROPTEST_CASES` in the environment overrides `cases`.
///
/// # Panics
/// On a divergence, with the minimal sequence and both results.
pub fn check<F, Fut>(cases: u32, factory: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = (Fixture, Fixture)>,
{
    let mut config = Config {
        failure_persistence: None,
        ..Config::default()
    };
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    let mut runner = TestRunner::new(config);
    let result = runner.run(&ops(24), |ops| {
        crate::block_on(async {
            let (left, right) = factory().await;
            run_pair(&left, &right, &ops).await
        })
        .map_err(|d| TestCaseError::fail(d.to_string()))
    });
    match result {
        Ok(()) => {}
        Err(TestError::Fail(reason, ops)) => {
            panic!("model test failed; minimal sequence:\n{ops:#?}\n{reason}")
        }
        Err(TestError::Abort(reason)) => panic!("model test aborted: {reason}"),
    }
}
