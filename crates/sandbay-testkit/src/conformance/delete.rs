//! `delete`.

use sandbay_core::{EntryKind, ErrorCode, VPath};

use crate::Fixture;

/// Deleting a file removes it and only it.
pub async fn delete_file_removes_it(fx: &Fixture) {
    fx.put("/a.txt", "a").await;
    fx.put("/b.txt", "b").await;
    fx.backend.delete(&fx.path("/a.txt")).await.expect("delete");
    assert!(!fx.exists("/a.txt").await);
    assert_eq!(fx.names("/").await, ["b.txt"]);
}

/// Deleting a directory removes everything below it.
pub async fn delete_directory_is_recursive(fx: &Fixture) {
    fx.put("/d/x.txt", "x").await;
    fx.put("/d/sub/y.txt", "y").await;
    fx.put("/d/sub/deeper/z.txt", "z").await;
    fx.put("/d-sibling.txt", "stays").await;
    fx.backend.delete(&fx.path("/d")).await.expect("delete dir");
    assert!(!fx.exists("/d").await);
    assert!(!fx.exists("/d/sub/y.txt").await);
    assert_eq!(fx.names("/").await, ["d-sibling.txt"]);
}

/// Deleting the root gives `permission_denied` and removes nothing.
pub async fn delete_root_is_permission_denied(fx: &Fixture) {
    fx.put("/keep/me.txt", "x").await;
    fx.expect_err(
        fx.backend.delete(&VPath::root()).await,
        ErrorCode::PermissionDenied,
        "delete of /",
    );
    assert_eq!(fx.text("/keep/me.txt").await, "x");
}

/// Deleting a missing path gives `not_found`.
pub async fn delete_missing_is_not_found(fx: &Fixture) {
    let err = fx.expect_err(
        fx.backend.delete(&fx.path("/ghost")).await,
        ErrorCode::NotFound,
        "delete of a missing path",
    );
    assert!(err.to_string().contains("/ghost"), "{err}");
}

/// A directory stays after its last file is deleted.
pub async fn delete_keeps_parent_directory(fx: &Fixture) {
    fx.put("/dir/only.txt", "x").await;
    fx.backend
        .delete(&fx.path("/dir/only.txt"))
        .await
        .expect("delete");
    let entry = fx
        .backend
        .stat(&fx.path("/dir"))
        .await
        .expect("the directory remains");
    assert_eq!(entry.kind, EntryKind::Dir);
    assert!(fx.ls("/dir").await.is_empty());
}

/// A file used as a parent gives `not_a_directory`.
pub async fn delete_below_file_is_not_a_directory(fx: &Fixture) {
    fx.put("/f", "x").await;
    fx.expect_err(
        fx.backend.delete(&fx.path("/f/x")).await,
        ErrorCode::NotADirectory,
        "delete below a file",
    );
    assert_eq!(fx.text("/f").await, "x");
}

/// A deleted name can be reused for the other kind (file after directory and back).
pub async fn delete_then_reuse_name(fx: &Fixture) {
    fx.put("/x/inner", "1").await;
    fx.backend.delete(&fx.path("/x")).await.expect("delete dir");
    fx.put("/x", "now a file").await;
    assert_eq!(fx.text("/x").await, "now a file");
    fx.backend
        .delete(&fx.path("/x"))
        .await
        .expect("delete file");
    fx.put("/x/again", "a dir again").await;
    assert_eq!(fx.names("/x").await, ["again"]);
}

/// `clear` removes every entry (files, directories, hidden names),
/// reports how many top-level entries there were, leaves the workspace
/// empty and usable, and clears an empty workspace to nothing.
pub async fn clear_empties_the_workspace(fx: &Fixture) {
    fx.put("/a.txt", "a").await;
    fx.put("/.hidden", "h").await;
    fx.put("/d/sub/deep.txt", "deep").await;
    fx.put("/d/x.txt", "x").await;
    let removed = fx.backend.clear().await.expect("clear");
    assert_eq!(removed, 3, "top-level entries removed");
    assert!(fx.names("/").await.is_empty(), "{:?}", fx.names("/").await);
    assert!(!fx.exists("/d/sub/deep.txt").await);
    assert_eq!(fx.backend.clear().await.expect("clear again"), 0);
    fx.put("/after.txt", "next").await;
    assert_eq!(fx.names("/").await, ["after.txt"]);
}
