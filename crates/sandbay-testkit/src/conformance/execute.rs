//! `execute`, for backends that declare it (`Capabilities::execute`).
//!
//! These cases need [`Fixture::sandbox`](crate::Fixture); the
//! [`conformance_tests!`](crate::conformance_tests) macro marks them
//! ignored, with the reason, for backends that cannot run commands.
//!
//! The process cases look for their `sleep <marker>` processes in the
//! host's `/proc` (see [`crate::isolation::procs_with`]), so they need the
//! commands to run on this kernel (a local jail or a local Docker daemon).
//! Every command here is bounded by a timeout and by its own size.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use sandbay_core::{ErrorCode, ExecEvent, ExecOutput, ExecRequest, Sandbox};

use crate::Fixture;
use crate::isolation::{procs_with, rss_kib, sleep_marker, wait_gone, wait_until};

/// How long a process may take to show up or to be gone.
const WAIT: Duration = Duration::from_secs(10);

fn sandbox(fx: &Fixture) -> &dyn Sandbox {
    fx.sandbox
        .as_deref()
        .expect("execute cases need a fixture built with Fixture::with_sandbox")
}

fn shared(fx: &Fixture) -> Arc<dyn Sandbox> {
    fx.sandbox
        .clone()
        .expect("execute cases need a fixture built with Fixture::with_sandbox")
}

async fn run(fx: &Fixture, request: ExecRequest) -> ExecOutput {
    let command = request.command.clone();
    sandbox(fx)
        .execute(request)
        .await
        .unwrap_or_else(|e| panic!("execute {command:?} failed: {e}"))
}

async fn sh(fx: &Fixture, command: &str) -> ExecOutput {
    run(
        fx,
        ExecRequest::new(command).timeout(Duration::from_secs(30)),
    )
    .await
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A command sees the files written through the backend, from the workspace root.
pub async fn execute_sees_written_files(fx: &Fixture) {
    fx.put("/in/data.txt", "from the backend\n").await;
    let out = run(fx, ExecRequest::new("cat in/data.txt")).await;
    assert_eq!(out.exit_code, Some(0), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "from the backend\n");
}

/// Files a command creates are visible through the backend afterwards.
pub async fn execute_changes_are_visible(fx: &Fixture) {
    let out = run(
        fx,
        ExecRequest::new("mkdir -p made && printf 'by a command' > made/out.txt"),
    )
    .await;
    assert_eq!(out.exit_code, Some(0), "{out:?}");
    assert_eq!(fx.text("/made/out.txt").await, "by a command");
}

/// A non-zero exit is a normal output with its code and stderr, not an error.
pub async fn execute_nonzero_exit_is_output(fx: &Fixture) {
    let out = run(fx, ExecRequest::new("echo oops >&2; exit 3")).await;
    assert_eq!(out.exit_code, Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "oops\n");
    assert!(!out.timed_out);
}

/// On timeout the command is killed, `timed_out` is set and output so far is kept.
pub async fn execute_timeout_kills_and_keeps_output(fx: &Fixture) {
    let request =
        ExecRequest::new("echo started; sleep 30; echo never").timeout(Duration::from_millis(500));
    let out = run(fx, request).await;
    assert!(out.timed_out, "{out:?}");
    assert_eq!(out.exit_code, None);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "started\n");
    assert!(
        out.duration < Duration::from_secs(20),
        "killed early: {:?}",
        out.duration
    );
}

/// `stdin`, `env` and `workdir` reach the command.
pub async fn execute_stdin_env_and_workdir(fx: &Fixture) {
    fx.put("/sub/marker", "").await;
    let mut request = ExecRequest::new("cat; printf \" $GREETING \"; ls");
    request.stdin = b"piped".to_vec();
    request.env.insert("GREETING".into(), "hi".into());
    request.workdir = Some(fx.path("/sub"));
    let out = run(fx, request).await;
    assert_eq!(out.exit_code, Some(0), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "piped hi marker\n");
}

/// Exit codes come back as the shell reports them (127: command not found).
pub async fn execute_exit_codes_are_reported(fx: &Fixture) {
    for (command, code) in [
        ("true", 0),
        ("false", 1),
        ("exit 42", 42),
        ("exit 255", 255),
        ("sandbay-no-such-command 2>/dev/null", 127),
    ] {
        let out = sh(fx, command).await;
        assert_eq!(out.exit_code, Some(code), "`{command}`: {out:?}");
        assert!(!out.timed_out, "`{command}`: {out:?}");
    }
}

