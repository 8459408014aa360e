//! Running commands in a sandbox container through its agent
//! (`sandbay-agent`, the container's main process).

pub(crate) mod agent;

use std::time::Duration;

use sandbay_core::{Error, ExecOutput, ExecRequest, VPath};

pub(crate) use agent::Agent;

use crate::config::WORKSPACE;

/// The `PATH` commands get.
const PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Longest command accepted (it is one argument of `sh -c`).
pub(crate) const MAX_COMMAND_BYTES: usize = 64 * 1024;
/// Largest environment accepted, names and values together.
const MAX_ENV_BYTES: usize = 32 * 1024;

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
    /// Cap per captured stream.
    pub(crate) output_limit: usize,
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

/// Output kept up to a byte cap; what goes beyond is counted, not kept.
#[derive(Debug, Default)]
pub(crate) struct Capped {
    /// The kept bytes.
    pub(crate) bytes: Vec<u8>,
    limit: usize,
    /// Whether bytes were dropped.
    pub(crate) truncated: bool,
}

impl Capped {
    /// An empty buffer keeping at most `limit` bytes.
    pub(crate) fn new(limit: usize) -> Capped {
        Capped {
            bytes: Vec::new(),
            limit,
            truncated: false,
        }
    }

    /// Appends what fits.
    pub(crate) fn push(&mut self, data: &[u8]) {
        let room = self.limit.saturating_sub(self.bytes.len());
        if data.len() > room {
            self.truncated = true;
        }
        self.bytes.extend_from_slice(&data[..data.len().min(room)]);
    }
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
        output_limit,
    })
}

/// Runs commands in one container through its agent.
#[derive(Debug)]
pub(crate) struct Executor {
    pub(crate) agent: Agent,
}

impl Executor {
    /// Runs a prepared command.
    pub(crate) async fn run(&self, command: Command) -> Result<Outcome, Error> {
        self.agent.run(command).await
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
    fn capped_keeps_the_head() {
        let mut c = Capped::new(4);
        c.push(b"ab");
        c.push(b"cdef");
        assert_eq!(c.bytes, b"abcd");
        assert!(c.truncated);
    }
}
