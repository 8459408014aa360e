//! File operations served by the agent itself: what a [`FileCall`] asks,
//! what a [`FileAnswer`] says, and their encoding.
//!
//! A call travels as the concatenated bodies of
//! [`Request::File`](crate::Request::File) frames with one id, its answer
//! as those of [`Event::File`](crate::Event::File) frames, so neither is
//! bounded by the frame size. A body is a 4-byte length, a JSON head (the
//! operation and every structured field, in `sandbay-core`'s own serde
//! forms) and the byte fields (file contents) as length-prefixed blobs
//! after it, so file contents are never inflated by a text encoding.
//! Errors keep their [`ErrorCode`] and every field a message is built
//! from, so the host shows the very error the agent's backend made.

use std::time::Duration;

use sandbay_core::{
    DirEntry, EditOutcome, EditRequest, Error, ErrorCode, GlobOutput, GlobRequest, GrepOutput,
    GrepRequest, ReadRequest, TextWindow, VPath,
};
use serde::{Deserialize, Serialize};

/// The largest call or answer body (file contents included). Larger
/// uploads are refused with `too_large` before anything is written.
pub const MAX_BODY: usize = 256 << 20;

/// A file operation on the agent's workspace, with the paths and
/// semantics of [`sandbay_core::Backend`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileCall {
    /// [`sandbay_core::Backend::ls`].
    Ls(VPath),
    /// [`sandbay_core::Backend::stat`].
    Stat(VPath),
    /// [`sandbay_core::Backend::read`].
    Read(VPath, ReadRequest),
    /// [`sandbay_core::Backend::write`].
    Write(VPath, String),
    /// [`sandbay_core::Backend::edit`].
    Edit(VPath, EditRequest),
    /// [`sandbay_core::Backend::delete`].
    Delete(VPath),
    /// [`sandbay_core::Backend::grep`].
    Grep(GrepRequest),
    /// [`sandbay_core::Backend::glob`].
    Glob(GlobRequest),
    /// [`sandbay_core::Backend::upload`].
    Upload(Vec<(VPath, Vec<u8>)>),
    /// [`sandbay_core::Backend::download`], refusing files over `max`
    /// bytes with `too_large`.
    Download {
        /// The files.
        paths: Vec<VPath>,
        /// The largest file returned.
        max: u64,
    },
    /// [`sandbay_core::Backend::clear`].
    Clear,
}

/// The answer to a [`FileCall`] that did not fail as a whole.
#[derive(Debug)]
pub enum FileAnswer {
    /// Of [`FileCall::Ls`].
    Entries(Vec<DirEntry>),
    /// Of [`FileCall::Stat`].
    Entry(DirEntry),
    /// Of [`FileCall::Read`].
    Window(TextWindow),
    /// Of [`FileCall::Write`] and [`FileCall::Delete`].
    Done,
    /// Of [`FileCall::Edit`].
    Edited(EditOutcome),
    /// Of [`FileCall::Grep`].
    Grep(GrepOutput),
    /// Of [`FileCall::Glob`].
    Glob(GlobOutput),
    /// Of [`FileCall::Upload`]: one result per file.
    Uploaded(Vec<Result<(), Error>>),
    /// Of [`FileCall::Download`]: one result per file.
    Downloaded(Vec<Result<Vec<u8>, Error>>),
    /// Of [`FileCall::Clear`]: how many entries were removed.
    Cleared(usize),
}

/// A call or answer body that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed file operation body: {0}")]
pub struct BodyError(String);

/// An [`Error`] in a form that travels: its code and the fields its
/// message is made of.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
struct WireError {
    code: Option<ErrorCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    path: Option<VPath>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    #[serde(default)]
    size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    limit: Option<u64>,
    #[serde(default)]
    count: usize,
    #[serde(default)]
    after_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
}

