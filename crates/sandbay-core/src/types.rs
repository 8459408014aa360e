//! Request and result types of the contract (all serde).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::lines::Lines;
use crate::path::VPath;

/// Default number of lines a [`ReadRequest`] returns.
pub const DEFAULT_READ_LIMIT: usize = 2000;
/// Default cap on the bytes of one read window (lines beyond it are left
/// for the next window; a single longer line is cut).
pub const DEFAULT_WINDOW_BYTES: usize = 256 * 1024;
/// Default cap on the size of a file that `edit` and `grep` load whole.
pub const DEFAULT_MAX_TEXT_FILE_BYTES: u64 = 16 * 1024 * 1024;
/// Default cap on the number of paths `glob` returns.
pub const DEFAULT_GLOB_LIMIT: usize = 1000;
/// Default cap on the number of matching lines `grep` returns.
pub const DEFAULT_GREP_LIMIT: usize = 1000;

/// What kind of filesystem object an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (not followed by `ls`, `glob` or `grep`).
    Symlink,
    /// Anything else: FIFO, socket, device. Never opened.
    Other,
}

/// One entry of a listing, or the result of `stat`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirEntry {
    /// Full virtual path of the entry.
    pub path: VPath,
    /// What it is.
    pub kind: EntryKind,
    /// Size in bytes for files (the link length for symlinks, 0 for directories).
    pub size: u64,
}

/// Which lines of a text file to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadRequest {
    /// 0-based index of the first line to return.
    pub offset: usize,
    /// Maximum number of lines to return.
    pub limit: usize,
}

impl Default for ReadRequest {
    fn default() -> Self {
        ReadRequest {
            offset: 0,
            limit: DEFAULT_READ_LIMIT,
        }
    }
}

/// A window of lines from a text file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextWindow {
    /// 0-based index of the first line in `lines`.
    pub offset: usize,
    /// The lines, without their terminators (`\n` or `\r\n`).
    pub lines: Lines,
    /// Total number of lines in the file (a final line without `\n` counts).
    pub total_lines: usize,
    /// Where the next window starts, if lines remain after this one.
    pub next_offset: Option<usize>,
    /// Whether a line was cut because it alone exceeded the window budget.
    pub cut_lines: bool,
}

/// An exact-string replacement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EditRequest {
    /// The text to find. Must not be empty.
    pub old: String,
    /// The replacement.
    pub new: String,
    /// Replace every occurrence; otherwise `old` must occur exactly once.
    #[serde(default)]
    pub replace_all: bool,
}

/// What an edit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EditOutcome {
    /// How many occurrences were replaced.
    pub replacements: usize,
}

/// How grep reports its findings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrepMode {
    /// Only the paths of files with at least one matching line.
    #[default]
    FilesWithMatches,
    /// Matching lines with line numbers (and optional context).
    Content,
    /// Matching-line count per file.
    Count,
}

/// A search over the text files below a path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrepRequest {
    /// A regular expression (Rust `regex` syntax, linear time), or a
    /// literal string when `literal` is set.
    pub pattern: String,
    /// File or directory to search; the root by default.
    pub path: VPath,
    /// Treat the pattern as a literal string.
    #[serde(default)]
    pub literal: bool,
    /// Match case-insensitively.
    #[serde(default)]
    pub case_insensitive: bool,
    /// Only search files matching this glob (same rules as [`GlobRequest`]).
    #[serde(default)]
    pub glob: Option<String>,
    /// What to report.
    #[serde(default)]
    pub mode: GrepMode,
    /// Context lines before each match (content mode).
    #[serde(default)]
    pub before: usize,
    /// Context lines after each match (content mode).
    #[serde(default)]
    pub after: usize,
    /// Stop after this many matching lines across all files.
    pub max_matches: usize,
}

impl GrepRequest {
    /// A request for `pattern` below the root with default settings.
    pub fn new(pattern: impl Into<String>) -> Self {
        GrepRequest {
            pattern: pattern.into(),
            path: VPath::root(),
            literal: false,
            case_insensitive: false,
            glob: None,
            mode: GrepMode::default(),
            before: 0,
            after: 0,
            max_matches: DEFAULT_GREP_LIMIT,
        }
    }
}

/// One line reported by grep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrepLine {
    /// 1-based line number.
    pub line_number: u64,
    /// The line without its terminator.
    pub text: String,
    /// `true` for a matching line, `false` for a context line.
    pub is_match: bool,
}

/// Findings in one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrepFile {
    /// The file.
    pub path: VPath,
    /// Number of matching lines found in it (within the overall limit).
    pub matches: usize,
    /// The lines (content mode only; empty otherwise).
    pub lines: Vec<GrepLine>,
}

/// Result of a grep, files in path order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GrepOutput {
    /// Files with at least one match, sorted by path.
    pub files: Vec<GrepFile>,
    /// Whether the match limit cut the search short.
    pub truncated: bool,
}

