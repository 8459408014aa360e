//! Capped capture of one output stream, kept or sent on as it comes.

use sandbay_core::ExecEvent;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe::Receiver;

use crate::stream::{Msg, OutputSink};

/// Size of the read buffer (one pipe's worth).
const CHUNK: usize = 64 * 1024;

/// Bytes of one stream, kept up to a cap; the rest is read and dropped so
/// the writer never blocks and memory stays bounded.
///
/// With a sink, the bytes are not kept but sent on as chunks while they
/// come (still at most `cap` of them); a full sink holds the reads back,
/// so the command waits for a slow consumer instead of memory growing.
#[derive(Debug)]
pub(crate) struct Capture {
    data: Vec<u8>,
    cap: usize,
    /// Bytes passed on so far (kept or sent).
    taken: usize,
    truncated: bool,
    sink: Option<(OutputSink, Stream)>,
}

/// Which output a capture reads.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

impl Capture {
    /// An empty capture keeping at most `cap` bytes.
    pub(crate) fn new(cap: usize) -> Capture {
        Capture {
            data: Vec::new(),
            cap,
            taken: 0,
            truncated: false,
            sink: None,
        }
    }

    /// A capture that sends at most `cap` bytes on to `sink` as chunks.
    pub(crate) fn streaming(cap: usize, sink: Option<OutputSink>, which: Stream) -> Capture {
        Capture {
            sink: sink.map(|s| (s, which)),
            ..Capture::new(cap)
        }
    }

    /// Reads `rx` to its end. Safe to drop midway: what was read is kept.
    pub(crate) async fn drain(&mut self, rx: &mut Receiver) {
        let mut buf = vec![0u8; CHUNK.min(self.cap.max(4096))];
        loop {
            match rx.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => self.pass_on(&buf[..n]).await,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::debug!(error = %e, "output pipe read failed");
                    break;
                }
            }
        }
    }

    /// Keeps or sends what fits under the cap.
    async fn pass_on(&mut self, bytes: &[u8]) {
        let Some((sink, which)) = &self.sink else {
            self.push(bytes);
            return;
        };
        let room = self.cap - self.taken;
        let kept = &bytes[..bytes.len().min(room)];
        if kept.len() < bytes.len() {
            self.truncated = true;
        }
        if kept.is_empty() {
            return;
        }
        self.taken += kept.len();
        let event = match which {
            Stream::Stdout => ExecEvent::Stdout(kept.to_vec()),
            Stream::Stderr => ExecEvent::Stderr(kept.to_vec()),
        };
        // a consumer that left ends the run itself (the stream's drop)
        let _ = sink.send(Msg::Event(Ok(event))).await;
    }

    fn push(&mut self, bytes: &[u8]) {
        let room = self.cap - self.data.len();
        if bytes.len() <= room {
            self.data.extend_from_slice(bytes);
        } else {
            self.data.extend_from_slice(&bytes[..room]);
            self.truncated = true;
        }
        self.taken = self.data.len();
    }

    /// The kept bytes and whether any were dropped.
    pub(crate) fn into_parts(self) -> (Vec<u8>, bool) {
        (self.data, self.truncated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_up_to_the_cap() {
        let mut c = Capture::new(5);
        c.push(b"abc");
        c.push(b"defg");
        c.push(b"h");
        assert_eq!(c.into_parts(), (b"abcde".to_vec(), true));
        let mut c = Capture::new(3);
        c.push(b"abc");
        assert_eq!(c.into_parts(), (b"abc".to_vec(), false));
    }
}
