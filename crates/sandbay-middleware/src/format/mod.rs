//! The texts the model reads. Pure functions of backend results, so the
//! same call gives the same text on every backend.

mod exec;
mod files;
mod grep;
mod listing;
mod read;

pub(crate) use exec::format_exec;
pub(crate) use files::{deleted, edited, wrote};
pub(crate) use grep::{GrepQuery, format_grep};
pub(crate) use listing::{format_glob, format_ls};
pub(crate) use read::format_read;

/// `1 line`, `2 lines`.
pub(crate) fn count(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// A line cut to `max_chars` characters, with a marker when cut.
pub(crate) fn cut_line(line: &str, max_chars: usize, force_marker: bool) -> String {
    let mut out = String::with_capacity(line.len().min(max_chars * 4) + 40);
    push_cut_line(&mut out, line, max_chars, force_marker);
    out
}

/// Appends `line` cut to `max_chars` characters, with a marker when cut
/// (or always, with `force_marker`: the line was cut before it got here).
pub(crate) fn push_cut_line(out: &mut String, line: &str, max_chars: usize, force_marker: bool) {
    use std::fmt::Write as _;
    // no more bytes than `max_chars` means no more characters either
    let cut_at = if line.len() <= max_chars {
        None
    } else {
        line.char_indices().nth(max_chars).map(|(at, _)| at)
    };
    match cut_at {
        Some(at) => {
            out.push_str(&line[..at]);
            let _ = write!(out, " [... line cut at {max_chars} characters]");
        }
        None => {
            out.push_str(line);
            if force_marker {
                let n = line.chars().count();
                let _ = write!(out, " [... line cut at {n} characters]");
            }
        }
    }
}

#[cfg(test)]
fn cut_line_slow(line: &str, max_chars: usize, force_marker: bool) -> String {
    match line.char_indices().nth(max_chars) {
        Some((at, _)) => format!("{} [... line cut at {max_chars} characters]", &line[..at]),
        None if force_marker => {
            let n = line.chars().count();
            format!("{line} [... line cut at {n} characters]")
        }
        None => line.to_owned(),
    }
}

/// A `cat -n` style line: the 1-based number right-aligned in six
/// columns, a tab, the text.
pub(crate) fn numbered(number: usize, text: &str) -> String {
    format!("{number:>6}\t{text}")
}

/// Appends the `cat -n` prefix of a line: the number in six columns and a tab.
pub(crate) fn push_number(out: &mut String, number: usize) {
    use std::fmt::Write as _;
    let _ = write!(out, "{number:>6}\t");
}

/// Lines in sandbay's sense: split on `\n`, a final line without `\n`
/// counts, an empty text has none.
pub(crate) fn line_count(text: &str) -> usize {
    if text.is_empty() {
        0
    } else {
        text.matches('\n').count() + usize::from(!text.ends_with('\n'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(count(1, "line", "lines"), "1 line");
        assert_eq!(count(0, "line", "lines"), "0 lines");
        assert_eq!(
            cut_line("héllo", 3, false),
            "hél [... line cut at 3 characters]"
        );
        assert_eq!(cut_line("abc", 3, false), "abc");
        assert_eq!(
            cut_line("abc", 3, true),
            "abc [... line cut at 3 characters]"
        );
        assert_eq!(numbered(7, "x"), "     7\tx");
        for line in [
            "",
            "abc",
            "héllo wörld",
            "日本語のテキスト",
            &"é".repeat(50),
        ] {
            for max in [0, 1, 3, 5, 10, 100] {
                for force in [false, true] {
                    assert_eq!(
                        cut_line(line, max, force),
                        cut_line_slow(line, max, force),
                        "{line} {max}"
                    );
                }
            }
        }
        assert_eq!(numbered(1234567, "x"), "1234567\tx");
        assert_eq!(line_count(""), 0);
        assert_eq!(line_count("a"), 1);
        assert_eq!(line_count("a\n"), 1);
        assert_eq!(line_count("a\nb"), 2);
        assert_eq!(line_count("\n\n"), 2);
    }
}
