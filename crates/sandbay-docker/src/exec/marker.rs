//! Framing of command output: markers the in-container scripts print
//! around each command, found again in the byte stream.
//!
//! A marker is `RS token ':' status RS` (RS = `0x1e`), where the token is
//! random per command, so output that merely looks like a marker, or a
//! marker of an earlier command, is never taken for this command's.

use memchr::memchr;

/// The byte that opens and closes a marker.
pub(crate) const RS: u8 = 0x1e;
/// Longest status word a marker carries (`killed`, `nodir`, exit codes).
const MAX_STATUS: usize = 16;

/// What a chunk of stream bytes contained.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// Ordinary output bytes.
    Data(Vec<u8>),
    /// A marker of the current token with its status word.
    Marker(String),
}

/// Splits one output stream into data and markers for one token.
#[derive(Debug)]
pub(crate) struct Scanner {
    prefix: Vec<u8>,
    pending: Vec<u8>,
}

impl Scanner {
    /// A scanner for markers of `token`.
    pub(crate) fn new(token: &str) -> Scanner {
        let mut prefix = vec![RS];
        prefix.extend_from_slice(token.as_bytes());
        prefix.push(b':');
        Scanner {
            prefix,
            pending: Vec::new(),
        }
    }

    /// Feeds the next chunk; events are appended to `out` in stream order.
    pub(crate) fn push(&mut self, chunk: &[u8], out: &mut Vec<Event>) {
        let owned;
        let buf: &[u8] = if self.pending.is_empty() {
            chunk
        } else {
            self.pending.extend_from_slice(chunk);
            owned = std::mem::take(&mut self.pending);
            &owned
        };
        let mut start = 0; // first byte not yet emitted
        let mut at = 0; // where to look for the next RS
        while let Some(off) = memchr(RS, &buf[at..]) {
            let rs = at + off;
            let rest = &buf[rs..];
            let n = rest.len().min(self.prefix.len());
            if rest[..n] != self.prefix[..n] {
                at = rs + 1; // an RS that opens no marker of ours
                continue;
            }
            if n < self.prefix.len() {
                // could be the start of a marker: wait for more bytes
                emit(out, &buf[start..rs]);
                self.pending = rest.to_vec();
                return;
            }
            let body = &rest[self.prefix.len()..];
            match memchr(RS, &body[..body.len().min(MAX_STATUS + 1)]) {
                Some(end) => {
                    emit(out, &buf[start..rs]);
                    out.push(Event::Marker(
                        String::from_utf8_lossy(&body[..end]).into_owned(),
                    ));
                    start = rs + self.prefix.len() + end + 1;
                    at = start;
                }
                None if body.len() <= MAX_STATUS => {
                    emit(out, &buf[start..rs]);
                    self.pending = rest.to_vec();
                    return;
                }
                None => at = rs + 1, // too long to be a status: plain data
            }
        }
        emit(out, &buf[start..]);
    }

    /// Bytes held back because they might start a marker.
    pub(crate) fn finish(&mut self, out: &mut Vec<Event>) {
        let rest = std::mem::take(&mut self.pending);
        emit(out, &rest);
    }
}

fn emit(out: &mut Vec<Event>, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    if let Some(Event::Data(last)) = out.last_mut() {
        last.extend_from_slice(bytes);
    } else {
        out.push(Event::Data(bytes.to_vec()));
    }
}

/// Output kept up to a byte cap; what goes beyond is counted, not kept.
#[derive(Debug, Default)]
pub(crate) struct Capped {
    /// The kept bytes.
    pub(crate) bytes: Vec<u8>,
    limit: usize,
    /// Whether bytes were dropped.
    pub(crate) truncated: bool,
}

impl Capped {
    /// An empty buffer keeping at most `limit` bytes.
    pub(crate) fn new(limit: usize) -> Capped {
        Capped {
            bytes: Vec::new(),
            limit,
            truncated: false,
        }
    }

    /// Appends what fits.
    pub(crate) fn push(&mut self, data: &[u8]) {
        let room = self.limit.saturating_sub(self.bytes.len());
        if data.len() > room {
            self.truncated = true;
        }
        self.bytes.extend_from_slice(&data[..data.len().min(room)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(token: &str, chunks: &[&[u8]]) -> Vec<Event> {
        let mut s = Scanner::new(token);
        let mut out = Vec::new();
        for c in chunks {
            s.push(c, &mut out);
        }
        s.finish(&mut out);
        // merge adjacent data for comparison
        let mut merged: Vec<Event> = Vec::new();
        for e in out {
            match (merged.last_mut(), e) {
                (Some(Event::Data(a)), Event::Data(b)) => a.extend_from_slice(&b),
                (_, e) => merged.push(e),
            }
        }
        merged
    }

    fn data(s: &[u8]) -> Event {
        Event::Data(s.to_vec())
    }

    #[test]
    fn finds_markers_whole_and_split() {
        let stream = b"\x1etok:go\x1ehello\n\x1etok:0\x1e";
        let expected = vec![
            Event::Marker("go".into()),
            data(b"hello\n"),
            Event::Marker("0".into()),
        ];
        assert_eq!(run("tok", &[stream]), expected);
        for cut in 1..stream.len() {
            let (a, b) = stream.split_at(cut);
            assert_eq!(run("tok", &[a, b]), expected, "cut at {cut}");
        }
        // byte by byte
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(run("tok", &bytes), expected);
    }

    #[test]
    fn foreign_markers_are_data() {
        let out = run("tok", &[b"a\x1eother:0\x1eb\x1etok:7\x1e"]);
        assert_eq!(
            out,
            vec![data(b"a\x1eother:0\x1eb"), Event::Marker("7".into())]
        );
        // RS alone, a marker prefix cut by the end, an over-long status
        assert_eq!(run("tok", &[b"\x1e"]), vec![data(b"\x1e")]);
        assert_eq!(run("tok", &[b"x\x1etok:12"]), vec![data(b"x\x1etok:12")]);
        let long = b"\x1etok:0123456789abcdefghij\x1e";
        assert_eq!(run("tok", &[long]), vec![data(long)]);
    }

    #[test]
    fn capped_counts_overflow() {
        let mut c = Capped::new(4);
        c.push(b"ab");
        c.push(b"cdef");
        assert_eq!(c.bytes, b"abcd");
        assert!(c.truncated);
        let mut c = Capped::new(4);
        c.push(b"abcd");
        assert!(!c.truncated);
    }
}
