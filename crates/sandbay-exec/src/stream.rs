//! Streamed runs: [`exec_stream`] turns a run into a live
//! [`ExecStream`], and [`OutputSink`] carries its chunks.
//!
//! The run is a task of its own that sends chunks into a bounded channel;
//! the stream reads the channel and owns the task: dropping the stream
//! aborts the task, whose run guard then kills the whole process tree (as
//! dropping [`Jail::run`](crate::Jail::run)'s future does).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use sandbay_core::futures_core::Stream;
use sandbay_core::{Error, ExecEvent, ExecExit, ExecOutput, ExecStream, Result};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

/// Chunks waiting for the consumer before the command's reads stop
/// (each at most 64 KiB).
const DEPTH: usize = 16;

/// What a run tells its stream.
#[derive(Debug)]
pub(crate) enum Msg {
    /// The command started (`execve` succeeded): errors after this are
    /// items of the stream, not the result of [`exec_stream`].
    Started,
    /// A chunk, or the run's failure.
    Event(Result<ExecEvent>),
}

/// Where a streamed run sends its output: handed by [`exec_stream`] to
/// the run, which passes it to [`Jail::run_streaming`](crate::Jail::run_streaming)
/// or [`Jail::run_in_streaming`](crate::Jail::run_in_streaming).
#[derive(Debug, Clone)]
pub struct OutputSink {
    tx: mpsc::Sender<Msg>,
}

impl OutputSink {
    pub(crate) async fn send(&self, msg: Msg) -> bool {
        self.tx.send(msg).await.is_ok()
    }
}

/// Runs `run` as a task of its own, handing it an [`OutputSink`], and
/// returns its live stream once the command started: every chunk the run
/// sends to the sink, then the `Exit` made from the run's
/// [`ExecOutput`] (its `stdout`/`stderr` are ignored: they went out as
/// chunks).
///
/// An error of `run` before the command started (the sink's start signal,
/// sent by the jail once `execve` succeeded) is returned here; after it,
/// it is the stream's last item. Dropping the stream aborts the task.
///
/// Needs a tokio runtime.
///
/// # Errors
/// What `run` returned before the command started.
pub async fn exec_stream<F, Fut>(run: F) -> Result<ExecStream>
where
    F: FnOnce(OutputSink) -> Fut,
    Fut: Future<Output = Result<ExecOutput>> + Send + 'static,
{
    let (tx, mut rx) = mpsc::channel(DEPTH);
    let fut = run(OutputSink { tx: tx.clone() });
    let task = tokio::spawn(async move {
        let last = fut.await.map(|out| ExecEvent::Exit(ExecExit::of(&out)));
        let _ = tx.send(Msg::Event(last)).await;
    });
    let abort = AbortOnDrop(task.abort_handle());
    let first = match rx.recv().await {
        Some(Msg::Started) => None,
        Some(Msg::Event(Err(e))) => return Err(e),
        Some(Msg::Event(Ok(event))) => Some(event),
        None => {
            return Err(Error::Unavailable {
                message: "the command's task ended without a result".into(),
            });
        }
    };
    Ok(ExecStream::new(Events {
        rx,
        first,
        done: false,
        _abort: abort,
    }))
}

/// Aborts the run's task when the stream goes.
struct AbortOnDrop(AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The stream over the run's channel.
struct Events {
    rx: mpsc::Receiver<Msg>,
    first: Option<ExecEvent>,
    done: bool,
    _abort: AbortOnDrop,
}

impl Stream for Events {
    type Item = Result<ExecEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if let Some(first) = self.first.take() {
            self.done = matches!(first, ExecEvent::Exit(_));
            return Poll::Ready(Some(Ok(first)));
        }
        loop {
            return match self.rx.poll_recv(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Some(Msg::Started)) => continue,
                Poll::Ready(Some(Msg::Event(event))) => {
                    self.done = !matches!(event, Ok(ExecEvent::Stdout(_) | ExecEvent::Stderr(_)));
                    Poll::Ready(Some(event))
                }
                Poll::Ready(None) => {
                    self.done = true;
                    Poll::Ready(Some(Err(Error::Unavailable {
                        message: "the command's output ended without its exit status".into(),
                    })))
                }
            };
        }
    }
}
