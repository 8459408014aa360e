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

/// A compiled grep request: matcher, file filter and searcher settings.
///
/// The regex engine is Rust's `regex` (through `grep-regex`): matching is
/// linear in the input, so no pattern can cause catastrophic
/// backtracking. Patterns match within one line.
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
    /// `invalid_argument` for an empty, over-long or invalid pattern, or an
    /// invalid glob filter; the message says what is wrong.
    pub fn new(request: &GrepRequest) -> Result<Self> {
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
    output: GrepOutput,
}

impl GrepSearch<'_> {
    /// Whether the match limit was hit; further files need not be read.
    pub fn is_done(&self) -> bool {
        self.output.truncated
    }

    /// Searches one file's bytes. Non-text content is skipped.
    pub fn file(&mut self, path: &VPath, bytes: &[u8]) {
        if self.output.truncated || !super::is_text(bytes) {
            return;
        }
        let mut sink = Collector {
            lines: Vec::new(),
            matches: 0,
            remaining: &mut self.remaining,
            truncated: &mut self.output.truncated,
            keep_lines: self.plan.mode == GrepMode::Content,
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
    truncated: &'a mut bool,
    keep_lines: bool,
}

fn line_text(bytes: &[u8]) -> String {
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    String::from_utf8_lossy(bytes).into_owned()
}

impl Sink for Collector<'_> {
    type Error = std::io::Error;

    fn matched(&mut self, _: &Searcher, mat: &SinkMatch<'_>) -> Result<bool, Self::Error> {
        if *self.remaining == 0 {
            *self.truncated = true;
            return Ok(false);
        }
        *self.remaining -= 1;
        self.matches += 1;
        if self.keep_lines {
            self.lines.push(GrepLine {
                line_number: mat.line_number().unwrap_or(0),
                text: line_text(mat.bytes()),
                is_match: true,
            });
        }
        Ok(true)
    }

    fn context(&mut self, _: &Searcher, ctx: &SinkContext<'_>) -> Result<bool, Self::Error> {
        if self.keep_lines {
            self.lines.push(GrepLine {
                line_number: ctx.line_number().unwrap_or(0),
                text: line_text(ctx.bytes()),
                is_match: false,
            });
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
    fn limit_truncates_across_files() {
        let mut req = GrepRequest::new("x");
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
