//! Running commands in a sandbox container: the long-lived runner, the
//! fresh-exec fallback, and the choice between them.

mod marker;
mod oneshot;
mod runner;
pub(crate) mod scripts;

use std::time::Duration;

use sandbay_core::{Error, ExecOutput, ExecRequest, VPath};
use tokio::sync::mpsc;

pub(crate) use runner::Runner;

use crate::client::DockerClient;
use crate::config::WORKSPACE;

/// The `PATH` commands get.
const PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Largest stdin sent through the runner (inline, base64, as one argument
/// of the wrapper: the kernel caps one argument at 128 KiB); larger stdin
/// is streamed to a fresh exec.
const RUNNER_STDIN_MAX: usize = 48 * 1024;
/// Longest command accepted (it is one argument of the wrapper).
pub(crate) const MAX_COMMAND_BYTES: usize = 64 * 1024;
/// Largest environment accepted, names and values together.
const MAX_ENV_BYTES: usize = 32 * 1024;

/// Where a command's stdout goes.
#[derive(Debug)]
pub(crate) enum Sink {
    /// Kept in memory up to the output limit.
    Capture,
    /// Sent chunk by chunk to a consumer (file reads); dropped chunks are
    /// not an error once the consumer hangs up.
    Stream(mpsc::Sender<Vec<u8>>),
}

/// A prepared command.
#[derive(Debug)]
pub(crate) struct Command {
    /// Text for `sh -c`.
    pub(crate) script: String,
    /// Working directory inside the container.
    pub(crate) workdir: String,
    /// The complete environment, `NAME=value`.
    pub(crate) env: Vec<String>,
    /// Bytes for stdin.
    pub(crate) stdin: Vec<u8>,
    /// Time limit of the whole process tree.
    pub(crate) timeout: Duration,
    /// Where stdout goes.
    pub(crate) stdout: Sink,
    /// Cap per captured stream.
    pub(crate) output_limit: usize,
}

impl Command {
    /// An internal script with the base environment and no stdin.
    pub(crate) fn script(script: String, timeout: Duration, output_limit: usize) -> Command {
        Command {
            script,
            workdir: WORKSPACE.into(),
            env: base_env(),
            stdin: Vec::new(),
            timeout,
            stdout: Sink::Capture,
            output_limit,
        }
    }
}

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Status {
    /// It exited with this code (128 + n when killed by signal n, as a shell reports).
    Exit(i32),
    /// The working directory does not exist.
    NoDir,
    /// The command could not be started: the process limit is reached.
    NoFork,
    /// The time limit killed it.
    TimedOut,
    /// Anything else the wrapper reported.
    Other(String),
}

impl Status {
    /// Parses the status word of an end marker.
    pub(crate) fn parse(word: &str) -> Status {
        match word {
            "nodir" => Status::NoDir,
            "nofork" => Status::NoFork,
            "killed" => Status::TimedOut,
            w => match w.parse() {
                Ok(code) => Status::Exit(code),
                Err(_) => Status::Other(w.into()),
            },
        }
    }
}

/// What a command produced.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) stdout: Vec<u8>,
    pub(crate) stderr: Vec<u8>,
    pub(crate) status: Status,
    pub(crate) truncated: bool,
    pub(crate) duration: Duration,
}

/// The error for a command that could not be started.
pub(crate) fn no_fork() -> Error {
    Error::Unavailable {
        message: "the sandbox has reached its process limit; \
                  wait for its processes to end or kill some"
            .into(),
    }
}

/// A fresh random token (32 hex digits).
pub(crate) fn new_token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The environment every command starts from.
pub(crate) fn base_env() -> Vec<String> {
    vec![
        PATH.into(),
        format!("HOME={WORKSPACE}"),
        "USER=sandbox".into(),
        "LANG=C.UTF-8".into(),
    ]
}

/// The container path of a virtual path.
pub(crate) fn container_path(path: &VPath) -> String {
    if path.is_root() {
        WORKSPACE.to_string()
    } else {
        format!("{WORKSPACE}{}", path.as_str())
    }
}

fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// Checks an [`ExecRequest`] and turns it into a [`Command`].
///
/// # Errors
/// `invalid_argument` for NUL bytes, bad variable names or a zero limit.
pub(crate) fn prepare(request: ExecRequest, output_limit: usize) -> Result<Command, Error> {
    if request.command.contains('\0') {
        return Err(Error::invalid_argument("the command contains a NUL byte"));
    }
    if request.timeout.is_zero() {
        return Err(Error::invalid_argument("the timeout must be above zero"));
    }
    if request.command.len() > MAX_COMMAND_BYTES {
        return Err(Error::invalid_argument(format!(
            "the command is longer than {MAX_COMMAND_BYTES} bytes; put long scripts in a file and run that"
        )));
    }
    let env_bytes: usize = request.env.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
    if env_bytes > MAX_ENV_BYTES {
        return Err(Error::invalid_argument(format!(
            "the environment is larger than {MAX_ENV_BYTES} bytes"
        )));
    }
    let mut env = base_env();
    for (name, value) in &request.env {
        if !valid_env_name(name) {
            return Err(Error::invalid_argument(format!(
                "{name:?} is not a valid environment variable name"
            )));
        }
        if value.contains('\0') {
            return Err(Error::invalid_argument(format!(
                "the value of {name} contains a NUL byte"
            )));
        }
        env.retain(|e| !e.starts_with(&format!("{name}=")));
        env.push(format!("{name}={value}"));
    }
    let workdir = request
        .workdir
        .as_ref()
        .map_or_else(|| WORKSPACE.to_string(), container_path);
    Ok(Command {
        script: request.command,
        workdir,
        env,
        stdin: request.stdin,
        timeout: request.timeout,
        stdout: Sink::Capture,
        output_limit,
    })
}

/// Runs commands in one container: through the runner when it is idle,
/// through a fresh exec otherwise.
#[derive(Debug)]
pub(crate) struct Executor {
    pub(crate) client: DockerClient,
    pub(crate) container: String,
    pub(crate) user: String,
    pub(crate) runner: Option<Runner>,
    pub(crate) use_runner: bool,
}

impl Executor {
    /// Runs a prepared command.
    pub(crate) async fn run(&self, command: Command) -> Result<Outcome, Error> {
        if let Some(runner) = &self.runner {
            if !runner.is_alive() {
                return Err(Error::Unavailable {
                    message: "the sandbox container has stopped".into(),
                });
            }
            if self.use_runner
                && command.stdin.len() <= RUNNER_STDIN_MAX
                && let Some(permit) = runner.try_claim()
            {
                return runner.run(permit, command).await;
            }
        }
        oneshot::run(&self.client, &self.container, &self.user, command).await
    }

    /// Runs a user's request and shapes the result.
    pub(crate) async fn execute(
        &self,
        request: ExecRequest,
        output_limit: usize,
    ) -> Result<ExecOutput, Error> {
        let workdir = request.workdir.clone();
        let command = prepare(request, output_limit)?;
        let outcome = self.run(command).await?;
        let (exit_code, timed_out) = match outcome.status {
            Status::Exit(code) => (Some(code), false),
            Status::TimedOut => (None, true),
            Status::NoDir => {
                let path = workdir.unwrap_or_else(VPath::root);
                return Err(Error::NotFound { path });
            }
            Status::NoFork => return Err(no_fork()),
            Status::Other(word) => {
                tracing::warn!(%word, "unexpected command status");
                (None, false)
            }
        };
        Ok(ExecOutput {
            stdout: outcome.stdout,
            stderr: outcome.stderr,
            exit_code,
            timed_out,
            truncated: outcome.truncated,
            duration: outcome.duration,
            notes: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepare_checks_input() {
        let err = prepare(ExecRequest::new("a\0b"), 10).unwrap_err();
        assert_eq!(err.code().as_str(), "invalid_argument");
        let mut r = ExecRequest::new("true");
        r.env.insert("BAD-NAME".into(), "x".into());
        assert_eq!(
            prepare(r, 10).unwrap_err().code().as_str(),
            "invalid_argument"
        );
        let err = prepare(ExecRequest::new("x").timeout(Duration::ZERO), 10).unwrap_err();
        assert_eq!(err.code().as_str(), "invalid_argument");

        let mut r = ExecRequest::new("echo $A");
        r.env.insert("A".into(), "1".into());
        r.env.insert("PATH".into(), "/bin".into());
        r.workdir = Some(VPath::parse("/sub").unwrap());
        let c = prepare(r, 10).unwrap();
        assert!(c.env.contains(&"A=1".to_string()));
        assert_eq!(c.env.iter().filter(|e| e.starts_with("PATH=")).count(), 1);
        assert!(c.env.contains(&"PATH=/bin".to_string()));
        assert_eq!(c.workdir, "/workspace/sub");
    }

    #[test]
    fn statuses() {
        assert_eq!(Status::parse("0"), Status::Exit(0));
        assert_eq!(Status::parse("137"), Status::Exit(137));
        assert_eq!(Status::parse("nodir"), Status::NoDir);
        assert_eq!(Status::parse("killed"), Status::TimedOut);
        assert_eq!(Status::parse("zz"), Status::Other("zz".into()));
    }
}
