//! Hints for failed edits: where a near match of `old_string` is, or
//! where its several occurrences are.
//!
//! Every hint does bounded work: the occurrence lines of an ambiguous
//! edit are found in one pass over the file, and the search for a passage
//! that differs only in whitespace gives up (with the generic hint) after
//! [`MAX_WHITESPACE_WORK`] bytes of comparisons. [`off_runtime`] runs the
//! hint of a large file on tokio's blocking pool.

use std::borrow::Cow;

use sandbay_core::text::uses_crlf;

use crate::format::{count, cut_line, numbered};

/// Most lines of a near match quoted in a hint.
const MAX_QUOTED_LINES: usize = 12;
/// Most occurrence line numbers listed for an ambiguous edit.
const MAX_LISTED_LINES: usize = 10;
/// Quoted lines are cut to this many characters.
const QUOTE_LINE_CHARS: usize = 200;
/// Bytes of line comparisons the whitespace-insensitive search may do
/// before it gives up: it checks every line as a possible start, and
/// `old_string`'s lines against the following ones.
const MAX_WHITESPACE_WORK: usize = 32 << 20;
/// Files larger than this get their hint built on tokio's blocking pool.
const INLINE_HINT_BYTES: usize = 64 * 1024;

/// Runs `build` (a hint over a file of `size` bytes) on tokio's blocking
/// pool when the file is large and a tokio runtime is running, so a big
/// file never stalls the async threads; inline otherwise. `None` if the
/// blocking task failed.
pub(crate) async fn off_runtime<T, F>(size: usize, build: F) -> Option<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    if size > INLINE_HINT_BYTES
        && let Ok(handle) = tokio::runtime::Handle::try_current()
    {
        return handle.spawn_blocking(build).await.ok();
    }
    Some(build())
}

/// A hint for an `old_string` that was not found in `content`.
///
/// Checks, in order: Windows line endings in `old_string` against a `\n`
/// file; whitespace at its end or start that the file lacks; and a
/// passage that matches when all whitespace is ignored (indentation,
/// tabs against spaces, trailing spaces), which is quoted with line
/// numbers so the model can copy it exactly.
pub(crate) fn no_match_hint(content: &str, old: &str) -> String {
    if old.contains("\r\n") && !uses_crlf(content) && content.contains(&old.replace("\r\n", "\n")) {
        return "old_string has Windows line endings (\\r\\n) but the file uses \\n; \
use \\n line endings in old_string."
            .into();
    }
    let trimmed_end = old.trim_end();
    if trimmed_end != old && !trimmed_end.is_empty() && content.contains(trimmed_end) {
        return "the text is in the file, but not with the whitespace or newline at the end of \
old_string; remove that trailing whitespace from old_string (and new_string)."
            .into();
    }
    let trimmed_start = old.trim_start();
    if trimmed_start != old && !trimmed_start.is_empty() && content.contains(trimmed_start) {
        return "the text is in the file, but not with the whitespace at the start of old_string; \
remove that leading whitespace from old_string (and new_string)."
            .into();
    }
    if let (Some(NearMatch { first, len, places }), _) = whitespace_insensitive_match(content, old)
    {
        let shown = len.min(MAX_QUOTED_LINES);
        let mut quote = String::new();
        for (i, line) in content.lines().enumerate().skip(first).take(shown) {
            let line = line.strip_suffix('\r').unwrap_or(line);
            quote.push('\n');
            quote.push_str(&numbered(i + 1, &cut_line(line, QUOTE_LINE_CHARS, false)));
        }
        if shown < len {
            quote.push_str(&format!(
                "\n[... {} more]",
                count(len - shown, "line", "lines")
            ));
        }
        let range = if len == 1 {
            format!("line {}", first + 1)
        } else {
            format!("lines {}-{}", first + 1, first + len)
        };
        let others = if places > 1 {
            format!(" (the first of {places} such places)")
        } else {
            String::new()
        };
        return format!(
            "a passage that differs only in whitespace (indentation, tabs, spaces) is at {range}{others}:{quote}\n\
Copy old_string exactly from there, without the line numbers."
        );
    }
    "read the file again with read_file and copy old_string exactly, including whitespace and line breaks."
        .into()
}

fn squash(line: &str) -> String {
    line.chars().filter(|c| !c.is_whitespace()).collect()
}

