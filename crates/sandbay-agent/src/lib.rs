//! The protocol between a sandbay host and its in-sandbox agent.
//!
//! Every message is one frame: a 4-byte big-endian length `L`, then `L`
//! bytes: a kind byte, a 4-byte big-endian id, and a body whose layout
//! the kind fixes. Variable fields are length-prefixed (`u32`), every
//! length is bounded ([`MAX_FRAME`], [`MAX_FIELD`], [`MAX_ENV`]), and a
//! frame that breaks a bound or its layout is an error, never a guess.
//! Command output travels only as the body of [`Event::Stdout`] and
//! [`Event::Stderr`] frames, so nothing a command prints can end a frame,
//! change an exit code or look like an agent [`Event::Note`].
//!
//! Requests ([`Request`]) go from the host to the agent on the agent's
//! stdin; events ([`Event`]) come back on its stdout. The binary
//! (`src/main.rs`) is the agent itself.
//!
//! File operations on the workspace are served by the agent itself
//! ([`file`]): a [`Request::File`] call, answered by [`Event::File`].
//!
//! # Dependencies
//!
//! * `libc`: the agent's system calls; `thiserror`: the error types;
//! * `sandbay-core`: the contract's request, result and error types the
//!   file calls carry;
//! * `sandbay-fs` (without its `exec` feature): the file operations the
//!   agent serves are the fs backend's own code over a `cap_std` handle
//!   of `/workspace`, so results match every other backend byte for byte
//!   and no symlink leads out;
//! * `tokio` (runtime only): `sandbay-fs` runs on a blocking pool; the
//!   agent's file threads are that pool's threads;
//! * `serde`, `serde_json`: the structured head of a file call.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod file;

/// The protocol version the agent announces in [`Event::Hello`].
pub const VERSION: u32 = 2;
/// The largest frame (after the length prefix).
pub const MAX_FRAME: usize = 1 << 20;
/// The largest single field (command, workdir, one variable, a chunk).
pub const MAX_FIELD: usize = MAX_FRAME - 64;
/// The most environment entries one command may have.
pub const MAX_ENV: usize = 4096;
/// The largest output chunk the agent sends in one frame.
pub const CHUNK: usize = 64 * 1024;

/// A malformed frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    /// The length prefix is above [`MAX_FRAME`] or below the header size.
    #[error("frame length {0} is out of bounds")]
    Length(usize),
    /// The kind byte names no message of this direction.
    #[error("unknown frame kind {0}")]
    Kind(u8),
    /// The body does not have the layout its kind requires.
    #[error("malformed body of frame kind {0}")]
    Body(u8),
}

/// What a command asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RunSpec {
    /// Text for `sh -c`.
    pub command: Vec<u8>,
    /// Working directory (absolute, inside the sandbox).
    pub workdir: Vec<u8>,
    /// The complete environment, `NAME=value` each.
    pub env: Vec<Vec<u8>>,
    /// Time limit in milliseconds (0: none).
    pub timeout_ms: u64,
    /// Bytes forwarded per output stream; the rest is drained and dropped.
    pub output_limit: u64,
    /// Whether [`Request::Stdin`] frames follow (else stdin is empty).
    pub stdin: bool,
}

/// A message from the host to the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Asks for [`Event::Hello`]. The agent writes nothing before its
    /// first request, so no event can be lost to an attach that is not
    /// yet listening.
    Ping,
    /// Starts a command under a fresh id.
    Run {
        /// The command's id, unique among running commands.
        id: u32,
        /// What to run.
        spec: RunSpec,
    },
    /// Bytes for a command's stdin.
    Stdin {
        /// The command.
        id: u32,
        /// The bytes.
        data: Vec<u8>,
    },
    /// Closes a command's stdin.
    StdinEnd {
        /// The command.
        id: u32,
    },
    /// Sends a signal to a command's process group.
    Signal {
        /// The command.
        id: u32,
        /// The signal number.
        signal: i32,
    },
    /// Kills a command's whole tree; it ends with [`End::Cancelled`].
    Cancel {
        /// The command.
        id: u32,
    },
    /// Kills every process of the sandbox user; answered by [`Event::Done`].
    KillAll {
        /// The request id.
        id: u32,
    },
    /// Kills every process of the sandbox user, then removes every entry
    /// of each listed directory and checks that it is empty; answered by
    /// [`Event::Done`].
    Clear {
        /// The request id.
        id: u32,
        /// Absolute directories to empty.
        dirs: Vec<Vec<u8>>,
    },
    /// A piece of a [`file::FileCall`]'s body; the agent runs the call
    /// when the piece marked `last` arrives and answers with
    /// [`Event::File`] frames of the same id.
    File {
        /// The call's id, unique among running calls and commands.
        id: u32,
        /// The piece.
        body: Vec<u8>,
        /// Whether it is the last piece.
        last: bool,
    },
}

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// It exited with this code.
    Code(i32),
    /// A signal killed it.
    Signal(i32),
    /// The time limit killed it.
    TimedOut,
    /// [`Request::Cancel`] or [`Request::KillAll`] killed it.
    Cancelled,
    /// The working directory does not exist (or is not a directory).
    NoDir,
    /// No process could be made (the process limit).
    NoFork,
    /// It could not be started; the errno.
    Failed(i32),
}

