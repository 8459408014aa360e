//! The server driven by rmcp's own client over an in-memory duplex:
//! handshake, tools/list, tools/call with the toolbox's exact texts.

use std::sync::Arc;

use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use sandbay_core::Backend;
use sandbay_mcp::McpServer;
use sandbay_middleware::Toolbox;
use serde_json::{Value, json};

fn args(v: Value) -> serde_json::Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => unreachable!("test arguments are objects"),
    }
}

fn text(res: &CallToolResult) -> String {
    assert_eq!(res.content.len(), 1);
    res.content[0].as_text().expect("a text block").text.clone()
}

type Client = rmcp::service::RunningService<rmcp::RoleClient, ()>;

async fn connect(backend: Arc<dyn Backend>) -> (Client, tokio::task::JoinHandle<()>) {
    let (client_io, server_io) = tokio::io::duplex(1 << 16);
    let (read, write) = tokio::io::split(server_io);
    let server = tokio::spawn(async move {
        McpServer::new(Toolbox::new(backend))
            .serve(read, write)
            .await
            .expect("server session");
    });
    let client = ().serve(client_io).await.expect("client handshake");
    (client, server)
}

async fn call(client: &Client, name: &'static str, a: Value) -> CallToolResult {
    client
        .call_tool(CallToolRequestParams::new(name).with_arguments(args(a)))
        .await
        .expect("tools/call")
}

#[tokio::test]
async fn list_and_call_on_the_state_backend() {
    let (client, server) = connect(Arc::new(sandbay_state::StateBackend::default())).await;
    let info = client.peer_info().expect("server info");
    assert_eq!(
        info.server_info.as_ref().map(|s| s.name.as_str()),
        Some("sandbay")
    );

    let tools = client.list_all_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
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
    let read = &tools[1];
    assert_eq!(read.input_schema["required"], json!(["file_path"]));
    assert_eq!(
        read.annotations.as_ref().unwrap().read_only_hint,
        Some(true)
    );
    let delete = &tools[4];
    assert_eq!(
        delete.annotations.as_ref().unwrap().destructive_hint,
        Some(true)
    );

    let res = call(
        &client,
        "write_file",
        json!({"file_path": "/a.txt", "content": "hello\nworld\n"}),
    )
    .await;
    assert_eq!(text(&res), "Wrote 12 bytes (2 lines) to /a.txt.");
    assert_eq!(res.is_error, Some(false));

    let res = call(&client, "read_file", json!({"file_path": "/a.txt"})).await;
    assert_eq!(text(&res), "     1\thello\n     2\tworld");

    let res = call(
        &client,
        "edit_file",
        json!({"file_path": "/a.txt", "old_string": "planet", "new_string": "x"}),
    )
    .await;
    assert_eq!(res.is_error, Some(true));
    assert_eq!(
        text(&res),
        "Error: /a.txt: the text to replace was not found\n\
Hint: read the file again with read_file and copy old_string exactly, including whitespace and line breaks."
    );

    let res = call(
        &client,
        "read_file",
        json!({"file_path": "../../etc/passwd"}),
    )
    .await;
    assert_eq!(res.is_error, Some(true));
    assert_eq!(
        text(&res),
        "Error: invalid path \"../../etc/passwd\": `..` climbs above the workspace root"
    );

    let res = call(&client, "execute", json!({"command": "id"})).await;
    assert_eq!(res.is_error, Some(true));
    assert!(text(&res).starts_with("Error: execute is not supported by the state backend"));

    let err = client
        .call_tool(CallToolRequestParams::new("cat"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unknown tool `cat`"), "{err}");

    client.cancel().await.unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn same_texts_on_the_fs_backend() {
    let dir = tempfile::Builder::new()
        .prefix("sandbay-mcp-test-")
        .tempdir()
        .unwrap();
    let root = sandbay_fs::open_root(dir.path()).await.unwrap();
    let (client, server) = connect(Arc::new(sandbay_fs::FsBackend::new(root))).await;
    let res = call(
        &client,
        "write_file",
        json!({"file_path": "src/m.rs", "content": "fn main() {}\n"}),
    )
    .await;
    assert_eq!(text(&res), "Wrote 13 bytes (1 line) to /src/m.rs.");
    let res = call(
        &client,
        "grep",
        json!({"pattern": "main", "output_mode": "content"}),
    )
    .await;
    assert_eq!(text(&res), "/src/m.rs\n1:fn main() {}");
    assert!(dir.path().join("src/m.rs").is_file());
    client.cancel().await.unwrap();
    server.await.unwrap();
}
