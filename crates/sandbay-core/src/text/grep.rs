//! Line search with ripgrep's `grep-searcher` and `grep-regex`, shared by
//! every backend so results agree byte for byte.

use grep_regex::{RegexMatcher, RegexMatcherBuilder};
use grep_searcher::{BinaryDetection, Searcher, SearcherBuilder, Sink, SinkContext, SinkMatch};

use crate::error::{Error, Result};
use crate::path::VPath;
use crate::text::GlobMatcher;
use crate::types::{GrepFile, GrepLine, GrepMode, GrepOutput, GrepRequest};

/// Largest compiled regex accepted (bytes of program), to bound memory.
const REGEX_SIZE_LIMIT: usize = 8 * 1024 * 1024;
/// Longest pattern accepted, in bytes.
const MAX_PATTERN_BYTES: usize = 64 * 1024;
/// Most context lines accepted before or after a match.
pub const MAX_CONTEXT_LINES: usize = 100;
/// A reported line longer than this is cut (at a character boundary).
pub const MAX_GREP_LINE_BYTES: usize = 16 * 1024;
/// Budget for the text of all reported lines; past it the search stops
/// and the output is marked `truncated`.
pub const MAX_GREP_OUTPUT_BYTES: usize = 8 * 1024 * 1024;

/// A compiled grep request: matcher, file filter and searcher settings.
///
/// The regex engine is Rust's `regex` (through `grep-regex`): matching is
/// linear in the input, so no pattern can cause catastrophic
/// backtracking. Patterns match within one line.
///
/// Bounds: `max_matches` counts matching lines in content and count modes,
/// and *files* in files-with-matches mode (which stops reading a file at
/// its first match); context is at most [`MAX_CONTEXT_LINES`] lines;
/// reported lines are cut at [`MAX_GREP_LINE_BYTES`]; the text of all
/// reported lines is capped at [`MAX_GREP_OUTPUT_BYTES`]. Hitting any
/// bound sets `truncated`.
///
/// ```
/// use sandbay_core::{GrepRequest, GrepMode, VPath, text::GrepPlan};
/// let mut req = GrepRequest::new("fo+");
/// req.mode = GrepMode::Content;
/// let plan = GrepPlan::new(&req).unwrap();
/// let mut search = plan.start();
/// search.file(&VPath::parse("/a.txt").unwrap(), b"x\nfoo\r\n");
/// let out = search.finish();
/// assert_eq!(out.files[0].lines[0].line_number, 2);
/// assert_eq!(out.files[0].lines[0].text, "foo");
/// ```
#[derive(Debug)]
pub struct GrepPlan {
    matcher: RegexMatcher,
    base: VPath,
    filter: Option<GlobMatcher>,
    mode: GrepMode,
    before: usize,
    after: usize,
    max_matches: usize,
}

impl GrepPlan {
    /// Compiles a request.
    ///
    /// # Errors
    ///
    /// `invalid_argument` for an empty, over-long or invalid pattern, an
    /// invalid glob filter or too much context; the message says what is
    /// wrong.
    pub fn new(request: &GrepRequest) -> Result<Self> {
        if request.before > MAX_CONTEXT_LINES || request.after > MAX_CONTEXT_LINES {
            return Err(Error::invalid_argument(format!(
                "context is limited to {MAX_CONTEXT_LINES} lines before and after a match"
            )));
        }
        if request.pattern.is_empty() {
            return Err(Error::invalid_argument("the search pattern is empty"));
        }
        if request.pattern.len() > MAX_PATTERN_BYTES {
            return Err(Error::invalid_argument(format!(
                "the search pattern is longer than {MAX_PATTERN_BYTES} bytes"
            )));
        }
        let matcher = RegexMatcherBuilder::new()
            .case_insensitive(request.case_insensitive)
            .fixed_strings(request.literal)
            // `^`/`$` at line ends, `\r\n` included (as ripgrep does:
            // CRLF anchoring only applies in multi-line mode)
            .multi_line(true)
            .crlf(true)
            .line_terminator(Some(b'\n'))
            .size_limit(REGEX_SIZE_LIMIT)
            .dfa_size_limit(REGEX_SIZE_LIMIT)
            .build(&request.pattern)
            .map_err(|e| {
                let detail = e.to_string();
                let detail = detail.lines().last().unwrap_or("").trim().to_string();
                Error::invalid_argument(format!(
                    "invalid regular expression: {detail}; set literal to search for the text as is"
                ))
            })?;
        let filter = request
            .glob
            .as_deref()
            .filter(|g| !g.is_empty())
            .map(GlobMatcher::new)
            .transpose()?;
        Ok(GrepPlan {
            matcher,
            base: request.path.clone(),
            filter,
            mode: request.mode,
            before: request.before,
            after: request.after,
            max_matches: request.max_matches,
        })
    }