/// A message from the agent to the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The answer to [`Request::Ping`]: the agent runs and speaks
    /// [`VERSION`]; its process id.
    Hello {
        /// The protocol version.
        version: u32,
        /// The agent's pid in its namespace.
        pid: u32,
    },
    /// A chunk of a command's stdout.
    Stdout {
        /// The command.
        id: u32,
        /// The bytes.
        data: Vec<u8>,
    },
    /// A chunk of a command's stderr.
    Stderr {
        /// The command.
        id: u32,
        /// The bytes.
        data: Vec<u8>,
    },
    /// The command ended; no more events carry its id.
    Exit {
        /// The command.
        id: u32,
        /// How.
        end: End,
        /// Whether output above the limit was dropped.
        truncated: bool,
    },
    /// A [`Request::KillAll`] or [`Request::Clear`] finished.
    Done {
        /// The request id.
        id: u32,
        /// `None` on success, else why not.
        error: Option<String>,
    },
    /// A piece of the answer to a [`Request::File`] call (see
    /// [`file::decode_answer`]); no more events carry its id after the
    /// piece marked `last`.
    File {
        /// The call.
        id: u32,
        /// The piece.
        body: Vec<u8>,
        /// Whether it is the last piece.
        last: bool,
    },
    /// A message of the agent itself (never command output).
    Note {
        /// The command it concerns, 0 for none.
        id: u32,
        /// The text.
        text: String,
    },
}

const R_RUN: u8 = 1;
const R_STDIN: u8 = 2;
const R_STDIN_END: u8 = 3;
const R_SIGNAL: u8 = 4;
const R_CANCEL: u8 = 5;
const R_KILL_ALL: u8 = 6;
const R_CLEAR: u8 = 7;
const R_PING: u8 = 8;
const R_FILE: u8 = 9;

const E_HELLO: u8 = 101;
const E_STDOUT: u8 = 102;
const E_STDERR: u8 = 103;
const E_EXIT: u8 = 104;
const E_DONE: u8 = 105;
const E_NOTE: u8 = 106;
const E_FILE: u8 = 107;

/// A message that travels in frames.
pub trait Message: Sized {
    /// Appends the whole frame (length prefix included) to `out`.
    fn encode_into(&self, out: &mut Vec<u8>);
    /// Reads a message from a frame's kind, id and body.
    ///
    /// # Errors
    /// [`ProtoError`] when the kind is unknown or the body malformed.
    fn decode(kind: u8, id: u32, body: &[u8]) -> Result<Self, ProtoError>;
    /// The whole frame as a new buffer.
    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.encode_into(&mut v);
        v
    }
}

