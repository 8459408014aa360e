//! Exact-string replacement, shared by every backend.

use crate::error::{Error, Result};
use crate::path::VPath;
use crate::types::EditRequest;

/// Whether a text's first line ending is `\r\n`: the rule by which
/// [`apply_edit`] keeps a file's CRLF line endings.
///
/// ```
/// assert!(sandbay_core::text::uses_crlf("a\r\nb\n"));
/// assert!(!sandbay_core::text::uses_crlf("a\nb\r\n"));
/// ```
pub fn uses_crlf(content: &str) -> bool {
    content
        .find('\n')
        .is_some_and(|i| i > 0 && content.as_bytes()[i - 1] == b'\r')
}

/// `\n` and `\r\n` both become `\r\n`.
fn to_crlf(s: &str) -> String {
    s.replace("\r\n", "\n").replace('\n', "\r\n")
}

/// Applies an edit to `content` and returns the new text and the number
/// of replacements.
///
/// Rules:
///
/// * `old` must not be empty (`invalid_argument`);
/// * `old` must occur exactly once unless `replace_all` is set
///   (`no_match`, `ambiguous_match` with the count);
/// * a file whose first line ends in `\r\n` keeps CRLF: if `old` is not
///   found as given, it is looked for with its line endings turned into
///   `\r\n`, and `new`'s line endings become `\r\n` in either case;
/// * the result may not exceed `max_bytes` (`too_large`); this is checked
///   before the new text is built, so a `replace_all` that would multiply
///   the file never allocates it.
///
/// ```
/// use sandbay_core::{EditRequest, VPath, text::apply_edit};
/// let p = VPath::parse("/f").unwrap();
/// let req = EditRequest { old: "a\nb".into(), new: "x\ny".into(), replace_all: false };
/// let (out, n) = apply_edit(&p, "a\r\nb\r\n", &req, 1 << 20).unwrap();
/// assert_eq!((out.as_str(), n), ("x\r\ny\r\n", 1));
/// ```
///
/// # Errors
///
/// `invalid_argument`, `no_match`, `ambiguous_match`, `too_large`.
pub fn apply_edit(
    path: &VPath,
    content: &str,
    request: &EditRequest,
    max_bytes: u64,
) -> Result<(String, usize)> {
    if request.old.is_empty() {
        return Err(Error::invalid_argument(
            "old_string must not be empty; to create or overwrite a file, write it",
        ));
    }
    let crlf = uses_crlf(content);
    let new = if crlf {
        to_crlf(&request.new)
    } else {
        request.new.clone()
    };
    let mut old = std::borrow::Cow::Borrowed(request.old.as_str());
    let mut first = content.find(old.as_ref());
    if first.is_none() && crlf && request.old.contains('\n') {
        old = std::borrow::Cow::Owned(to_crlf(&request.old));
        first = content.find(old.as_ref());
    }
    let Some(first) = first else {
        return Err(Error::NoMatch { path: path.clone() });
    };
    let old = old.as_ref();
    let after = first + old.len();
    // The rest of the text is scanned once: for a single edit, to prove
    // the match unique (counting further only to report an ambiguity);
    // for `replace_all`, to count the replacements before building.
    let rest = &content[after..];
    let count = if request.replace_all {
        1 + rest.matches(old).count()
    } else {
        match rest.find(old) {
            None => 1,
            Some(second) => {
                let n = 2 + rest[second + old.len()..].matches(old).count();
                return Err(Error::AmbiguousMatch {
                    path: path.clone(),
                    count: n,
                });
            }
        }
    };
    let size = (content.len() as u64)
        .saturating_sub(count as u64 * old.len() as u64)
        .saturating_add(count as u64 * new.len() as u64);
    if size > max_bytes {
        return Err(Error::TooLarge {
            what: format!("{path} after the edit"),
            size,
            limit: max_bytes,
        });
    }
    let mut out = String::with_capacity(size as usize);
    out.push_str(&content[..first]);
    out.push_str(&new);
    if request.replace_all {
        out.push_str(&rest.replace(old, &new));
    } else {
        out.push_str(rest);
    }
    Ok((out, count))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edit(content: &str, old: &str, new: &str, all: bool) -> Result<(String, usize)> {
        apply_edit(
            &VPath::parse("/f").unwrap(),
            content,
            &EditRequest {
                old: old.into(),
                new: new.into(),
                replace_all: all,
            },
            1 << 20,
        )
    }

    #[test]
    fn amplification_is_refused_before_allocating() {
        let content = "x".repeat(1 << 20);
        let req = EditRequest {
            old: "x".into(),
            new: "y".repeat(1024),
            replace_all: true,
        };
        let err = apply_edit(&VPath::parse("/f").unwrap(), &content, &req, 16 << 20).unwrap_err();
        assert_eq!(err.code().as_str(), "too_large");
        assert!(err.to_string().contains("/f after the edit"), "{err}");
    }

    #[test]
    fn unique_and_all() {
        assert_eq!(edit("abc", "b", "X", false).unwrap(), ("aXc".into(), 1));
        assert_eq!(
            edit("abab", "b", "X", false).unwrap_err().code().as_str(),
            "ambiguous_match"
        );
        assert_eq!(edit("abab", "b", "X", true).unwrap(), ("aXaX".into(), 2));
        assert_eq!(
            edit("abc", "z", "X", false).unwrap_err().code().as_str(),
            "no_match"
        );
        assert_eq!(
            edit("abc", "", "X", false).unwrap_err().code().as_str(),
            "invalid_argument"
        );
        assert_eq!(edit("aaa", "aa", "b", true).unwrap(), ("ba".into(), 1));
    }

    #[test]
    fn crlf_is_kept() {
        assert_eq!(
            edit("a\r\nb\r\nc\r\n", "b\nc", "B\nC", false).unwrap(),
            ("a\r\nB\r\nC\r\n".into(), 1)
        );
        assert_eq!(
            edit("a\r\nb\r\n", "a", "x\ny", false).unwrap(),
            ("x\r\ny\r\nb\r\n".into(), 1)
        );
        // LF files are left alone
        assert_eq!(
            edit("a\nb\n", "a", "x\r\ny", false).unwrap(),
            ("x\r\ny\nb\n".into(), 1)
        );
    }

    #[test]
    fn error_names_the_count() {
        let err = edit("x x x", "x", "y", false).unwrap_err();
        assert!(err.to_string().contains("3 times"), "{err}");
    }
}
