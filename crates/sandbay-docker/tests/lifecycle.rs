//! Lifecycle: nothing leaks after shutdown, drop, or a SIGKILLed owner;
//! a daemon that vanishes or never answers gives `unavailable`, never a
//! hang.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sandbay_core::{BackendExt, ErrorCode, ExecRequest, Sandbox, VPath};
use sandbay_docker::{DockerClient, DockerSandbox, FileMode, ReapOptions, reap_orphans};

/// Waits until the test's objects are down to `want` (containers, volumes).
async fn wait_for_count(
    guard: &common::Guard,
    want: (usize, usize),
    within: Duration,
) -> (usize, usize) {
    let deadline = Instant::now() + within;
    loop {
        let now = common::count_objects(guard);
        if now == want || Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_and_drop_leave_nothing() {
    let client = require_docker!();
    let guard = common::Guard::new(&client, "leave-nothing");
    let base = tempfile::tempdir().unwrap();
    for mode in [FileMode::Bind, FileMode::Container] {
        let config = guard
            .config()
            .with_file_mode(mode)
            .with_workspace_base(base.path());
        let sb = DockerSandbox::create(&client, config.clone())
            .await
            .unwrap();
        sb.write_bytes(&VPath::parse("/a/b.txt").unwrap(), b"x".to_vec())
            .await
            .unwrap();
        assert_eq!(common::count_objects(&guard).0, 1);
        sb.shutdown().await.unwrap();
        sb.shutdown().await.unwrap(); // again: nothing to do
        assert_eq!(
            common::count_objects(&guard),
            (0, 0),
            "{mode:?} after shutdown"
        );
        let err = sb.execute(ExecRequest::new("true")).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::Unavailable, "{mode:?}: {err}");

        // dropped without shutdown: removed in the background
        let sb = DockerSandbox::create(&client, config).await.unwrap();
        drop(sb);
        let left = wait_for_count(&guard, (0, 0), Duration::from_secs(15)).await;
        assert_eq!(left, (0, 0), "{mode:?} after drop");
    }
    // no workspace directory is left under the base either
    let mut dirs = Vec::new();
    for owner in std::fs::read_dir(base.path()).unwrap() {
        for session in std::fs::read_dir(owner.unwrap().path()).unwrap() {
            dirs.push(session.unwrap().path());
        }
    }
    assert!(dirs.is_empty(), "{dirs:?}");
}

/// The label the child process puts on its sandboxes.
const CHILD_ENV: &str = "SANDBAY_DOCKER_TEST_CHILD";

/// Not a test of its own: the body of the child process that
/// `owner_killed_*` start and then SIGKILL. It creates sandboxes with the
/// label and settings it is given, says `READY`, and waits to be killed.
#[test]
#[ignore = "helper: runs only as the child process of the owner_killed tests"]
fn child_owner() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut parts = spec.splitn(3, ',');
    let (Some(label), Some(exit_with_owner), Some(base)) =
        (parts.next(), parts.next(), parts.next())
    else {
        panic!("label,exit,base expected");
    };
    let exit_with_owner = exit_with_owner == "true";
    let base = std::path::PathBuf::from(base);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = DockerClient::connect().await.unwrap();
        let mut kept = Vec::new();
        for mode in [FileMode::Bind, FileMode::Container, FileMode::Container] {
            let config = sandbay_docker::DockerConfig::default()
                .with_image(common::IMAGE)
                .with_label(common::TEST_LABEL, label)
                .with_file_mode(mode)
                .with_workspace_base(&base)
                .with_exit_with_owner(exit_with_owner)
                .with_agent(common::agent_binary().expect("the gate checked it"));
            let sb = DockerSandbox::create(&client, config).await.unwrap();
            sb.execute(ExecRequest::new("true")).await.unwrap();
            kept.push(sb);
        }
        // on a line of its own (libtest may have printed the test name)
        println!("\nREADY");
        // a bound, in case the parent dies before killing this process
        tokio::time::sleep(Duration::from_secs(120)).await;
        drop(kept);
    });
}

