//! `execute`, for backends that declare it (`Capabilities::execute`).
//!
//! These cases need [`Fixture::sandbox`](crate::Fixture); the
//! [`conformance_tests!`](crate::conformance_tests) macro marks them
//! ignored, with the reason, for backends that cannot run commands.

use std::time::Duration;

use sandbay_core::{ExecOutput, ExecRequest, Sandbox};

use crate::Fixture;

fn sandbox(fx: &Fixture) -> &dyn Sandbox {
    fx.sandbox
        .as_deref()
        .expect("execute cases need a fixture built with Fixture::with_sandbox")
}

async fn run(fx: &Fixture, request: ExecRequest) -> ExecOutput {
    let command = request.command.clone();
    sandbox(fx)
        .execute(request)
        .await
        .unwrap_or_else(|e| panic!("execute {command:?} failed: {e}"))
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