/// The I/O error kinds a backend reports, by name (`ErrorKind` has no
/// serde form).
const KINDS: &[std::io::ErrorKind] = {
    use std::io::ErrorKind as K;
    &[
        K::NotFound,
        K::PermissionDenied,
        K::AlreadyExists,
        K::WouldBlock,
        K::InvalidInput,
        K::InvalidData,
        K::TimedOut,
        K::WriteZero,
        K::Interrupted,
        K::Unsupported,
        K::UnexpectedEof,
        K::OutOfMemory,
        K::NotADirectory,
        K::IsADirectory,
        K::DirectoryNotEmpty,
        K::ReadOnlyFilesystem,
        K::StorageFull,
        K::QuotaExceeded,
        K::FileTooLarge,
        K::ResourceBusy,
        K::Deadlock,
        K::CrossesDevices,
        K::TooManyLinks,
        K::InvalidFilename,
        K::ArgumentListTooLong,
        K::BrokenPipe,
        K::Other,
    ]
};

fn kind_name(kind: std::io::ErrorKind) -> String {
    format!("{kind:?}")
}

fn kind_from(name: &str) -> std::io::ErrorKind {
    KINDS
        .iter()
        .copied()
        .find(|k| kind_name(*k) == name)
        .unwrap_or(std::io::ErrorKind::Other)
}

impl WireError {
    fn from_error(e: &Error) -> WireError {
        let mut w = WireError {
            code: Some(e.code()),
            ..WireError::default()
        };
        match e {
            Error::NotFound { path }
            | Error::IsDirectory { path }
            | Error::NotADirectory { path }
            | Error::NoMatch { path }
            | Error::BinaryFile { path } => w.path = Some(path.clone()),
            Error::PermissionDenied { path, reason } => {
                w.path = Some(path.clone());
                w.text = Some(reason.clone());
            }
            Error::InvalidPath(p) => w.text = Some(p.input().to_string()),
            Error::InvalidArgument { message } | Error::Unavailable { message } => {
                w.text = Some(message.clone());
            }
            Error::AmbiguousMatch { path, count } => {
                w.path = Some(path.clone());
                w.count = *count;
            }
            Error::TooLarge { what, size, limit } => {
                w.text = Some(what.clone());
                w.size = *size;
                w.limit = Some(*limit);
            }
            Error::Timeout { after } => {
                w.after_ms = u64::try_from(after.as_millis()).unwrap_or(u64::MAX);
            }
            Error::Unsupported { operation, backend } => {
                w.text = Some(format!(
                    "{operation} is not supported by the {backend} backend"
                ));
            }
            Error::Io { path, kind } => {
                w.path = path.clone();
                w.kind = Some(kind_name(*kind));
            }
            Error::QuotaExceeded { path, limit } => {
                w.path = Some(path.clone());
                w.limit = *limit;
            }
            other => {
                w.code = Some(ErrorCode::Io);
                w.kind = Some(kind_name(std::io::ErrorKind::Other));
                w.text = Some(other.to_string());
            }
        }
        w
    }

