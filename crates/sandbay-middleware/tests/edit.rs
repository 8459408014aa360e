//! edit_file: counts, refusals and hints, identical on both backends.

mod common;

use common::Pair;
use serde_json::json;

fn edit(path: &str, old: &str, new: &str) -> serde_json::Value {
    json!({"file_path": path, "old_string": old, "new_string": new})
}

#[tokio::test]
async fn replaces_and_counts() {
    let w = Pair::new().await;
    w.put("/app.py", b"x = 1\ny = x + x\n").await;
    assert_eq!(
        w.ok("edit_file", edit("/app.py", "x = 1", "x = 2")).await,
        "Replaced 1 occurrence in /app.py."
    );
    assert_eq!(
        w.ok(
            "edit_file",
            json!({"file_path": "/app.py", "old_string": "x", "new_string": "z", "replace_all": true})
        )
        .await,
        "Replaced 3 occurrences in /app.py."
    );
    assert_eq!(
        w.ok("read_file", json!({"file_path": "/app.py"})).await,
        "     1\tz = 2\n     2\ty = z + z"
    );
}

#[tokio::test]
async fn ambiguous_names_the_lines() {
    let w = Pair::new().await;
    w.put("/m.rs", b"let a = 1;\nlet b = 2;\nlet a = 1;\n")
        .await;
    assert_eq!(
        w.err("edit_file", edit("/m.rs", "let a = 1;", "let a = 3;"))
            .await,
        "Error: /m.rs: the text to replace occurs 2 times; add surrounding context to make it unique, or set replace_all\n\
Hint: the occurrences are on lines 1, 3."
    );
}

#[tokio::test]
async fn no_match_hints() {
    let w = Pair::new().await;
    w.put(
        "/f.py",
        b"def f():\n    if x:\n        return 1\n    return 2",
    )
    .await;
    // a trailing newline the file does not have
    assert_eq!(
        w.err(
            "edit_file",
            edit("/f.py", "    return 2\n", "    return 3\n")
        )
        .await,
        "Error: /f.py: the text to replace was not found\n\
Hint: the text is in the file, but not with the whitespace or newline at the end of old_string; remove that trailing whitespace from old_string (and new_string)."
    );
    // tabs instead of spaces
    assert_eq!(
        w.err("edit_file", edit("/f.py", "\tif x:\n\t\treturn 1", ""))
            .await,
        "Error: /f.py: the text to replace was not found\n\
Hint: a passage that differs only in whitespace (indentation, tabs, spaces) is at lines 2-3:\n     2\t    if x:\n     3\t        return 1\n\
Copy old_string exactly from there, without the line numbers."
    );
    // Windows line endings in old_string
    assert_eq!(
        w.err("edit_file", edit("/f.py", "def f():\r\n    if x:", ""))
            .await,
        "Error: /f.py: the text to replace was not found\n\
Hint: old_string has Windows line endings (\\r\\n) but the file uses \\n; use \\n line endings in old_string."
    );
    // nothing close
    assert_eq!(
        w.err("edit_file", edit("/f.py", "while True:", "")).await,
        "Error: /f.py: the text to replace was not found\n\
Hint: read the file again with read_file and copy old_string exactly, including whitespace and line breaks."
    );
    // the file is untouched by all of it
    assert_eq!(
        w.ok("read_file", json!({"file_path": "/f.py", "offset": 3}))
            .await,
        "     4\t    return 2"
    );
}

#[tokio::test]
async fn crlf_files_keep_crlf() {
    let w = Pair::new().await;
    w.put("/win.txt", b"one\r\ntwo\r\n").await;
    assert_eq!(
        w.ok("edit_file", edit("/win.txt", "one\ntwo", "1\n2"))
            .await,
        "Replaced 1 occurrence in /win.txt."
    );
    for tb in [&w.state, &w.fs] {
        let bytes = sandbay_core::BackendExt::read_bytes(
            &**tb.backend(),
            &sandbay_core::VPath::parse("/win.txt").unwrap(),
        )
        .await
        .unwrap();
        assert_eq!(bytes, b"1\r\n2\r\n");
    }
}

#[tokio::test]
async fn refusals() {
    let w = Pair::new().await;
    w.put("/a.txt", b"abc").await;
    assert_eq!(
        w.err("edit_file", edit("/a.txt", "", "x")).await,
        "Error: invalid argument: old_string must not be empty; to create or overwrite a file, write it"
    );
    assert_eq!(
        w.err("edit_file", edit("/a.txt", "abc", "abc")).await,
        "Error: invalid argument: edit_file: old_string and new_string are the same, so nothing would change"
    );
    assert_eq!(
        w.err("edit_file", edit("/nope.txt", "a", "b")).await,
        "Error: /nope.txt: no such file or directory\nHint: use ls or glob to find the right path."
    );
    assert_eq!(
        w.err(
            "edit_file",
            json!({"file_path": "/a.txt", "old_string": "a"})
        )
        .await,
        "Error: invalid argument: edit_file: missing field `new_string`"
    );
}

/// Generous bound on a hint over a big file: it guards against a hang
/// (the quadratic hints took hours here), it measures nothing.
const HANG_GUARD: std::time::Duration = std::time::Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hints_on_big_files_stay_bounded() {
    let w = Pair::new().await;
    // 8 MiB, one occurrence per line: listing them by re-scanning the
    // file from its start for each was quadratic
    let big = "x\n".repeat(4 << 20);
    w.put("/big.txt", big.as_bytes()).await;
    let out = tokio::time::timeout(HANG_GUARD, w.err("edit_file", edit("/big.txt", "x", "y")))
        .await
        .expect("the ambiguous-edit hint did not finish");
    assert_eq!(
        out,
        format!(
            "Error: /big.txt: the text to replace occurs {} times; add surrounding context to make it unique, or set replace_all\n\
Hint: the occurrences are on lines 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 and {} more.",
            4 << 20,
            (4 << 20) - 10
        )
    );
    // no exact match, but old_string's lines fit the file's until its
    // last one at every start: the whitespace-insensitive search gives up
    let old = format!("{}b", "x\n".repeat(20_000));
    let out = tokio::time::timeout(HANG_GUARD, w.err("edit_file", edit("/big.txt", &old, "y")))
        .await
        .expect("the not-found hint did not finish");
    assert_eq!(
        out,
        "Error: /big.txt: the text to replace was not found\n\
Hint: read the file again with read_file and copy old_string exactly, including whitespace and line breaks."
    );
}
