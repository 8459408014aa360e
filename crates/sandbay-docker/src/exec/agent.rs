//! The host side of `sandbay-agent`: one task owns the container's
//! attached streams, writes request frames and routes event frames to
//! the command they belong to.
//!
//! The agent is the container's main process. Its stdout carries only
//! frames (command output travels inside them), so nothing a command
//! prints can end a command, change its exit code or pass for a note.
//! When the stream breaks or a frame is malformed, every pending and
//! later call is `unavailable`: never a guessed result.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bollard::container::LogOutput;
use futures_util::StreamExt;
use sandbay_agent::file::{self, FileAnswer, FileCall};
use sandbay_agent::{Decoder, End, Event, Message, Request, RunSpec};
use sandbay_core::Error;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot};

use super::{Capped, Command, Outcome, Status};
use crate::client::{InputSink, OutputStream};

/// The directory of the agent binary in the container.
pub(crate) const AGENT_DIR: &str = "/.sandbay";
/// Where the agent binary is in the container.
pub(crate) const AGENT_PATH: &str = "/.sandbay/agent";
/// The environment variable naming the agent binary on the host.
pub(crate) const AGENT_ENV: &str = "SANDBAY_AGENT";
/// Stdin goes to the agent in frames of this size.
pub(crate) const STDIN_CHUNK: usize = 256 * 1024;
/// How long past its own time limit a command may take before the host
/// gives up on the agent.
pub(crate) const BACKSTOP: Duration = Duration::from_secs(30);
/// Events buffered per command before the stream waits for its reader.
const ROUTE_DEPTH: usize = 256;

/// Finds the agent binary: `explicit`, else `$SANDBAY_AGENT`, else a
/// `sandbay-agent` next to the current executable or in its parent
/// directory.
///
/// # Errors
/// `unavailable` naming where it looked, when none is a regular file.
pub(crate) fn locate(explicit: Option<&Path>) -> Result<PathBuf, Error> {
    let mut tried = Vec::new();
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = explicit {
        candidates.push(p.to_path_buf());
    } else {
        if let Some(p) = std::env::var_os(AGENT_ENV).filter(|p| !p.is_empty()) {
            candidates.push(PathBuf::from(p));
        }
        if let Ok(exe) = std::env::current_exe()
            && let Some(dir) = exe.parent()
        {
            candidates.push(dir.join("sandbay-agent"));
            if let Some(up) = dir.parent() {
                candidates.push(up.join("sandbay-agent"));
            }
        }
    }
    for c in candidates {
        if std::fs::metadata(&c).is_ok_and(|m| m.is_file()) {
            if !is_static_elf(&c) {
                // a plain `cargo build` makes one that cannot run in an
                // image without the host's C library
                tried.push(format!("{} (not a static x86-64 binary)", c.display()));
                continue;
            }
            return std::path::absolute(&c).map_err(|e| Error::Unavailable {
                message: format!("the sandbox agent path cannot be resolved ({})", e.kind()),
            });
        }
        tried.push(c.display().to_string());
    }
    Err(Error::Unavailable {
        message: format!(
            "the sandbox agent binary (sandbay-agent, built static) was not found; \
             set DockerConfig::with_agent or {AGENT_ENV} (looked at: {})",
            if tried.is_empty() {
                "nothing".to_string()
            } else {
                tried.join(", ")
            }
        ),
    })
}

/// Whether `path` is a 64-bit little-endian ELF executable with no
/// program interpreter (statically linked, so it runs in any image).
fn is_static_elf(path: &Path) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    let mut h = [0u8; 64];
    if f.read_exact(&mut h).is_err()
        || &h[..4] != b"\x7fELF"
        || h[4] != 2
        || h[5] != 1
        || h[0x12] != 0x3e
    {
        return false;
    }
    let u16_at = |o: usize| u16::from_le_bytes([h[o], h[o + 1]]) as u64;
    let phoff = u64::from_le_bytes(h[0x20..0x28].try_into().unwrap_or([0; 8]));
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    if phentsize < 4 || phnum > 512 {
        return false;
    }
    for i in 0..phnum {
        let mut t = [0u8; 4];
        if f.seek(SeekFrom::Start(phoff + i * phentsize)).is_err() || f.read_exact(&mut t).is_err()
        {
            return false;
        }
        if u32::from_le_bytes(t) == 3 {
            return false; // PT_INTERP: dynamically linked
        }
    }
    true
}

