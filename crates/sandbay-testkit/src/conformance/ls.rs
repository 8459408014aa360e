//! `ls` and `stat`.

use sandbay_core::{DirEntry, EntryKind, ErrorCode, VPath};

use crate::Fixture;

/// A fresh workspace lists nothing at the root.
pub async fn ls_fresh_root_is_empty(fx: &Fixture) {
    let entries = fx.ls("/").await;
    assert!(
        entries.is_empty(),
        "a fresh workspace must be empty, got {entries:?}"
    );
}

/// Entries are sorted by name in byte order, files and directories mixed.
pub async fn ls_sorted_by_name(fx: &Fixture) {
    for path in ["/b.txt", "/a-c", "/a.txt", "/B", "/ä", "/a/x", "/_"] {
        fx.put(path, "x").await;
    }
    assert_eq!(
        fx.names("/").await,
        ["B", "_", "a", "a-c", "a.txt", "b.txt", "ä"],
        "ls must sort by name, byte order"
    );
}

/// Entries carry the full path, the kind, and the size (bytes for files, 0 for directories).
pub async fn ls_reports_paths_kinds_and_sizes(fx: &Fixture) {
    fx.put("/d/f.txt", "héllo").await;
    fx.put("/d/sub/g", "").await;
    let want = vec![
        DirEntry {
            path: fx.path("/d/f.txt"),
            kind: EntryKind::File,
            size: 6,
        },
        DirEntry {
            path: fx.path("/d/sub"),
            kind: EntryKind::Dir,
            size: 0,
        },
    ];
    assert_eq!(fx.ls("/d").await, want);
}

/// Only direct children are listed, not deeper descendants.
pub async fn ls_lists_only_direct_children(fx: &Fixture) {
    fx.put("/top/mid/low/deep.txt", "x").await;
    fx.put("/top/file", "x").await;
    assert_eq!(fx.names("/top").await, ["file", "mid"]);
    assert_eq!(fx.names("/top/mid").await, ["low"]);
    assert_eq!(fx.names("/").await, ["top"]);
}

/// Hidden entries (names starting with a dot) are listed like any other.
pub async fn ls_includes_hidden_entries(fx: &Fixture) {
    fx.put("/.env", "SECRET=1").await;
    fx.put("/.git/config", "[core]").await;
    fx.put("/visible", "x").await;
    assert_eq!(fx.names("/").await, [".env", ".git", "visible"]);
}

/// Listing a file gives `not_a_directory`.
pub async fn ls_file_is_not_a_directory(fx: &Fixture) {
    fx.put("/f.txt", "x").await;
    let err = fx.expect_err(
        fx.backend.ls(&fx.path("/f.txt")).await,
        ErrorCode::NotADirectory,
        "ls of a file",
    );
    assert!(
        err.to_string().contains("/f.txt"),
        "the message names the path: {err}"
    );
}

/// Listing a missing path gives `not_found`, naming the virtual path.
pub async fn ls_missing_is_not_found(fx: &Fixture) {
    let err = fx.expect_err(
        fx.backend.ls(&fx.path("/nope")).await,
        ErrorCode::NotFound,
        "ls of a missing directory",
    );
    assert!(
        err.to_string().contains("/nope"),
        "the message names the path: {err}"
    );
}

/// A file used as a parent gives `not_a_directory`.
pub async fn ls_below_file_is_not_a_directory(fx: &Fixture) {
    fx.put("/f", "x").await;
    fx.expect_err(
        fx.backend.ls(&fx.path("/f/sub")).await,
        ErrorCode::NotADirectory,
        "ls below a file",
    );
}

/// `stat` gives the same entry `ls` lists for files and directories.
pub async fn stat_matches_ls_entry(fx: &Fixture) {
    fx.put("/d/file.md", "# title\n").await;
    fx.put("/d/inner/x", "").await;
    for entry in fx.ls("/d").await {
        let stat = fx
            .backend
            .stat(&entry.path)
            .await
            .expect("stat of a listed entry");
        assert_eq!(stat, entry, "stat and ls must agree");
    }
    let file = fx
        .backend
        .stat(&fx.path("/d/file.md"))
        .await
        .expect("stat file");
    assert_eq!((file.kind, file.size), (EntryKind::File, 8));
}

/// The root is a directory of size 0.
pub async fn stat_root_is_directory(fx: &Fixture) {
    let root = fx.backend.stat(&VPath::root()).await.expect("stat /");
    assert_eq!(
        root,
        DirEntry {
            path: VPath::root(),
            kind: EntryKind::Dir,
            size: 0
        }
    );
}

/// `stat` of a missing path gives `not_found`; below a file `not_a_directory`.
pub async fn stat_missing_is_not_found(fx: &Fixture) {
    fx.expect_err(
        fx.backend.stat(&fx.path("/missing.txt")).await,
        ErrorCode::NotFound,
        "stat of a missing file",
    );
    fx.put("/f", "x").await;
    fx.expect_err(
        fx.backend.stat(&fx.path("/f/x")).await,
        ErrorCode::NotADirectory,
        "stat below a file",
    );
}
