//! The output budget: big results are saved into the workspace and the
//! model gets a preview; read_file stops at the budget with a hint.

mod common;

use common::Pair;
use sandbay_core::{BackendExt, VPath};
use sandbay_middleware::ToolConfig;
use serde_json::json;

fn small() -> ToolConfig {
    ToolConfig {
        max_output_bytes: 300,
        preview_head_lines: 2,
        preview_tail_lines: 1,
        ..ToolConfig::default()
    }
}

#[tokio::test]
async fn big_glob_is_saved_with_a_preview() {
    let w = Pair::with_config(small()).await;
    let mut full = Vec::new();
    for i in 0..40 {
        let p = format!("/data/file-{i:02}.txt");
        w.put(&p, b"x").await;
        full.push(p);
    }
    let full = full.join("\n");
    assert!(full.len() > 300);
    let text = w.ok("glob", json!({"pattern": "*.txt"})).await;
    let saved = "/.sandbay/results/glob-1e0c82886ef6.txt";
    assert_eq!(
        text,
        format!(
            "[This result is {} bytes in 40 lines, over the 300-byte limit for one reply. \
It was saved whole to {saved}: read it in parts with read_file (offset and limit) or search it with grep, \
or narrow this call.]\n/data/file-00.txt\n/data/file-01.txt\n[... 37 lines not shown ...]\n/data/file-39.txt",
            full.len()
        )
    );
    for tb in [&w.state, &w.fs] {
        let got = tb
            .backend()
            .read_to_string(&VPath::parse(saved).unwrap())
            .await
            .unwrap();
        assert_eq!(got, full);
    }
    // the saved result can be paged through
    assert_eq!(
        w.ok("read_file", json!({"file_path": saved, "offset": 39}))
            .await,
        "    40\t/data/file-39.txt"
    );
    // and does not show up in searches of the workspace
    let again = w.ok("glob", json!({"pattern": "*.txt"})).await;
    assert_eq!(again, text, "the same result lands in the same file");
    assert_eq!(
        w.ok("grep", json!({"pattern": "file-39"})).await,
        "No matches for \"file-39\" under /."
    );
    // unless the search starts inside the results directory
    assert_eq!(
        w.ok(
            "glob",
            json!({"pattern": "*.txt", "path": "/.sandbay/results"})
        )
        .await,
        saved
    );
}

#[tokio::test]
async fn read_stops_at_the_budget() {
    let w = Pair::with_config(ToolConfig {
        max_output_bytes: 200 + 40,
        ..ToolConfig::default()
    })
    .await;
    w.put(
        "/n.txt",
        b"aaaaaaaaaa\nbbbbbbbbbb\ncccccccccc\ndddddddddd\n",
    )
    .await;
    assert_eq!(
        w.ok("read_file", json!({"file_path": "/n.txt"})).await,
        "     1\taaaaaaaaaa\n     2\tbbbbbbbbbb\n[Showing lines 1-2 of 4. Call read_file with offset=2 to read more.]"
    );
    assert_eq!(
        w.ok("read_file", json!({"file_path": "/n.txt", "offset": 2}))
            .await,
        "     3\tcccccccccc\n     4\tdddddddddd"
    );
}

#[tokio::test]
async fn small_results_are_not_saved() {
    let w = Pair::with_config(small()).await;
    w.put("/a.txt", b"x").await;
    assert_eq!(w.ok("glob", json!({"pattern": "*"})).await, "/a.txt");
    assert_eq!(w.ok("ls", json!({})).await, "/a.txt (1 byte)");
}
