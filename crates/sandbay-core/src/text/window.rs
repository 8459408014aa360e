//! Read windowing: bounded-memory line windows over any byte stream.

use std::io::BufRead;

use crate::error::{Error, Result};
use crate::lines::Lines;
use crate::path::VPath;
use crate::types::{ReadRequest, TextWindow};

/// Incremental UTF-8 and NUL check over a stream of chunks.
///
/// ```
/// use sandbay_core::text::Utf8Validator;
/// let mut v = Utf8Validator::default();
/// let bytes = "é".as_bytes();
/// assert!(v.feed(&bytes[..1]));
/// assert!(v.feed(&bytes[1..]));
/// assert!(v.finish());
/// ```
#[derive(Debug, Default, Clone)]
pub struct Utf8Validator {
    pending: Vec<u8>,
    bad: bool,
}

impl Utf8Validator {
    /// Feeds the next chunk. Returns `false` once the stream is known not
    /// to be text.
    pub fn feed(&mut self, mut chunk: &[u8]) -> bool {
        if self.bad {
            return false;
        }
        if chunk.contains(&0) {
            self.bad = true;
            return false;
        }
        while !self.pending.is_empty() && !chunk.is_empty() {
            self.pending.push(chunk[0]);
            chunk = &chunk[1..];
            match std::str::from_utf8(&self.pending) {
                Ok(_) => self.pending.clear(),
                Err(e) if e.error_len().is_some() => {
                    self.bad = true;
                    return false;
                }
                Err(_) if self.pending.len() >= 4 => {
                    self.bad = true;
                    return false;
                }
                Err(_) => {}
            }
        }
        if chunk.is_empty() {
            return true;
        }
        match std::str::from_utf8(chunk) {
            Ok(_) => true,
            Err(e) if e.error_len().is_some() => {
                self.bad = true;
                false
            }
            Err(e) => {
                self.pending.extend_from_slice(&chunk[e.valid_up_to()..]);
                true
            }
        }
    }

    /// Ends the stream; `true` if everything fed was text.
    pub fn finish(&self) -> bool {
        !self.bad && self.pending.is_empty()
    }
}

