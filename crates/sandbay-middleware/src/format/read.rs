//! `read_file` text.

use sandbay_core::{Error, Result, TextWindow, VPath};

use super::{count, push_cut_line, push_number};
use crate::config::ToolConfig;

/// Room kept for the closing hint when a window is cut to the budget.
const FOOTER_RESERVE: usize = 200;

/// Numbered lines of a window, cut to the output budget, with a hint
/// where to continue when lines remain.
///
/// # Errors
///
/// `invalid_argument` when the offset lies past the end of a non-empty file.
pub(crate) fn format_read(
    path: &VPath,
    window: &TextWindow,
    config: &ToolConfig,
) -> Result<String> {
    if window.total_lines == 0 {
        return Ok(format!("The file {path} exists but is empty."));
    }
    if window.lines.is_empty() {
        let total = window.total_lines;
        return Err(Error::invalid_argument(format!(
            "offset {} is past the end of {path}, which has {}; use an offset below {total}",
            window.offset,
            count(total, "line", "lines"),
        )));
    }
    let budget = config.max_output_bytes.saturating_sub(FOOTER_RESERVE);
    let last = window.lines.len() - 1;
    let mut text = String::with_capacity(budget.min(64 * 1024));
    let mut shown = 0;
    for (i, line) in window.lines.iter().enumerate() {
        let before = text.len();
        if shown > 0 {
            text.push('\n');
        }
        push_number(&mut text, window.offset + i + 1);
        let cut_by_backend = window.cut_lines && i == last;
        push_cut_line(&mut text, line, config.max_line_chars, cut_by_backend);
        if shown > 0 && text.len() > budget {
            text.truncate(before);
            break;
        }
        shown += 1;
    }
    let end = window.offset + shown;
    let next = if shown < window.lines.len() {
        Some(end)
    } else {
        window.next_offset
    };
    if let Some(next) = next {
        text.push_str(&format!(
            "\n[Showing lines {}-{end} of {}. Call read_file with offset={next} to read more.]",
            window.offset + 1,
            window.total_lines,
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(offset: usize, lines: &[&str], total: usize, next: Option<usize>) -> TextWindow {
        TextWindow {
            offset,
            lines: lines.iter().map(|s| s.to_string()).collect(),
            total_lines: total,
            next_offset: next,
            cut_lines: false,
        }
    }

    fn p() -> VPath {
        VPath::parse("/notes.txt").unwrap()
    }

    #[test]
    fn whole_file() {
        let w = window(0, &["alpha", "", "gamma"], 3, None);
        assert_eq!(
            format_read(&p(), &w, &ToolConfig::default()).unwrap(),
            "     1\talpha\n     2\t\n     3\tgamma"
        );
    }

    #[test]
    fn more_remains() {
        let w = window(10, &["k", "l"], 30, Some(12));
        assert_eq!(
            format_read(&p(), &w, &ToolConfig::default()).unwrap(),
            "    11\tk\n    12\tl\n[Showing lines 11-12 of 30. Call read_file with offset=12 to read more.]"
        );
    }

    #[test]
    fn empty_and_past_end() {
        let w = window(0, &[], 0, None);
        assert_eq!(
            format_read(&p(), &w, &ToolConfig::default()).unwrap(),
            "The file /notes.txt exists but is empty."
        );
        let w = window(5, &[], 1, None);
        assert_eq!(
            format_read(&p(), &w, &ToolConfig::default())
                .unwrap_err()
                .to_string(),
            "invalid argument: offset 5 is past the end of /notes.txt, which has 1 line; use an offset below 1"
        );
    }

    #[test]
    fn long_lines_and_budget() {
        let config = ToolConfig {
            max_line_chars: 4,
            max_output_bytes: 200 + 20,
            ..ToolConfig::default()
        };
        let w = window(0, &["abcdefgh", "xy", "z", "w"], 4, None);
        // "     1\tabcd [... line cut at 4 characters]" alone is over 20 bytes,
        // but the first line is always shown.
        assert_eq!(
            format_read(&p(), &w, &config).unwrap(),
            "     1\tabcd [... line cut at 4 characters]\n[Showing lines 1-1 of 4. Call read_file with offset=1 to read more.]"
        );
        let mut w = window(0, &["abc"], 2, Some(1));
        w.cut_lines = true;
        assert_eq!(
            format_read(&p(), &w, &ToolConfig::default()).unwrap(),
            "     1\tabc [... line cut at 3 characters]\n[Showing lines 1-1 of 2. Call read_file with offset=1 to read more.]"
        );
    }
}
