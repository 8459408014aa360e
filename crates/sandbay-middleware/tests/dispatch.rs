//! Tool lookup, argument handling and the offer of execute.

mod common;

use common::Pair;
use sandbay_core::ErrorCode;
use sandbay_middleware::ToolName;
use serde_json::json;

#[tokio::test]
async fn execute_needs_a_sandbox() {
    let w = Pair::new().await;
    let names: Vec<String> = w.state.specs().into_iter().map(|s| s.name).collect();
    assert_eq!(
        names,
        [
            "ls",
            "read_file",
            "write_file",
            "edit_file",
            "delete",
            "glob",
            "grep"
        ]
    );
    assert!(!w.fs.tools().contains(&ToolName::Execute));
    let out = w.state.call("execute", json!({"command": "ls"})).await;
    assert_eq!(
        out.text,
        "Error: execute is not supported by the state backend\n\
Hint: this workspace has no shell; use ls, read_file, write_file, edit_file, delete, glob and grep."
    );
    assert_eq!(out.code, Some(ErrorCode::Unsupported));
    let out = w.fs.call("execute", json!({"command": "ls"})).await;
    assert_eq!(
        out.text,
        "Error: execute is not supported by the fs backend\n\
Hint: this workspace has no shell; use ls, read_file, write_file, edit_file, delete, glob and grep."
    );
}

#[tokio::test]
async fn unknown_tools_and_bad_arguments() {
    let w = Pair::new().await;
    assert_eq!(
        w.err("cat", json!({"file_path": "/a"})).await,
        "Error: invalid argument: unknown tool `cat`; the tools are: ls, read_file, write_file, edit_file, delete, glob, grep"
    );
    assert_eq!(
        w.err("read_file", json!({"path": "/a"})).await,
        "Error: invalid argument: read_file: unknown field `path`, expected one of `file_path`, `offset`, `limit`"
    );
    assert_eq!(
        w.err("read_file", json!({"file_path": 7})).await,
        "Error: invalid argument: read_file: field `file_path`: invalid type: integer `7`, expected a string"
    );
    assert_eq!(
        w.err("write_file", json!(["/a", "x"])).await,
        "Error: invalid argument: write_file: the arguments must be a JSON object"
    );
    assert_eq!(
        w.err("glob", json!(null)).await,
        "Error: invalid argument: glob: missing field `pattern`"
    );
    // arguments as a JSON string, as some model APIs deliver them
    assert_eq!(
        w.ok(
            "write_file",
            json!("{\"file_path\": \"/s.txt\", \"content\": \"ok\"}")
        )
        .await,
        "Wrote 2 bytes (1 line) to /s.txt."
    );
}

/// Servers spawn tool calls on multi-threaded runtimes: the futures of
/// every call must be `Send` (a compile-time check; nothing is awaited).
#[test]
fn call_futures_are_send() {
    fn send<T: Send>(_: T) {}
    let tb = sandbay_middleware::Toolbox::new(std::sync::Arc::new(
        sandbay_state::StateBackend::default(),
    ));
    send(tb.call("grep", json!({"pattern": "x"})));
    send(tb.call_tool(ToolName::Glob, json!({"pattern": "*"})));
    send(tb.call_tool(ToolName::EditFile, json!({})));
    send(tb.call_batch(vec![("ls".to_owned(), json!({}))]));
}
