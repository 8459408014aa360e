//! The tools over a real Docker sandbox: `execute` texts, and the same
//! file-tool texts as the state backend.
//!
//! The daemon and the test image are checked when the tests run: without
//! them a test is skipped with the reason, and fails under CI.

use std::sync::Arc;
use std::time::Duration;

use sandbay_docker::{DockerClient, DockerConfig, DockerSandbox};
use sandbay_middleware::{ToolConfig, ToolName, Toolbox};
use serde_json::{Value, json};

/// A sandbox container for one test, removed at the end (and by the
/// daemon when the test process dies, since it exits with its owner).
struct Container(Arc<DockerSandbox>);

impl Container {
    /// `None` after a skip when no daemon answers or the test image is
    /// missing (a failure under CI).
    async fn new() -> Option<Container> {
        let image = sandbay_testkit::docker::TEST_IMAGE;
        if !sandbay_testkit::skip::require(sandbay_testkit::docker::check(image)) {
            return None;
        }
        let client = DockerClient::connect().await.expect("a Docker daemon");
        let config = DockerConfig::default()
            .with_image(image)
            .with_owner("sandbay-middleware-test");
        Some(Container(Arc::new(
            DockerSandbox::create(&client, config)
                .await
                .expect("a sandbox container"),
        )))
    }

    fn toolbox(&self, config: ToolConfig) -> Toolbox {
        Toolbox::with_sandbox(self.0.clone()).with_config(config)
    }

    async fn remove(self) {
        self.0.shutdown().await.expect("container removed");
    }
}

async fn ok(tb: &Toolbox, name: &str, args: Value) -> String {
    let out = tb.call(name, args.clone()).await;
    assert!(!out.is_error, "{name} {args}: {}", out.text);
    out.text
}

#[tokio::test]
async fn execute_texts() {
    let Some(c) = Container::new().await else {
        return;
    };
    let tb = c.toolbox(ToolConfig {
        max_timeout: Duration::from_secs(5),
        ..ToolConfig::default()
    });
    assert!(tb.tools().contains(&ToolName::Execute));
    assert_eq!(tb.specs().len(), 8);

    ok(
        &tb,
        "write_file",
        json!({"file_path": "/a.txt", "content": "hello\n"}),
    )
    .await;
    assert_eq!(
        ok(&tb, "execute", json!({"command": "cat a.txt"})).await,
        "hello\n[exit code 0]"
    );
    assert_eq!(
        ok(
            &tb,
            "execute",
            json!({"command": "echo out; echo err >&2; exit 3"})
        )
        .await,
        "out\n[stderr]\nerr\n[exit code 3]"
    );
    assert_eq!(
        ok(&tb, "execute", json!({"command": "true"})).await,
        "[no output]\n[exit code 0]"
    );
    assert_eq!(
        ok(&tb, "execute", json!({"command": "echo x", "timeout": 999})).await,
        "x\n[timeout lowered from 999s to the maximum of 5s]\n[exit code 0]"
    );
    assert_eq!(
        ok(
            &tb,
            "execute",
            json!({"command": "echo start; sleep 30; echo never", "timeout": 1})
        )
        .await,
        "start\n[timed out after 1s: the command and everything it started were killed; output up to then is shown]"
    );
    // files made by commands are files for the tools
    ok(
        &tb,
        "execute",
        json!({"command": "mkdir -p d && echo made > d/f.txt"}),
    )
    .await;
    assert_eq!(
        ok(&tb, "read_file", json!({"file_path": "/d/f.txt"})).await,
        "     1\tmade"
    );

    let out = tb.call("execute", json!({"command": "  "})).await;
    assert_eq!(
        out.text,
        "Error: invalid argument: execute: command is empty"
    );
    let out = tb
        .call("execute", json!({"command": "ls", "timeout": 0}))
        .await;
    assert_eq!(
        out.text,
        "Error: invalid argument: execute: timeout must be at least 1 second"
    );
    let out = tb.call("execute", json!({"cmd": "ls"})).await;
    assert_eq!(
        out.text,
        "Error: invalid argument: execute: unknown field `cmd`, expected `command` or `timeout`"
    );

    // a flood of output is cut by the sandbox and saved by the budget
    let out = ok(
        &tb,
        "execute",
        json!({"command": "yes 0123456789 | head -c 3000000"}),
    )
    .await;
    assert!(
        out.starts_with("[This result is "),
        "{}",
        &out[..200.min(out.len())]
    );
    assert!(
        out.contains("It was saved whole to /.sandbay/results/execute-"),
        "{out}"
    );
    assert!(
        out.ends_with(
            "\n[output cut: the command printed more than the sandbox keeps; redirect it to a file and read that with read_file or grep]\n[exit code 0]"
        ),
        "{}",
        &out[out.len().saturating_sub(300)..]
    );
    c.remove().await;
}

