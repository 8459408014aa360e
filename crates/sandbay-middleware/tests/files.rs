//! ls, read_file, write_file and delete: exact texts, identical on the
//! state and fs backends.

mod common;

use common::Pair;
use serde_json::json;

#[tokio::test]
async fn write_then_ls() {
    let w = Pair::new().await;
    assert_eq!(
        w.ok(
            "write_file",
            json!({"file_path": "/src/app.py", "content": "print('hi')\n"})
        )
        .await,
        "Wrote 12 bytes (1 line) to /src/app.py."
    );
    assert_eq!(
        w.ok(
            "write_file",
            json!({"file_path": "notes.md", "content": ""})
        )
        .await,
        "Wrote an empty file to /notes.md."
    );
    assert_eq!(
        w.ok(
            "write_file",
            json!({"file_path": "/b.txt", "content": "one\ntwo"})
        )
        .await,
        "Wrote 7 bytes (2 lines) to /b.txt."
    );
    assert_eq!(
        w.ok("ls", json!({})).await,
        "/b.txt (7 bytes)\n/notes.md (0 bytes)\n/src/"
    );
    assert_eq!(
        w.ok("ls", json!({"path": "/src"})).await,
        "/src/app.py (12 bytes)"
    );
    assert_eq!(
        w.ok("ls", json!({"path": "src/.."})).await,
        w.ok("ls", json!({"path": ""})).await
    );
}

#[tokio::test]
async fn ls_errors_and_empty() {
    let w = Pair::new().await;
    w.put("/f.txt", b"x").await;
    assert_eq!(w.ok("ls", json!({"path": "/"})).await, "/f.txt (1 byte)");
    assert_eq!(
        w.err("ls", json!({"path": "/f.txt"})).await,
        "Error: /f.txt: not a directory\nHint: read a file with read_file."
    );
    assert_eq!(
        w.err("ls", json!({"path": "/nope"})).await,
        "Error: /nope: no such file or directory\nHint: use ls or glob to find the right path."
    );
    w.ok("write_file", json!({"file_path": "/d/x", "content": "1"}))
        .await;
    w.ok("delete", json!({"file_path": "/d/x"})).await;
    assert_eq!(
        w.ok("ls", json!({"path": "/d"})).await,
        "The directory /d is empty."
    );
}

#[tokio::test]
async fn read_numbered_lines() {
    let w = Pair::new().await;
    w.put("/poem.txt", b"roses\r\nviolets\n\nsugar").await;
    assert_eq!(
        w.ok("read_file", json!({"file_path": "/poem.txt"})).await,
        "     1\troses\n     2\tviolets\n     3\t\n     4\tsugar"
    );
    assert_eq!(
        w.ok(
            "read_file",
            json!({"file_path": "poem.txt", "offset": 1, "limit": 2})
        )
        .await,
        "     2\tviolets\n     3\t\n[Showing lines 2-3 of 4. Call read_file with offset=3 to read more.]"
    );
    assert_eq!(
        w.ok(
            "read_file",
            json!({"file_path": "/poem.txt", "offset": 3, "limit": null})
        )
        .await,
        "     4\tsugar"
    );
    assert_eq!(
        w.err("read_file", json!({"file_path": "/poem.txt", "offset": 4}))
            .await,
        "Error: invalid argument: offset 4 is past the end of /poem.txt, which has 4 lines; use an offset below 4"
    );
    assert_eq!(
        w.err("read_file", json!({"file_path": "/poem.txt", "limit": 0}))
            .await,
        "Error: invalid argument: read_file: limit must be at least 1"
    );
}

