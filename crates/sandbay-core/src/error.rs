//! The one error type of the contract, with stable machine codes.

use std::time::Duration;

use crate::path::{PathError, VPath};

/// Result alias used throughout sandbay.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Stable, machine-readable error categories.
///
/// The string form ([`ErrorCode::as_str`]) is part of the public contract:
/// it never changes for an existing category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The path does not exist.
    NotFound,
    /// A file was expected, a directory was found.
    IsDirectory,
    /// A directory was expected (or a path component is a file).
    NotADirectory,
    /// The operation is not allowed (escape attempts, the root, special files).
    PermissionDenied,
    /// The path string broke a [`VPath`] rule.
    InvalidPath,
    /// An argument other than a path is invalid (empty `old`, bad regex, ...).
    InvalidArgument,
    /// `edit` found no occurrence of the text to replace.
    NoMatch,
    /// `edit` found several occurrences and `replace_all` was not set.
    AmbiguousMatch,
    /// A text operation met a file that is not UTF-8 text.
    BinaryFile,
    /// A size limit was exceeded.
    TooLarge,
    /// The operation ran out of time.
    Timeout,
    /// The backend does not offer this operation.
    Unsupported,
    /// The backend (daemon, jail) cannot be reached or is gone.
    Unavailable,
    /// Any other input/output failure.
    Io,
    /// The workspace's disk quota (bytes or files) is used up.
    QuotaExceeded,
}

impl ErrorCode {
    /// The stable snake_case name, e.g. `"not_found"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NotFound => "not_found",
            ErrorCode::IsDirectory => "is_directory",
            ErrorCode::NotADirectory => "not_a_directory",
            ErrorCode::PermissionDenied => "permission_denied",
            ErrorCode::InvalidPath => "invalid_path",
            ErrorCode::InvalidArgument => "invalid_argument",
            ErrorCode::NoMatch => "no_match",
            ErrorCode::AmbiguousMatch => "ambiguous_match",
            ErrorCode::BinaryFile => "binary_file",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Unsupported => "unsupported",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Io => "io",
            ErrorCode::QuotaExceeded => "quota_exceeded",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every failure a backend reports.
///
/// Messages are written for a language model and for logs alike: they
/// name the *virtual* path and say what to do next. **A message never
/// contains a host path**; backends convert their internal errors with
/// care (see [`Error::io`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// See [`ErrorCode::NotFound`].
    #[error("{path}: no such file or directory")]
    NotFound {
        /// The missing path.
        path: VPath,
    },
    /// See [`ErrorCode::IsDirectory`].
    #[error("{path}: is a directory")]
    IsDirectory {
        /// The directory.
        path: VPath,
    },
    /// See [`ErrorCode::NotADirectory`].
    #[error("{path}: not a directory")]
    NotADirectory {
        /// The path that is not a directory.
        path: VPath,
    },
    /// See [`ErrorCode::PermissionDenied`].
    #[error("{path}: permission denied: {reason}")]
    PermissionDenied {
        /// The refused path.
        path: VPath,
        /// Why, in a fixed phrase that names no host path.
        reason: String,
    },
    /// See [`ErrorCode::InvalidPath`].
    #[error(transparent)]
    InvalidPath(#[from] PathError),
    /// See [`ErrorCode::InvalidArgument`].
    #[error("invalid argument: {message}")]
    InvalidArgument {
        /// What is wrong and how to fix it.
        message: String,
    },
    /// See [`ErrorCode::NoMatch`].
    #[error("{path}: the text to replace was not found")]
    NoMatch {
        /// The edited file.
        path: VPath,
    },
    /// See [`ErrorCode::AmbiguousMatch`].
    #[error(
        "{path}: the text to replace occurs {count} times; add surrounding context to make it unique, or set replace_all"
    )]
    AmbiguousMatch {
        /// The edited file.
        path: VPath,
        /// How many occurrences were found.
        count: usize,
    },
    /// See [`ErrorCode::BinaryFile`].
    #[error("{path}: not a UTF-8 text file")]
    BinaryFile {
        /// The binary file.
        path: VPath,
    },
    /// See [`ErrorCode::TooLarge`].
    #[error("{what} is too large: {size} bytes, the limit is {limit} bytes")]
    TooLarge {
        /// What was too large (a virtual path or a description).
        what: String,
        /// The size found (or a lower bound).
        size: u64,
        /// The limit in force.
        limit: u64,
    },
    /// See [`ErrorCode::Timeout`].
    #[error("timed out after {}", humanize(*.after))]
    Timeout {
        /// The time limit that was hit.
        after: Duration,
    },
    /// See [`ErrorCode::Unsupported`].
    #[error("{operation} is not supported by the {backend} backend")]
    Unsupported {
        /// The operation name.
        operation: &'static str,
        /// The backend name.
        backend: &'static str,
    },
    /// See [`ErrorCode::Unavailable`].
    #[error("backend unavailable: {message}")]
    Unavailable {
        /// What is unavailable, without host paths.
        message: String,
    },
    /// See [`ErrorCode::Io`].
    #[error("{}: i/o error: {kind}", path.as_ref().map(VPath::as_str).unwrap_or("<workspace>"))]
    Io {
        /// The virtual path involved, when known.
        path: Option<VPath>,
        /// The kind of the underlying I/O error.
        kind: std::io::ErrorKind,
    },
    /// See [`ErrorCode::QuotaExceeded`].
    #[error("{path}: the workspace is over its disk quota{}; delete files to make room", quota_phrase(*.limit))]
    QuotaExceeded {
        /// The path being written.
        path: VPath,
        /// The byte quota in force, when the backend knows it.
        limit: Option<u64>,
    },
}