/// The largest character boundary of `s` at or below `max`.
fn floor_char_boundary(s: &str, max: usize) -> usize {
    if max >= s.len() {
        return s.len();
    }
    let mut i = max;
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Collects the lines of one window under a byte budget.
struct WindowBuilder {
    first: usize,
    end: usize,
    budget: usize,
    used: usize,
    closed: bool,
    cut: bool,
    index: usize,
    lines: Lines,
}

impl WindowBuilder {
    fn new(request: ReadRequest, budget: usize) -> Self {
        WindowBuilder {
            first: request.offset,
            end: request.offset.saturating_add(request.limit),
            budget,
            used: 0,
            closed: false,
            cut: false,
            index: 0,
            lines: Lines::new(),
        }
    }

    fn in_window(&self) -> bool {
        !self.closed && self.index >= self.first && self.index < self.end
    }

    /// Offers line `self.index`. `overflowed` says the caller kept only a
    /// prefix of a line that is longer than the remaining budget.
    fn line(&mut self, line: &str, had_newline: bool, overflowed: bool) {
        if self.in_window() {
            let line = if had_newline && !overflowed {
                line.strip_suffix('\r').unwrap_or(line)
            } else {
                line
            };
            // every line costs its bytes plus one for its separator, so a
            // window of empty lines is bounded too
            let cost = line.len() + 1;
            if !overflowed && self.used + cost <= self.budget {
                self.used += cost;
                self.lines.push(line);
            } else if self.lines.is_empty() {
                // one line larger than the whole budget: cut it
                let cut = floor_char_boundary(line, self.budget);
                self.lines.push(&line[..cut]);
                self.used = self.budget;
                self.cut = true;
                self.closed = true;
            } else {
                // this line opens the next window
                self.closed = true;
            }
        }
        self.index += 1;
    }

    fn finish(self, request: ReadRequest) -> TextWindow {
        let total_lines = self.index;
        let after = request.offset.saturating_add(self.lines.len());
        TextWindow {
            offset: request.offset,
            lines: self.lines,
            total_lines,
            next_offset: (after < total_lines).then_some(after),
            cut_lines: self.cut,
        }
    }
}

/// Reads a window of lines from a stream with memory bounded by
/// `max_window_bytes` (plus the reader's buffer), whatever the file size.
/// Each line costs its length plus one byte (its separator) against the
/// budget, so even a window of empty lines stays bounded.
///
/// Lines are counted to the end so `total_lines` is exact, and the whole
/// stream is checked to be text. When the lines of the window exceed the
/// byte budget the window ends early (`next_offset` points at the first
/// line left out); a single line longer than the budget is cut at a
/// character boundary and `cut_lines` is set.
///
/// # Errors
///
/// `binary_file` if the stream is not text; `io` on read failure.
pub fn window_lines<R: BufRead>(
    path: &VPath,
    mut reader: R,
    request: ReadRequest,
    max_window_bytes: usize,
) -> Result<TextWindow> {
    let mut validator = Utf8Validator::default();
    let mut window = WindowBuilder::new(request, max_window_bytes);
    let mut started = false; // bytes of the current line were seen
    let mut current: Vec<u8> = Vec::new();
    let mut overflowed = false;
    loop {
        let chunk = match reader.fill_buf() {
            Ok(chunk) => chunk,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(path, &e)),
        };
        if chunk.is_empty() {
            break;
        }
        if !validator.feed(chunk) {
            return Err(Error::BinaryFile { path: path.clone() });
        }
        let len = chunk.len();
        let mut rest = chunk;
        while !rest.is_empty() {
            let (piece, newline) = match rest.iter().position(|&b| b == b'\n') {
                Some(i) => (&rest[..i], true),
                None => (rest, false),
            };
            started = true;
            if window.in_window() && !overflowed {
                // keep at most one byte more than the budget allows
                let keep = max_window_bytes.saturating_sub(window.used + 1) + 1;
                if current.len() + piece.len() > keep {
                    let take = keep.saturating_sub(current.len()).min(piece.len());
                    current.extend_from_slice(&piece[..take]);
                    overflowed = true;
                } else {
                    current.extend_from_slice(piece);
                }
            }
            rest = &rest[piece.len() + usize::from(newline)..];
            if newline {
                window.line(&String::from_utf8_lossy(&current), true, overflowed);
                current.clear();
                overflowed = false;
                started = false;
            }
        }
        reader.consume(len);
    }
    if !validator.finish() {
        return Err(Error::BinaryFile { path: path.clone() });
    }
    if started {
        window.line(&String::from_utf8_lossy(&current), false, overflowed);
    }
    Ok(window.finish(request))
}

/// A window over bytes already in memory: the same result as
/// [`window_lines`], faster.
///
/// ```
/// use sandbay_core::{VPath, ReadRequest, text::window_slice};
/// let p = VPath::parse("/f.txt").unwrap();
/// let w = window_slice(&p, b"a\r\nb\nc", ReadRequest { offset: 1, limit: 1 }, 1024).unwrap();
/// assert_eq!(w.lines, ["b"]);
/// assert_eq!(w.total_lines, 3);
/// assert_eq!(w.next_offset, Some(2));
/// ```
///
/// # Errors
///
/// `binary_file` if the bytes are not text.
pub fn window_slice(
    path: &VPath,
    bytes: &[u8],
    request: ReadRequest,
    max_window_bytes: usize,
) -> Result<TextWindow> {
    match std::str::from_utf8(bytes) {
        Ok(text) if !bytes.contains(&0) => Ok(window_text(text, request, max_window_bytes)),
        _ => Err(Error::BinaryFile { path: path.clone() }),
    }
}