/// A passage of `content` that holds `old` when all whitespace is ignored.
#[derive(Debug, PartialEq, Eq)]
struct NearMatch {
    /// 0-based first line.
    first: usize,
    /// Number of lines.
    len: usize,
    /// How many such places exist.
    places: usize,
}

/// Whether the squashed file lines `have` hold the squashed `wanted`
/// lines (see [`whitespace_insensitive_match`]). Each comparison adds the
/// length of the file line it reads (plus one) to `work`, which bounds
/// the time the search takes.
fn fits(have: &[String], wanted: &[String], work: &mut usize) -> bool {
    let k = wanted.len();
    *work += have[0].len() + 1;
    if k == 1 {
        return have[0].contains(wanted[0].as_str());
    }
    if !have[0].ends_with(wanted[0].as_str()) {
        return false;
    }
    for j in 1..k - 1 {
        *work += have[j].len() + 1;
        if have[j] != wanted[j] {
            return false;
        }
    }
    *work += have[k - 1].len() + 1;
    have[k - 1].starts_with(wanted[k - 1].as_str())
}

/// Finds lines of `content` that hold `old` when all whitespace is
/// ignored: the first old line ends a file line, the middle ones equal
/// file lines, the last one starts a file line (a one-line `old` may sit
/// anywhere in a line). Returns the match (if any, and if found within
/// [`MAX_WHITESPACE_WORK`]) and the bytes of comparisons done.
fn whitespace_insensitive_match(content: &str, old: &str) -> (Option<NearMatch>, usize) {
    let mut wanted: Vec<String> = old.lines().map(squash).collect();
    // blank lines at the ends of old_string carry no information
    while wanted.first().is_some_and(String::is_empty) {
        wanted.remove(0);
    }
    while wanted.last().is_some_and(String::is_empty) {
        wanted.pop();
    }
    if wanted.is_empty() {
        return (None, 0);
    }
    let have: Vec<String> = content.lines().map(squash).collect();
    let k = wanted.len();
    if have.len() < k {
        return (None, 0);
    }
    let mut work = 0usize;
    let mut first = None;
    let mut places = 0;
    for start in 0..=have.len() - k {
        if fits(&have[start..start + k], &wanted, &mut work) {
            places += 1;
            first.get_or_insert(start);
        }
        if work > MAX_WHITESPACE_WORK {
            return (None, work);
        }
    }
    // `old.lines()` dropped blank lines at the ends; count what we matched
    let found = first.map(|first| NearMatch {
        first,
        len: k,
        places,
    });
    (found, work)
}

/// The lines where a text occurs (see [`occurrences`]).
#[derive(Debug, Default, PartialEq, Eq)]
struct Occurrences {
    /// The first [`MAX_LISTED_LINES`] distinct 1-based line numbers.
    listed: Vec<usize>,
    /// Further distinct lines with an occurrence.
    more: usize,
    /// All occurrences (non-overlapping, as the core edit counts them).
    matches: usize,
    /// Bytes looked at for line breaks: at most the file's length.
    scanned: usize,
}

/// Finds the lines of every occurrence of `needle` in one pass: line
/// breaks are counted between one occurrence and the next, never from
/// the start again.
fn occurrences(content: &str, needle: &str) -> Occurrences {
    let mut found = Occurrences::default();
    let (mut line, mut pos, mut last) = (1usize, 0usize, 0usize);
    for (at, _) in content.match_indices(needle) {
        found.matches += 1;
        let between = &content.as_bytes()[pos..at];
        found.scanned += between.len();
        line += between.iter().filter(|&&b| b == b'\n').count();
        pos = at;
        if line == last {
            continue;
        }
        last = line;
        if found.listed.len() < MAX_LISTED_LINES {
            found.listed.push(line);
        } else {
            found.more += 1;
        }
    }
    found
}

