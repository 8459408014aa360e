//! The server's configuration: a TOML file, overridden by environment
//! variables, overridden by command-line flags (the CLI applies them in
//! that order).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Everything a server needs to start.
///
/// ```
/// let config: sandbay_server::ServerConfig = toml::from_str(r#"
///     listen = "127.0.0.1:9000"
///     data = "/var/lib/sandbay"
///     backend = "fs=/srv/workspaces"
///     [limits]
///     sessions_per_user = 4
///     [connections]
///     header_timeout_ms = 5000
/// "#).unwrap();
/// assert_eq!(config.limits.sessions_per_user, 4);
/// assert_eq!(config.backend, sandbay_server::BackendChoice::Fs("/srv/workspaces".into()));
/// assert_eq!(config.connections.header_timeout_ms, 5000);
/// assert!(toml::from_str::<sandbay_server::ServerConfig>("backend = \"fs=\"").is_err());
/// assert_eq!(config.keys_path(), std::path::Path::new("/var/lib/sandbay/keys"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on (`SANDBAY_LISTEN`, `--listen`). Default
    /// `127.0.0.1:7878`: loopback only; put a TLS proxy in front to serve
    /// others.
    pub listen: SocketAddr,
    /// Data directory (`SANDBAY_DATA`, `--data`): the users' files and
    /// the keys file. Default `./sandbay-data`.
    pub data: PathBuf,
    /// The keys file (`SANDBAY_KEYS`, `--keys`). Default `DATA/keys`.
    pub keys: Option<PathBuf>,
    /// The admin key for `/v1/admin/*` (`SANDBAY_ADMIN_KEY` only, so it
    /// never shows in a process list or a config file). None: no admin
    /// routes.
    #[serde(skip)]
    pub admin_key: Option<String>,
    /// Where files live and commands run (`SANDBAY_BACKEND`, `--backend`).
    pub backend: BackendChoice,
    /// How soon a change reaches the disk, in milliseconds; 0 writes
    /// every change before replying. Default 1000.
    pub write_behind_ms: u64,
    /// Per-user and global bounds.
    pub limits: ServerLimits,
    /// Bearer JWTs from the application's own login, besides the keys.
    pub jwt: Option<crate::auth::JwtConfig>,
    /// The Docker backend's settings (`[docker]`).
    pub docker: DockerSettings,
    /// Connection bounds, before any credentials are read.
    pub connections: ConnectionLimits,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 7878)),
            data: PathBuf::from("sandbay-data"),
            keys: None,
            admin_key: None,
            backend: BackendChoice::State,
            write_behind_ms: 1000,
            limits: ServerLimits::default(),
            jwt: None,
            docker: DockerSettings::default(),
            connections: ConnectionLimits::default(),
        }
    }
}

impl ServerConfig {
    /// Reads a TOML file.
    ///
    /// # Errors
    /// A file that cannot be read or is not a valid configuration (unknown
    /// keys included), as text for the operator.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The keys file in force.
    pub fn keys_path(&self) -> PathBuf {
        self.keys.clone().unwrap_or_else(|| self.data.join("keys"))
    }

    /// The write-behind window.
    pub fn write_behind(&self) -> Duration {
        Duration::from_millis(self.write_behind_ms)
    }
}

/// Where files live and commands run: `state`, `fs=DIR` or `docker`
/// (the same text in the file, the environment and the flag).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum BackendChoice {
    /// Files in memory, saved under `DATA/state` (written behind), commands
    /// in the local jail over a scratch copy. No Docker, no setup.
    State,
    /// Each session a host directory under this one (`fs=DIR`), commands
    /// in the local jail on that directory.
    Fs(PathBuf),
    /// One container per session, on the Docker daemon (`[docker]`).
    Docker,
}

impl std::str::FromStr for BackendChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "state" => Ok(BackendChoice::State),
            "docker" => Ok(BackendChoice::Docker),
            _ => match s.strip_prefix("fs=") {
                Some(dir) if !dir.is_empty() => Ok(BackendChoice::Fs(PathBuf::from(dir))),
                _ => Err(format!(
                    "unknown backend {s:?}: this server serves `state`, `fs=DIR` and `docker`"
                )),
            },
        }
    }
}