/// [`window_slice`] over a string the caller already knows is text (see
/// [`super::is_text`]), skipping the validation: for stores that check
/// once when a file is written rather than on every read.
///
/// ```
/// use sandbay_core::{ReadRequest, text::window_text};
/// let w = window_text("a\nb\n", ReadRequest::default(), 1024);
/// assert_eq!(w.lines, ["a", "b"]);
/// ```
pub fn window_text(text: &str, request: ReadRequest, max_window_bytes: usize) -> TextWindow {
    debug_assert!(
        !text.as_bytes().contains(&0),
        "window_text needs text without NUL"
    );
    let bytes = text.as_bytes();
    if request.offset == 0 && text.len() < max_window_bytes {
        return whole_text_window(text, request);
    }
    let mut window = WindowBuilder::new(request, max_window_bytes);
    // one allocation each for the text and the line ends in the common
    // case of a window that takes the whole file
    window.lines.reserve(
        text.len().min(max_window_bytes),
        request.limit.min(text.len() / 8 + 1).min(4096),
    );
    let mut start = 0;
    for newline in memchr::memchr_iter(b'\n', bytes) {
        if window.index >= window.end || window.closed {
            // past the window: only count what is left
            window.index += memchr::memchr_iter(b'\n', &bytes[start..]).count();
            if !bytes.ends_with(b"\n") {
                window.index += 1;
            }
            return window.finish(request);
        }
        window.line(&text[start..newline], true, false);
        start = newline + 1;
    }
    if start < text.len() {
        window.line(&text[start..], false, false);
    }
    window.finish(request)
}