    /// Whether the pattern matches anywhere in `bytes` (one line at a time).
    fn matcher_finds(&self, bytes: &[u8]) -> bool {
        use grep_matcher::Matcher;
        self.matcher.is_match(bytes).unwrap_or(false)
    }

    /// Whether a candidate file passes the glob filter.
    pub fn wants(&self, path: &VPath) -> bool {
        self.filter
            .as_ref()
            .is_none_or(|f| f.is_match(&self.base, path))
    }

    /// Starts collecting results. Feed files in path order.
    pub fn start(&self) -> GrepSearch<'_> {
        let content = self.mode == GrepMode::Content;
        let searcher = SearcherBuilder::new()
            .line_number(true)
            .binary_detection(BinaryDetection::none())
            .before_context(if content { self.before } else { 0 })
            .after_context(if content { self.after } else { 0 })
            .build();
        GrepSearch {
            plan: self,
            searcher,
            remaining: self.max_matches,
            bytes_left: MAX_GREP_OUTPUT_BYTES,
            output: GrepOutput::default(),
        }
    }
}

/// An ongoing search (see [`GrepPlan::start`]).
#[derive(Debug)]
pub struct GrepSearch<'p> {
    plan: &'p GrepPlan,
    searcher: Searcher,
    remaining: usize,
    bytes_left: usize,
    output: GrepOutput,
}

impl GrepSearch<'_> {
    /// Whether the match limit was hit; further files need not be read.
    pub fn is_done(&self) -> bool {
        self.output.truncated
    }

    /// Searches one file's bytes. Non-text content is skipped.
    pub fn file(&mut self, path: &VPath, bytes: &[u8]) {
        if !self.output.truncated && super::is_text(bytes) {
            self.search(path, bytes);
        }
    }

    /// Searches a file the caller already knows is text (see
    /// [`super::is_text`]), skipping the check.
    pub fn text_file(&mut self, path: &VPath, text: &str) {
        if !self.output.truncated {
            self.search(path, text.as_bytes());
        }
    }

    fn search(&mut self, path: &VPath, bytes: &[u8]) {
        let files_mode = self.plan.mode == GrepMode::FilesWithMatches;
        if files_mode && self.remaining == 0 {
            // the file limit is reached: one more matching file truncates
            if self.plan.matcher_finds(bytes) {
                self.output.truncated = true;
            }
            return;
        }
        let mut sink = Collector {
            lines: Vec::new(),
            matches: 0,
            remaining: &mut self.remaining,
            bytes_left: &mut self.bytes_left,
            truncated: &mut self.output.truncated,
            keep_lines: self.plan.mode == GrepMode::Content,
            first_only: files_mode,
        };
        // The sink never fails and the slice is in memory: no error possible.
        let _ = self
            .searcher
            .search_slice(&self.plan.matcher, bytes, &mut sink);
        let (lines, matches) = (sink.lines, sink.matches);
        if matches > 0 {
            let mut lines = lines;
            // context after the last kept match may run past the limit
            while lines.last().is_some_and(|l| !l.is_match) && self.output.truncated {
                lines.pop();
            }
            self.output.files.push(GrepFile {
                path: path.clone(),
                matches,
                lines,
            });
        }
    }

    /// The results, files in the order they were fed.
    pub fn finish(self) -> GrepOutput {
        self.output
    }
}

