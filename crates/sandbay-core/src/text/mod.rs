//! The shared text rules. Every backend calls these, so results agree
//! byte for byte whatever stores the files.
//!
//! # Policies
//!
//! * **Text** means valid UTF-8 without NUL bytes ([`is_text`]). `read` and
//!   `edit` refuse anything else with `binary_file`; `grep` skips it.
//! * **Lines** are split on `\n`; a `\r` before it is not part of the line.
//!   A last line without `\n` is a line; an empty file has none.
//! * **Hidden files** (names starting with `.`) are ordinary files: `ls`,
//!   `glob` and `grep` all include them, and `*` matches a leading dot.
//! * **`.gitignore`** is not honoured: the workspace belongs to the agent,
//!   and a search that silently skips files is harder to reason about.
//! * **Symlinks** are never followed by `glob` and `grep` (no loops, no
//!   double counting); `read`, `stat`, `edit` follow links that stay inside.
//! * **Ordering**: `ls` sorts by name, `glob` and `grep` by full path,
//!   byte order, so every backend returns the same sequence.

mod edit;
mod glob;
mod grep;
mod window;

pub use edit::{apply_edit, uses_crlf};
pub use glob::{GlobMatcher, finish_glob};
pub use grep::{
    GrepPlan, GrepSearch, MAX_CONTEXT_LINES, MAX_GREP_LINE_BYTES, MAX_GREP_OUTPUT_BYTES,
};
pub use window::{Utf8Validator, window_lines, window_slice, window_text};

/// Whether `bytes` is text in sandbay's sense: valid UTF-8, no NUL byte.
///
/// ```
/// assert!(sandbay_core::text::is_text("héllo\n".as_bytes()));
/// assert!(!sandbay_core::text::is_text(b"a\0b"));
/// assert!(!sandbay_core::text::is_text(&[0xff, 0xfe]));
/// ```
pub fn is_text(bytes: &[u8]) -> bool {
    !bytes.contains(&0) && std::str::from_utf8(bytes).is_ok()
}