/// [`window_text`] from the first line when the whole text fits the
/// byte budget (every line costs at most its bytes plus one, so the
/// budget cannot end the window): only the line limit applies. The
/// hottest read of an agent, a small file from the top, takes this path.
fn whole_text_window(text: &str, request: ReadRequest) -> TextWindow {
    let bytes = text.as_bytes();
    let mut lines = Lines::new();
    lines.reserve(text.len(), request.limit.min(text.len() / 32 + 1).min(4096));
    let mut start = 0;
    let mut newlines = memchr::memchr_iter(b'\n', bytes);
    let mut total = 0;
    while total < request.limit {
        match newlines.next() {
            Some(newline) => {
                let line = &text[start..newline];
                lines.push(line.strip_suffix('\r').unwrap_or(line));
                start = newline + 1;
                total += 1;
            }
            None => break,
        }
    }
    let taken = lines.len();
    if taken < request.limit {
        if start < text.len() {
            // the last line, without a newline
            lines.push(&text[start..]);
            total += 1;
        }
    } else {
        // past the window: only count what is left
        total += newlines.count();
        if !bytes.is_empty() && !bytes.ends_with(b"\n") {
            total += 1;
        }
    }
    let taken = lines.len();
    TextWindow {
        offset: 0,
        lines,
        total_lines: total,
        next_offset: (taken < total).then_some(taken),
        cut_lines: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p() -> VPath {
        VPath::parse("/f").unwrap()
    }

    fn win(bytes: &[u8], offset: usize, limit: usize) -> TextWindow {
        window_slice(&p(), bytes, ReadRequest { offset, limit }, 1 << 20).unwrap()
    }

    #[test]
    fn line_counting() {
        assert_eq!(win(b"", 0, 10).total_lines, 0);
        assert_eq!(win(b"", 0, 10).lines, Vec::<String>::new());
        assert_eq!(win(b"\n", 0, 10).lines, [""]);
        assert_eq!(win(b"a", 0, 10).lines, ["a"]);
        assert_eq!(win(b"a\n", 0, 10).lines, ["a"]);
        assert_eq!(win(b"a\n\nb", 0, 10).lines, ["a", "", "b"]);
        assert_eq!(win(b"a\r\nb\r\n", 0, 10).lines, ["a", "b"]);
        assert_eq!(win(b"a\rb\n", 0, 10).lines, ["a\rb"]);
    }

    #[test]
    fn offsets() {
        let w = win(b"1\n2\n3\n4\n", 1, 2);
        assert_eq!(w.lines, ["2", "3"]);
        assert_eq!(w.next_offset, Some(3));
        let w = win(b"1\n2\n3\n4\n", 2, 2);
        assert_eq!(w.next_offset, None);
        let w = win(b"1\n2\n", 5, 2);
        assert!(w.lines.is_empty());
        assert_eq!(w.total_lines, 2);
        assert_eq!(w.next_offset, None);
    }

    #[test]
    fn budget_splits_and_cuts() {
        let w = window_slice(&p(), b"aaaa\nbbbb\ncccc\n", ReadRequest::default(), 10).unwrap();
        assert_eq!(w.lines, ["aaaa", "bbbb"]);
        assert_eq!(w.next_offset, Some(2));
        assert!(!w.cut_lines);
        let w = window_slice(&p(), "ééééé\nx\n".as_bytes(), ReadRequest::default(), 5).unwrap();
        assert_eq!(w.lines, ["éé"]);
        let streamed =
            window_lines(&p(), "ééééé\nx\n".as_bytes(), ReadRequest::default(), 5).unwrap();
        assert_eq!(streamed, w);
        assert!(w.cut_lines);
        assert_eq!(w.next_offset, Some(1));
        assert_eq!(w.total_lines, 2);
    }

    #[test]
    fn empty_lines_are_charged() {
        let many = vec![b'\n'; 10_000];
        let req = ReadRequest {
            offset: 0,
            limit: usize::MAX,
        };
        let w = window_slice(&p(), &many, req, 100).unwrap();
        assert_eq!(w.lines.len(), 100);
        assert_eq!(w.next_offset, Some(100));
        assert_eq!(w.total_lines, 10_000);
    }

    #[test]
    fn binary_is_refused() {
        for bad in [&b"a\0b"[..], &[0xc3, b'\n'][..], &[0xe2, 0x82][..]] {
            let err = window_slice(&p(), bad, ReadRequest::default(), 100).unwrap_err();
            assert_eq!(err.code().as_str(), "binary_file");
        }
    }

    #[test]
    fn chunk_boundaries_do_not_matter() {
        let text = "héllo wörld\r\nzweite 日本 Zeile\n\ndrei".as_bytes();
        let whole = win(text, 0, 100);
        for cap in 1..8 {
            let reader = std::io::BufReader::with_capacity(cap, text);
            let w = window_lines(&p(), reader, ReadRequest::default(), 1 << 20).unwrap();
            assert_eq!(w, whole, "capacity {cap}");
        }
    }

    proptest! {
        /// The streaming and in-memory paths agree for any input, buffer
        /// size and budget.
        #[test]
        fn streaming_equals_slice(text in "[ab\\n\\r é日]{0,80}", offset in 0usize..6, limit in 0usize..6, budget in 1usize..40, cap in 1usize..9) {
            let slice = window_slice(&p(), text.as_bytes(), ReadRequest { offset, limit }, budget).unwrap();
            let reader = std::io::BufReader::with_capacity(cap, text.as_bytes());
            let streamed = window_lines(&p(), reader, ReadRequest { offset, limit }, budget).unwrap();
            prop_assert_eq!(streamed, slice);
        }

        #[test]
        fn matches_naive_split(text in "[ab\\n\\r é]{0,60}", offset in 0usize..8, limit in 1usize..8) {
            let w = win(text.as_bytes(), offset, limit);
            let mut naive: Vec<&str> = text.split('\n').collect();
            let last_unterminated = !text.ends_with('\n') && !text.is_empty();
            if !last_unterminated { naive.pop(); }
            let n = naive.len();
            // only a `\r` right before `\n` belongs to the terminator
            let naive: Vec<String> = naive.into_iter().enumerate().map(|(i, l)| {
                if i + 1 == n && last_unterminated { l.to_string() } else { l.strip_suffix('\r').unwrap_or(l).to_string() }
            }).collect();
            prop_assert_eq!(w.total_lines, naive.len());
            let want: Vec<String> = naive.iter().skip(offset).take(limit).cloned().collect();
            prop_assert_eq!(&w.lines, &want);
        }
    }
}