type Routes = Arc<Mutex<HashMap<u32, mpsc::Sender<Event>>>>;

/// Handle to a container's agent.
#[derive(Debug)]
pub(crate) struct Agent {
    tx: mpsc::UnboundedSender<Vec<u8>>,
    routes: Routes,
    next: AtomicU32,
    alive: Arc<AtomicBool>,
}

pub(crate) fn gone() -> Error {
    Error::Unavailable {
        message: "the sandbox agent has stopped; the sandbox is unusable".into(),
    }
}

/// Removes a command's route, and cancels it when its caller left early.
struct RouteGuard<'a> {
    agent: &'a Agent,
    id: u32,
    cancel: bool,
}

impl Drop for RouteGuard<'_> {
    fn drop(&mut self) {
        self.agent.close(self.id, self.cancel);
    }
}

impl Agent {
    /// Starts the tasks that own the attached streams and waits for the
    /// agent's hello (its protocol version and pid).
    ///
    /// # Errors
    /// `unavailable` when the agent does not say hello within `timeout`
    /// (with what it wrote on stderr, if anything).
    pub(crate) async fn start(
        mut output: OutputStream,
        mut input: InputSink,
        timeout: Duration,
    ) -> Result<(Agent, u32), Error> {
        let alive = Arc::new(AtomicBool::new(true));
        let routes: Routes = Arc::default();
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let (hello_tx, hello_rx) = oneshot::channel::<Result<u32, String>>();
        let writer_alive = alive.clone();
        tokio::spawn(async move {
            while let Some(frame) = rx.recv().await {
                let mut batch = frame;
                while let Ok(more) = rx.try_recv() {
                    batch.extend_from_slice(&more);
                }
                let io = async {
                    input.write_all(&batch).await?;
                    input.flush().await
                };
                if io.await.is_err() {
                    writer_alive.store(false, Ordering::Release);
                    return;
                }
            }
            // dropping `input` closes the agent's stdin: it kills every
            // process of the sandbox and exits
        });
        let reader_alive = alive.clone();
        let reader_routes = routes.clone();
        tokio::spawn(async move {
            let mut decoder = Decoder::new();
            let mut hello = Some(hello_tx);
            let mut stderr = Vec::new();
            let why = loop {
                let bytes = match output.next().await {
                    Some(Ok(LogOutput::StdOut { message })) => message,
                    Some(Ok(LogOutput::StdErr { message })) => {
                        if stderr.len() < 4096 {
                            stderr.extend_from_slice(&message);
                        }
                        tracing::warn!(text = %String::from_utf8_lossy(&message).trim(), "sandbox agent");
                        continue;
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => break format!("the stream broke ({e})"),
                    None => break "the agent exited".to_string(),
                };
                decoder.push(&bytes);
                let mut bad = None;
                loop {
                    match decoder.next_message::<Event>() {
                        Ok(Some(Event::Hello { version, pid })) => {
                            if let Some(h) = hello.take() {
                                let _ = h.send(if version == sandbay_agent::VERSION {
                                    Ok(pid)
                                } else {
                                    Err(format!("the agent speaks protocol {version}"))
                                });
                            }
                        }
                        Ok(Some(ev)) => route(&reader_routes, ev).await,
                        Ok(None) => break,
                        Err(e) => {
                            bad = Some(format!("a malformed frame ({e})"));
                            break;
                        }
                    }
                }
                if let Some(b) = bad {
                    break b;
                }
            };
            tracing::warn!(reason = %why, "sandbox agent stopped");
            reader_alive.store(false, Ordering::Release);
            reader_routes
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clear();
            if let Some(h) = hello.take() {
                let said = String::from_utf8_lossy(&stderr).trim().to_string();
                let _ = h.send(Err(if said.is_empty() { why } else { said }));
            }
        });
        let agent = Agent {
            tx,
            routes,
            next: AtomicU32::new(1),
            alive,
        };
        agent.send(&Request::Ping)?;
        match tokio::time::timeout(timeout, hello_rx).await {
            Ok(Ok(Ok(pid))) => Ok((agent, pid)),
            Ok(Ok(Err(why))) => Err(Error::Unavailable {
                message: format!("the sandbox agent did not start: {why}"),
            }),
            Ok(Err(_)) => Err(gone()),
            Err(_) => Err(Error::Unavailable {
                message: "the sandbox agent did not answer in time".into(),
            }),
        }
    }

    /// Whether the agent still answers.
    pub(crate) fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    /// Removes a command's route, and cancels the command (its whole tree
    /// dies) when `cancel` is set.
    pub(crate) fn close(&self, id: u32, cancel: bool) {
        self.routes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
        if cancel {
            let _ = self.tx.send(Request::Cancel { id }.encode());
        }
    }

    /// A new command id and the channel its events come on.
    pub(crate) fn open(&self) -> Result<(u32, mpsc::Receiver<Event>), Error> {
        if !self.is_alive() {
            return Err(gone());
        }
        let (tx, rx) = mpsc::channel(ROUTE_DEPTH);
        let mut routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        let id = loop {
            let id = self.next.fetch_add(1, Ordering::Relaxed);
            if id != 0 && !routes.contains_key(&id) {
                break id;
            }
        };
        routes.insert(id, tx);
        Ok((id, rx))
    }

    /// Sends a request frame.
    pub(crate) fn send(&self, request: &Request) -> Result<(), Error> {
        self.tx.send(request.encode()).map_err(|_| gone())
    }

    /// Runs a command. Dropping the future kills its whole tree.
    pub(crate) async fn run(&self, command: Command) -> Result<Outcome, Error> {
        let started = Instant::now();
        let (id, mut rx) = self.open()?;
        let mut guard = RouteGuard {
            agent: self,
            id,
            cancel: true,
        };
        let spec = RunSpec {
            command: command.script.into_bytes(),
            workdir: command.workdir.into_bytes(),
            env: command.env.into_iter().map(String::into_bytes).collect(),
            timeout_ms: u64::try_from(command.timeout.as_millis())
                .unwrap_or(u64::MAX)
                .max(1),
            output_limit: command.output_limit as u64,
            stdin: !command.stdin.is_empty(),
        };
        self.send(&Request::Run { id, spec })?;
        if !command.stdin.is_empty() {
            for chunk in command.stdin.chunks(STDIN_CHUNK) {
                self.send(&Request::Stdin {
                    id,
                    data: chunk.to_vec(),
                })?;
            }
            self.send(&Request::StdinEnd { id })?;
        }
        let mut stdout = Capped::new(command.output_limit);
        let mut stderr = Capped::new(command.output_limit);
        let backstop = tokio::time::Instant::now() + command.timeout + BACKSTOP;
        let (end, truncated) = loop {
            let ev = match tokio::time::timeout_at(backstop, rx.recv()).await {
                Ok(Some(ev)) => ev,
                Ok(None) => return Err(gone()),
                Err(_) => {
                    return Err(Error::Unavailable {
                        message: "the sandbox agent did not end the command in time".into(),
                    });
                }
            };
            match ev {
                Event::Stdout { data, .. } => stdout.push(&data),
                Event::Stderr { data, .. } => stderr.push(&data),
                Event::Exit { end, truncated, .. } => break (end, truncated),
                Event::Note { text, .. } => tracing::info!(%text, "sandbox agent note"),
                Event::Done { .. } | Event::Hello { .. } | Event::File { .. } => {}
            }
        };
        guard.cancel = false;
        drop(guard);
        let status = match end {
            End::Code(c) => Status::Exit(c),
            End::Signal(s) => Status::Exit(128 + s),
            End::TimedOut => Status::TimedOut,
            End::NoDir => Status::NoDir,
            End::NoFork => Status::NoFork,
            End::Cancelled => Status::Other("cancelled".into()),
            End::Failed(e) => Status::Other(format!(
                "could not start ({})",
                std::io::Error::from_raw_os_error(e)
            )),
        };
        Ok(Outcome {
            truncated: truncated || stdout.truncated || stderr.truncated,
            stdout: stdout.bytes,
            stderr: stderr.bytes,
            status,
            duration: started.elapsed(),
        })
    }

    /// Sends a request answered by [`Event::Done`] and waits for it.
    async fn done(
        &self,
        make: impl FnOnce(u32) -> Request,
        timeout: Duration,
    ) -> Result<(), Error> {
        let (id, mut rx) = self.open()?;
        let _guard = RouteGuard {
            agent: self,
            id,
            cancel: false,
        };
        self.send(&make(id))?;
        loop {
            match tokio::time::timeout(timeout, rx.recv()).await {
                Ok(Some(Event::Done { error: None, .. })) => return Ok(()),
                Ok(Some(Event::Done {
                    error: Some(why), ..
                })) => {
                    return Err(Error::Unavailable {
                        message: format!("the sandbox agent could not finish: {why}"),
                    });
                }
                Ok(Some(_)) => {}
                Ok(None) => return Err(gone()),
                Err(_) => {
                    return Err(Error::Unavailable {
                        message: "the sandbox agent did not finish in time".into(),
                    });
                }
            }
        }
    }

    /// Runs a file operation in the agent (as the sandbox user, on
    /// `/workspace`) and returns its answer. Dropping the future drops
    /// the answer, not the operation.
    ///
    /// # Errors
    /// The operation's own error; `timeout` when no answer came within
    /// `timeout`; `unavailable` when the agent is gone or the answer is
    /// malformed.
    pub(crate) async fn file(
        &self,
        call: &FileCall,
        timeout: Duration,
    ) -> Result<FileAnswer, Error> {
        let (id, mut rx) = self.open()?;
        let _guard = RouteGuard {
            agent: self,
            id,
            cancel: false,
        };
        let body = call.encode();
        if body.len() > file::MAX_BODY {
            return Err(Error::TooLarge {
                what: "the file operation".into(),
                size: body.len() as u64,
                limit: file::MAX_BODY as u64,
            });
        }
        for (piece, last) in file::chunks(&body) {
            self.send(&Request::File {
                id,
                body: piece.to_vec(),
                last,
            })?;
        }
        drop(body);
        let deadline = tokio::time::Instant::now() + timeout;
        let mut answer = Vec::new();
        loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(Event::File { body, last, .. })) => {
                    if answer.len() + body.len() > file::MAX_BODY {
                        return Err(Error::Unavailable {
                            message: "the sandbox agent's answer is too large".into(),
                        });
                    }
                    answer.extend_from_slice(&body);
                    if last {
                        break;
                    }
                }
                Ok(Some(Event::Note { text, .. })) => tracing::info!(%text, "sandbox agent note"),
                Ok(Some(_)) => {}
                Ok(None) => return Err(gone()),
                Err(_) => return Err(Error::Timeout { after: timeout }),
            }
        }
        file::decode_answer(call, &answer).map_err(|e| Error::Unavailable {
            message: format!("the sandbox agent answered wrongly: {e}"),
        })?
    }

    /// Kills every process of the sandbox user.
    pub(crate) async fn kill_all(&self, timeout: Duration) -> Result<(), Error> {
        self.done(|id| Request::KillAll { id }, timeout).await
    }

    /// Kills every process of the sandbox user, then empties `dirs` (any
    /// names) and checks they are empty.
    pub(crate) async fn clear(&self, dirs: &[&str], timeout: Duration) -> Result<(), Error> {
        let dirs = dirs.iter().map(|d| d.as_bytes().to_vec()).collect();
        self.done(|id| Request::Clear { id, dirs }, timeout).await
    }
}