/// Writes a frame header, runs `body`, then fills in the length.
fn frame(out: &mut Vec<u8>, kind: u8, id: u32, body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.push(kind);
    out.extend_from_slice(&id.to_be_bytes());
    body(out);
    let len = u32::try_from(out.len() - start - 4).unwrap_or(u32::MAX);
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    let len = u32::try_from(b.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(b);
}

/// Reads fields off a body, each read bounded by what is left.
struct Reader<'a> {
    rest: &'a [u8],
    kind: u8,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtoError> {
        if n > self.rest.len() {
            return Err(ProtoError::Body(self.kind));
        }
        let (a, b) = self.rest.split_at(n);
        self.rest = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, ProtoError> {
        Ok(self.take(1)?[0])
    }
    fn flag(&mut self) -> Result<bool, ProtoError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(ProtoError::Body(self.kind)),
        }
    }
    fn u32(&mut self) -> Result<u32, ProtoError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn i32(&mut self) -> Result<i32, ProtoError> {
        Ok(self.u32()? as i32)
    }
    fn u64(&mut self) -> Result<u64, ProtoError> {
        let b = self.take(8)?;
        let mut a = [0; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }
    fn bytes(&mut self) -> Result<Vec<u8>, ProtoError> {
        let n = self.u32()? as usize;
        if n > MAX_FIELD {
            return Err(ProtoError::Body(self.kind));
        }
        Ok(self.take(n)?.to_vec())
    }
    fn list(&mut self) -> Result<Vec<Vec<u8>>, ProtoError> {
        let n = self.u32()? as usize;
        if n > MAX_ENV {
            return Err(ProtoError::Body(self.kind));
        }
        (0..n).map(|_| self.bytes()).collect()
    }
    fn string(&mut self) -> Result<String, ProtoError> {
        String::from_utf8(self.bytes()?).map_err(|_| ProtoError::Body(self.kind))
    }
    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.rest)
    }
    fn end(&self) -> Result<(), ProtoError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(ProtoError::Body(self.kind))
        }
    }
}

fn put_list(out: &mut Vec<u8>, list: &[Vec<u8>]) {
    out.extend_from_slice(&(list.len() as u32).to_be_bytes());
    for e in list {
        put_bytes(out, e);
    }
}

impl Message for Request {
    fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Request::Ping => frame(out, R_PING, 0, |_| {}),
            Request::Run { id, spec } => frame(out, R_RUN, *id, |o| {
                o.extend_from_slice(&spec.timeout_ms.to_be_bytes());
                o.extend_from_slice(&spec.output_limit.to_be_bytes());
                o.push(u8::from(spec.stdin));
                put_bytes(o, &spec.workdir);
                put_bytes(o, &spec.command);
                put_list(o, &spec.env);
            }),
            Request::Stdin { id, data } => frame(out, R_STDIN, *id, |o| o.extend_from_slice(data)),
            Request::StdinEnd { id } => frame(out, R_STDIN_END, *id, |_| {}),
            Request::Signal { id, signal } => frame(out, R_SIGNAL, *id, |o| {
                o.extend_from_slice(&signal.to_be_bytes());
            }),
            Request::Cancel { id } => frame(out, R_CANCEL, *id, |_| {}),
            Request::KillAll { id } => frame(out, R_KILL_ALL, *id, |_| {}),
            Request::Clear { id, dirs } => frame(out, R_CLEAR, *id, |o| put_list(o, dirs)),
            Request::File { id, body, last } => frame(out, R_FILE, *id, |o| {
                o.push(u8::from(*last));
                o.extend_from_slice(body);
            }),
        }
    }

    fn decode(kind: u8, id: u32, body: &[u8]) -> Result<Request, ProtoError> {
        let mut r = Reader { rest: body, kind };
        let req = match kind {
            R_RUN => {
                let timeout_ms = r.u64()?;
                let output_limit = r.u64()?;
                let stdin = match r.u8()? {
                    0 => false,
                    1 => true,
                    _ => return Err(ProtoError::Body(kind)),
                };
                let workdir = r.bytes()?;
                let command = r.bytes()?;
                let env = r.list()?;
                Request::Run {
                    id,
                    spec: RunSpec {
                        command,
                        workdir,
                        env,
                        timeout_ms,
                        output_limit,
                        stdin,
                    },
                }
            }
            R_PING => Request::Ping,
            R_STDIN => Request::Stdin {
                id,
                data: r.rest().to_vec(),
            },
            R_STDIN_END => Request::StdinEnd { id },
            R_SIGNAL => Request::Signal {
                id,
                signal: r.i32()?,
            },
            R_CANCEL => Request::Cancel { id },
            R_KILL_ALL => Request::KillAll { id },
            R_CLEAR => Request::Clear {
                id,
                dirs: r.list()?,
            },
            R_FILE => {
                let last = r.flag()?;
                Request::File {
                    id,
                    last,
                    body: r.rest().to_vec(),
                }
            }
            k => return Err(ProtoError::Kind(k)),
        };
        r.end()?;
        Ok(req)
    }
}

