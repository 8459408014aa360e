//! call_batch: parallel calls, and the guard against two changes to one path.

mod common;

use common::Pair;
use sandbay_core::{BackendExt, VPath};
use serde_json::json;

#[tokio::test]
async fn second_change_to_one_path_is_refused() {
    let w = Pair::new().await;
    w.put("/a.txt", b"one two\n").await;
    w.put("/other.txt", b"x\n").await;
    let out = w
        .batch(vec![
            (
                "edit_file",
                json!({"file_path": "/a.txt", "old_string": "one", "new_string": "1"}),
            ),
            // a read of the same file could see either version: read another
            ("read_file", json!({"file_path": "/other.txt"})),
            (
                "edit_file",
                json!({"file_path": "a.txt", "old_string": "two", "new_string": "2"}),
            ),
            ("write_file", json!({"file_path": "/b.txt", "content": "b"})),
        ])
        .await;
    assert_eq!(out[0].text, "Replaced 1 occurrence in /a.txt.");
    assert_eq!(out[1].text, "     1\tx");
    assert!(out[2].is_error);
    assert_eq!(
        out[2].text,
        "Error: invalid argument: another call in this batch (edit_file on /a.txt) already changes /a.txt; \
parallel changes to one path are refused so that none is lost. Repeat this edit_file call on its own once that one has finished"
    );
    assert_eq!(out[3].text, "Wrote 1 byte (1 line) to /b.txt.");
    for tb in [&w.state, &w.fs] {
        let a = tb
            .backend()
            .read_to_string(&VPath::parse("/a.txt").unwrap())
            .await
            .unwrap();
        assert_eq!(a, "1 two\n", "the refused edit changed nothing");
    }
}

#[tokio::test]
async fn a_directory_and_a_path_below_it_conflict() {
    let w = Pair::new().await;
    w.put("/src/a.rs", b"x").await;
    let out = w
        .batch(vec![
            ("delete", json!({"file_path": "/src"})),
            (
                "write_file",
                json!({"file_path": "/src/b.rs", "content": "y"}),
            ),
            (
                "write_file",
                json!({"file_path": "/srcx/b.rs", "content": "y"}),
            ),
        ])
        .await;
    assert_eq!(
        out[0].text,
        "Deleted the directory /src and everything in it."
    );
    assert_eq!(
        out[1].text,
        "Error: invalid argument: another call in this batch (delete on /src) already changes /src/b.rs; \
parallel changes to one path are refused so that none is lost. Repeat this write_file call on its own once that one has finished"
    );
    assert_eq!(out[2].text, "Wrote 1 byte (1 line) to /srcx/b.rs.");
}

#[tokio::test]
async fn independent_calls_all_run() {
    let w = Pair::new().await;
    let calls: Vec<(&str, serde_json::Value)> = (0..8)
        .map(|i| {
            (
                "write_file",
                json!({"file_path": format!("/f{i}"), "content": "z"}),
            )
        })
        .collect();
    let out = w.batch(calls).await;
    assert!(out.iter().all(|o| !o.is_error));
    assert_eq!(
        w.ok("glob", json!({"pattern": "f*"})).await,
        "/f0\n/f1\n/f2\n/f3\n/f4\n/f5\n/f6\n/f7"
    );
    // bad calls in a batch fail alone
    let out = w
        .batch(vec![
            ("nope", json!({})),
            ("write_file", json!({"file_path": "../x", "content": ""})),
            ("ls", json!({})),
        ])
        .await;
    assert!(out[0].is_error && out[1].is_error && !out[2].is_error);
}
