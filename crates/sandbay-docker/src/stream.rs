//! `execute_stream` of [`DockerSandbox`](crate::DockerSandbox): the
//! agent's output frames passed on as they come.
//!
//! The agent already sends a command's output in chunks while it runs;
//! here they become [`ExecEvent`]s with no task in between: the stream
//! reads the command's route itself, so it owns the command, and dropping
//! it before the end cancels the command (the agent kills its whole tree).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use sandbay_agent::{End, Event, Request, RunSpec};
use sandbay_core::futures_core::Stream;
use sandbay_core::{
    Backend, EntryKind, Error, ExecEvent, ExecExit, ExecRequest, ExecStream, Result, VPath,
};
use tokio::sync::mpsc;

use crate::exec::agent::{BACKSTOP, STDIN_CHUNK, gone};
use crate::exec::{Executor, no_fork, prepare};

/// Starts `request` through `exec`'s agent and streams its output
/// (`sandbox` answers the working directory check).
///
/// A missing working directory is checked first, so that it is the
/// `not_found` result of the call (one removed in between still ends
/// the stream with `not_found`).
pub(crate) async fn execute_stream(
    sandbox: &dyn Backend,
    exec: Arc<Executor>,
    request: ExecRequest,
    output_limit: usize,
) -> Result<ExecStream> {
    let workdir = request.workdir.clone().unwrap_or_else(VPath::root);
    if !workdir.is_root() {
        let entry = sandbox.stat(&workdir).await?;
        if entry.kind != EntryKind::Dir {
            return Err(Error::NotADirectory { path: workdir });
        }
    }
    let command = prepare(request, output_limit)?;
    let (id, rx) = exec.agent.open()?;
    // from here the route is the stream's: dropped, it cancels the command
    let mut events = AgentEvents {
        exec,
        id,
        rx,
        backstop: Box::pin(tokio::time::sleep(command.timeout + BACKSTOP)),
        started: Instant::now(),
        room: [output_limit, output_limit],
        truncated: false,
        workdir,
        done: false,
        exited: false,
    };
    let spec = RunSpec {
        command: command.script.into_bytes(),
        workdir: command.workdir.into_bytes(),
        env: command.env.into_iter().map(String::into_bytes).collect(),
        timeout_ms: u64::try_from(command.timeout.as_millis())
            .unwrap_or(u64::MAX)
            .max(1),
        output_limit: output_limit as u64,
        stdin: !command.stdin.is_empty(),
    };
    let agent = &events.exec.agent;
    agent.send(&Request::Run { id, spec })?;
    if !command.stdin.is_empty() {
        for chunk in command.stdin.chunks(STDIN_CHUNK) {
            agent.send(&Request::Stdin {
                id,
                data: chunk.to_vec(),
            })?;
        }
        agent.send(&Request::StdinEnd { id })?;
    }
    events.started = Instant::now();
    Ok(ExecStream::new(events))
}

/// A running command's route, read as a stream.
struct AgentEvents {
    exec: Arc<Executor>,
    id: u32,
    rx: mpsc::Receiver<Event>,
    /// Past the command's own limit and some: the agent is not answering.
    backstop: Pin<Box<tokio::time::Sleep>>,
    started: Instant,
    /// Bytes of stdout and stderr still passed on (the output cap).
    room: [usize; 2],
    truncated: bool,
    workdir: VPath,
    /// The last item went out.
    done: bool,
    /// The agent reported the command's end: nothing to cancel.
    exited: bool,
}

impl AgentEvents {
    /// What fits of a chunk under its stream's cap.
    fn capped(&mut self, which: usize, mut data: Vec<u8>) -> Option<Vec<u8>> {
        let room = self.room[which];
        if data.len() > room {
            self.truncated = true;
            data.truncate(room);
        }
        self.room[which] -= data.len();
        (!data.is_empty()).then_some(data)
    }

    fn end(&mut self, end: End, truncated: bool) -> Result<ExecEvent> {
        let (exit_code, timed_out) = match end {
            End::Code(c) => (Some(c), false),
            End::Signal(s) => (Some(128 + s), false),
            End::TimedOut => (None, true),
            End::NoDir => {
                return Err(Error::NotFound {
                    path: self.workdir.clone(),
                });
            }
            End::NoFork => return Err(no_fork()),
            End::Cancelled => (None, false),
            End::Failed(e) => {
                tracing::warn!(errno = e, "the agent could not start a command");
                (None, false)
            }
        };
        Ok(ExecEvent::Exit(ExecExit {
            exit_code,
            timed_out,
            truncated: truncated || self.truncated,
            duration: self.started.elapsed(),
            notes: Vec::new(),
        }))
    }
}

impl Stream for AgentEvents {
    type Item = Result<ExecEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        loop {
            let event = match self.rx.poll_recv(cx) {
                Poll::Ready(Some(event)) => event,
                Poll::Ready(None) => {
                    self.done = true;
                    return Poll::Ready(Some(Err(gone())));
                }
                Poll::Pending => {
                    if self.backstop.as_mut().poll(cx).is_ready() {
                        self.done = true;
                        return Poll::Ready(Some(Err(Error::Unavailable {
                            message: "the sandbox agent did not end the command in time".into(),
                        })));
                    }
                    return Poll::Pending;
                }
            };
            match event {
                Event::Stdout { data, .. } => {
                    if let Some(data) = self.capped(0, data) {
                        return Poll::Ready(Some(Ok(ExecEvent::Stdout(data))));
                    }
                }
                Event::Stderr { data, .. } => {
                    if let Some(data) = self.capped(1, data) {
                        return Poll::Ready(Some(Ok(ExecEvent::Stderr(data))));
                    }
                }
                Event::Exit { end, truncated, .. } => {
                    self.done = true;
                    self.exited = true;
                    return Poll::Ready(Some(self.end(end, truncated)));
                }
                Event::Note { text, .. } => tracing::info!(%text, "sandbox agent note"),
                Event::Done { .. } | Event::Hello { .. } | Event::File { .. } => {}
            }
        }
    }
}

impl Drop for AgentEvents {
    fn drop(&mut self) {
        // before its exit the command is still running: cancel it
        self.exec.agent.close(self.id, !self.exited);
    }
}
