//! `edit`: exact-string replacement.

use sandbay_core::{EditOutcome, EditRequest, ErrorCode, Result};

use crate::Fixture;

fn req(old: &str, new: &str, replace_all: bool) -> EditRequest {
    EditRequest {
        old: old.into(),
        new: new.into(),
        replace_all,
    }
}

async fn edit(fx: &Fixture, path: &str, request: EditRequest) -> Result<EditOutcome> {
    fx.backend.edit(&fx.path(path), &request).await
}

/// A unique occurrence is replaced and the count is 1.
pub async fn edit_replaces_unique_occurrence(fx: &Fixture) {
    fx.put("/app.py", "def main():\n    print('hi')\n").await;
    let out = edit(fx, "/app.py", req("print('hi')", "print('bye')", false))
        .await
        .expect("edit");
    assert_eq!(out.replacements, 1);
    assert_eq!(fx.text("/app.py").await, "def main():\n    print('bye')\n");
}

/// `replace_all` replaces every occurrence and reports how many.
pub async fn edit_replace_all_reports_count(fx: &Fixture) {
    fx.put("/f", "x = 1\nx = 2\ny = x\n").await;
    let out = edit(fx, "/f", req("x", "z", true)).await.expect("edit");
    assert_eq!(out.replacements, 3);
    assert_eq!(fx.text("/f").await, "z = 1\nz = 2\ny = z\n");
}

/// Several occurrences without `replace_all` give `ambiguous_match` with the count; nothing changes.
pub async fn edit_ambiguous_match_is_refused(fx: &Fixture) {
    fx.put("/f", "a a a").await;
    let err = fx.expect_err(
        edit(fx, "/f", req("a", "b", false)).await,
        ErrorCode::AmbiguousMatch,
        "ambiguous edit",
    );
    assert!(
        err.to_string().contains("3 times"),
        "the message gives the count: {err}"
    );
    assert_eq!(fx.text("/f").await, "a a a");
}

/// Text that does not occur gives `no_match`; nothing changes.
pub async fn edit_no_match_is_refused(fx: &Fixture) {
    fx.put("/f", "hello world").await;
    fx.expect_err(
        edit(fx, "/f", req("planet", "x", false)).await,
        ErrorCode::NoMatch,
        "edit without a match",
    );
    fx.expect_err(
        edit(fx, "/f", req("planet", "x", true)).await,
        ErrorCode::NoMatch,
        "replace_all without a match",
    );
    assert_eq!(fx.text("/f").await, "hello world");
}

/// An empty `old` gives `invalid_argument`.
pub async fn edit_empty_old_is_invalid_argument(fx: &Fixture) {
    fx.put("/f", "content").await;
    fx.expect_err(
        edit(fx, "/f", req("", "x", false)).await,
        ErrorCode::InvalidArgument,
        "edit with empty old",
    );
    assert_eq!(fx.text("/f").await, "content");
}

/// A CRLF file keeps CRLF: `old` with `\n` matches `\r\n`, and `new` gets `\r\n`.
pub async fn edit_keeps_crlf(fx: &Fixture) {
    fx.put("/dos.txt", "a\r\nb\r\nc\r\n").await;
    let out = edit(fx, "/dos.txt", req("b\nc", "B\nC\nD", false))
        .await
        .expect("edit");
    assert_eq!(out.replacements, 1);
    assert_eq!(fx.text("/dos.txt").await, "a\r\nB\r\nC\r\nD\r\n");
}

/// A file that is not text gives `binary_file`; nothing changes.
pub async fn edit_binary_file_is_refused(fx: &Fixture) {
    let bytes = b"abc\0abc".to_vec();
    fx.put_bytes("/bin", bytes.clone()).await;
    fx.expect_err(
        edit(fx, "/bin", req("abc", "x", true)).await,
        ErrorCode::BinaryFile,
        "edit of a binary file",
    );
    assert_eq!(fx.bytes("/bin").await, bytes);
}

/// Editing a missing file gives `not_found`.
pub async fn edit_missing_is_not_found(fx: &Fixture) {
    fx.expect_err(
        edit(fx, "/ghost.txt", req("a", "b", false)).await,
        ErrorCode::NotFound,
        "edit of a missing file",
    );
    assert!(!fx.exists("/ghost.txt").await, "edit never creates a file");
}

/// Editing a directory gives `is_directory`.
pub async fn edit_directory_is_is_directory(fx: &Fixture) {
    fx.put("/d/f", "a").await;
    fx.expect_err(
        edit(fx, "/d", req("a", "b", false)).await,
        ErrorCode::IsDirectory,
        "edit of a directory",
    );
}

/// Unicode text is matched and replaced exactly.
pub async fn edit_unicode_text(fx: &Fixture) {
    fx.put("/u.txt", "grüße aus köln 🌍\n").await;
    let out = edit(fx, "/u.txt", req("köln 🌍", "münchen 🦀", false))
        .await
        .expect("edit");
    assert_eq!(out.replacements, 1);
    assert_eq!(fx.text("/u.txt").await, "grüße aus münchen 🦀\n");
}

/// An empty `new` deletes the matched text.
pub async fn edit_to_empty_deletes_text(fx: &Fixture) {
    fx.put("/f", "keep DROP keep").await;
    edit(fx, "/f", req(" DROP", "", false)).await.expect("edit");
    assert_eq!(fx.text("/f").await, "keep keep");
}
