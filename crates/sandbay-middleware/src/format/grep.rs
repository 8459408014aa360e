//! `grep` texts.

use sandbay_core::{GrepMode, GrepOutput, VPath};

use std::fmt::Write as _;

use super::push_cut_line;

/// What was searched, for the texts.
#[derive(Debug)]
pub(crate) struct GrepQuery<'a> {
    pub(crate) pattern: &'a str,
    pub(crate) base: &'a VPath,
    pub(crate) glob: Option<&'a str>,
    pub(crate) mode: GrepMode,
    pub(crate) max_matches: usize,
}

/// Formats grep results.
///
/// * files_with_matches: one path per line;
/// * content: per file, the path, then `N:text` for matching lines and
///   `N-text` for context lines, `--` where lines were skipped, and a
///   blank line between files;
/// * count: `path:N` per file.
///
/// A search stopped by `max_matches` says so, in files (files mode) or
/// matching lines (the other modes), as the core counts them.
pub(crate) fn format_grep(
    query: &GrepQuery<'_>,
    output: &GrepOutput,
    max_line_chars: usize,
) -> String {
    if output.files.is_empty() {
        let filter = query
            .glob
            .map(|g| format!(" in files matching {g:?}"))
            .unwrap_or_default();
        return format!(
            "No matches for {:?}{filter} under {}.",
            query.pattern, query.base
        );
    }
    let mut text = match query.mode {
        GrepMode::FilesWithMatches => output
            .files
            .iter()
            .map(|f| f.path.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        GrepMode::Count => output
            .files
            .iter()
            .map(|f| format!("{}:{}", f.path, f.matches))
            .collect::<Vec<_>>()
            .join("\n"),
        GrepMode::Content => {
            let mut blocks = Vec::with_capacity(output.files.len());
            for file in &output.files {
                let mut block = file.path.to_string();
                let mut previous: Option<u64> = None;
                for line in &file.lines {
                    if previous.is_some_and(|p| line.line_number > p + 1) {
                        block.push_str("\n--");
                    }
                    let sep = if line.is_match { ':' } else { '-' };
                    let _ = write!(block, "\n{}{sep}", line.line_number);
                    push_cut_line(&mut block, &line.text, max_line_chars, false);
                    previous = Some(line.line_number);
                }
                blocks.push(block);
            }
            blocks.join("\n\n")
        }
    };
    if output.truncated {
        // max_matches counts files in files_with_matches mode
        let what = match query.mode {
            GrepMode::FilesWithMatches => "matching files",
            GrepMode::Content | GrepMode::Count => "matching lines",
        };
        text.push_str(&format!(
            "\n[Stopped after {} {what}; narrow the search (path, glob or a more specific pattern) to see the rest.]",
            query.max_matches
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use sandbay_core::{GrepFile, GrepLine};

    fn v(s: &str) -> VPath {
        VPath::parse(s).unwrap()
    }

    fn line(n: u64, text: &str, is_match: bool) -> GrepLine {
        GrepLine {
            line_number: n,
            text: text.into(),
            is_match,
        }
    }

    fn output() -> GrepOutput {
        GrepOutput {
            files: vec![
                GrepFile {
                    path: v("/src/a.rs"),
                    matches: 2,
                    lines: vec![
                        line(1, "use x;", false),
                        line(2, "fn foo() {}", true),
                        line(9, "    foo();", true),
                    ],
                },
                GrepFile {
                    path: v("/src/b.rs"),
                    matches: 1,
                    lines: vec![line(3, "foo", true)],
                },
            ],
            truncated: false,
        }
    }

    fn query(mode: GrepMode) -> GrepQuery<'static> {
        static ROOT: std::sync::OnceLock<VPath> = std::sync::OnceLock::new();
        GrepQuery {
            pattern: "foo",
            base: ROOT.get_or_init(VPath::root),
            glob: None,
            mode,
            max_matches: 3,
        }
    }

    #[test]
    fn modes() {
        assert_eq!(
            format_grep(&query(GrepMode::FilesWithMatches), &output(), 100),
            "/src/a.rs\n/src/b.rs"
        );
        assert_eq!(
            format_grep(&query(GrepMode::Count), &output(), 100),
            "/src/a.rs:2\n/src/b.rs:1"
        );
        assert_eq!(
            format_grep(&query(GrepMode::Content), &output(), 100),
            "/src/a.rs\n1-use x;\n2:fn foo() {}\n--\n9:    foo();\n\n/src/b.rs\n3:foo"
        );
    }

    #[test]
    fn empty_and_truncated() {
        let mut q = query(GrepMode::Count);
        q.glob = Some("*.py");
        assert_eq!(
            format_grep(&q, &GrepOutput::default(), 100),
            "No matches for \"foo\" in files matching \"*.py\" under /."
        );
        let mut out = output();
        out.truncated = true;
        assert_eq!(
            format_grep(&query(GrepMode::Count), &out, 100),
            "/src/a.rs:2\n/src/b.rs:1\n[Stopped after 3 matching lines; narrow the search (path, glob or a more specific pattern) to see the rest.]"
        );
        assert_eq!(
            format_grep(&query(GrepMode::FilesWithMatches), &out, 100),
            "/src/a.rs\n/src/b.rs\n[Stopped after 3 matching files; narrow the search (path, glob or a more specific pattern) to see the rest.]"
        );
    }
}
