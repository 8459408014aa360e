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

/// A config whose every search result is saved.
fn saving() -> ToolConfig {
    ToolConfig {
        max_output_bytes: 120,
        preview_head_lines: 1,
        preview_tail_lines: 1,
        ..ToolConfig::default()
    }
}

#[tokio::test]
async fn saved_results_do_not_use_up_the_match_budget() {
    // content results of 12 lines are saved, shorter ones are not
    let w = Pair::with_config(ToolConfig {
        max_output_bytes: 400,
        ..saving()
    })
    .await;
    // files on both sides of `/.sandbay` in path order, a directory with
    // a name that sorts between `.sandbay` and `.sandbay/` (`-` < `/`),
    // and a neighbour of the results directory that sorts after it
    for p in [
        "/-first.txt",
        "/.sandbay-x/a.txt",
        "/.sandbay/zz/n.txt",
        "/src/b.txt",
        "/z.txt",
    ] {
        let body: String = (1..=4).map(|i| format!("hit {p} {i}\n")).collect();
        w.put(p, body.as_bytes()).await;
    }
    let all = json!({"pattern": "hit", "output_mode": "content", "max_matches": 12});
    let first = w.ok("grep", all.clone()).await;
    assert!(
        first.contains("It was saved whole to /.sandbay/results/grep-"),
        "{first}"
    );
    // the saved result holds 12 more "hit" lines, which sort before
    // `/.sandbay/zz`: searched and then filtered out, they would take the
    // budget left for it
    let again = w.ok("grep", all.clone()).await;
    assert_eq!(again, first, "a repeated search gives the same result");
    let saved = first
        .split("saved whole to ")
        .nth(1)
        .and_then(|s| s.split(':').next())
        .unwrap()
        .to_owned();
    for tb in [&w.state, &w.fs] {
        let text = tb
            .backend()
            .read_to_string(&VPath::parse(&saved).unwrap())
            .await
            .unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "/-first.txt");
        assert!(text.contains("\n/.sandbay-x/a.txt\n1:hit /.sandbay-x/a.txt 1\n"));
        assert!(text.contains("\n/.sandbay/zz/n.txt\n1:hit"), "{text}");
        assert!(!text.contains("/src/b.txt") && !text.contains("/z.txt"));
        assert_eq!(lines.iter().filter(|l| l.contains(":hit")).count(), 12);
        assert!(text.ends_with("[Stopped after 12 matching lines; narrow the search (path, glob or a more specific pattern) to see the rest.]"));
    }
    // files mode counts files, count mode lines, a relative glob filter
    // and a root file still apply
    assert_eq!(
        w.ok("grep", json!({"pattern": "hit", "max_matches": 3}))
            .await,
        "/-first.txt\n/.sandbay-x/a.txt\n/.sandbay/zz/n.txt\n[Stopped after 3 matching files; narrow the search (path, glob or a more specific pattern) to see the rest.]"
    );
    assert_eq!(
        w.ok("grep", json!({"pattern": "txt 4", "output_mode": "count"}))
            .await,
        "/-first.txt:1\n/.sandbay-x/a.txt:1\n/.sandbay/zz/n.txt:1\n/src/b.txt:1\n/z.txt:1"
    );
    assert_eq!(
        w.ok(
            "grep",
            json!({"pattern": "txt 1", "glob": ".sandbay/*/*.txt"})
        )
        .await,
        "/.sandbay/zz/n.txt"
    );
    assert_eq!(
        w.ok("grep", json!({"pattern": "txt 1", "glob": "*first*"}))
            .await,
        "/-first.txt"
    );
    // glob: saved results neither show up nor count against the limit
    assert_eq!(
        w.ok("glob", json!({"pattern": "**/*.txt"})).await,
        "/-first.txt\n/.sandbay-x/a.txt\n/.sandbay/zz/n.txt\n/src/b.txt\n/z.txt"
    );
    assert_eq!(
        w.ok("glob", json!({"pattern": ".sandbay/**"})).await,
        "/.sandbay/zz/n.txt"
    );
    // inside the results directory, they are searched
    assert_eq!(
        w.ok(
            "grep",
            json!({"pattern": "hit", "path": "/.sandbay/results"})
        )
        .await,
        saved
    );
}

#[tokio::test]
async fn saved_results_are_rotated() {
    let w = Pair::with_config(saving()).await;
    let long = "y".repeat(150);
    let body: String = (0..45).map(|i| format!("line {i:02} {long}\n")).collect();
    w.put("/big.txt", body.as_bytes()).await;
    w.put("/.sandbay/results/keep.txt", b"mine").await;
    // each search finds one line, too long for one reply: 45 saved results
    let mut saved = Vec::new();
    let search = |i: usize| {
        let args = json!({"pattern": format!("line {i:02}"), "output_mode": "content"});
        let w = &w;
        async move {
            let text = w.ok("grep", args).await;
            text.split("saved whole to ")
                .nth(1)
                .and_then(|s| s.split(':').next())
                .unwrap()
                .to_owned()
        }
    };
    for i in 0..40 {
        saved.push(search(i).await);
    }
    let dir = VPath::parse("/.sandbay/results").unwrap();
    let listing = |tb: &sandbay_middleware::Toolbox| {
        let tb = tb.clone();
        let dir = dir.clone();
        async move {
            let mut names: Vec<String> = tb
                .backend()
                .ls(&dir)
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.path.as_str().to_owned())
                .collect();
            names.sort();
            names
        }
    };
    let mut kept: Vec<String> = saved[8..].to_vec();
    kept.push("/.sandbay/results/.order".into());
    kept.push("/.sandbay/results/keep.txt".into());
    kept.sort();
    for tb in [&w.state, &w.fs] {
        assert_eq!(listing(tb).await, kept, "the 32 latest results are kept");
    }
    // saving a result again makes it the latest: the next save drops
    // the one after it
    assert_eq!(search(8).await, saved[8]);
    let newest = search(40).await;
    for tb in [&w.state, &w.fs] {
        let names = listing(tb).await;
        assert!(names.contains(&saved[8]), "re-saved, so kept");
        assert!(!names.contains(&saved[9]), "now the oldest, so deleted");
        assert!(names.contains(&newest));
        assert!(names.contains(&"/.sandbay/results/keep.txt".to_owned()));
        assert_eq!(names.len(), 32 + 2);
    }
}
