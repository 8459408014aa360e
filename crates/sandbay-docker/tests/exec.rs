//! Commands in a sandbox container: output, exit codes, time limits,
//! caps, concurrency.

mod common;

use std::time::{Duration, Instant};

use sandbay_core::{ExecRequest, Sandbox, VPath};
use sandbay_docker::DockerSandbox;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_commands_with_output_and_exit_codes() {
    let client = require_docker!();
    let guard = common::Guard::new(&client, "exec-basic");
    {
        let sb = DockerSandbox::create(&client, guard.config())
            .await
            .unwrap();
        let out = sb
            .execute(ExecRequest::new("echo out; echo err >&2; exit 3"))
            .await
            .unwrap();
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
        assert_eq!(out.exit_code, Some(3));
        assert!(!out.timed_out && !out.truncated);

        let out = sb
            .execute(ExecRequest::new("id -u; pwd; printf 'no newline'"))
            .await
            .unwrap();
        assert_eq!(
            out.stdout,
            format!("{}\n/workspace\nno newline", sb.uid()).as_bytes()
        );

        let mut req = ExecRequest::new("cat; echo \"$GREETING\"");
        req.stdin = b"from stdin\n".to_vec();
        req.env
            .insert("GREETING".into(), "it's \"quoted\" $HOME".into());
        let out = sb.execute(req).await.unwrap();
        assert_eq!(out.stdout, b"from stdin\nit's \"quoted\" $HOME\n");

        // a missing working directory is a typed error
        let mut req = ExecRequest::new("pwd");
        req.workdir = Some(VPath::parse("/nope").unwrap());
        let err = sb.execute(req).await.unwrap_err();
        assert_eq!(err.code().as_str(), "not_found");
        sb.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_kills_the_tree_and_keeps_partial_output() {
    let client = require_docker!();
    let guard = common::Guard::new(&client, "exec-timeout");
    {
        let sb = DockerSandbox::create(&client, guard.config())
            .await
            .unwrap();
        let started = Instant::now();
        let out = sb
            .execute(
                ExecRequest::new("echo before; (sleep 60; echo child) & sleep 60 & sleep 60")
                    .timeout(Duration::from_millis(500)),
            )
            .await
            .unwrap();
        assert!(out.timed_out);
        assert_eq!(out.exit_code, None);
        assert_eq!(out.stdout, b"before\n");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        // nothing of that command survives
        let ps = sb.execute(ExecRequest::new("ps -o args")).await.unwrap();
        let ps = String::from_utf8_lossy(&ps.stdout);
        assert!(!ps.contains("sleep 60"), "{ps}");
        // and the sandbox keeps working
        let out = sb.execute(ExecRequest::new("echo again")).await.unwrap();
        assert_eq!(out.stdout, b"again\n");
        sb.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_is_capped_while_streaming() {
    let client = require_docker!();
    let guard = common::Guard::new(&client, "exec-flood");
    let sb = DockerSandbox::create(&client, guard.config().with_output_limit(64 * 1024))
        .await
        .unwrap();
    let out = sb
        .execute(ExecRequest::new(
            "head -c 5000000 /dev/zero | tr '\\0' x; echo done >&2",
        ))
        .await
        .unwrap();
    assert_eq!(out.stdout.len(), 64 * 1024);
    assert!(out.truncated);
    assert_eq!(out.stderr, b"done\n");
    assert_eq!(out.exit_code, Some(0));
    // an endless flood ends at the time limit, still capped
    let out = sb
        .execute(ExecRequest::new("yes").timeout(Duration::from_secs(1)))
        .await
        .unwrap();
    assert!(out.timed_out && out.truncated);
    assert_eq!(out.stdout.len(), 64 * 1024);
    sb.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commands_on_one_sandbox() {
    let client = require_docker!();
    let guard = common::Guard::new(&client, "exec-concurrent");
    let sb = std::sync::Arc::new(
        DockerSandbox::create(&client, guard.config())
            .await
            .unwrap(),
    );
    let mut tasks = Vec::new();
    for i in 0..6 {
        let sb = sb.clone();
        tasks.push(tokio::spawn(async move {
            let out = sb
                .execute(ExecRequest::new(format!("sleep 0.2; echo task-{i}")))
                .await
                .unwrap();
            (i, out)
        }));
    }
    for t in tasks {
        let (i, out) = t.await.unwrap();
        assert_eq!(out.stdout, format!("task-{i}\n").into_bytes());
        assert_eq!(out.exit_code, Some(0));
    }
    sb.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_future_kills_the_command() {
    let client = require_docker!();
    let guard = common::Guard::new(&client, "exec-drop");
    let sb = DockerSandbox::create(&client, guard.config())
        .await
        .unwrap();
    let fut = sb.execute(ExecRequest::new("sleep 300"));
    // run it for a moment, then drop it
    let _ = tokio::time::timeout(Duration::from_millis(300), fut).await;
    let mut alive = true;
    for _ in 0..50 {
        let ps = sb.execute(ExecRequest::new("ps -o args")).await.unwrap();
        alive = String::from_utf8_lossy(&ps.stdout).contains("sleep 300");
        if !alive {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!alive, "the dropped command still runs");
    sb.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_is_scrubbed_and_the_same_in_every_sandbox() {
    let client = require_docker!();
    let guard = common::Guard::new(&client, "exec-env");
    let mut seen = Vec::new();
    for _ in 0..2 {
        let sb = DockerSandbox::create(&client, guard.config())
            .await
            .unwrap();
        let mut req =
            ExecRequest::new("env | cut -d= -f1 | sort | tr '\\n' ' '; echo \"$0\" \"$#\"");
        req.env.insert("EXTRA".into(), "1".into());
        let out = sb.execute(req).await.unwrap();
        seen.push(String::from_utf8_lossy(&out.stdout).into_owned());
        sb.shutdown().await.unwrap();
    }
    assert_eq!(seen[0], seen[1], "two sandboxes agree");
    for name in ["EXTRA", "HOME", "LANG", "PATH", "USER"] {
        assert!(seen[0].contains(name), "{name} in {}", seen[0]);
    }
    for leak in ["HOSTNAME", "__sb", "TOKEN"] {
        assert!(!seen[0].contains(leak), "{leak} in {}", seen[0]);
    }
    assert!(seen[0].trim_end().ends_with("sh 0"), "{}", seen[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workspace_size_cap_in_container_mode() {
    use sandbay_core::{Backend, BackendExt};
    let client = require_docker!();
    let guard = common::Guard::new(&client, "ws-cap");
    let sb = DockerSandbox::create(
        &client,
        guard
            .config()
            .with_file_mode(sandbay_docker::FileMode::Container)
            .with_workspace_bytes(Some(1 << 20)),
    )
    .await
    .unwrap();
    let p = |s: &str| VPath::parse(s).unwrap();
    let items = vec![
        (p("/small.txt"), b"fits".to_vec()),
        (p("/big.bin"), vec![7u8; 2 << 20]),
        (p("/after.txt"), b"still fits".to_vec()),
    ];
    let results = sb.upload(items).await;
    assert!(results[0].is_ok(), "{results:?}");
    let err = results[1].as_ref().unwrap_err();
    assert_eq!(err.code().as_str(), "quota_exceeded", "{err}");
    assert_eq!(
        sb.capabilities().quota.map(|q| (q.bytes, q.commands)),
        Some((1 << 20, true))
    );
    assert!(
        results[2].is_ok(),
        "the batch goes on after a full disk: {results:?}"
    );
    assert!(
        !sb.exists(&p("/big.bin")).await.unwrap(),
        "nothing partial is left"
    );
    assert_eq!(
        sb.read_to_string(&p("/after.txt")).await.unwrap(),
        "still fits"
    );
    let out = sb
        .execute(ExecRequest::new(
            "head -c 3000000 /dev/zero > fill 2>/dev/null; echo rc=$?; df -k . | tail -1",
        ))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("rc=1"), "{text}");
    sb.shutdown().await.unwrap();
}