fn end_parts(end: End) -> (u8, i32) {
    match end {
        End::Code(c) => (0, c),
        End::Signal(s) => (1, s),
        End::TimedOut => (2, 0),
        End::Cancelled => (3, 0),
        End::NoDir => (4, 0),
        End::NoFork => (5, 0),
        End::Failed(e) => (6, e),
    }
}

impl Message for Event {
    fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Event::Hello { version, pid } => frame(out, E_HELLO, 0, |o| {
                o.extend_from_slice(&version.to_be_bytes());
                o.extend_from_slice(&pid.to_be_bytes());
            }),
            Event::Stdout { id, data } => frame(out, E_STDOUT, *id, |o| o.extend_from_slice(data)),
            Event::Stderr { id, data } => frame(out, E_STDERR, *id, |o| o.extend_from_slice(data)),
            Event::Exit { id, end, truncated } => frame(out, E_EXIT, *id, |o| {
                let (k, v) = end_parts(*end);
                o.push(k);
                o.extend_from_slice(&v.to_be_bytes());
                o.push(u8::from(*truncated));
            }),
            Event::Done { id, error } => frame(out, E_DONE, *id, |o| match error {
                None => o.push(0),
                Some(m) => {
                    o.push(1);
                    put_bytes(o, m.as_bytes());
                }
            }),
            Event::Note { id, text } => frame(out, E_NOTE, *id, |o| put_bytes(o, text.as_bytes())),
            Event::File { id, body, last } => frame(out, E_FILE, *id, |o| {
                o.push(u8::from(*last));
                o.extend_from_slice(body);
            }),
        }
    }

    fn decode(kind: u8, id: u32, body: &[u8]) -> Result<Event, ProtoError> {
        let mut r = Reader { rest: body, kind };
        let ev = match kind {
            E_HELLO => Event::Hello {
                version: r.u32()?,
                pid: r.u32()?,
            },
            E_STDOUT => Event::Stdout {
                id,
                data: r.rest().to_vec(),
            },
            E_STDERR => Event::Stderr {
                id,
                data: r.rest().to_vec(),
            },
            E_EXIT => {
                let k = r.u8()?;
                let v = r.i32()?;
                let end = match k {
                    0 => End::Code(v),
                    1 => End::Signal(v),
                    2 => End::TimedOut,
                    3 => End::Cancelled,
                    4 => End::NoDir,
                    5 => End::NoFork,
                    6 => End::Failed(v),
                    _ => return Err(ProtoError::Body(kind)),
                };
                let truncated = match r.u8()? {
                    0 => false,
                    1 => true,
                    _ => return Err(ProtoError::Body(kind)),
                };
                Event::Exit { id, end, truncated }
            }
            E_DONE => Event::Done {
                id,
                error: match r.u8()? {
                    0 => None,
                    1 => Some(r.string()?),
                    _ => return Err(ProtoError::Body(kind)),
                },
            },
            E_NOTE => Event::Note {
                id,
                text: r.string()?,
            },
            E_FILE => {
                let last = r.flag()?;
                Event::File {
                    id,
                    last,
                    body: r.rest().to_vec(),
                }
            }
            k => return Err(ProtoError::Kind(k)),
        };
        r.end()?;
        Ok(ev)
    }
}

/// Cuts a byte stream into messages. Feed it bytes as they come with
/// [`Decoder::push`], take whole messages with [`Decoder::next_message`].
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    pos: usize,
}

