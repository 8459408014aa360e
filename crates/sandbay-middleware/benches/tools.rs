//! What the tool layer costs on top of the backend: the same operation
//! through `Toolbox::call` (argument parsing, path parsing, formatting)
//! and straight on the backend, on the state and fs backends.
//!
//! `cargo bench -p sandbay-middleware --bench tools` prints one line per
//! case: operations per second, p50 and p95 latency in microseconds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sandbay_core::{Backend, EditRequest, GlobRequest, GrepMode, GrepRequest, ReadRequest, VPath};
use sandbay_middleware::Toolbox;
use serde_json::json;

const ROUNDS: usize = 2000;

fn stats(label: &str, mut samples: Vec<Duration>) {
    let wall: Duration = samples.iter().sum();
    samples.sort_unstable();
    let pick =
        |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e6;
    println!(
        "{label:<34} {:>10.0} ops/s   p50 {:>8.1} µs   p95 {:>8.1} µs",
        samples.len() as f64 / wall.as_secs_f64(),
        pick(0.5),
        pick(0.95)
    );
}

async fn time<F, Fut>(label: &str, rounds: usize, mut f: F)
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for i in 0..rounds / 10 {
        f(i).await; // warm up
    }
    let mut samples = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let start = Instant::now();
        f(i).await;
        samples.push(start.elapsed());
    }
    stats(label, samples);
}

async fn bench(name: &str, backend: Arc<dyn Backend>) {
    let tb = Toolbox::new(backend.clone());
    let text: String = (0..100)
        .map(|i| format!("line {i}: some text to read\n"))
        .collect();
    for i in 0..200 {
        let p = VPath::parse(&format!("/src/m{}/f{i}.rs", i % 10)).unwrap();
        backend.write(&p, &text).await.unwrap();
    }
    let file = VPath::parse("/src/m0/f0.rs").unwrap();

    time(&format!("{name} read 100 lines (backend)"), ROUNDS, |_| {
        let (b, f) = (backend.clone(), file.clone());
        async move {
            b.read(&f, ReadRequest::default()).await.unwrap();
        }
    })
    .await;
    time(
        &format!("{name} read_file 100 lines (tool)"),
        ROUNDS,
        |_| {
            let tb = tb.clone();
            async move {
                assert!(
                    !tb.call("read_file", json!({"file_path": "/src/m0/f0.rs"}))
                        .await
                        .is_error
                );
            }
        },
    )
    .await;
    time(&format!("{name} edit (backend)"), ROUNDS, |i| {
        let (b, f) = (backend.clone(), file.clone());
        async move {
            let (old, new) = if i % 2 == 0 {
                ("line 5:", "LINE 5:")
            } else {
                ("LINE 5:", "line 5:")
            };
            let req = EditRequest {
                old: old.into(),
                new: new.into(),
                replace_all: false,
            };
            b.edit(&f, &req).await.unwrap();
        }
    })
    .await;
    time(&format!("{name} edit_file (tool)"), ROUNDS, |i| {
        let tb = tb.clone();
        async move {
            let (old, new) = if i % 2 == 0 {
                ("line 5:", "LINE 5:")
            } else {
                ("LINE 5:", "line 5:")
            };
            let out = tb
                .call(
                    "edit_file",
                    json!({"file_path": "/src/m0/f0.rs", "old_string": old, "new_string": new}),
                )
                .await;
            assert!(!out.is_error, "{}", out.text);
        }
    })
    .await;
    time(
        &format!("{name} grep 200 files (backend)"),
        ROUNDS / 10,
        |_| {
            let b = backend.clone();
            async move {
                let mut req = GrepRequest::new("line 42:");
                req.mode = GrepMode::Content;
                b.grep(&req).await.unwrap();
            }
        },
    )
    .await;
    time(
        &format!("{name} grep 200 files (tool)"),
        ROUNDS / 10,
        |_| {
            let tb = tb.clone();
            async move {
                let out = tb
                    .call(
                        "grep",
                        json!({"pattern": "line 42:", "output_mode": "content"}),
                    )
                    .await;
                assert!(!out.is_error);
            }
        },
    )
    .await;
    time(
        &format!("{name} glob 200 files (backend)"),
        ROUNDS / 4,
        |_| {
            let b = backend.clone();
            async move {
                b.glob(&GlobRequest::new("**/*.rs")).await.unwrap();
            }
        },
    )
    .await;
    time(&format!("{name} glob 200 files (tool)"), ROUNDS / 4, |_| {
        let tb = tb.clone();
        async move {
            assert!(
                !tb.call("glob", json!({"pattern": "**/*.rs"}))
                    .await
                    .is_error
            );
        }
    })
    .await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    bench("state", Arc::new(sandbay_state::StateBackend::default())).await;
    let dir = tempfile::Builder::new()
        .prefix("sandbay-middleware-bench-")
        .tempdir()
        .unwrap();
    let root = sandbay_fs::open_root(dir.path()).await.unwrap();
    bench("fs", Arc::new(sandbay_fs::FsBackend::new(root))).await;
}