/// stdout and stderr are captured separately, each in order.
pub async fn execute_stdout_and_stderr_are_separate(fx: &Fixture) {
    let out = sh(
        fx,
        "echo out1; echo err1 >&2; echo out2; echo err2 >&2; printf 'no newline' >&2",
    )
    .await;
    assert_eq!(text(&out.stdout), "out1\nout2\n");
    assert_eq!(text(&out.stderr), "err1\nerr2\nno newline");
    assert!(!out.truncated);
}

/// Bytes given as stdin reach the command whole, binary included; without
/// stdin the command reads end-of-file at once.
pub async fn execute_stdin_is_fed_whole(fx: &Fixture) {
    let input: Vec<u8> = (0..256 * 1024).map(|i| (i % 251) as u8).collect();
    let mut request = ExecRequest::new("cat").timeout(Duration::from_secs(30));
    request.stdin = input.clone();
    let out = run(fx, request).await;
    assert_eq!(out.exit_code, Some(0), "{}", text(&out.stderr));
    assert!(
        out.stdout == input,
        "stdin came back changed ({} bytes)",
        out.stdout.len()
    );
    let out = run(
        fx,
        ExecRequest::new("cat; echo done").timeout(Duration::from_secs(10)),
    )
    .await;
    assert!(!out.timed_out, "cat waited for input that never comes");
    assert_eq!(text(&out.stdout), "done\n");
}

/// `workdir` may be nested; a missing one is `not_found`.
pub async fn execute_workdir_nested_and_missing(fx: &Fixture) {
    fx.put("/a/b/here.txt", "x").await;
    let mut request = ExecRequest::new("pwd; ls");
    request.workdir = Some(fx.path("/a/b"));
    let out = run(fx, request).await;
    let stdout = text(&out.stdout);
    let mut lines = stdout.lines();
    assert!(
        lines.next().is_some_and(|l| l.ends_with("/a/b")),
        "pwd: {stdout}"
    );
    assert_eq!(lines.next(), Some("here.txt"), "{stdout}");
    let mut request = ExecRequest::new("echo ran");
    request.workdir = Some(fx.path("/no/such/dir"));
    let result = sandbox(fx).execute(request).await;
    fx.expect_err(result, ErrorCode::NotFound, "execute in a missing workdir");
}

/// The environment holds the request's variables and none of the host
/// process's own.
pub async fn execute_env_is_set_and_scrubbed(fx: &Fixture) {
    let mut request = ExecRequest::new("printf '%s|' \"$ONE\" \"$TWO\"; env");
    request.env.insert("ONE".into(), "a b 'c' \"d\" $e".into());
    request.env.insert("TWO".into(), String::new());
    let out = run(fx, request).await;
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("a b 'c' \"d\" $e||"),
        "variables: {stdout}"
    );
    let host: Vec<String> = std::env::vars()
        .map(|(k, _)| k)
        .filter(|k| k.starts_with("CARGO") || k.starts_with("RUST"))
        .collect();
    for name in &host {
        assert!(
            !stdout.lines().any(|l| l.starts_with(&format!("{name}="))),
            "the host's {name} leaked into the command's environment"
        );
    }
    assert!(
        stdout.lines().any(|l| l.starts_with("PATH=")),
        "PATH is set: {stdout}"
    );
}

/// Binary files cross both ways unchanged.
pub async fn execute_binary_files_round_trip(fx: &Fixture) {
    let bytes: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    fx.put_bytes("/data/in.dat", bytes.clone()).await;
    let out = sh(fx, "cp data/in.dat data/out.dat && printf '\\377\\000\\n' >> data/out.dat && wc -c < data/in.dat").await;
    assert_eq!(out.exit_code, Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "4096");
    let mut want = bytes;
    want.extend_from_slice(&[0xff, 0x00, b'\n']);
    assert!(
        fx.bytes("/data/out.dat").await == want,
        "the command's binary file came back changed"
    );
}

/// Files and directories a command deletes are gone for the backend.
pub async fn execute_deletions_are_visible(fx: &Fixture) {
    fx.put("/gone.txt", "x").await;
    fx.put("/dir/a.txt", "a").await;
    fx.put("/dir/sub/b.txt", "b").await;
    fx.put("/keep.txt", "k").await;
    let out = sh(fx, "rm gone.txt && rm -r dir").await;
    assert_eq!(out.exit_code, Some(0), "{}", text(&out.stderr));
    assert!(!fx.exists("/gone.txt").await);
    assert!(!fx.exists("/dir").await);
    assert_eq!(fx.text("/keep.txt").await, "k");
}