struct Collector<'a> {
    lines: Vec<GrepLine>,
    matches: usize,
    remaining: &'a mut usize,
    bytes_left: &'a mut usize,
    truncated: &'a mut bool,
    keep_lines: bool,
    first_only: bool,
}

fn line_text(bytes: &[u8]) -> String {
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    let mut end = bytes.len().min(MAX_GREP_LINE_BYTES);
    // the input is valid UTF-8: back up to a character boundary
    while end < bytes.len() && end > 0 && (bytes[end] & 0xC0) == 0x80 {
        end -= 1;
    }
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

impl Collector<'_> {
    /// Keeps a line if the output budget allows; `false` stops the search.
    fn keep(&mut self, line_number: u64, bytes: &[u8], is_match: bool) -> bool {
        let text = line_text(bytes);
        if text.len() > *self.bytes_left {
            *self.truncated = true;
            return false;
        }
        *self.bytes_left -= text.len();
        self.lines.push(GrepLine {
            line_number,
            text,
            is_match,
        });
        true
    }
}

impl Sink for Collector<'_> {
    type Error = std::io::Error;

    fn matched(&mut self, _: &Searcher, mat: &SinkMatch<'_>) -> Result<bool, Self::Error> {
        if *self.remaining == 0 {
            *self.truncated = true;
            return Ok(false);
        }
        if self.keep_lines && !self.keep(mat.line_number().unwrap_or(0), mat.bytes(), true) {
            return Ok(false);
        }
        *self.remaining -= 1;
        self.matches += 1;
        Ok(!self.first_only)
    }

    fn context(&mut self, _: &Searcher, ctx: &SinkContext<'_>) -> Result<bool, Self::Error> {
        if self.keep_lines {
            return Ok(self.keep(ctx.line_number().unwrap_or(0), ctx.bytes(), false));
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(req: GrepRequest, files: &[(&str, &str)]) -> GrepOutput {
        let plan = GrepPlan::new(&req).unwrap();
        let mut s = plan.start();
        for (p, c) in files {
            let p = VPath::parse(p).unwrap();
            if plan.wants(&p) {
                s.file(&p, c.as_bytes());
            }
        }
        s.finish()
    }

    #[test]
    fn modes_and_context() {
        let mut req = GrepRequest::new("b");
        req.mode = GrepMode::Content;
        req.before = 1;
        req.after = 1;
        let out = run(req, &[("/f", "a\nb\nc\nd\ne\nb\n")]);
        let got: Vec<(u64, bool)> = out.files[0]
            .lines
            .iter()
            .map(|l| (l.line_number, l.is_match))
            .collect();
        assert_eq!(
            got,
            [(1, false), (2, true), (3, false), (5, false), (6, true)]
        );
        assert_eq!(out.files[0].matches, 2);
    }

    #[test]
    fn literal_and_case() {
        let mut req = GrepRequest::new("a.c");
        req.literal = true;
        let out = run(req.clone(), &[("/x", "abc\n"), ("/y", "a.c\n")]);
        assert_eq!(out.files.len(), 1);
        assert_eq!(out.files[0].path.as_str(), "/y");
        req.literal = false;
        req.pattern = "ABC".into();
        req.case_insensitive = true;
        assert_eq!(run(req, &[("/x", "abc\n")]).files.len(), 1);
    }

    #[test]
    fn files_mode_counts_files() {
        let req = GrepRequest {
            max_matches: 2,
            ..GrepRequest::new("x")
        };
        let out = run(req.clone(), &[("/a", "x\nx\nx\n"), ("/b", "x\n")]);
        assert_eq!(out.files.len(), 2);
        assert!(out.files.iter().all(|f| f.matches == 1));
        assert!(!out.truncated);
        let out = run(
            req,
            &[
                ("/a", "x\nx\n"),
                ("/b", "x\n"),
                ("/c", "y\n"),
                ("/d", "x\n"),
            ],
        );
        assert_eq!(out.files.len(), 2);
        assert!(out.truncated, "a third matching file exists");
    }

    #[test]
    fn bounds_are_enforced() {
        let mut req = GrepRequest::new("x");
        req.before = MAX_CONTEXT_LINES + 1;
        assert_eq!(
            GrepPlan::new(&req).unwrap_err().code().as_str(),
            "invalid_argument"
        );
        let mut req = GrepRequest::new("x");
        req.mode = GrepMode::Content;
        let long = format!(
            "{}é{}\n",
            "x".repeat(MAX_GREP_LINE_BYTES - 1),
            "y".repeat(100)
        );
        let out = run(req.clone(), &[("/f", &long)]);
        let text = &out.files[0].lines[0].text;
        assert!(text.len() <= MAX_GREP_LINE_BYTES && text.len() >= MAX_GREP_LINE_BYTES - 1);
        // output budget: many long matching lines stop the search
        req.max_matches = usize::MAX;
        let line = format!("{}\n", "x".repeat(MAX_GREP_LINE_BYTES));
        let big = line.repeat(MAX_GREP_OUTPUT_BYTES / MAX_GREP_LINE_BYTES + 10);
        let out = run(req, &[("/big", &big)]);
        assert!(out.truncated);
        let kept: usize = out
            .files
            .iter()
            .flat_map(|f| &f.lines)
            .map(|l| l.text.len())
            .sum();
        assert!(kept <= MAX_GREP_OUTPUT_BYTES);
    }

    #[test]
    fn limit_truncates_across_files() {
        let mut req = GrepRequest::new("x");
        req.mode = GrepMode::Content;
        req.max_matches = 3;
        let out = run(
            req.clone(),
            &[("/a", "x\nx\n"), ("/b", "x\nx\n"), ("/c", "x\n")],
        );
        assert_eq!(out.files.iter().map(|f| f.matches).sum::<usize>(), 3);
        assert!(out.truncated);
        req.max_matches = 5;
        let out = run(req, &[("/a", "x\nx\n"), ("/b", "x\nx\n"), ("/c", "x\n")]);
        assert!(!out.truncated);
    }

    #[test]
    fn binary_skipped_and_glob_filter() {
        let mut req = GrepRequest::new("x");
        req.glob = Some("*.rs".into());
        let out = run(req, &[("/a.rs", "x\0"), ("/b.rs", "x"), ("/c.py", "x")]);
        assert_eq!(out.files.len(), 1);
        assert_eq!(out.files[0].path.as_str(), "/b.rs");
    }

    #[test]
    fn anchors_work_on_crlf_lines() {
        let files = [
            ("/dos", "first\r\nhello there\r\n"),
            ("/unix", "hello there\n"),
        ];
        for pattern in ["there$", "^hello", "^hello there$"] {
            let out = run(GrepRequest::new(pattern), &files);
            assert_eq!(out.files.len(), 2, "{pattern}");
        }
        let out = run(GrepRequest::new("first$"), &files);
        assert_eq!(out.files.len(), 1);
    }

    #[test]
    fn bad_patterns_are_typed() {
        for p in ["(", "", "[z-a]"] {
            let err = GrepPlan::new(&GrepRequest::new(p)).unwrap_err();
            assert_eq!(err.code().as_str(), "invalid_argument", "{p}");
        }
        // a catastrophic-backtracking pattern is just linear here
        let out = run(GrepRequest::new("(a+)+$"), &[("/f", &"a".repeat(5000))]);
        assert_eq!(out.files.len(), 1);
    }
}
