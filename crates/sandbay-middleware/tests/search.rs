//! glob and grep: exact texts, identical on both backends.

mod common;

use common::Pair;
use serde_json::json;

async fn project() -> Pair {
    let w = Pair::new().await;
    w.put(
        "/src/main.rs",
        b"fn main() {\n    helper();\n}\n\nfn helper() {}\n",
    )
    .await;
    w.put("/src/util/mod.rs", b"// TODO: tidy\npub fn helper2() {}\n")
        .await;
    w.put("/README.md", b"# Demo\nCall helper() (twice).\n")
        .await;
    w.put("/data.bin", b"helper\x00").await;
    w
}

#[tokio::test]
async fn glob_texts() {
    let w = project().await;
    assert_eq!(
        w.ok("glob", json!({"pattern": "*.rs"})).await,
        "/src/main.rs\n/src/util/mod.rs"
    );
    assert_eq!(
        w.ok("glob", json!({"pattern": "util/*.rs", "path": "/src"}))
            .await,
        "/src/util/mod.rs"
    );
    assert_eq!(
        w.ok("glob", json!({"pattern": "**/*.{md,rs}"})).await,
        "/README.md\n/src/main.rs\n/src/util/mod.rs"
    );
    assert_eq!(
        w.ok("glob", json!({"pattern": "*.py", "path": "/src"}))
            .await,
        "No files match \"*.py\" under /src."
    );
    assert_eq!(
        w.err("glob", json!({"pattern": "a["})).await,
        "Error: invalid argument: invalid glob pattern \"a[\": unclosed character class; missing ']'"
    );
}

#[tokio::test]
async fn grep_modes() {
    let w = project().await;
    assert_eq!(
        w.ok("grep", json!({"pattern": "helper"})).await,
        "/README.md\n/src/main.rs\n/src/util/mod.rs"
    );
    assert_eq!(
        w.ok("grep", json!({"pattern": "helper", "output_mode": "count"}))
            .await,
        "/README.md:1\n/src/main.rs:2\n/src/util/mod.rs:1"
    );
    assert_eq!(
        w.ok(
            "grep",
            json!({"pattern": "helper\\(\\)", "path": "/src", "output_mode": "content", "context": 1})
        )
        .await,
        "/src/main.rs\n1-fn main() {\n2:    helper();\n3-}\n4-\n5:fn helper() {}"
    );
    assert_eq!(
        w.ok(
            "grep",
            json!({"pattern": "fn", "glob": "*.rs", "output_mode": "content", "after_context": 0, "before_context": 1})
        )
        .await,
        "/src/main.rs\n1:fn main() {\n--\n4-\n5:fn helper() {}\n\n/src/util/mod.rs\n1-// TODO: tidy\n2:pub fn helper2() {}"
    );
}

#[tokio::test]
async fn grep_options_and_errors() {
    let w = project().await;
    assert_eq!(
        w.ok(
            "grep",
            json!({"pattern": "helper() (", "literal": true, "output_mode": "content"})
        )
        .await,
        "/README.md\n2:Call helper() (twice)."
    );
    assert_eq!(
        w.ok("grep", json!({"pattern": "DEMO", "case_insensitive": true}))
            .await,
        "/README.md"
    );
    assert_eq!(
        w.ok(
            "grep",
            json!({"pattern": "helper", "max_matches": 2, "output_mode": "count"})
        )
        .await,
        "/README.md:1\n/src/main.rs:1\n[Stopped after 2 matching lines; narrow the search (path, glob or a more specific pattern) to see the rest.]"
    );
    assert_eq!(
        w.ok("grep", json!({"pattern": "nothing here", "glob": "*.md"}))
            .await,
        "No matches for \"nothing here\" in files matching \"*.md\" under /."
    );
    assert_eq!(
        w.err("grep", json!({"pattern": "helper("})).await,
        "Error: invalid argument: invalid regular expression: error: unclosed group; set literal to search for the text as is"
    );
    assert_eq!(
        w.err("grep", json!({"pattern": "x", "path": "/nope"}))
            .await,
        "Error: /nope: no such file or directory\nHint: use ls or glob to find the right path."
    );
    assert_eq!(
        w.err("grep", json!({"pattern": "x", "max_matches": 0}))
            .await,
        "Error: invalid argument: grep: max_matches must be at least 1"
    );
    assert_eq!(
        w.err(
            "grep",
            json!({"pattern": "x", "output_mode": "content", "context": 101})
        )
        .await,
        "Error: invalid argument: grep: field `context`: at most 100 lines of context are allowed, not 101"
    );
    assert_eq!(
        w.err(
            "grep",
            json!({"pattern": "x", "context": 5, "after_context": 1000})
        )
        .await,
        "Error: invalid argument: grep: field `after_context`: at most 100 lines of context are allowed, not 1000"
    );
    assert_eq!(
        w.ok(
            "grep",
            json!({"pattern": "Demo", "output_mode": "content", "before_context": 100})
        )
        .await,
        "/README.md\n1:# Demo"
    );
    assert_eq!(
        w.ok("grep", json!({"pattern": "helper", "max_matches": 2}))
            .await,
        "/README.md\n/src/main.rs\n[Stopped after 2 matching files; narrow the search (path, glob or a more specific pattern) to see the rest.]"
    );
    assert_eq!(
        w.err("grep", json!({"pattern": "x", "output_mode": "lines"}))
            .await,
        "Error: invalid argument: grep: field `output_mode`: unknown variant `lines`, expected one of `files_with_matches`, `content`, `count`"
    );
}