/// Directories a command creates, empty ones included, are listed; a
/// file it overwrites or appends to has the new content.
pub async fn execute_directories_and_overwrites_are_visible(fx: &Fixture) {
    fx.put("/f.txt", "old\n").await;
    fx.put("/log.txt", "1\n").await;
    let out = sh(
        fx,
        "mkdir -p empty/nested && printf 'new\\n' > f.txt && echo 2 >> log.txt",
    )
    .await;
    assert_eq!(out.exit_code, Some(0), "{}", text(&out.stderr));
    assert_eq!(fx.names("/empty").await, ["nested"]);
    assert!(fx.ls("/empty/nested").await.is_empty());
    assert_eq!(fx.lines("/f.txt").await, ["new"]);
    assert_eq!(fx.lines("/log.txt").await, ["1", "2"]);
}

/// Several commands may run at once; each gets its own output and all
/// their files land.
pub async fn execute_concurrent_runs(fx: &Fixture) {
    let runs = (0..3).map(|i| {
        let sb = shared(fx);
        tokio::spawn(async move {
            sb.execute(
                ExecRequest::new(format!("sleep 0.3; echo {i} > run-{i}.txt; echo run {i}"))
                    .timeout(Duration::from_secs(30)),
            )
            .await
        })
    });
    let runs: Vec<_> = runs.collect();
    for (i, run) in runs.into_iter().enumerate() {
        let out = run.await.expect("task").expect("execute");
        assert_eq!(text(&out.stdout), format!("run {i}\n"));
    }
    for i in 0..3 {
        assert_eq!(fx.text(&format!("/run-{i}.txt")).await, format!("{i}\n"));
    }
}

/// Output printed before a timeout is returned, stdout and stderr.
pub async fn execute_partial_output_before_timeout(fx: &Fixture) {
    let request = ExecRequest::new(
        "i=0; while [ $i -lt 100 ]; do echo line $i; i=$((i+1)); done; echo half >&2; sleep 30",
    )
    .timeout(Duration::from_secs(1));
    let out = run(fx, request).await;
    assert!(out.timed_out, "{out:?}");
    assert_eq!(out.exit_code, None);
    let stdout = text(&out.stdout);
    assert_eq!(stdout.lines().count(), 100, "{stdout}");
    assert_eq!(stdout.lines().last(), Some("line 99"));
    assert!(
        text(&out.stderr).starts_with("half\n"),
        "{:?}",
        text(&out.stderr)
    );
}

/// A timeout kills what the command started in the background too: no
/// process of the run is left on the host.
pub async fn execute_timeout_kills_background_children(fx: &Fixture) {
    let m = sleep_marker(3600);
    let sb = shared(fx);
    let command = format!("sleep {m} & sleep {m} & echo started; sleep 30");
    let run = tokio::spawn(async move {
        sb.execute(ExecRequest::new(command).timeout(Duration::from_secs(2)))
            .await
    });
    assert!(
        wait_until(WAIT, || procs_with(&m).len() == 2).await,
        "the background sleeps never showed on the host"
    );
    let out = run.await.expect("task").expect("execute");
    assert!(out.timed_out, "{out:?}");
    assert_eq!(text(&out.stdout), "started\n");
    let left = wait_gone(WAIT, &m).await;
    assert!(left.is_empty(), "background children survived: {left:?}");
}

/// Dropping the future of a running command kills its whole tree.
pub async fn execute_dropped_future_leaves_no_process(fx: &Fixture) {
    let m = sleep_marker(3600);
    let sb = shared(fx);
    let command = format!("sleep {m} & sleep {m}; wait");
    let run = tokio::spawn(async move {
        sb.execute(ExecRequest::new(command).timeout(Duration::from_secs(60)))
            .await
    });
    assert!(
        wait_until(WAIT, || procs_with(&m).len() == 2).await,
        "the sleeps never showed on the host"
    );
    run.abort();
    assert!(run.await.is_err_and(|e| e.is_cancelled()));
    let left = wait_gone(WAIT, &m).await;
    assert!(
        left.is_empty(),
        "processes survived the dropped future: {left:?}"
    );
    // The sandbox still works afterwards.
    assert_eq!(text(&sh(fx, "echo alive").await.stdout), "alive\n");
}

