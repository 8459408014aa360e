//! One run after the start: wait for `execve`, capture output, enforce the
//! timeout, tear the tree down.

use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use sandbay_core::{ExecOutput, Result, VPath};
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe::Receiver;
use tokio::sync::Notify;

use crate::capture::{Capture, Stream};
use crate::guard::Exit;
use crate::launch::{Launched, child_failure, stdin_fd, unavailable};
use crate::stream::{Msg, OutputSink};
use crate::sys::{self, decode_failure};

/// How long output is still read after the tree was killed (only matters
/// if an escaped process still holds a pipe).
const GRACE: Duration = Duration::from_millis(100);
/// How long to wait for a killed tree to be gone before leaving the reaping
/// to the background thread.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// The three standard descriptors of a run, both ends.
#[derive(Debug)]
pub(crate) struct Stdio {
    pub(crate) child_stdin: OwnedFd,
    pub(crate) child_stdout: OwnedFd,
    pub(crate) child_stderr: OwnedFd,
    /// Read end of the command's stdout.
    pub(crate) stdout: OwnedFd,
    /// Read end of the command's stderr.
    pub(crate) stderr: OwnedFd,
}

impl Stdio {
    /// Pipes for output; stdin from `/dev/null` or pre-filled with `stdin`.
    pub(crate) fn new(stdin: &[u8]) -> Result<Stdio> {
        let child_stdin = stdin_fd(stdin)?;
        let pipe = || sys::pipe().map_err(|e| unavailable("creating output pipes", &e));
        let (stdout, child_stdout) = pipe()?;
        let (stderr, child_stderr) = pipe()?;
        Ok(Stdio {
            child_stdin,
            child_stdout,
            child_stderr,
            stdout,
            stderr,
        })
    }
}

/// Drives a started run to its end and builds the result.
pub(crate) async fn supervise(
    launched: Launched,
    (stdout, stderr): (OwnedFd, OwnedFd),
    started: Instant,
    timeout: Duration,
    cap: usize,
    workdir: &VPath,
    sink: Option<OutputSink>,
) -> Result<ExecOutput> {
    let Launched {
        mut guard,
        failures,
        attach_error,
    } = launched;
    let receiver =
        |fd: OwnedFd| Receiver::from_owned_fd(fd).map_err(|e| unavailable("reading output", &e));
    let mut out_rx = receiver(stdout)?;
    let mut err_rx = receiver(stderr)?;
    let deadline = started
        .checked_add(timeout)
        .map(tokio::time::Instant::from_std)
        .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(86400 * 365));

    // The failure pipe closes when execve succeeds; a report means the
    // jail could not be set up.
    let mut report = Vec::new();
    let mut fail_rx = receiver(failures)?;
    if tokio::time::timeout_at(deadline, fail_rx.read_to_end(&mut report))
        .await
        .is_ok()
        && let Some((stage, errno)) = decode_failure(&report)
    {
        return Err(child_failure(stage, errno, workdir));
    }
    if let Some(e) = attach_error {
        return Err(e);
    }
    drop(fail_rx);
    if let Some(sink) = &sink {
        sink.send(Msg::Started).await;
    }

    let mut out = Capture::streaming(cap, sink.clone(), Stream::Stdout);
    let mut err = Capture::streaming(cap, sink, Stream::Stderr);
    let done = Notify::new();
    let supervise = async {
        let status = tokio::select! {
            r = guard.exited() => r.map(Some),
            _ = tokio::time::sleep_until(deadline) => Ok(None),
        };
        let result = match status {
            Ok(Some(exit)) => Ok((Some(exit), false)),
            Ok(None) => {
                guard.kill();
                let _ = tokio::time::timeout(KILL_WAIT, guard.exited()).await;
                Ok((None, true))
            }
            Err(e) => Err(e),
        };
        let duration = started.elapsed();
        guard.finish().await;
        done.notify_one();
        (result, duration)
    };
    let capture = async {
        let drain = async { tokio::join!(out.drain(&mut out_rx), err.drain(&mut err_rx)) };
        tokio::select! {
            _ = drain => {}
            _ = async { done.notified().await; tokio::time::sleep(GRACE).await } => {
                tracing::debug!("output pipes still open after the tree was killed");
            }
        }
    };
    let ((result, duration), ()) = tokio::join!(supervise, capture);
    let (exit, timed_out) = result.map_err(|e| unavailable("waiting for the command", &e))?;
    let (stdout, out_cut) = out.into_parts();
    let (stderr, err_cut) = err.into_parts();
    tracing::debug!(?exit, timed_out, ?duration, "command finished");
    Ok(ExecOutput {
        stdout,
        stderr,
        exit_code: match exit {
            Some(Exit::Code(code)) if !timed_out => Some(code),
            _ => None,
        },
        timed_out,
        truncated: out_cut || err_cut,
        duration,
        notes: Vec::new(),
    })
}