#[tokio::test]
async fn read_special_cases() {
    let w = Pair::new().await;
    w.put("/empty.txt", b"").await;
    w.put("/blob.bin", b"\x00\x01\x02").await;
    w.put("/dir/f", b"x").await;
    w.put(
        "/long.txt",
        format!("{}\nshort\n", "é".repeat(2500)).as_bytes(),
    )
    .await;
    assert_eq!(
        w.ok("read_file", json!({"file_path": "/empty.txt"})).await,
        "The file /empty.txt exists but is empty."
    );
    assert_eq!(
        w.err("read_file", json!({"file_path": "/blob.bin"})).await,
        "Error: /blob.bin: not a UTF-8 text file"
    );
    assert_eq!(
        w.err("read_file", json!({"file_path": "/dir"})).await,
        "Error: /dir: is a directory\nHint: list a directory with ls."
    );
    assert_eq!(
        w.err("read_file", json!({"file_path": "/missing.txt"}))
            .await,
        "Error: /missing.txt: no such file or directory\nHint: use ls or glob to find the right path."
    );
    let text = w.ok("read_file", json!({"file_path": "/long.txt"})).await;
    assert_eq!(
        text,
        format!(
            "     1\t{} [... line cut at 2000 characters]\n     2\tshort",
            "é".repeat(2000)
        )
    );
}

#[tokio::test]
async fn hostile_paths_stay_inside() {
    let w = Pair::new().await;
    // `x` next to the workspace may exist already (the temp dir is
    // shared): what matters is that the calls below leave it as it was
    let outside = w.dir.path().parent().unwrap().join("x");
    let state_of = |p: &std::path::Path| {
        p.symlink_metadata()
            .ok()
            .map(|m| (m.file_type().is_file(), m.len(), m.modified().ok()))
    };
    let before = state_of(&outside);
    assert_eq!(
        w.err("read_file", json!({"file_path": "../../etc/passwd"}))
            .await,
        "Error: invalid path \"../../etc/passwd\": `..` climbs above the workspace root"
    );
    // an absolute host path is just a path inside the workspace
    assert_eq!(
        w.err("read_file", json!({"file_path": "/etc/passwd"}))
            .await,
        "Error: /etc/passwd: no such file or directory\nHint: use ls or glob to find the right path."
    );
    assert_eq!(
        w.err(
            "write_file",
            json!({"file_path": "/a/../../x", "content": "x"})
        )
        .await,
        "Error: invalid path \"/a/../../x\": `..` climbs above the workspace root"
    );
    assert_eq!(
        w.err("ls", json!({"path": "C:\\Windows"})).await,
        "Error: invalid path \"C:\\\\Windows\": the path contains a backslash; use `/` as separator"
    );
    assert_eq!(
        w.err("delete", json!({"file_path": "a\u{0}b"})).await,
        "Error: invalid path \"a\u{fffd}b\": the path contains a NUL byte"
    );
    assert_eq!(state_of(&outside), before, "a write escaped the workspace");
}

#[tokio::test]
async fn write_errors() {
    let w = Pair::new().await;
    w.put("/dir/f", b"x").await;
    assert_eq!(
        w.err("write_file", json!({"file_path": "/dir", "content": "x"}))
            .await,
        "Error: /dir: is a directory"
    );
    assert_eq!(
        w.err(
            "write_file",
            json!({"file_path": "/dir/f/g", "content": "x"})
        )
        .await,
        "Error: /dir/f/g: not a directory"
    );
    assert_eq!(
        w.err("write_file", json!({"file_path": "/", "content": "x"}))
            .await,
        "Error: /: permission denied: the workspace root itself cannot be changed"
    );
}

#[tokio::test]
async fn delete_texts() {
    let w = Pair::new().await;
    w.put("/a.txt", b"x").await;
    w.put("/src/lib/m.rs", b"x").await;
    assert_eq!(
        w.ok("delete", json!({"file_path": "/a.txt"})).await,
        "Deleted /a.txt."
    );
    assert_eq!(
        w.ok("delete", json!({"file_path": "src"})).await,
        "Deleted the directory /src and everything in it."
    );
    assert_eq!(
        w.err("delete", json!({"file_path": "/a.txt"})).await,
        "Error: /a.txt: no such file or directory"
    );
    assert_eq!(
        w.err("delete", json!({"file_path": "/"})).await,
        "Error: /: permission denied: the workspace root itself cannot be changed"
    );
    assert_eq!(w.ok("ls", json!({})).await, "The directory / is empty.");
}
