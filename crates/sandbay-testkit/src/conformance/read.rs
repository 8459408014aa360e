//! `read`: windows, line rules, text detection.

use sandbay_core::{ErrorCode, ReadRequest, TextWindow};

use crate::Fixture;

async fn window(fx: &Fixture, path: &str, offset: usize, limit: usize) -> TextWindow {
    fx.backend
        .read(&fx.path(path), ReadRequest { offset, limit })
        .await
        .unwrap_or_else(|e| panic!("read {path} at {offset}+{limit} failed: {e}"))
}

/// Reading a missing file gives `not_found`.
pub async fn read_missing_is_not_found(fx: &Fixture) {
    let err = fx.expect_err(
        fx.backend
            .read(&fx.path("/no/such.txt"), ReadRequest::default())
            .await,
        ErrorCode::NotFound,
        "read of a missing file",
    );
    assert!(err.to_string().contains("/no/such.txt"), "{err}");
}

/// Reading a directory gives `is_directory`.
pub async fn read_directory_is_is_directory(fx: &Fixture) {
    fx.put("/dir/f", "x").await;
    for dir in ["/dir", "/"] {
        fx.expect_err(
            fx.backend.read(&fx.path(dir), ReadRequest::default()).await,
            ErrorCode::IsDirectory,
            "read of a directory",
        );
    }
}

/// A file used as a parent gives `not_a_directory`.
pub async fn read_below_file_is_not_a_directory(fx: &Fixture) {
    fx.put("/f.txt", "x").await;
    fx.expect_err(
        fx.backend
            .read(&fx.path("/f.txt/x"), ReadRequest::default())
            .await,
        ErrorCode::NotADirectory,
        "read below a file",
    );
}

/// A file with a NUL byte is not text: `binary_file`.
pub async fn read_nul_byte_is_binary_file(fx: &Fixture) {
    fx.put_bytes("/nul.txt", b"text\0more\n".to_vec()).await;
    fx.expect_err(
        fx.backend
            .read(&fx.path("/nul.txt"), ReadRequest::default())
            .await,
        ErrorCode::BinaryFile,
        "read of a file with NUL",
    );
}

/// A file that is not valid UTF-8 gives `binary_file`, even when the bad byte is past the window.
pub async fn read_invalid_utf8_is_binary_file(fx: &Fixture) {
    let mut bytes = b"line one\nline two\n".to_vec();
    bytes.extend_from_slice(&[0xc3, 0x28, b'\n']);
    fx.put_bytes("/latin1.txt", bytes).await;
    fx.expect_err(
        fx.backend
            .read(
                &fx.path("/latin1.txt"),
                ReadRequest {
                    offset: 0,
                    limit: 1,
                },
            )
            .await,
        ErrorCode::BinaryFile,
        "read of invalid UTF-8",
    );
}

/// `offset` and `limit` select lines; `total_lines` and `next_offset` tell what remains.
pub async fn read_window_offset_and_limit(fx: &Fixture) {
    let text: String = (0..10).map(|i| format!("line {i}\n")).collect();
    fx.put("/ten.txt", &text).await;
    let w = window(fx, "/ten.txt", 2, 3).await;
    assert_eq!(w.lines, ["line 2", "line 3", "line 4"]);
    assert_eq!(
        (w.offset, w.total_lines, w.next_offset, w.cut_lines),
        (2, 10, Some(5), false)
    );
    let last = window(fx, "/ten.txt", 8, 5).await;
    assert_eq!(last.lines, ["line 8", "line 9"]);
    assert_eq!(
        last.next_offset, None,
        "nothing remains after the last line"
    );
    let whole = window(fx, "/ten.txt", 0, 10).await;
    assert_eq!((whole.lines.len(), whole.next_offset), (10, None));
}

