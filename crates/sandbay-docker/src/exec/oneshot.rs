//! The fallback path: one fresh `docker exec` per command (~30 ms here).
//!
//! Used when the runner is busy with another command of the same sandbox
//! (so commands of one sandbox can run side by side), when stdin is large,
//! or when the runner is switched off. A client-side timeout alone would
//! leave the process running, so when the limit passes (or the caller
//! drops the future) a second exec kills the command's whole process
//! group, found by the command's token.

use std::time::{Duration, Instant};

use bollard::container::LogOutput;
use bollard::models::ExecConfig;
use futures_util::StreamExt;
use sandbay_core::Error;
use tokio::io::AsyncWriteExt;

use super::marker::{Capped, Event, Scanner};
use super::scripts::{EXEC_KILLER, EXEC_WRAPPER};
use super::{Command, Outcome, Sink, Status, new_token};
use crate::client::DockerClient;

/// How long output may keep coming after the kill.
const KILL_GRACE: Duration = Duration::from_secs(10);

/// Kills the command's group when the caller drops the future early.
struct KillOnDrop {
    client: DockerClient,
    container: String,
    user: String,
    token: String,
    armed: bool,
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let (client, container, user, token) = (
                self.client.clone(),
                self.container.clone(),
                self.user.clone(),
                self.token.clone(),
            );
            handle.spawn(async move {
                let _ = kill(&client, &container, &user, &token).await;
            });
        }
    }
}

/// Kills the process group of the command with `token`.
async fn kill(
    client: &DockerClient,
    container: &str,
    user: &str,
    token: &str,
) -> Result<(), Error> {
    let config = ExecConfig {
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        user: Some(user.into()),
        cmd: Some(vec![
            "sh".into(),
            "-c".into(),
            EXEC_KILLER.into(),
            "sandbay-kill".into(),
            token.into(),
        ]),
        ..Default::default()
    };
    let id = client.create_exec(container, config).await?;
    let (mut output, _input) = client.start_exec_attached(&id).await?;
    let drain = async { while output.next().await.is_some() {} };
    let _ = tokio::time::timeout(client.timeout(), drain).await;
    Ok(())
}

/// Runs `command` as a fresh exec in `container` as `user`.
pub(crate) async fn run(
    client: &DockerClient,
    container: &str,
    user: &str,
    command: Command,
) -> Result<Outcome, Error> {
    let started = Instant::now();
    let token = new_token();
    let mut cmd = vec![
        "sh".to_string(),
        "-c".into(),
        EXEC_WRAPPER.into(),
        "sandbay-exec".into(),
        token.clone(),
        command.workdir.clone(),
        command.script.clone(),
    ];
    cmd.extend(command.env.iter().cloned());
    let with_stdin = !command.stdin.is_empty();
    let config = ExecConfig {
        attach_stdin: Some(with_stdin),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        user: Some(user.into()),
        working_dir: Some(crate::config::WORKSPACE.into()),
        cmd: Some(cmd),
        ..Default::default()
    };
    let id = client.create_exec(container, config).await?;
    let (mut output, mut input) = client.start_exec_attached(&id).await?;
    let mut guard = KillOnDrop {
        client: client.clone(),
        container: container.into(),
        user: user.into(),
        token: token.clone(),
        armed: true,
    };
    if with_stdin {
        let stdin = command.stdin;
        // Feed stdin concurrently: a command may write before it reads.
        tokio::spawn(async move {
            let _ = input.write_all(&stdin).await;
            let _ = input.shutdown().await;
        });
    } else {
        drop(input);
    }

    let mut out_scan = Scanner::new(&token);
    let mut err_scan = Scanner::new(&token);
    let mut stdout = Capped::new(command.output_limit);
    let mut stderr = Capped::new(command.output_limit);
    let mut sink = match command.stdout {
        Sink::Capture => None,
        Sink::Stream(tx) => Some(tx),
    };
    let mut status: Option<String> = None;
    let mut timed_out = false;
    let deadline = tokio::time::Instant::now() + command.timeout;
    let mut events = Vec::new();
    loop {
        let frame = if timed_out {
            match tokio::time::timeout(KILL_GRACE, output.next()).await {
                Ok(f) => f,
                Err(_) => break,
            }
        } else {
            match tokio::time::timeout_at(deadline, output.next()).await {
                Ok(f) => f,
                Err(_) => {
                    timed_out = true;
                    kill(client, container, user, &token).await?;
                    continue;
                }
            }
        };
        let (scan, is_stdout, message) = match frame {
            None => break,
            Some(Ok(LogOutput::StdOut { message })) => (&mut out_scan, true, message),
            Some(Ok(LogOutput::StdErr { message })) => (&mut err_scan, false, message),
            Some(Ok(_)) => continue,
            Some(Err(e)) => {
                tracing::debug!(error = %e, "exec stream failed");
                return Err(Error::Unavailable {
                    message: "the connection to the sandbox container broke".into(),
                });
            }
        };
        events.clear();
        scan.push(&message, &mut events);
        for ev in events.drain(..) {
            match ev {
                Event::Marker(m) => {
                    if status.is_none() {
                        status = Some(m);
                    }
                }
                Event::Data(d) if is_stdout => match &sink {
                    Some(tx) => {
                        if tx.send(d).await.is_err() {
                            sink = None;
                        }
                    }
                    None => stdout.push(&d),
                },
                Event::Data(d) => stderr.push(&d),
            }
        }
    }
    guard.armed = false;
    // bytes held back as a possible marker start are output after all
    for (scan, is_stdout) in [(&mut out_scan, true), (&mut err_scan, false)] {
        events.clear();
        scan.finish(&mut events);
        for ev in events.drain(..) {
            if let Event::Data(d) = ev {
                match (&sink, is_stdout) {
                    (Some(tx), true) => {
                        let _ = tx.send(d).await;
                    }
                    (None, true) => stdout.push(&d),
                    (_, false) => stderr.push(&d),
                }
            }
        }
    }
    drop(sink);
    let status = if timed_out {
        Status::TimedOut
    } else {
        match status {
            Some(s) => Status::parse(&s),
            // no end marker: the wrapper itself was killed
            None => match client.exec_exit_code(&id).await? {
                Some(code) => Status::Exit(code as i32),
                None => Status::Other("unknown".into()),
            },
        }
    };
    let truncated = stdout.truncated || stderr.truncated;
    Ok(Outcome {
        stdout: stdout.bytes,
        stderr: stderr.bytes,
        status,
        truncated,
        duration: started.elapsed(),
    })
}
