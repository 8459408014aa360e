//! `write`, and how paths reach the backend.

use sandbay_core::{EntryKind, Error, ErrorCode, VPath};

use crate::Fixture;

/// What `write` stores, `read` and `download` return unchanged.
pub async fn write_then_read_round_trips(fx: &Fixture) {
    let text = "first line\nsecond line\n\tindented\n";
    fx.put("/notes.txt", text).await;
    assert_eq!(fx.text("/notes.txt").await, text);
    assert_eq!(
        fx.lines("/notes.txt").await,
        ["first line", "second line", "\tindented"]
    );
}

/// `write` creates missing parent directories.
pub async fn write_creates_parents(fx: &Fixture) {
    fx.put("/a/b/c/file.txt", "deep").await;
    for dir in ["/a", "/a/b", "/a/b/c"] {
        let entry = fx.backend.stat(&fx.path(dir)).await.expect("stat parent");
        assert_eq!(entry.kind, EntryKind::Dir, "{dir} must be a directory");
    }
    assert_eq!(fx.text("/a/b/c/file.txt").await, "deep");
}

/// `write` replaces a file completely: a shorter text leaves no tail.
pub async fn write_overwrites_completely(fx: &Fixture) {
    fx.put("/f.txt", "a long first version\n").await;
    fx.put("/f.txt", "short").await;
    assert_eq!(fx.text("/f.txt").await, "short");
    let entry = fx.backend.stat(&fx.path("/f.txt")).await.expect("stat");
    assert_eq!(entry.size, 5);
}

/// An empty write makes an empty file: size 0, zero lines.
pub async fn write_empty_file(fx: &Fixture) {
    fx.put("/empty", "").await;
    let entry = fx.backend.stat(&fx.path("/empty")).await.expect("stat");
    assert_eq!((entry.kind, entry.size), (EntryKind::File, 0));
    assert!(fx.bytes("/empty").await.is_empty());
    let window = fx
        .backend
        .read(&fx.path("/empty"), Default::default())
        .await
        .expect("read empty");
    assert_eq!(
        (window.total_lines, window.lines.len(), window.next_offset),
        (0, 0, None)
    );
}

/// Writing onto a directory gives `is_directory` and leaves the directory intact.
pub async fn write_onto_directory_is_refused(fx: &Fixture) {
    fx.put("/dir/inside.txt", "keep").await;
    fx.expect_err(
        fx.backend.write(&fx.path("/dir"), "x").await,
        ErrorCode::IsDirectory,
        "write onto a directory",
    );
    assert_eq!(fx.text("/dir/inside.txt").await, "keep");
}

/// A file used as a parent gives `not_a_directory` and creates nothing.
pub async fn write_below_file_is_not_a_directory(fx: &Fixture) {
    fx.put("/f", "plain file").await;
    let err = fx.expect_err(
        fx.backend.write(&fx.path("/f/g/h.txt"), "x").await,
        ErrorCode::NotADirectory,
        "write below a file",
    );
    assert!(
        err.to_string().contains("/f/g/h.txt"),
        "names the requested path: {err}"
    );
    assert_eq!(fx.text("/f").await, "plain file", "the file is untouched");
    assert_eq!(fx.names("/").await, ["f"]);
}

/// Writing the root gives `permission_denied`.
pub async fn write_root_is_permission_denied(fx: &Fixture) {
    fx.put("/keep", "x").await;
    fx.expect_err(
        fx.backend.write(&VPath::root(), "x").await,
        ErrorCode::PermissionDenied,
        "write of /",
    );
    assert_eq!(fx.names("/").await, ["keep"]);
}

/// Unicode names and content round trip, and size counts bytes.
pub async fn write_unicode_names_and_content(fx: &Fixture) {
    let text = "grüße 🌍\n日本語のテキスト\nemoji ✓\n";
    fx.put("/ünïcødé/日本 語.txt", text).await;
    assert_eq!(fx.names("/").await, ["ünïcødé"]);
    assert_eq!(fx.names("/ünïcødé").await, ["日本 語.txt"]);
    assert_eq!(fx.text("/ünïcødé/日本 語.txt").await, text);
    let entry = fx
        .backend
        .stat(&fx.path("/ünïcødé/日本 語.txt"))
        .await
        .expect("stat");
    assert_eq!(entry.size, text.len() as u64);
}

/// Paths are normalised once: `a/./b/../c.txt` is `/a/c.txt`, and `b` is never created.
pub async fn write_path_is_normalised(fx: &Fixture) {
    let path = VPath::parse("a/./b/../c.txt").expect("a valid relative path");
    fx.backend.write(&path, "normal").await.expect("write");
    assert_eq!(fx.text("/a/c.txt").await, "normal");
    assert_eq!(fx.names("/a").await, ["c.txt"]);
}

/// Path strings that break the `VPath` rules give `invalid_path` and never reach the backend.
pub async fn path_invalid_is_refused(fx: &Fixture) {
    for bad in [
        "../etc/passwd",
        "/a/../../b",
        "a\0b",
        "C:/Windows",
        "a\\b",
        "",
        "\u{7}bell",
    ] {
        let err: Error = VPath::parse(bad).expect_err(bad).into();
        assert_eq!(err.code(), ErrorCode::InvalidPath, "{bad:?}");
        assert!(
            !err.to_string().contains('\0'),
            "the message is printable: {err}"
        );
    }
    let long = "x".repeat(256);
    let err: Error = VPath::parse(&long)
        .expect_err("component over 255 bytes")
        .into();
    assert_eq!(err.code(), ErrorCode::InvalidPath);
    let ok = VPath::parse("/a..b.txt").expect("`..` is a component rule, not a substring rule");
    fx.backend
        .write(&ok, "fine")
        .await
        .expect("write /a..b.txt");
    assert_eq!(fx.names("/").await, ["a..b.txt"]);
}