/// An offset past the end gives an empty window, not an error.
pub async fn read_offset_past_end_is_empty(fx: &Fixture) {
    fx.put("/short.txt", "a\nb\n").await;
    let w = window(fx, "/short.txt", 7, 10).await;
    assert!(w.lines.is_empty());
    assert_eq!((w.offset, w.total_lines, w.next_offset), (7, 2, None));
}

/// A last line without `\n` counts as a line; a final `\n` adds none.
pub async fn read_last_line_without_newline_counts(fx: &Fixture) {
    fx.put("/open.txt", "a\nb").await;
    fx.put("/closed.txt", "a\nb\n").await;
    fx.put("/blank-lines.txt", "\n\n").await;
    assert_eq!(window(fx, "/open.txt", 0, 10).await.lines, ["a", "b"]);
    assert_eq!(window(fx, "/closed.txt", 0, 10).await.lines, ["a", "b"]);
    assert_eq!(window(fx, "/blank-lines.txt", 0, 10).await.lines, ["", ""]);
}

/// `\r\n` terminators are removed; a lone `\r` inside a line is kept.
pub async fn read_crlf_terminators_are_removed(fx: &Fixture) {
    fx.put("/dos.txt", "one\r\ntwo\r\nthree").await;
    assert_eq!(
        window(fx, "/dos.txt", 0, 10).await.lines,
        ["one", "two", "three"]
    );
    fx.put("/cr.txt", "x\ry\n").await;
    assert_eq!(window(fx, "/cr.txt", 0, 10).await.lines, ["x\ry"]);
    assert_eq!(
        fx.text("/dos.txt").await,
        "one\r\ntwo\r\nthree",
        "the file keeps CRLF"
    );
}

/// An empty file has zero lines.
pub async fn read_empty_file_has_no_lines(fx: &Fixture) {
    fx.put("/e", "").await;
    let w = window(fx, "/e", 0, 10).await;
    assert_eq!((w.lines.len(), w.total_lines, w.next_offset), (0, 0, None));
}

/// Unicode lines come back intact.
pub async fn read_unicode_lines(fx: &Fixture) {
    fx.put("/u.txt", "ä ö ü\n日本語\n🦀 rust\n").await;
    assert_eq!(
        window(fx, "/u.txt", 1, 2).await.lines,
        ["日本語", "🦀 rust"]
    );
}

/// A window ends early at the byte budget; `next_offset` points at the first line left out.
pub async fn read_window_ends_at_byte_budget(fx: &Fixture) {
    let budget = fx.limits.max_window_bytes;
    let line = "x".repeat(budget / 3 + 1);
    let text = format!("{line}\n{line}\n{line}\n{line}\n");
    fx.put("/wide.txt", &text).await;
    let w = window(fx, "/wide.txt", 0, 100).await;
    assert_eq!(
        w.lines.len(),
        2,
        "two lines fit the budget of {budget} bytes, three do not"
    );
    assert_eq!(
        (w.total_lines, w.next_offset, w.cut_lines),
        (4, Some(2), false)
    );
    let next = window(fx, "/wide.txt", 2, 100).await;
    assert_eq!(next.lines.len(), 2);
    assert_eq!(next.next_offset, None);
}

/// A single line longer than the budget is cut at a character boundary and flagged.
pub async fn read_long_line_is_cut(fx: &Fixture) {
    let budget = fx.limits.max_window_bytes;
    let long = "é".repeat(budget); // 2 bytes each: twice the budget
    fx.put("/long.txt", &format!("{long}\ntail\n")).await;
    let w = window(fx, "/long.txt", 0, 10).await;
    assert_eq!(w.lines.len(), 1);
    assert!(w.cut_lines, "the cut must be reported");
    assert!(w.lines[0].len() <= budget && w.lines[0].len() >= budget - 1);
    assert!(
        long.starts_with(&w.lines[0]),
        "the cut line is a prefix of the line"
    );
    assert_eq!((w.total_lines, w.next_offset), (2, Some(1)));
    assert_eq!(window(fx, "/long.txt", 1, 10).await.lines, ["tail"]);
}
