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
///     [limits]
///     sessions_per_user = 4
/// "#).unwrap();
/// assert_eq!(config.limits.sessions_per_user, 4);
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

/// Where files live and commands run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendChoice {
    /// Files in memory, saved under `DATA/state` (written behind), commands
    /// in the local jail over a scratch copy. No Docker, no setup.
    State,
}

impl std::str::FromStr for BackendChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "state" => Ok(BackendChoice::State),
            other => Err(format!(
                "unknown backend {other:?}: this server serves `state`"
            )),
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
        }
    }
}
