//! Runs every tool call on the state and the fs backend and demands the
//! same output from both.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use sandbay_core::{Backend, VPath};
use sandbay_middleware::{ToolConfig, ToolOutput, Toolbox};
use serde_json::Value;

/// A state workspace and an fs workspace (in a labelled temp dir that is
/// removed on drop, even when a test fails).
pub struct Pair {
    pub state: Toolbox,
    pub fs: Toolbox,
    pub dir: tempfile::TempDir,
}

impl Pair {
    pub async fn new() -> Pair {
        Pair::with_config(ToolConfig::default()).await
    }

    pub async fn with_config(config: ToolConfig) -> Pair {
        let dir = tempfile::Builder::new()
            .prefix("sandbay-middleware-test-")
            .tempdir()
            .expect("temp dir");
        let root = sandbay_fs::open_root(dir.path()).await.expect("fs root");
        let fs: Arc<dyn Backend> = Arc::new(sandbay_fs::FsBackend::new(root));
        let state: Arc<dyn Backend> = Arc::new(sandbay_state::StateBackend::default());
        Pair {
            state: Toolbox::new(state).with_config(config.clone()),
            fs: Toolbox::new(fs).with_config(config),
            dir,
        }
    }

    /// Writes a file on both backends directly (binary safe).
    pub async fn put(&self, path: &str, bytes: &[u8]) {
        let p = VPath::parse(path).unwrap();
        for tb in [&self.state, &self.fs] {
            let res = tb.backend().upload(vec![(p.clone(), bytes.to_vec())]).await;
            res.into_iter().for_each(|r| r.expect("upload"));
        }
    }

    /// Runs one call on both backends; the outputs must be identical.
    pub async fn call(&self, name: &str, args: Value) -> ToolOutput {
        let a = self.state.call(name, args.clone()).await;
        let b = self.fs.call(name, args.clone()).await;
        assert_eq!(a, b, "state and fs differ for {name} {args}");
        assert!(
            !b.text.contains(self.dir.path().to_str().unwrap()),
            "host path leaked: {}",
            b.text
        );
        a
    }

    /// A call that must succeed; returns its text.
    pub async fn ok(&self, name: &str, args: Value) -> String {
        let out = self.call(name, args.clone()).await;
        assert!(!out.is_error, "{name} {args} failed: {}", out.text);
        assert_eq!(out.code, None);
        out.text
    }

    /// A call that must fail; returns its text.
    pub async fn err(&self, name: &str, args: Value) -> String {
        let out = self.call(name, args.clone()).await;
        assert!(out.is_error, "{name} {args} should fail: {}", out.text);
        assert!(out.text.starts_with("Error: "), "{}", out.text);
        assert!(out.code.is_some());
        out.text
    }

    /// Runs a batch on both backends; the outputs must be identical.
    pub async fn batch(&self, calls: Vec<(&str, Value)>) -> Vec<ToolOutput> {
        let calls: Vec<(String, Value)> =
            calls.into_iter().map(|(n, a)| (n.to_owned(), a)).collect();
        let a = self.state.call_batch(calls.clone()).await;
        let b = self.fs.call_batch(calls).await;
        assert_eq!(a, b, "state and fs differ for a batch");
        a
    }
}
