//! One `tools/call` round trip through the MCP server (rmcp's client over
//! an in-memory stream, JSON-RPC framing both ways) against the same call
//! on the toolbox directly, on the state backend.
//!
//! `cargo bench -p sandbay-mcp --bench roundtrip` prints operations per
//! second and p50/p95 latency in microseconds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use sandbay_mcp::McpServer;
use sandbay_middleware::Toolbox;
use serde_json::json;

const ROUNDS: usize = 3000;

fn report(label: &str, mut samples: Vec<Duration>) {
    let wall: Duration = samples.iter().sum();
    samples.sort_unstable();
    let pick =
        |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e6;
    println!(
        "{label:<32} {:>9.0} ops/s   p50 {:>7.1} µs   p95 {:>7.1} µs",
        samples.len() as f64 / wall.as_secs_f64(),
        pick(0.5),
        pick(0.95)
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let toolbox = Toolbox::new(Arc::new(sandbay_state::StateBackend::default()));
    let text: String = (0..20).map(|i| format!("line {i}\n")).collect();
    toolbox
        .call(
            "write_file",
            json!({"file_path": "/f.txt", "content": text}),
        )
        .await;
    let args = json!({"file_path": "/f.txt"});

    let mut samples = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let start = Instant::now();
        assert!(!toolbox.call("read_file", args.clone()).await.is_error);
        samples.push(start.elapsed());
    }
    report("read_file 20 lines, toolbox", samples);

    let (client_io, server_io) = tokio::io::duplex(1 << 16);
    let (read, write) = tokio::io::split(server_io);
    let server = tokio::spawn(McpServer::new(toolbox.clone()).serve(read, write));
    let client = ().serve(client_io).await.expect("handshake");
    let params = CallToolRequestParams::new("read_file")
        .with_arguments(args.as_object().cloned().unwrap_or_default());
    let mut samples = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let start = Instant::now();
        let res = client.call_tool(params.clone()).await.expect("tools/call");
        assert_eq!(res.is_error, Some(false));
        samples.push(start.elapsed());
    }
    report("read_file 20 lines, MCP", samples);
    client.cancel().await.expect("close");
    let _ = server.await;
}
