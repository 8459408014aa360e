//! Streamed command output: [`ExecStream`], the events of one run as they
//! come.
//!
//! The type is a [`futures_core::Stream`] of [`ExecEvent`]s. It does no
//! I/O itself: a backend builds it over whatever produces the chunks (a
//! channel fed by a task, a pipe reader) with [`ExecStream::new`], and
//! ties the run's life to the stream's, so that dropping the stream ends
//! the command's whole process tree.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;

use crate::error::Result;
use crate::types::ExecOutput;

/// One event of a streamed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecEvent {
    /// Bytes the command wrote on standard output, in order; chunk bounds
    /// are wherever the backend read them (not lines).
    Stdout(Vec<u8>),
    /// Bytes the command wrote on standard error, in order.
    Stderr(Vec<u8>),
    /// The command is over; always the last event of a stream that ends
    /// normally.
    Exit(ExecExit),
}

/// How a streamed command ended: an [`ExecOutput`] without the output,
/// which went out as [`ExecEvent::Stdout`] and [`ExecEvent::Stderr`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecExit {
    /// Exit code, `None` when killed by a signal or the timeout.
    pub exit_code: Option<i32>,
    /// Whether the time limit killed the process tree.
    pub timed_out: bool,
    /// Whether output beyond the cap was dropped (streams are capped like
    /// [`ExecOutput`]).
    pub truncated: bool,
    /// Wall time of the command.
    pub duration: Duration,
    /// Notes from the sandbox itself, as [`ExecOutput::notes`].
    pub notes: Vec<String>,
}

impl ExecExit {
    /// The end of `output` (its stdout and stderr are left out).
    pub fn of(output: &ExecOutput) -> ExecExit {
        ExecExit {
            exit_code: output.exit_code,
            timed_out: output.timed_out,
            truncated: output.truncated,
            duration: output.duration,
            notes: output.notes.clone(),
        }
    }
}

type Inner = Pin<Box<dyn Stream<Item = Result<ExecEvent>> + Send + 'static>>;

/// The events of one command as they come: `Stdout`/`Stderr` chunks,
/// then one [`ExecEvent::Exit`]; an `Err` item ends the stream early
/// (the run failed after it started).
///
/// Dropping the stream before its end ends the command's whole process
/// tree (that is the contract of [`Sandbox::execute_stream`](crate::Sandbox::execute_stream)
/// for every backend that streams).
///
/// [`ExecStream::is_live`] tells a stream whose chunks come while the
/// command runs from a [buffered](ExecStream::buffered) one, made after
/// the command ended (the default of the trait, for backends that cannot
/// stream).
pub struct ExecStream {
    inner: Inner,
    live: bool,
}

impl fmt::Debug for ExecStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecStream")
            .field("live", &self.live)
            .finish_non_exhaustive()
    }
}

impl ExecStream {
    /// A live stream over `events`: chunks must come as the command
    /// writes them, and dropping `events` must end the command's tree.
    pub fn new(events: impl Stream<Item = Result<ExecEvent>> + Send + 'static) -> ExecStream {
        ExecStream {
            inner: Box::pin(events),
            live: true,
        }
    }

    /// A stream made after the command ended, from its whole output: one
    /// `Stdout` chunk (if any), one `Stderr` chunk (if any), the `Exit`.
    /// Not live: nothing arrives before the command is over.
    pub fn buffered(output: ExecOutput) -> ExecStream {
        let exit = ExecExit::of(&output);
        let mut events = VecDeque::with_capacity(3);
        if !output.stdout.is_empty() {
            events.push_back(Ok(ExecEvent::Stdout(output.stdout)));
        }
        if !output.stderr.is_empty() {
            events.push_back(Ok(ExecEvent::Stderr(output.stderr)));
        }
        events.push_back(Ok(ExecEvent::Exit(exit)));
        ExecStream {
            inner: Box::pin(Queue(events)),
            live: false,
        }
    }

    /// Whether chunks arrive while the command runs (`false` for a
    /// [buffered](ExecStream::buffered) stream).
    pub fn is_live(&self) -> bool {
        self.live
    }

    /// The next event, `None` after the last.
    pub async fn next(&mut self) -> Option<Result<ExecEvent>> {
        std::future::poll_fn(|cx| self.inner.as_mut().poll_next(cx)).await
    }

    /// Reads the stream to its end and gathers it into one
    /// [`ExecOutput`] (uncapped beyond what the backend capped).
    ///
    /// # Errors
    /// The stream's error, or `unavailable` when it ended without an
    /// `Exit` event.
    pub async fn collect(mut self) -> Result<ExecOutput> {
        let mut out = ExecOutput::default();
        while let Some(event) = self.next().await {
            match event? {
                ExecEvent::Stdout(b) => out.stdout.extend_from_slice(&b),
                ExecEvent::Stderr(b) => out.stderr.extend_from_slice(&b),
                ExecEvent::Exit(exit) => {
                    out.exit_code = exit.exit_code;
                    out.timed_out = exit.timed_out;
                    out.truncated = exit.truncated;
                    out.duration = exit.duration;
                    out.notes = exit.notes;
                    return Ok(out);
                }
            }
        }
        Err(crate::Error::Unavailable {
            message: "the command's output ended without its exit status".into(),
        })
    }
}

impl Stream for ExecStream {
    type Item = Result<ExecEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

/// Events already known, yielded in order.
struct Queue(VecDeque<Result<ExecEvent>>);

impl Stream for Queue {
    type Item = Result<ExecEvent>;

    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(self.0.pop_front())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn buffered_is_not_live_and_keeps_everything() {
        let output = ExecOutput {
            stdout: b"out".to_vec(),
            stderr: b"err".to_vec(),
            exit_code: Some(3),
            notes: vec!["n".into()],
            ..ExecOutput::default()
        };
        let mut stream = ExecStream::buffered(output.clone());
        assert!(!stream.is_live());
        assert_eq!(
            stream.next().await.unwrap().unwrap(),
            ExecEvent::Stdout(b"out".to_vec())
        );
        assert_eq!(
            stream.next().await.unwrap().unwrap(),
            ExecEvent::Stderr(b"err".to_vec())
        );
        assert!(matches!(
            stream.next().await.unwrap().unwrap(),
            ExecEvent::Exit(ExecExit {
                exit_code: Some(3),
                ..
            })
        ));
        assert!(stream.next().await.is_none());
        assert_eq!(
            ExecStream::buffered(output.clone())
                .collect()
                .await
                .unwrap(),
            output
        );
    }

    #[tokio::test]
    async fn a_stream_without_exit_is_an_error() {
        let stream = ExecStream::new(Queue(VecDeque::from([Ok(ExecEvent::Stdout(
            b"x".to_vec(),
        ))])));
        assert!(stream.is_live());
        let err = stream.collect().await.unwrap_err();
        assert_eq!(err.code().as_str(), "unavailable");
    }
}
