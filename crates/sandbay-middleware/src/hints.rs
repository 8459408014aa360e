//! Hints for failed edits: where a near match of `old_string` is, or
//! where its several occurrences are.

use crate::format::{count, cut_line, numbered};

/// Most lines of a near match quoted in a hint.
const MAX_QUOTED_LINES: usize = 12;
/// Most occurrence line numbers listed for an ambiguous edit.
const MAX_LISTED_LINES: usize = 10;
/// Quoted lines are cut to this many characters.
const QUOTE_LINE_CHARS: usize = 200;

/// Whether the file's first line ending is `\r\n` (the core's rule).
fn uses_crlf(content: &str) -> bool {
    content
        .find('\n')
        .is_some_and(|i| i > 0 && content.as_bytes()[i - 1] == b'\r')
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
    if let Some((first, len, places)) = whitespace_insensitive_match(content, old) {
        let lines: Vec<&str> = content.lines().collect();
        let shown = len.min(MAX_QUOTED_LINES);
        let mut quote = String::new();
        for (i, line) in lines.iter().enumerate().skip(first).take(shown) {
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

/// Finds lines of `content` that hold `old` when all whitespace is
/// ignored: the first old line ends a file line, the middle ones equal
/// file lines, the last one starts a file line (a one-line `old` may sit
/// anywhere in a line). Returns the 0-based first line, the number of
/// lines and how many such places exist.
fn whitespace_insensitive_match(content: &str, old: &str) -> Option<(usize, usize, usize)> {
    let mut wanted: Vec<String> = old.lines().map(squash).collect();
    // blank lines at the ends of old_string carry no information
    while wanted.first().is_some_and(String::is_empty) {
        wanted.remove(0);
    }
    while wanted.last().is_some_and(String::is_empty) {
        wanted.pop();
    }
    if wanted.is_empty() {
        return None;
    }
    let have: Vec<String> = content.lines().map(squash).collect();
    let k = wanted.len();
    if have.len() < k {
        return None;
    }
    let fits = |start: usize| -> bool {
        if k == 1 {
            return have[start].contains(wanted[0].as_str());
        }
        have[start].ends_with(wanted[0].as_str())
            && (1..k - 1).all(|j| have[start + j] == wanted[j])
            && have[start + k - 1].starts_with(wanted[k - 1].as_str())
    };
    let mut first = None;
    let mut places = 0;
    for start in 0..=have.len() - k {
        if fits(start) {
            places += 1;
            first.get_or_insert(start);
        }
    }
    // `old.lines()` dropped blank lines at the ends; count what we matched
    first.map(|f| (f, k, places))
}

/// The 1-based line numbers where `old` starts in `content` (as the core
/// edit counts them, including its CRLF retry), as a sentence; each line
/// is named once.
pub(crate) fn ambiguous_hint(content: &str, old: &str) -> Option<String> {
    let mut needle = old.to_owned();
    if !content.contains(old) && uses_crlf(content) && old.contains('\n') {
        needle = old.replace("\r\n", "\n").replace('\n', "\r\n");
    }
    let mut starts: Vec<usize> = content
        .match_indices(needle.as_str())
        .map(|(at, _)| content[..at].matches('\n').count() + 1)
        .collect();
    if starts.len() < 2 {
        return None;
    }
    starts.dedup();
    let listed: Vec<String> = starts
        .iter()
        .take(MAX_LISTED_LINES)
        .map(usize::to_string)
        .collect();
    let more = if starts.len() > MAX_LISTED_LINES {
        format!(" and {} more", starts.len() - MAX_LISTED_LINES)
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
}