/// The 1-based line numbers where `old` starts in `content` (as the core
/// edit counts them, including its CRLF retry), as a sentence; each line
/// is named once.
pub(crate) fn ambiguous_hint(content: &str, old: &str) -> Option<String> {
    let mut needle = Cow::Borrowed(old);
    if !content.contains(old) && uses_crlf(content) && old.contains('\n') {
        needle = Cow::Owned(old.replace("\r\n", "\n").replace('\n', "\r\n"));
    }
    let found = occurrences(content, &needle);
    if found.matches < 2 {
        return None;
    }
    let listed: Vec<String> = found.listed.iter().map(usize::to_string).collect();
    let more = if found.more > 0 {
        format!(" and {} more", found.more)
    } else {
        String::new()
    };
    Some(format!(
        "the occurrences are on lines {}{more}.",
        listed.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_in_old() {
        assert_eq!(
            no_match_hint("a\nb\n", "a\r\nb"),
            "old_string has Windows line endings (\\r\\n) but the file uses \\n; use \\n line endings in old_string."
        );
    }

    #[test]
    fn trailing_and_leading_whitespace() {
        assert_eq!(
            no_match_hint("x = 1", "x = 1\n"),
            "the text is in the file, but not with the whitespace or newline at the end of old_string; remove that trailing whitespace from old_string (and new_string)."
        );
        assert_eq!(
            no_match_hint("x = 1\n", " x = 1"),
            "the text is in the file, but not with the whitespace at the start of old_string; remove that leading whitespace from old_string (and new_string)."
        );
    }

    #[test]
    fn indentation() {
        let content = "def f():\n\tif x:\n\t\treturn 1\n\treturn 2\n";
        assert_eq!(
            no_match_hint(content, "    if x:\n        return 1\n"),
            "a passage that differs only in whitespace (indentation, tabs, spaces) is at lines 2-3:\n     2\t\tif x:\n     3\t\t\treturn 1\nCopy old_string exactly from there, without the line numbers."
        );
        assert_eq!(
            no_match_hint("a = f(x,y)\nb = f(x,y)\n", "f(x, y)"),
            "a passage that differs only in whitespace (indentation, tabs, spaces) is at line 1 (the first of 2 such places):\n     1\ta = f(x,y)\nCopy old_string exactly from there, without the line numbers."
        );
    }

    #[test]
    fn nothing_close() {
        assert_eq!(
            no_match_hint("abc\n", "xyz"),
            "read the file again with read_file and copy old_string exactly, including whitespace and line breaks."
        );
        assert_eq!(
            no_match_hint("abc\n", "  \n"),
            "read the file again with read_file and copy old_string exactly, including whitespace and line breaks."
        );
    }

    #[test]
    fn ambiguous_lines() {
        assert_eq!(
            ambiguous_hint("x\ny\nx\nx y x\n", "x").as_deref(),
            Some("the occurrences are on lines 1, 3, 4.")
        );
        let many = "x\n".repeat(12);
        assert_eq!(
            ambiguous_hint(&many, "x").as_deref(),
            Some("the occurrences are on lines 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 and 2 more.")
        );
        assert_eq!(
            ambiguous_hint("a\r\nb\r\na\r\nb\r\n", "a\nb").as_deref(),
            Some("the occurrences are on lines 1, 3.")
        );
        assert_eq!(ambiguous_hint("x", "x"), None);
    }

    #[test]
    fn occurrence_lines_take_one_pass() {
        // one occurrence per byte: re-counting line breaks from the start
        // for each would look at about n^2/2 bytes
        let content = "x".repeat(1 << 20);
        let found = occurrences(&content, "x");
        assert_eq!(found.matches, 1 << 20);
        assert_eq!(found.listed, [1]);
        assert_eq!(found.more, 0);
        assert!(found.scanned < content.len(), "{}", found.scanned);
        let content = "x\n".repeat(1 << 19);
        let found = occurrences(&content, "x");
        assert_eq!(found.listed, (1..=10).collect::<Vec<_>>());
        assert_eq!(found.more, (1 << 19) - 10);
        assert!(found.scanned < content.len(), "{}", found.scanned);
    }

    #[test]
    fn whitespace_search_gives_up_within_its_budget() {
        // every line is a possible start and old_string's lines match the
        // following file lines until its last one: n * k line comparisons
        let content = "a\n".repeat(1 << 20);
        let old = format!("{}b", "a\n".repeat(20_000));
        let (found, work) = whitespace_insensitive_match(&content, &old);
        assert_eq!(found, None);
        assert!(work > MAX_WHITESPACE_WORK, "{work}");
        assert!(work < MAX_WHITESPACE_WORK + 3 * 20_000 + 8, "{work}");
        assert_eq!(
            no_match_hint(&content, &old),
            "read the file again with read_file and copy old_string exactly, including whitespace and line breaks."
        );
        // a small search still finds its match and counts its work
        let (found, work) = whitespace_insensitive_match("x\n  a\n  b\n", "a\nb");
        assert_eq!(
            found,
            Some(NearMatch {
                first: 1,
                len: 2,
                places: 1
            })
        );
        assert!(work > 0 && work < 20, "{work}");
    }
}
