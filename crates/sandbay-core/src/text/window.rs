//! Read windowing: bounded-memory line windows over any byte stream.

use std::io::BufRead;

use crate::error::{Error, Result};
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

/// Cuts `bytes` to at most `max` bytes at a character boundary.
fn cut_at_char_boundary(bytes: &mut Vec<u8>, max: usize) {
    if bytes.len() <= max {
        return;
    }
    bytes.truncate(max);
    // drop an incomplete trailing sequence
    while let Err(e) = std::str::from_utf8(bytes) {
        if e.error_len().is_some() {
            break; // invalid in the middle: caught by the validator anyway
        }
        bytes.truncate(e.valid_up_to());
    }
}

/// Reads a window of lines from a stream with memory bounded by
/// `max_window_bytes` (plus the reader's buffer), whatever the file size.
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
    let first = request.offset;
    let end = request.offset.saturating_add(request.limit);
    let mut validator = Utf8Validator::default();
    let mut lines: Vec<String> = Vec::new();
    let mut used = 0usize;
    let mut budget_closed = false;
    let mut cut_lines = false;
    let mut line_index = 0usize; // index of the line being read
    let mut line_started = false; // bytes of the current line were seen
    let mut current: Vec<u8> = Vec::new();
    let mut current_overflow = false; // the current line exceeded what we keep
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
            let in_window = !budget_closed && line_index >= first && line_index < end;
            let (piece, newline) = match rest.iter().position(|&b| b == b'\n') {
                Some(i) => (&rest[..i], true),
                None => (rest, false),
            };
            line_started = true;
            if in_window && !current_overflow {
                let remaining = max_window_bytes.saturating_sub(used) + 1;
                if current.len() + piece.len() > remaining {
                    let take = remaining.saturating_sub(current.len());
                    current.extend_from_slice(&piece[..take.min(piece.len())]);
                    current_overflow = true;
                } else {
                    current.extend_from_slice(piece);
                }
            }
            rest = if newline {
                &rest[piece.len() + 1..]
            } else {
                &rest[rest.len()..]
            };
            if newline {
                if in_window {
                    finish_line(
                        &mut current,
                        &mut current_overflow,
                        &mut lines,
                        &mut used,
                        &mut budget_closed,
                        &mut cut_lines,
                        max_window_bytes,
                        true,
                    );
                }
                line_index += 1;
                line_started = false;
            }
        }
        reader.consume(len);
    }
    if !validator.finish() {
        return Err(Error::BinaryFile { path: path.clone() });
    }
    if line_started {
        let in_window = !budget_closed && line_index >= first && line_index < end;
        if in_window {
            finish_line(
                &mut current,
                &mut current_overflow,
                &mut lines,
                &mut used,
                &mut budget_closed,
                &mut cut_lines,
                max_window_bytes,
                false,
            );
        }
        line_index += 1;
    }
    let total_lines = line_index;
    let offset = request.offset;
    let after = offset.saturating_add(lines.len());
    let next_offset = (after < total_lines).then_some(after);
    Ok(TextWindow {
        offset,
        lines,
        total_lines,
        next_offset,
        cut_lines,
    })
}

#[allow(clippy::too_many_arguments)]
fn finish_line(
    current: &mut Vec<u8>,
    overflow: &mut bool,
    lines: &mut Vec<String>,
    used: &mut usize,
    budget_closed: &mut bool,
    cut_lines: &mut bool,
    max_window_bytes: usize,
    had_newline: bool,
) {
    if had_newline && !*overflow && current.last() == Some(&b'\r') {
        current.pop();
    }
    let fits = !*overflow && *used + current.len() <= max_window_bytes;
    if fits {
        *used += current.len();
        lines.push(String::from_utf8_lossy(current).into_owned());
    } else if lines.is_empty() {
        // a single line larger than the whole budget: cut it
        cut_at_char_boundary(current, max_window_bytes);
        *used = max_window_bytes;
        *cut_lines = true;
        lines.push(String::from_utf8_lossy(current).into_owned());
        *budget_closed = true;
    } else {
        // this line starts the next window
        *budget_closed = true;
    }
    current.clear();
    *overflow = false;
}

/// [`window_lines`] over bytes already in memory.
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
    window_lines(path, bytes, request, max_window_bytes)
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
        let w = window_slice(&p(), b"aaaa\nbbbb\ncccc\n", ReadRequest::default(), 9).unwrap();
        assert_eq!(w.lines, ["aaaa", "bbbb"]);
        assert_eq!(w.next_offset, Some(2));
        assert!(!w.cut_lines);
        let w = window_slice(&p(), "ééééé\nx\n".as_bytes(), ReadRequest::default(), 5).unwrap();
        assert_eq!(w.lines, ["éé"]);
        assert!(w.cut_lines);
        assert_eq!(w.next_offset, Some(1));
        assert_eq!(w.total_lines, 2);
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