fn quota_phrase(limit: Option<u64>) -> String {
    limit.map(|l| format!(" of {l} bytes")).unwrap_or_default()
}

fn humanize(d: Duration) -> String {
    if d.as_secs() > 0 && d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

impl Error {
    /// The stable machine code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::NotFound { .. } => ErrorCode::NotFound,
            Error::IsDirectory { .. } => ErrorCode::IsDirectory,
            Error::NotADirectory { .. } => ErrorCode::NotADirectory,
            Error::PermissionDenied { .. } => ErrorCode::PermissionDenied,
            Error::InvalidPath(_) => ErrorCode::InvalidPath,
            Error::InvalidArgument { .. } => ErrorCode::InvalidArgument,
            Error::NoMatch { .. } => ErrorCode::NoMatch,
            Error::AmbiguousMatch { .. } => ErrorCode::AmbiguousMatch,
            Error::BinaryFile { .. } => ErrorCode::BinaryFile,
            Error::TooLarge { .. } => ErrorCode::TooLarge,
            Error::Timeout { .. } => ErrorCode::Timeout,
            Error::Unsupported { .. } => ErrorCode::Unsupported,
            Error::Unavailable { .. } => ErrorCode::Unavailable,
            Error::Io { .. } => ErrorCode::Io,
            Error::QuotaExceeded { .. } => ErrorCode::QuotaExceeded,
        }
    }

    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid_argument(message: impl Into<String>) -> Error {
        Error::InvalidArgument {
            message: message.into(),
        }
    }

    /// The refusal for anything that would lead outside the workspace.
    /// The reason is fixed so that no host detail can slip in.
    pub fn escape(path: &VPath) -> Error {
        Error::PermissionDenied {
            path: path.clone(),
            reason: "the path leads outside the workspace".into(),
        }
    }

    /// Maps a host I/O error on a virtual path to a category, keeping only
    /// the error *kind* (an [`std::io::Error`]'s text may name host paths).
    pub fn io(path: &VPath, err: &std::io::Error) -> Error {
        use std::io::ErrorKind as K;
        /// `ELOOP` on Linux: too many symbolic links (its `ErrorKind` is unstable).
        const ELOOP: i32 = 40;
        let path = path.clone();
        if cfg!(target_os = "linux") && err.raw_os_error() == Some(ELOOP) {
            return Error::PermissionDenied {
                path,
                reason: "too many levels of symbolic links".into(),
            };
        }
        match err.kind() {
            K::NotFound => Error::NotFound { path },
            K::IsADirectory => Error::IsDirectory { path },
            K::NotADirectory => Error::NotADirectory { path },
            K::PermissionDenied => Error::PermissionDenied {
                path,
                reason: "access refused".into(),
            },
            K::TimedOut => Error::Timeout {
                after: Duration::ZERO,
            },
            K::InvalidFilename => Error::InvalidArgument {
                message: format!("{path}: the file name is not valid here"),
            },
            // EFBIG: one file over the file size limit (`RLIMIT_FSIZE`)
            K::FileTooLarge => Error::TooLarge {
                what: path.to_string(),
                size: 0,
                limit: 0,
            },
            // ENOSPC, EDQUOT: the workspace's file system (or quota) is full
            K::StorageFull | K::QuotaExceeded => Error::QuotaExceeded { path, limit: None },
            kind => Error::Io {
                path: Some(path),
                kind,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable() {
        let p = VPath::parse("/x").unwrap();
        let cases: Vec<(Error, &str)> = vec![
            (Error::NotFound { path: p.clone() }, "not_found"),
            (Error::IsDirectory { path: p.clone() }, "is_directory"),
            (Error::NotADirectory { path: p.clone() }, "not_a_directory"),
            (Error::escape(&p), "permission_denied"),
            (VPath::parse("").unwrap_err().into(), "invalid_path"),
            (Error::invalid_argument("x"), "invalid_argument"),
            (Error::NoMatch { path: p.clone() }, "no_match"),
            (
                Error::AmbiguousMatch {
                    path: p.clone(),
                    count: 2,
                },
                "ambiguous_match",
            ),
            (Error::BinaryFile { path: p.clone() }, "binary_file"),
            (
                Error::TooLarge {
                    what: "x".into(),
                    size: 2,
                    limit: 1,
                },
                "too_large",
            ),
            (
                Error::Timeout {
                    after: Duration::from_secs(1),
                },
                "timeout",
            ),
            (
                Error::Unsupported {
                    operation: "execute",
                    backend: "state",
                },
                "unsupported",
            ),
            (
                Error::Unavailable {
                    message: "gone".into(),
                },
                "unavailable",
            ),
            (
                Error::Io {
                    path: None,
                    kind: std::io::ErrorKind::Other,
                },
                "io",
            ),
            (
                Error::QuotaExceeded {
                    path: p.clone(),
                    limit: Some(10),
                },
                "quota_exceeded",
            ),
        ];
        for (err, code) in cases {
            assert_eq!(err.code().as_str(), code, "{err}");
            assert!(!err.to_string().is_empty());
        }
    }

    #[test]
    fn io_mapping_drops_host_text() {
        let p = VPath::parse("/a").unwrap();
        let host = std::io::Error::other("/srv/secret/host/path");
        let err = Error::io(&p, &host);
        assert!(!err.to_string().contains("/srv"), "{err}");
        assert_eq!(
            Error::io(&p, &std::io::ErrorKind::NotFound.into()).code(),
            ErrorCode::NotFound
        );
    }

    #[test]
    fn full_disk_is_quota_exceeded() {
        let p = VPath::parse("/big").unwrap();
        for errno in [28, 122] {
            // ENOSPC, EDQUOT
            let err = Error::io(&p, &std::io::Error::from_raw_os_error(errno));
            assert_eq!(err.code(), ErrorCode::QuotaExceeded, "errno {errno}");
            assert_eq!(
                err.to_string(),
                "/big: the workspace is over its disk quota; delete files to make room"
            );
        }
        // EFBIG is one file over its size limit, not the workspace
        let err = Error::io(&p, &std::io::Error::from_raw_os_error(27));
        assert_eq!(err.code(), ErrorCode::TooLarge);
        let err = Error::QuotaExceeded {
            path: p,
            limit: Some(4096),
        };
        assert_eq!(
            err.to_string(),
            "/big: the workspace is over its disk quota of 4096 bytes; delete files to make room"
        );
    }

    #[test]
    fn timeout_message() {
        let e = Error::Timeout {
            after: Duration::from_secs(3),
        };
        assert_eq!(e.to_string(), "timed out after 3s");
    }
}