    fn into_error(self) -> Error {
        let root = VPath::root;
        let path = self.path.clone().unwrap_or_else(root);
        let text = self.text.clone().unwrap_or_default();
        match self.code {
            Some(ErrorCode::NotFound) => Error::NotFound { path },
            Some(ErrorCode::IsDirectory) => Error::IsDirectory { path },
            Some(ErrorCode::NotADirectory) => Error::NotADirectory { path },
            Some(ErrorCode::NoMatch) => Error::NoMatch { path },
            Some(ErrorCode::BinaryFile) => Error::BinaryFile { path },
            Some(ErrorCode::PermissionDenied) => Error::PermissionDenied { path, reason: text },
            Some(ErrorCode::InvalidPath) => match VPath::parse(&text) {
                Err(e) => Error::InvalidPath(e),
                Ok(_) => Error::invalid_argument(format!("invalid path {text:?}")),
            },
            Some(ErrorCode::InvalidArgument) => Error::InvalidArgument { message: text },
            Some(ErrorCode::AmbiguousMatch) => Error::AmbiguousMatch {
                path,
                count: self.count,
            },
            Some(ErrorCode::TooLarge) => Error::TooLarge {
                what: text,
                size: self.size,
                limit: self.limit.unwrap_or(0),
            },
            Some(ErrorCode::Timeout) => Error::Timeout {
                after: Duration::from_millis(self.after_ms),
            },
            Some(ErrorCode::QuotaExceeded) => Error::QuotaExceeded {
                path,
                limit: self.limit,
            },
            Some(ErrorCode::Io) => Error::Io {
                path: self.path,
                kind: self
                    .kind
                    .as_deref()
                    .map_or(std::io::ErrorKind::Other, kind_from),
            },
            // unavailable, unsupported (no operation of the agent is),
            // and any code newer than this build
            _ => Error::Unavailable { message: text },
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum CallHead {
    Ls { path: VPath },
    Stat { path: VPath },
    Read { path: VPath, request: ReadRequest },
    Write { path: VPath },
    Edit { path: VPath, request: EditRequest },
    Delete { path: VPath },
    Grep { request: GrepRequest },
    Glob { request: GlobRequest },
    Upload { paths: Vec<VPath> },
    Download { paths: Vec<VPath>, max: u64 },
    Clear,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "snake_case")]
enum AnswerHead {
    Failed {
        error: WireError,
    },
    Entries {
        entries: Vec<DirEntry>,
    },
    Entry {
        entry: DirEntry,
    },
    Window {
        window: TextWindow,
    },
    Done,
    Edited {
        outcome: EditOutcome,
    },
    Grep {
        output: GrepOutput,
    },
    Glob {
        output: GlobOutput,
    },
    /// One entry per file: `None` for success (a blob follows, in order,
    /// for each successful download).
    Items {
        errors: Vec<Option<WireError>>,
    },
    Cleared {
        count: usize,
    },
}

/// Puts a JSON head and blobs into one body.
fn pack<H: Serialize>(head: &H, blobs: &[&[u8]]) -> Vec<u8> {
    // serialising these plain types cannot fail
    let json = serde_json::to_vec(head).unwrap_or_default();
    let total = 8 + json.len() + blobs.iter().map(|b| b.len() + 4).sum::<usize>();
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(json.len() as u32).to_be_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(&(blobs.len() as u32).to_be_bytes());
    for b in blobs {
        out.extend_from_slice(&(b.len() as u32).to_be_bytes());
        out.extend_from_slice(b);
    }
    out
}

/// Splits a body into its JSON head and its blobs.
fn unpack<H: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<(H, Vec<Vec<u8>>), BodyError> {
    let bad = |why: &str| BodyError(why.to_string());
    let mut rest = body;
    let mut take = |n: usize| -> Result<&[u8], BodyError> {
        if n > rest.len() {
            return Err(bad("a field runs past the end"));
        }
        let (a, b) = rest.split_at(n);
        rest = b;
        Ok(a)
    };
    let u32_at = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
    let n = u32_at(take(4)?);
    let head = serde_json::from_slice(take(n)?).map_err(|e| BodyError(e.to_string()))?;
    let count = u32_at(take(4)?);
    if count > crate::MAX_ENV * 16 {
        return Err(bad("too many blobs"));
    }
    let mut blobs = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let n = u32_at(take(4)?);
        blobs.push(take(n)?.to_vec());
    }
    if !rest.is_empty() {
        return Err(bad("trailing bytes"));
    }
    Ok((head, blobs))
}

impl FileCall {
    /// The call as one body (split it into frames with [`chunks`]).
    pub fn encode(&self) -> Vec<u8> {
        match self {
            FileCall::Ls(path) => pack(&CallHead::Ls { path: path.clone() }, &[]),
            FileCall::Stat(path) => pack(&CallHead::Stat { path: path.clone() }, &[]),
            FileCall::Read(path, request) => pack(
                &CallHead::Read {
                    path: path.clone(),
                    request: *request,
                },
                &[],
            ),
            FileCall::Write(path, content) => pack(
                &CallHead::Write { path: path.clone() },
                &[content.as_bytes()],
            ),
            FileCall::Edit(path, request) => pack(
                &CallHead::Edit {
                    path: path.clone(),
                    request: request.clone(),
                },
                &[],
            ),
            FileCall::Delete(path) => pack(&CallHead::Delete { path: path.clone() }, &[]),
            FileCall::Grep(request) => pack(
                &CallHead::Grep {
                    request: request.clone(),
                },
                &[],
            ),
            FileCall::Glob(request) => pack(
                &CallHead::Glob {
                    request: request.clone(),
                },
                &[],
            ),
            FileCall::Upload(files) => {
                let paths = files.iter().map(|(p, _)| p.clone()).collect();
                let blobs: Vec<&[u8]> = files.iter().map(|(_, b)| b.as_slice()).collect();
                pack(&CallHead::Upload { paths }, &blobs)
            }
            FileCall::Download { paths, max } => pack(
                &CallHead::Download {
                    paths: paths.clone(),
                    max: *max,
                },
                &[],
            ),
            FileCall::Clear => pack(&CallHead::Clear, &[]),
        }
    }