/// An output flood is capped while streaming: `truncated` is set, the
/// captured bytes are far below what was written, and the caller's memory
/// does not grow with the flood (512 MiB written).
pub async fn execute_output_flood_is_capped(fx: &Fixture) {
    const FLOOD: u64 = 512 << 20;
    let before = rss_kib();
    let peak = Arc::new(AtomicU64::new(before));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, stop) = (peak.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let out = run(
        fx,
        ExecRequest::new(format!("head -c {FLOOD} /dev/zero; echo done >&2"))
            .timeout(Duration::from_secs(60)),
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    sampler.await.expect("sampler");
    assert!(
        !out.timed_out,
        "the flood did not finish: {:?}",
        out.duration
    );
    assert!(out.truncated, "512 MiB of output must be cut");
    assert!(
        (out.stdout.len() as u64) < FLOOD / 8,
        "{} bytes captured",
        out.stdout.len()
    );
    assert!(out.stdout.iter().all(|&b| b == 0));
    assert!(
        text(&out.stderr).contains("done"),
        "{:?}",
        text(&out.stderr)
    );
    let grown_mib = peak.load(Ordering::Relaxed).saturating_sub(before) / 1024;
    assert!(
        grown_mib < 192,
        "the caller's memory grew by {grown_mib} MiB during a 512 MiB flood"
    );
}

/// The next event of a stream, within [`WAIT`].
async fn next_event(stream: &mut sandbay_core::ExecStream, what: &str) -> ExecEvent {
    match tokio::time::timeout(WAIT, stream.next()).await {
        Ok(Some(Ok(event))) => event,
        Ok(Some(Err(e))) => panic!("{what}: the stream failed: {e}"),
        Ok(None) => panic!("{what}: the stream ended"),
        Err(_) => panic!("{what}: no event within {WAIT:?}"),
    }
}

/// `execute_stream` is live: the first chunk arrives while the command
/// still runs (its `sleep` is alive on the host, no exit yet), the rest
/// once the sleep is killed from outside, then the exit status.
pub async fn execute_stream_chunks_arrive_while_it_runs(fx: &Fixture) {
    let m = sleep_marker(3600);
    let command = format!("echo first; echo err >&2; {{ sleep {m}; }} 2>/dev/null; echo second");
    let mut stream = sandbox(fx)
        .execute_stream(ExecRequest::new(command).timeout(Duration::from_secs(60)))
        .await
        .expect("execute_stream");
    assert!(stream.is_live(), "this backend's stream is buffered");
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    // until both early chunks are in: they came while `sleep` runs
    while stdout != b"first\n" || stderr != b"err\n" {
        match next_event(&mut stream, "the early chunks").await {
            ExecEvent::Stdout(b) => stdout.extend_from_slice(&b),
            ExecEvent::Stderr(b) => stderr.extend_from_slice(&b),
            ExecEvent::Exit(exit) => {
                panic!("the command ended before its sleep was killed: {exit:?}")
            }
        }
    }
    assert!(
        wait_until(WAIT, || procs_with(&m).len() == 1).await,
        "the command's sleep is not running while its first chunk is in"
    );
    for pid in procs_with(&m) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let exit = loop {
        match next_event(&mut stream, "the rest").await {
            ExecEvent::Stdout(b) => stdout.extend_from_slice(&b),
            ExecEvent::Stderr(b) => stderr.extend_from_slice(&b),
            ExecEvent::Exit(exit) => break exit,
        }
    };
    assert_eq!(text(&stdout), "first\nsecond\n");
    assert_eq!(text(&stderr), "err\n");
    assert_eq!(exit.exit_code, Some(0), "{exit:?}");
    assert!(!exit.timed_out);
    assert!(stream.next().await.is_none(), "events after the exit");
}

/// Dropping a command's stream midway kills its whole tree (background
/// children too), and the sandbox runs the next command.
pub async fn execute_stream_dropped_leaves_no_process(fx: &Fixture) {
    let m = sleep_marker(3600);
    let command = format!("echo go; sleep {m} & sleep {m}; wait");
    let mut stream = sandbox(fx)
        .execute_stream(ExecRequest::new(command).timeout(Duration::from_secs(60)))
        .await
        .expect("execute_stream");
    assert_eq!(
        next_event(&mut stream, "the first chunk").await,
        ExecEvent::Stdout(b"go\n".to_vec())
    );
    assert!(
        wait_until(WAIT, || procs_with(&m).len() == 2).await,
        "the sleeps never showed on the host"
    );
    drop(stream);
    let left = wait_gone(WAIT, &m).await;
    assert!(
        left.is_empty(),
        "processes survived the dropped stream: {left:?}"
    );
    assert_eq!(text(&sh(fx, "echo alive").await.stdout), "alive\n");
}

/// A start error of `execute_stream` is its result, not a stream item
/// (a missing working directory is `not_found`).
pub async fn execute_stream_start_errors_are_results(fx: &Fixture) {
    let mut request = ExecRequest::new("echo never").timeout(Duration::from_secs(10));
    request.workdir = Some(fx.path("/no/such/dir"));
    let result = sandbox(fx).execute_stream(request).await.map(|_| ());
    fx.expect_err(
        result,
        ErrorCode::NotFound,
        "execute_stream in a missing workdir",
    );
}
