//! The one place where host I/O errors become [`sandbay_core::Error`]s.
//!
//! Only the error *kind* and, for a few errno values, the raw number are
//! looked at; the text of an [`std::io::Error`] is never used, because it
//! may name host paths. Every error carries the *virtual* path the caller
//! asked for.

use std::io;

use sandbay_core::{Error, VPath};

/// Fixed reason for FIFOs, sockets and devices.
pub(crate) const NOT_REGULAR: &str = "not a regular file";
/// Fixed reason for files with several hard links.
pub(crate) const HARD_LINKED: &str =
    "the file has several hard links and may be shared with files outside the workspace";
/// Fixed reason for symlink loops and overly long symlink chains.
pub(crate) const SYMLINK_LOOP: &str = "too many levels of symbolic links";
/// Fixed reason for `delete` and `write` of the root.
pub(crate) const ROOT: &str = "the workspace root itself cannot be changed";

/// Whether `err` is cap-std's refusal of a path that would leave the root.
///
/// cap-std reports escapes (an absolute symlink, `..` above the root, a
/// symlink leading out) as `PermissionDenied` *without* an OS error
/// number, while a real `EACCES`/`EPERM` from the kernel carries one. The
/// kernel's own `EXDEV` from `openat2(RESOLVE_BENEATH)` is included too.
pub(crate) fn is_escape(err: &io::Error) -> bool {
    (err.kind() == io::ErrorKind::PermissionDenied && err.raw_os_error().is_none())
        || err.raw_os_error() == Some(libc::EXDEV)
}

/// Maps a host I/O error met while working on `path`.
pub(crate) fn map_io(path: &VPath, err: &io::Error) -> Error {
    if is_escape(err) {
        return Error::escape(path);
    }
    match err.raw_os_error() {
        Some(libc::ELOOP) => return denied(path, SYMLINK_LOOP),
        // opening a socket, or a device without a driver
        Some(libc::ENXIO | libc::ENODEV) => return denied(path, NOT_REGULAR),
        _ => {}
    }
    Error::io(path, err)
}

/// Maps a host I/O error of the provider, which works on user and
/// session directories rather than virtual paths: no path is named at
/// all (the ids are the caller's own).
pub(crate) fn provider_io(err: io::Error) -> Error {
    match err.kind() {
        io::ErrorKind::NotFound => Error::NotFound {
            path: VPath::root(),
        },
        kind => Error::Io { path: None, kind },
    }
}

/// A `permission_denied` with a fixed reason.
pub(crate) fn denied(path: &VPath, reason: &'static str) -> Error {
    Error::PermissionDenied {
        path: path.clone(),
        reason: reason.into(),
    }
}

/// Maps a failed blocking task (a panic or a runtime shutting down).
pub(crate) fn join_error(err: tokio::task::JoinError) -> Error {
    if err.is_panic() {
        tracing::error!("a blocking file operation panicked");
        Error::Io {
            path: None,
            kind: io::ErrorKind::Other,
        }
    } else {
        Error::Unavailable {
            message: "the runtime is shutting down".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> VPath {
        VPath::parse("/a/b").unwrap()
    }

    #[test]
    fn escape_is_recognised_by_shape() {
        let cap_std_escape = io::Error::new(
            io::ErrorKind::PermissionDenied,
            "a path led outside of the filesystem",
        );
        let err = map_io(&p(), &cap_std_escape);
        assert_eq!(err.code().as_str(), "permission_denied");
        assert!(err.to_string().contains("outside the workspace"), "{err}");
        let eacces = io::Error::from_raw_os_error(libc::EACCES);
        let err = map_io(&p(), &eacces);
        assert_eq!(err.code().as_str(), "permission_denied");
        assert!(!err.to_string().contains("outside"), "{err}");
        let exdev = io::Error::from_raw_os_error(libc::EXDEV);
        assert!(map_io(&p(), &exdev).to_string().contains("outside"));
    }

    #[test]
    fn errno_mapping() {
        let cases = [
            (libc::ENOENT, "not_found"),
            (libc::ENOTDIR, "not_a_directory"),
            (libc::EISDIR, "is_directory"),
            (libc::ELOOP, "permission_denied"),
            (libc::ENXIO, "permission_denied"),
            (libc::ENOSPC, "quota_exceeded"),
            (libc::EDQUOT, "quota_exceeded"),
            (libc::EFBIG, "too_large"),
            (libc::EIO, "io"),
        ];
        for (errno, code) in cases {
            let err = map_io(&p(), &io::Error::from_raw_os_error(errno));
            assert_eq!(err.code().as_str(), code, "errno {errno}");
            assert!(err.to_string().starts_with("/a/b"), "{err}");
        }
    }

    #[test]
    fn host_text_never_leaks() {
        let host = io::Error::other("/srv/host/secret/path");
        let err = map_io(&p(), &host);
        assert!(!err.to_string().contains("/srv"), "{err}");
    }
}
