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
        assert_eq!(numbered(1234567, "x"), "1234567\tx");
        assert_eq!(line_count(""), 0);
        assert_eq!(line_count("a"), 1);
        assert_eq!(line_count("a\n"), 1);
        assert_eq!(line_count("a\nb"), 2);
        assert_eq!(line_count("\n\n"), 2);
    }
}
