//! Capped capture of one output stream.

use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe::Receiver;

/// Size of the read buffer (one pipe's worth).
const CHUNK: usize = 64 * 1024;

/// Bytes of one stream, kept up to a cap; the rest is read and dropped so
/// the writer never blocks and memory stays bounded.
#[derive(Debug)]
pub(crate) struct Capture {
    data: Vec<u8>,
    cap: usize,
    truncated: bool,
}

impl Capture {
    /// An empty capture keeping at most `cap` bytes.
    pub(crate) fn new(cap: usize) -> Capture {
        Capture {
            data: Vec::new(),
            cap,
            truncated: false,
        }
    }

    /// Reads `rx` to its end. Safe to drop midway: what was read is kept.
    pub(crate) async fn drain(&mut self, rx: &mut Receiver) {
        let mut buf = vec![0u8; CHUNK.min(self.cap.max(4096))];
        loop {
            match rx.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => self.push(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::debug!(error = %e, "output pipe read failed");
                    break;
                }
            }
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        let room = self.cap - self.data.len();
        if bytes.len() <= room {
            self.data.extend_from_slice(bytes);
        } else {
            self.data.extend_from_slice(&bytes[..room]);
            self.truncated = true;
        }
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