/// Hands an event to its command; events of commands nobody waits for
/// any more are dropped.
async fn route(routes: &Routes, ev: Event) {
    let id = match &ev {
        Event::Stdout { id, .. }
        | Event::Stderr { id, .. }
        | Event::Exit { id, .. }
        | Event::Done { id, .. }
        | Event::File { id, .. }
        | Event::Note { id, .. } => *id,
        Event::Hello { .. } => return,
    };
    if id == 0 {
        if let Event::Note { text, .. } = &ev {
            tracing::info!(%text, "sandbox agent note");
        }
        return;
    }
    let tx = routes
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&id)
        .cloned();
    if let Some(tx) = tx {
        let _ = tx.send(ev).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_agent_is_a_clear_error() {
        let err = locate(Some(Path::new("/nonexistent/sandbay-agent"))).unwrap_err();
        assert_eq!(err.code().as_str(), "unavailable");
        let text = err.to_string();
        assert!(
            text.contains("with_agent") && text.contains(AGENT_ENV),
            "{text}"
        );
        // a directory is not a binary
        assert!(locate(Some(Path::new("/"))).is_err());
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("sandbay-agent");
        std::fs::write(&bin, b"x").unwrap();
        let err = locate(Some(&bin)).unwrap_err().to_string();
        assert!(err.contains("not a static"), "{err}");
        // a dynamically linked program (this test binary) is refused too
        let me = std::env::current_exe().unwrap();
        assert!(!is_static_elf(&me));
        if let Some(agent) = std::env::var_os(AGENT_ENV) {
            assert!(
                is_static_elf(Path::new(&agent)),
                "the static build is accepted"
            );
            assert!(locate(Some(Path::new(&agent))).is_ok());
        }
    }
}