impl TryFrom<String> for BackendChoice {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<BackendChoice> for String {
    fn from(b: BackendChoice) -> String {
        match b {
            BackendChoice::State => "state".into(),
            BackendChoice::Fs(dir) => format!("fs={}", dir.display()),
            BackendChoice::Docker => "docker".into(),
        }
    }
}

/// The Docker backend's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DockerSettings {
    /// The daemon (`unix:///path` or `tcp://host:port`); default
    /// `DOCKER_HOST`, else the local unix socket.
    pub host: Option<String>,
    /// Whether the daemon runs on this machine and sees its files, which
    /// the workspaces need (they are bind-mounted). Default: yes for a
    /// unix socket, no for TCP; a daemon that does not is refused at start.
    pub same_machine: Option<bool>,
    /// The image sessions run (`SANDBAY_IMAGE` for `sandbay serve`).
    /// Default [`sandbay_docker::DEFAULT_IMAGE`] (pulled on first use).
    pub image: String,
    /// The in-container agent binary; default `SANDBAY_AGENT`, else next
    /// to the executable.
    pub agent: Option<PathBuf>,
    /// Containers at once, over all users (a session beyond waits, then
    /// gets `503`). Default 64.
    pub containers: usize,
    /// Fresh containers kept ready in the background, so that a new or
    /// returning session gets one at once and only its workspace is
    /// mounted on the way (never more than `containers`; each still
    /// serves one session and is then destroyed). `0`: every session's
    /// container is made when it is first used. Default 2.
    pub warm: usize,
    /// The `sandbay.owner` label of the containers. Default `sandbay-server`.
    pub owner: String,
}

impl DockerSettings {
    /// Whether the daemon runs on this machine: `same_machine`, else
    /// whether its address (`host`, else `DOCKER_HOST`, else the local
    /// socket) is a unix socket.
    pub fn same_machine(&self) -> bool {
        if let Some(same) = self.same_machine {
            return same;
        }
        let host = self
            .host
            .clone()
            .or_else(|| std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()));
        host.is_none_or(|h| h.starts_with("unix://"))
    }
}

impl Default for DockerSettings {
    fn default() -> Self {
        DockerSettings {
            host: None,
            same_machine: None,
            image: sandbay_docker::DEFAULT_IMAGE.into(),
            agent: None,
            containers: 64,
            warm: 2,
            owner: "sandbay-server".into(),
        }
    }
}

/// Bounds on connections, enforced before any credentials are read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectionLimits {
    /// Open connections at once; a connection beyond is closed at once.
    /// Default 4096.
    pub max_open: usize,
    /// Open connections at once from one peer address; a connection
    /// beyond is closed at once, so that one address cannot take every
    /// place of `max_open`. `0`: no per-peer cap (behind a reverse proxy,
    /// whose connections all come from one address). Default 256.
    pub max_per_peer: usize,
    /// Milliseconds a client has to send a request's whole header block
    /// (and, between requests on a kept-alive connection, the next one).
    /// Default 10,000.
    pub header_timeout_ms: u64,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_open: 4096,
            max_per_peer: 256,
            header_timeout_ms: 10_000,
        }
    }
}

/// Per-user and global bounds; over them a request gets 429 with
/// `Retry-After`, or 413 for a body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerLimits {
    /// Sessions one user may hold. Default 32.
    pub sessions_per_user: usize,
    /// Bytes of files one session may hold, through the API or left by a
    /// command (`quota_exceeded` over it). Default 256 MiB.
    pub session_bytes: u64,
    /// Sessions over all users. Default 10,000.
    pub sessions_total: usize,
    /// Requests of one user in progress at once. Default 16.
    pub concurrent_per_user: usize,
    /// Largest request body in bytes. Default 16 MiB.
    pub body_bytes: usize,
    /// Longest time limit a command may ask for, in seconds. Default 600.
    pub exec_timeout_max_secs: u64,
    /// Time limit of a command that asks for none, in seconds. Default 60.
    pub exec_timeout_default_secs: u64,
    /// Milliseconds between keep-alive comments of a quiet event stream.
    /// Default 15,000.
    pub sse_keepalive_ms: u64,
    /// MCP sessions one user may hold open at once, over all their
    /// sandbay sessions. Default 16.
    pub mcp_sessions_per_user: usize,
    /// Searches (`grep`, `glob`) of one user running at once; more wait.
    /// They run on threads of their own, never on the threads that serve
    /// requests. Default 2.
    pub searches_per_user: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            sessions_per_user: 32,
            session_bytes: 256 << 20,
            sessions_total: 10_000,
            concurrent_per_user: 16,
            body_bytes: 16 * 1024 * 1024,
            exec_timeout_max_secs: 600,
            exec_timeout_default_secs: 60,
            sse_keepalive_ms: 15_000,
            mcp_sessions_per_user: 16,
            searches_per_user: 2,
        }
    }
}