#[tokio::test]
async fn file_tools_match_the_state_backend() {
    let Some(c) = Container::new().await else {
        return;
    };
    let docker = c.toolbox(ToolConfig::default());
    let state = Toolbox::new(Arc::new(sandbay_state::StateBackend::default()));
    let calls: Vec<(&str, Value)> = vec![
        (
            "write_file",
            json!({"file_path": "/src/app.py", "content": "def f():\n    if x:\n        return 1\n    return 2\n"}),
        ),
        (
            "write_file",
            json!({"file_path": "notes/todo.md", "content": ""}),
        ),
        ("ls", json!({})),
        ("ls", json!({"path": "/src/app.py"})),
        (
            "read_file",
            json!({"file_path": "/src/app.py", "offset": 1, "limit": 2}),
        ),
        ("read_file", json!({"file_path": "/notes/todo.md"})),
        ("read_file", json!({"file_path": "../../etc/passwd"})),
        ("read_file", json!({"file_path": "/etc/passwd"})),
        (
            "edit_file",
            json!({"file_path": "/src/app.py", "old_string": "\tif x:\n\t\treturn 1", "new_string": ""}),
        ),
        (
            "edit_file",
            json!({"file_path": "/src/app.py", "old_string": "return", "new_string": "yield"}),
        ),
        (
            "edit_file",
            json!({"file_path": "/src/app.py", "old_string": "return", "new_string": "yield", "replace_all": true}),
        ),
        ("glob", json!({"pattern": "**/*.{md,py}"})),
        (
            "grep",
            json!({"pattern": "yield", "output_mode": "content", "before_context": 1}),
        ),
        ("grep", json!({"pattern": "(", "path": "/src"})),
        ("delete", json!({"file_path": "/notes"})),
        ("delete", json!({"file_path": "/"})),
        ("ls", json!({"path": "/"})),
    ];
    for (name, args) in calls {
        let a = state.call(name, args.clone()).await;
        let b = docker.call(name, args.clone()).await;
        assert_eq!(a, b, "state and docker differ for {name} {args}");
    }
    c.remove().await;
}

#[tokio::test]
async fn searches_around_saved_results_match_the_state_backend() {
    let Some(c) = Container::new().await else {
        return;
    };
    let config = ToolConfig {
        max_output_bytes: 400,
        preview_head_lines: 1,
        preview_tail_lines: 1,
        ..ToolConfig::default()
    };
    let docker = c.toolbox(config.clone());
    let state = Toolbox::new(Arc::new(sandbay_state::StateBackend::default())).with_config(config);
    let mut calls: Vec<(&str, Value)> = Vec::new();
    for p in [
        "/-first.txt",
        "/.sandbay-x/a.txt",
        "/.sandbay/zz/n.txt",
        "/src/b.txt",
        "/z.txt",
    ] {
        let content: String = (1..=4).map(|i| format!("hit {p} {i}\n")).collect();
        calls.push(("write_file", json!({"file_path": p, "content": content})));
    }
    let content = json!({"pattern": "hit", "output_mode": "content", "max_matches": 12});
    calls.extend([
        // saved, then searched around
        ("grep", content.clone()),
        ("grep", content),
        ("grep", json!({"pattern": "hit", "max_matches": 3})),
        (
            "grep",
            json!({"pattern": "txt 1", "glob": ".sandbay/*/*.txt"}),
        ),
        ("grep", json!({"pattern": "hit", "glob": "*first*"})),
        ("glob", json!({"pattern": "**/*.txt"})),
        ("glob", json!({"pattern": ".sandbay/**"})),
        (
            "grep",
            json!({"pattern": "hit", "path": "/.sandbay/results"}),
        ),
        ("ls", json!({"path": "/.sandbay/results"})),
    ]);
    for (name, args) in calls {
        let a = state.call(name, args.clone()).await;
        let b = docker.call(name, args.clone()).await;
        assert_eq!(a, b, "state and docker differ for {name} {args}");
        assert!(!b.is_error, "{name} {args}: {}", b.text);
    }
    c.remove().await;
}
