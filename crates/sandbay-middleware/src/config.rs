//! [`ToolConfig`]: the limits and defaults of the tools.

use std::time::Duration;

use sandbay_core::{DEFAULT_GLOB_LIMIT, DEFAULT_GREP_LIMIT, DEFAULT_READ_LIMIT, VPath};

/// Limits and defaults of the agent tools.
///
/// The defaults suit a model with a context window of about 100k tokens;
/// tool descriptions are generated from these values, so what the model is
/// told always matches what the tools do.
///
/// ```
/// use std::time::Duration;
/// use sandbay_middleware::ToolConfig;
///
/// let config = ToolConfig {
///     max_output_bytes: 16 * 1024,
///     max_timeout: Duration::from_secs(120),
///     ..ToolConfig::default()
/// };
/// assert_eq!(config.read_default_limit, 2000);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolConfig {
    /// Largest text one tool call returns, in bytes. `read_file` stops
    /// earlier and says where to continue; a larger result of the other
    /// tools is saved under [`ToolConfig::results_dir`] and the model gets
    /// a preview and the path.
    pub max_output_bytes: usize,
    /// Lines shown from the start of a result that was saved to a file.
    pub preview_head_lines: usize,
    /// Lines shown from the end of a result that was saved to a file.
    pub preview_tail_lines: usize,
    /// Longest line shown whole, in characters; longer lines are cut with
    /// a marker.
    pub max_line_chars: usize,
    /// Lines `read_file` returns when the model gives no `limit`.
    pub read_default_limit: usize,
    /// Paths `glob` returns at most.
    pub glob_limit: usize,
    /// Matches `grep` returns when the model gives no `max_matches`
    /// (matching lines; matching files in `files_with_matches` mode).
    pub grep_default_matches: usize,
    /// The most matches `grep` returns, whatever the model asks.
    pub grep_max_matches: usize,
    /// Time limit of `execute` when the model gives no `timeout`.
    pub default_timeout: Duration,
    /// The longest time limit `execute` accepts; a larger request is
    /// lowered to it, and the result says so.
    pub max_timeout: Duration,
    /// Where oversized results are saved. `glob` and `grep` leave this
    /// directory out unless the search starts inside it. The 32 most
    /// recently saved results are kept (an index file, `.order`, records
    /// their order); older ones are deleted. Other files here are never
    /// deleted.
    pub results_dir: VPath,
}

impl Default for ToolConfig {
    fn default() -> Self {
        ToolConfig {
            max_output_bytes: 32 * 1024,
            preview_head_lines: 20,
            preview_tail_lines: 10,
            max_line_chars: 2000,
            read_default_limit: DEFAULT_READ_LIMIT,
            glob_limit: DEFAULT_GLOB_LIMIT,
            grep_default_matches: DEFAULT_GREP_LIMIT,
            grep_max_matches: 10 * DEFAULT_GREP_LIMIT,
            default_timeout: Duration::from_secs(60),
            max_timeout: Duration::from_secs(600),
            results_dir: default_results_dir(),
        }
    }
}

/// `/.sandbay/results`, where oversized results go by default.
pub fn default_results_dir() -> VPath {
    VPath::root()
        .join(".sandbay/results")
        .unwrap_or_else(|_| VPath::root())
}