    /// Reads a call from its body.
    ///
    /// # Errors
    /// [`BodyError`] when the body is not a call.
    pub fn decode(body: &[u8]) -> Result<FileCall, BodyError> {
        let (head, mut blobs) = unpack::<CallHead>(body)?;
        let mut blob = |i: usize| -> Result<Vec<u8>, BodyError> {
            blobs
                .get_mut(i)
                .map(std::mem::take)
                .ok_or_else(|| BodyError("a blob is missing".into()))
        };
        Ok(match head {
            CallHead::Ls { path } => FileCall::Ls(path),
            CallHead::Stat { path } => FileCall::Stat(path),
            CallHead::Read { path, request } => FileCall::Read(path, request),
            CallHead::Write { path } => FileCall::Write(
                path,
                String::from_utf8(blob(0)?).map_err(|_| BodyError("text is not UTF-8".into()))?,
            ),
            CallHead::Edit { path, request } => FileCall::Edit(path, request),
            CallHead::Delete { path } => FileCall::Delete(path),
            CallHead::Grep { request } => FileCall::Grep(request),
            CallHead::Glob { request } => FileCall::Glob(request),
            CallHead::Upload { paths } => {
                let mut files = Vec::with_capacity(paths.len());
                for (i, p) in paths.into_iter().enumerate() {
                    files.push((p, blob(i)?));
                }
                FileCall::Upload(files)
            }
            CallHead::Download { paths, max } => FileCall::Download { paths, max },
            CallHead::Clear => FileCall::Clear,
        })
    }
}

/// Encodes the result of a call as one answer body.
pub fn encode_answer(answer: &Result<FileAnswer, Error>) -> Vec<u8> {
    let answer = match answer {
        Ok(a) => a,
        Err(e) => {
            return pack(
                &AnswerHead::Failed {
                    error: WireError::from_error(e),
                },
                &[],
            );
        }
    };
    match answer {
        FileAnswer::Entries(entries) => pack(
            &AnswerHead::Entries {
                entries: entries.clone(),
            },
            &[],
        ),
        FileAnswer::Entry(entry) => pack(
            &AnswerHead::Entry {
                entry: entry.clone(),
            },
            &[],
        ),
        FileAnswer::Window(window) => pack(
            &AnswerHead::Window {
                window: window.clone(),
            },
            &[],
        ),
        FileAnswer::Done => pack(&AnswerHead::Done, &[]),
        FileAnswer::Edited(outcome) => pack(&AnswerHead::Edited { outcome: *outcome }, &[]),
        FileAnswer::Grep(output) => pack(
            &AnswerHead::Grep {
                output: output.clone(),
            },
            &[],
        ),
        FileAnswer::Glob(output) => pack(
            &AnswerHead::Glob {
                output: output.clone(),
            },
            &[],
        ),
        FileAnswer::Uploaded(results) => pack(
            &AnswerHead::Items {
                errors: results
                    .iter()
                    .map(|r| r.as_ref().err().map(WireError::from_error))
                    .collect(),
            },
            &[],
        ),
        FileAnswer::Downloaded(results) => {
            let errors = results
                .iter()
                .map(|r| r.as_ref().err().map(WireError::from_error))
                .collect();
            let blobs: Vec<&[u8]> = results
                .iter()
                .filter_map(|r| r.as_ref().ok().map(Vec::as_slice))
                .collect();
            pack(&AnswerHead::Items { errors }, &blobs)
        }
        FileAnswer::Cleared(count) => pack(&AnswerHead::Cleared { count: *count }, &[]),
    }
}

/// Reads the answer to `call` from its body: the call's own error when
/// it failed as a whole.
///
/// # Errors
/// [`BodyError`] when the body is not an answer to a call of this kind.
pub fn decode_answer(call: &FileCall, body: &[u8]) -> Result<Result<FileAnswer, Error>, BodyError> {
    let (head, blobs) = unpack::<AnswerHead>(body)?;
    let mismatch = || BodyError("the answer does not fit the call".into());
    Ok(Ok(match (call, head) {
        (_, AnswerHead::Failed { error }) => return Ok(Err(error.into_error())),
        (FileCall::Ls(_), AnswerHead::Entries { entries }) => FileAnswer::Entries(entries),
        (FileCall::Stat(_), AnswerHead::Entry { entry }) => FileAnswer::Entry(entry),
        (FileCall::Read(..), AnswerHead::Window { window }) => FileAnswer::Window(window),
        (FileCall::Write(..) | FileCall::Delete(_), AnswerHead::Done) => FileAnswer::Done,
        (FileCall::Edit(..), AnswerHead::Edited { outcome }) => FileAnswer::Edited(outcome),
        (FileCall::Grep(_), AnswerHead::Grep { output }) => FileAnswer::Grep(output),
        (FileCall::Glob(_), AnswerHead::Glob { output }) => FileAnswer::Glob(output),
        (FileCall::Upload(files), AnswerHead::Items { errors }) if errors.len() == files.len() => {
            FileAnswer::Uploaded(
                errors
                    .into_iter()
                    .map(|e| e.map_or(Ok(()), |e| Err(e.into_error())))
                    .collect(),
            )
        }
        (FileCall::Download { paths, .. }, AnswerHead::Items { errors })
            if errors.len() == paths.len()
                && blobs.len() == errors.iter().filter(|e| e.is_none()).count() =>
        {
            let mut blobs = blobs.into_iter();
            FileAnswer::Downloaded(
                errors
                    .into_iter()
                    .map(|e| match e {
                        Some(e) => Err(e.into_error()),
                        None => Ok(blobs.next().unwrap_or_default()),
                    })
                    .collect(),
            )
        }
        (FileCall::Clear, AnswerHead::Cleared { count }) => FileAnswer::Cleared(count),
        _ => return Err(mismatch()),
    }))
}

/// Splits a body into the pieces of its frames: at least one, the last
/// marked by `true`.
pub fn chunks(body: &[u8]) -> impl Iterator<Item = (&[u8], bool)> {
    let piece = crate::MAX_FIELD / 2;
    let n = body.len().div_ceil(piece).max(1);
    (0..n).map(move |i| {
        let start = i * piece;
        let end = (start + piece).min(body.len());
        (&body[start.min(body.len())..end], i + 1 == n)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> VPath {
        VPath::parse(s).unwrap()
    }

    #[test]
    fn calls_round_trip() {
        let calls = vec![
            FileCall::Ls(p("/a")),
            FileCall::Stat(VPath::root()),
            FileCall::Read(
                p("/f"),
                ReadRequest {
                    offset: 3,
                    limit: 7,
                },
            ),
            FileCall::Write(p("/w"), "héllo\n".into()),
            FileCall::Edit(
                p("/e"),
                EditRequest {
                    old: "a".into(),
                    new: "b".into(),
                    replace_all: true,
                },
            ),
            FileCall::Delete(p("/d")),
            FileCall::Grep(GrepRequest::new("x+")),
            FileCall::Glob(GlobRequest::new("**/*.rs")),
            FileCall::Upload(vec![(p("/b1"), vec![0, 255, 10]), (p("/b2"), Vec::new())]),
            FileCall::Download {
                paths: vec![p("/x"), p("/y")],
                max: 9,
            },
            FileCall::Clear,
        ];
        for c in calls {
            assert_eq!(FileCall::decode(&c.encode()).unwrap(), c);
        }
        assert!(FileCall::decode(b"\0\0\0\x02{}").is_err());
        assert!(FileCall::decode(&[0, 0, 0, 99]).is_err());
    }

    #[test]
    fn errors_keep_code_and_message() {
        let errors = vec![
            Error::NotFound { path: p("/n") },
            Error::escape(&p("/l")),
            Error::AmbiguousMatch {
                path: p("/a"),
                count: 3,
            },
            Error::TooLarge {
                what: "/big".into(),
                size: 10,
                limit: 5,
            },
            Error::QuotaExceeded {
                path: p("/q"),
                limit: Some(4096),
            },
            Error::Io {
                path: Some(p("/i")),
                kind: std::io::ErrorKind::ResourceBusy,
            },
            Error::Timeout {
                after: Duration::from_millis(1500),
            },
            Error::InvalidPath(VPath::parse("a\\b").unwrap_err()),
            Error::invalid_argument("bad regex"),
            Error::BinaryFile { path: p("/bin") },
        ];
        for e in errors {
            let back = WireError::from_error(&e).into_error();
            assert_eq!(back.code(), e.code());
            assert_eq!(back.to_string(), e.to_string());
        }
    }

    #[test]
    fn answers_round_trip() {
        let call = FileCall::Download {
            paths: vec![p("/a"), p("/b"), p("/c")],
            max: 100,
        };
        let answer = Ok(FileAnswer::Downloaded(vec![
            Ok(b"one".to_vec()),
            Err(Error::NotFound { path: p("/b") }),
            Ok(Vec::new()),
        ]));
        let body = encode_answer(&answer);
        match decode_answer(&call, &body).unwrap() {
            Ok(FileAnswer::Downloaded(r)) => {
                assert_eq!(r[0].as_ref().unwrap(), b"one");
                assert_eq!(r[1].as_ref().unwrap_err().code(), ErrorCode::NotFound);
                assert!(r[2].as_ref().unwrap().is_empty());
            }
            other => panic!("{other:?}"),
        }
        // an answer of another kind is a body error, not a guess
        assert!(decode_answer(&FileCall::Clear, &body).is_err());
        let failed = encode_answer(&Err(Error::NotFound { path: p("/z") }));
        let r = decode_answer(&FileCall::Ls(p("/z")), &failed).unwrap();
        assert_eq!(r.unwrap_err().code(), ErrorCode::NotFound);
    }

    #[test]
    fn chunks_cover_the_body() {
        assert_eq!(chunks(&[]).collect::<Vec<_>>(), vec![(&[][..], true)]);
        let big = vec![1u8; crate::MAX_FIELD * 2];
        let parts: Vec<_> = chunks(&big).collect();
        assert!(parts.len() >= 4);
        assert!(parts[..parts.len() - 1].iter().all(|(_, last)| !last));
        assert!(parts.last().unwrap().1);
        assert_eq!(parts.iter().map(|(c, _)| c.len()).sum::<usize>(), big.len());
    }
}