/// A glob search for regular files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlobRequest {
    /// The pattern (see [`crate::text::GlobMatcher`] for the syntax).
    pub pattern: String,
    /// Directory to search below; the root by default.
    pub path: VPath,
    /// Maximum number of paths to return.
    pub limit: usize,
}

impl GlobRequest {
    /// A request for `pattern` below the root with the default limit.
    pub fn new(pattern: impl Into<String>) -> Self {
        GlobRequest {
            pattern: pattern.into(),
            path: VPath::root(),
            limit: DEFAULT_GLOB_LIMIT,
        }
    }
}

/// Result of a glob.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GlobOutput {
    /// Matching regular files, sorted by path.
    pub paths: Vec<VPath>,
    /// Whether more matches existed than `limit`.
    pub truncated: bool,
}

/// A command to run in a sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecRequest {
    /// A shell command line, run with `sh -c`.
    pub command: String,
    /// Time limit for the whole process tree.
    pub timeout: Duration,
    /// Extra environment variables (the environment is otherwise scrubbed).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Bytes fed to standard input (closed when empty).
    #[serde(default)]
    pub stdin: Vec<u8>,
    /// Working directory inside the workspace; the root by default.
    #[serde(default)]
    pub workdir: Option<VPath>,
}

impl ExecRequest {
    /// Default time limit of a command.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

    /// A command with the default timeout and nothing else set.
    pub fn new(command: impl Into<String>) -> Self {
        ExecRequest {
            command: command.into(),
            timeout: Self::DEFAULT_TIMEOUT,
            env: BTreeMap::new(),
            stdin: Vec::new(),
            workdir: None,
        }
    }

    /// Sets the time limit.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// What a command did.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ExecOutput {
    /// Captured standard output (capped).
    pub stdout: Vec<u8>,
    /// Captured standard error (capped).
    pub stderr: Vec<u8>,
    /// Exit code, `None` when killed by a signal or the timeout.
    pub exit_code: Option<i32>,
    /// Whether the time limit killed the process tree.
    pub timed_out: bool,
    /// Whether output beyond the cap was dropped.
    pub truncated: bool,
    /// Wall time of the command.
    pub duration: Duration,
    /// Notes from the sandbox itself, never from the command: what it did
    /// around the run (files it could not keep, limits it applied). They
    /// travel apart from stdout and stderr, so a command cannot forge one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// How strongly commands are isolated from the host and each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Isolation {
    /// Commands cannot run at all.
    None,
    /// Own process group, rlimits, scrubbed environment, unprivileged uid.
    Limits,
    /// `Limits` plus user, PID, mount, network, IPC and UTS namespaces.
    Namespaces,
    /// A container with its own kernel-enforced limits.
    Container,
}

impl Isolation {
    /// A short name, e.g. `"namespaces"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Isolation::None => "none",
            Isolation::Limits => "limits",
            Isolation::Namespaces => "namespaces",
            Isolation::Container => "container",
        }
    }
}

/// What a backend can do, declared once per backend.
///
/// Anything not declared is `false`, so tests and callers can rely on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// The backend is a [`crate::Sandbox`] and can run commands.
    pub execute: bool,
    /// The isolation level commands run with.
    pub isolation: Isolation,
    /// Files can be symbolic links (the fs and Docker backends).
    pub symlinks: bool,
    /// Files outlive the process.
    pub persistent: bool,
    /// The whole workspace can be snapshotted and restored.
    pub snapshot: bool,
    /// The disk quota in force, if any (`None`: the workspace may fill
    /// whatever disk it is on).
    pub quota: Option<DiskQuota>,
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities {
            execute: false,
            isolation: Isolation::None,
            symlinks: false,
            persistent: false,
            snapshot: false,
            quota: None,
        }
    }
}

/// A workspace's disk quota as a backend enforces it (see
/// [`Capabilities::quota`]). A write over it fails with `quota_exceeded`
/// and changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskQuota {
    /// Bytes the workspace may hold.
    pub bytes: u64,
    /// Files and directories it may hold, when that is capped too.
    pub files: Option<u64>,
    /// Commands are held to the quota while they run (their writes fail
    /// with "no space left" at the quota), not only the file API. `false`
    /// means only the file API counts: a command can still fill the
    /// host's disk.
    pub commands: bool,
}

/// Per-backend size limits for text operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Largest file `edit` and `grep` load whole; `grep` skips larger files.
    pub max_text_file_bytes: u64,
    /// Budget of one read window in bytes.
    pub max_window_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_text_file_bytes: DEFAULT_MAX_TEXT_FILE_BYTES,
            max_window_bytes: DEFAULT_WINDOW_BYTES,
        }
    }
}