impl Decoder {
    /// An empty decoder.
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > (1 << 16) {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole message, `None` until one is complete.
    ///
    /// # Errors
    /// [`ProtoError`] for a frame out of bounds or malformed; the stream
    /// cannot be trusted after that.
    pub fn next_message<M: Message>(&mut self) -> Result<Option<M>, ProtoError> {
        let avail = &self.buf[self.pos..];
        if avail.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([avail[0], avail[1], avail[2], avail[3]]) as usize;
        if !(5..=MAX_FRAME).contains(&len) {
            return Err(ProtoError::Length(len));
        }
        if avail.len() < 4 + len {
            return Ok(None);
        }
        let f = &avail[4..4 + len];
        let id = u32::from_be_bytes([f[1], f[2], f[3], f[4]]);
        let msg = M::decode(f[0], id, &f[5..])?;
        self.pos += 4 + len;
        Ok(Some(msg))
    }

    /// Bytes received but not yet consumed.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.pos
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round<M: Message + PartialEq + std::fmt::Debug>(m: M) {
        let bytes = m.encode();
        // byte by byte: a frame is only complete at its last byte
        let mut d = Decoder::new();
        for (i, b) in bytes.iter().enumerate() {
            d.push(&[*b]);
            let got = d.next_message::<M>().unwrap();
            if i + 1 < bytes.len() {
                assert!(got.is_none());
            } else {
                assert_eq!(got.unwrap(), m);
            }
        }
        assert_eq!(d.pending(), 0);
    }

    #[test]
    fn every_message_round_trips() {
        round(Request::Run {
            id: 7,
            spec: RunSpec {
                command: b"echo hi\n\0x".to_vec(),
                workdir: b"/workspace".to_vec(),
                env: vec![b"A=1".to_vec(), b"B=\xff".to_vec()],
                timeout_ms: 5000,
                output_limit: 1 << 20,
                stdin: true,
            },
        });
        round(Request::Stdin {
            id: 1,
            data: vec![0, 1, 2, 255],
        });
        round(Request::StdinEnd { id: 1 });
        round(Request::Ping);
        round(Request::Signal { id: 2, signal: 15 });
        round(Request::Cancel { id: 3 });
        round(Request::KillAll { id: 4 });
        round(Request::Clear {
            id: 5,
            dirs: vec![b"/workspace".to_vec()],
        });
        round(Request::File {
            id: 6,
            body: vec![0, 1, 2],
            last: true,
        });
        round(Event::File {
            id: 6,
            body: Vec::new(),
            last: false,
        });
        round(Event::Hello { version: 1, pid: 9 });
        round(Event::Stdout {
            id: 1,
            data: b"x".to_vec(),
        });
        round(Event::Stderr {
            id: 1,
            data: Vec::new(),
        });
        for end in [
            End::Code(3),
            End::Signal(9),
            End::TimedOut,
            End::Cancelled,
            End::NoDir,
            End::NoFork,
            End::Failed(2),
        ] {
            round(Event::Exit {
                id: 1,
                end,
                truncated: true,
            });
        }
        round(Event::Done { id: 4, error: None });
        round(Event::Done {
            id: 4,
            error: Some("no".into()),
        });
        round(Event::Note {
            id: 0,
            text: "note".into(),
        });
    }

    #[test]
    fn output_that_looks_like_frames_stays_data() {
        // a command printing a whole fake exit frame: it arrives as the
        // body of one stdout frame and decodes as exactly that
        let fake = Event::Exit {
            id: 1,
            end: End::Code(0),
            truncated: false,
        }
        .encode();
        let real = Event::Stdout {
            id: 1,
            data: fake.clone(),
        };
        let mut d = Decoder::new();
        d.push(&real.encode());
        assert_eq!(d.next_message::<Event>().unwrap(), Some(real));
        assert_eq!(d.next_message::<Event>().unwrap(), None);
    }

    #[test]
    fn bad_frames_are_errors() {
        let mut d = Decoder::new();
        d.push(&u32::MAX.to_be_bytes());
        assert_eq!(
            d.next_message::<Event>(),
            Err(ProtoError::Length(u32::MAX as usize))
        );
        let mut d = Decoder::new();
        d.push(&[0, 0, 0, 5, 99, 0, 0, 0, 1]);
        assert_eq!(d.next_message::<Event>(), Err(ProtoError::Kind(99)));
        // an exit frame with a trailing byte
        let mut f = Event::Exit {
            id: 1,
            end: End::Code(0),
            truncated: false,
        }
        .encode();
        f.push(0);
        let len = (f.len() - 4) as u32;
        f[..4].copy_from_slice(&len.to_be_bytes());
        let mut d = Decoder::new();
        d.push(&f);
        assert_eq!(d.next_message::<Event>(), Err(ProtoError::Body(E_EXIT)));
        // a field longer than its frame
        let mut d = Decoder::new();
        d.push(&[0, 0, 0, 9, E_NOTE, 0, 0, 0, 0, 0, 0, 1, 0]);
        assert_eq!(d.next_message::<Event>(), Err(ProtoError::Body(E_NOTE)));
    }
}