/// Starts the child owner, waits for it to be ready, and SIGKILLs it.
fn run_and_kill_child(label: &str, exit_with_owner: bool, base: &std::path::Path) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_owner",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(
            CHILD_ENV,
            format!("{label},{exit_with_owner},{}", base.display()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let ready = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|l| l.contains("READY"));
        let _ = tx.send(ready);
    });
    let ready = rx.recv_timeout(Duration::from_secs(60)).unwrap_or(false);
    child.kill().unwrap(); // SIGKILL: no destructor runs
    child.wait().unwrap();
    assert!(ready, "the child never got its sandboxes up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_killed_leaves_orphans_that_reap_removes() {
    let client = require_docker!();
    let guard = common::Guard::new(&client, "orphans");
    let base = tempfile::tempdir().unwrap();
    run_and_kill_child(&guard.value, false, base.path());
    // the containers outlive their owner (exit_with_owner is off)...
    assert_eq!(common::count_objects(&guard), (3, 2));
    // ...and the reaper knows their owner is dead: only the defaults
    let options = ReapOptions::default()
        .with_label(common::TEST_LABEL, &guard.value)
        .with_workspace_base(base.path(), Duration::ZERO);
    let report = reap_orphans(&client, &options).await.unwrap();
    assert_eq!((report.containers, report.volumes), (3, 2));
    assert_eq!(report.workspaces, 1, "the bind-mounted workspace directory");
    assert_eq!(common::count_objects(&guard), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_killed_containers_end_with_it() {
    let client = require_docker!();
    let guard = common::Guard::new(&client, "exit-with-owner");
    let base = tempfile::tempdir().unwrap();
    run_and_kill_child(&guard.value, true, base.path());
    // the owner's connections closed: the containers stop and remove themselves
    let left = wait_for_count(&guard, (0, 2), Duration::from_secs(20)).await;
    assert_eq!(left, (0, 2), "containers gone, volumes left for the reaper");
    let options = ReapOptions::default()
        .with_label(common::TEST_LABEL, &guard.value)
        .with_workspace_base(base.path(), Duration::ZERO);
    let report = reap_orphans(&client, &options).await.unwrap();
    assert_eq!(
        (report.containers, report.volumes, report.workspaces),
        (0, 2, 1)
    );
    assert_eq!(common::count_objects(&guard), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reaper_keeps_live_sandboxes() {
    let client = require_docker!();
    let guard = common::Guard::new(&client, "reap-live");
    let sb = DockerSandbox::create(&client, guard.config())
        .await
        .unwrap();
    let options = ReapOptions::default().with_label(common::TEST_LABEL, &guard.value);
    let report = reap_orphans(&client, &options).await.unwrap();
    assert_eq!((report.containers, report.volumes), (0, 0));
    let out = sb.execute(ExecRequest::new("echo alive")).await.unwrap();
    assert_eq!(out.stdout, b"alive\n");
    sb.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_vanishing_mid_command_is_unavailable() {
    let client = require_docker!();
    let guard = common::Guard::new(&client, "vanish");
    let proxy = common::Proxy::start(common::Upstream::Unix("/var/run/docker.sock".into())).await;
    let host = format!("tcp://{}", proxy.addr);
    let remote = DockerClient::connect_with_host(&host, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(!remote.is_local());
    let sb = std::sync::Arc::new(
        DockerSandbox::create(&remote, guard.config())
            .await
            .unwrap(),
    );
    assert_eq!(sb.file_mode(), FileMode::Container);
    let running = {
        let sb = sb.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let r = sb
                .execute(ExecRequest::new("sleep 30").timeout(Duration::from_secs(60)))
                .await;
            (r, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.kill();
    let (result, took) = running.await.unwrap();
    let err = result.expect_err("the command cannot finish without the daemon");
    assert_eq!(err.code(), ErrorCode::Unavailable, "{err}");
    assert!(took < Duration::from_secs(15), "{took:?}");
    // later calls fail fast too, files and commands alike
    for _ in 0..2 {
        let started = Instant::now();
        let err = sb
            .read_to_string(&VPath::parse("/x").unwrap())
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::Unavailable, "{err}");
        let err = sb.execute(ExecRequest::new("true")).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::Unavailable, "{err}");
        assert!(started.elapsed() < Duration::from_secs(12));
    }
    // a new connection to the vanished address is refused, typed
    let err = DockerClient::connect_with_host(&host, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Unavailable);
    // the guard removes the container through the real socket
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_daemon_times_out_as_unavailable() {
    // a listener that accepts and never answers: no Docker needed
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let started = Instant::now();
    let err = DockerClient::connect_with_host(&format!("tcp://{addr}"), Duration::from_secs(1))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Unavailable, "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let err = DockerClient::connect_with_host("ftp://nowhere", Duration::from_secs(1))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
    hold.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runtime_can_be_chosen_and_an_unknown_one_is_refused() {
    let client = require_docker!();
    let guard = common::Guard::new(&client, "runtime");
    let base = tempfile::tempdir().unwrap();
    let sandbox = DockerSandbox::create(
        &client,
        guard
            .config()
            .with_workspace_base(base.path())
            .with_runtime("runc"),
    )
    .await
    .expect("runc is always there");
    let out = Command::new("docker")
        .args([
            "inspect",
            "-f",
            "{{.HostConfig.Runtime}}",
            sandbox.container_id(),
        ])
        .output()
        .expect("docker cli");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "runc");
    let echo = sandbox
        .execute(ExecRequest::new("echo ok"))
        .await
        .expect("execute");
    assert_eq!(echo.stdout, b"ok\n");
    sandbox.shutdown().await.unwrap();

    let err = DockerSandbox::create(
        &client,
        guard
            .config()
            .with_workspace_base(base.path())
            .with_runtime("no-such-runtime"),
    )
    .await
    .expect_err("an unknown runtime cannot start anything");
    assert_eq!(err.code(), ErrorCode::Unavailable, "{err}");
    assert!(err.to_string().contains("no-such-runtime"), "{err}");
    assert_eq!(
        wait_for_count(&guard, (0, 0), Duration::from_secs(10)).await,
        (0, 0),
        "nothing is left of either"
    );
}
