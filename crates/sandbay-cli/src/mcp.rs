//! `sandbay mcp --backend state|fs[=DIR]|docker`: serves the agent tools
//! of one workspace to an MCP client over standard input and output.
//!
//! * `state`: a fresh in-memory workspace that lives as long as the
//!   server;
//! * `fs`: the current directory; `fs=DIR`: the directory `DIR` (created
//!   if missing); every file operation stays inside it;
//! * for both, `execute` runs commands in a local jail at the strongest
//!   level this host gives (`sandbay_exec::Jail::probe`; the state
//!   workspace through a scratch copy of its files). Where the host gives
//!   no level, the tools are offered without `execute`. At the
//!   `namespaces` level a root server runs the commands of an `fs`
//!   workspace as the directory's owner (when that is not root), so the
//!   files keep their owner; otherwise as a uid of the jail's own, to
//!   which the files are handed over;
//! * `docker`: a fresh container from the default image (see
//!   `sandbay_docker::DockerConfig`), with `execute`; it is removed when
//!   the client disconnects (and by the daemon if this process dies).
//!
//! Standard output carries the protocol; logs go to standard error.

use std::path::PathBuf;
use std::sync::Arc;

use sandbay_core::Isolation;
use sandbay_exec::{Identity, Jail, JailConfig};
use sandbay_mcp::McpServer;
use sandbay_middleware::Toolbox;

/// Which workspace to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BackendSpec {
    /// An in-memory workspace.
    State,
    /// A host directory (the current one when `None`).
    Fs(Option<PathBuf>),
    /// A Docker container.
    Docker,
}

/// A backend spec that is none of the known forms.
#[derive(Debug, thiserror::Error)]
#[error("unknown backend {0:?}: use state, fs, fs=DIR or docker")]
pub(crate) struct UnknownBackend(String);

impl std::str::FromStr for BackendSpec {
    type Err = UnknownBackend;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        match spec {
            "state" => Ok(BackendSpec::State),
            "fs" => Ok(BackendSpec::Fs(None)),
            "docker" => Ok(BackendSpec::Docker),
            other => match other.strip_prefix("fs=") {
                Some(dir) if !dir.is_empty() => Ok(BackendSpec::Fs(Some(PathBuf::from(dir)))),
                _ => Err(UnknownBackend(other.to_owned())),
            },
        }
    }
}

/// Runs the MCP server on the backend named by `backend_spec` until the
/// client disconnects.
pub(crate) async fn run(backend_spec: &str) -> Result<(), Box<dyn std::error::Error>> {
    let spec: BackendSpec = backend_spec.parse()?;
    let (toolbox, container) = open(&spec).await?;
    tracing::info!(backend = %backend_spec, "serving MCP on stdio");
    let served = McpServer::new(toolbox).serve_stdio().await;
    let removed = match container {
        Some(sandbox) => sandbox.shutdown().await,
        None => Ok(()),
    };
    if let Err(e) = removed {
        tracing::warn!(error = %e, "the sandbox container could not be removed");
    }
    served?;
    Ok(())
}

/// The toolbox for a backend spec, and the container to remove at the end.
type Opened = (Toolbox, Option<Arc<sandbay_docker::DockerSandbox>>);

/// Builds the toolbox for a backend spec.
async fn open(spec: &BackendSpec) -> Result<Opened, Box<dyn std::error::Error>> {
    match spec {
        BackendSpec::State => {
            let backend = Arc::new(sandbay_state::StateBackend::default());
            let toolbox =
                match jail(None).await {
                    Some(jail) => Toolbox::with_sandbox(Arc::new(
                        sandbay_state::StateSandbox::new("mcp-state", backend, jail),
                    )),
                    None => Toolbox::new(backend),
                };
            Ok((toolbox, None))
        }
        BackendSpec::Fs(dir) => {
            let dir = match dir {
                Some(dir) => dir.clone(),
                None => std::env::current_dir()?,
            };
            std::fs::create_dir_all(&dir).map_err(|e| {
                format!(
                    "cannot create the workspace directory {}: {e}",
                    dir.display()
                )
            })?;
            let root = sandbay_fs::open_root(&dir).await?;
            let fs = sandbay_fs::FsBackend::new(root);
            let toolbox = match jail(Some(&dir)).await {
                Some(jail) => Toolbox::with_sandbox(Arc::new(sandbay_fs::FsSandbox::new(
                    "mcp-fs", fs, dir, jail,
                ))),
                None => Toolbox::new(Arc::new(fs)),
            };
            Ok((toolbox, None))
        }
        BackendSpec::Docker => {
            let client = sandbay_docker::DockerClient::connect().await?;
            let config = crate::docker_config().with_owner("sandbay-mcp");
            let sandbox = Arc::new(sandbay_docker::DockerSandbox::create(&client, config).await?);
            let toolbox = Toolbox::with_sandbox(sandbox.clone());
            Ok((toolbox, Some(sandbox)))
        }
    }
}

/// A jail at the strongest level this host gives, or `None` (logged)
/// when it gives none. For an `fs` workspace at the `namespaces` level, a
/// root server runs commands as the directory's owner unless that is root.
async fn jail(workspace: Option<&std::path::Path>) -> Option<Jail> {
    let workspace = workspace.map(std::path::Path::to_path_buf);
    let made = tokio::task::spawn_blocking(move || {
        let level = Jail::probe();
        if level == Isolation::None {
            return Err(format!(
                "this host gives no jail level: {}",
                Jail::host_support()
                    .namespaces
                    .as_deref()
                    .unwrap_or("unknown")
            ));
        }
        let config = JailConfig::new(level);
        // A fixed identity needs a root server: elsewhere it is refused and
        // the automatic one (the server's own uid) is used.
        if level == Isolation::Namespaces
            && let Some(owner) = workspace.as_deref().and_then(owner_of)
            && let Ok(jail) = Jail::new(JailConfig {
                identity: owner,
                ..config.clone()
            })
        {
            return Ok(jail);
        }
        Jail::new(config).map_err(|e| e.to_string())
    })
    .await;
    match made {
        Ok(Ok(jail)) => {
            tracing::info!(
                isolation = jail.isolation().as_str(),
                "execute runs in a local jail"
            );
            Some(jail)
        }
        Ok(Err(why)) => {
            tracing::warn!("execute is not offered: {why}");
            None
        }
        Err(_) => None,
    }
}

/// The owner of a directory as a fixed jail identity, unless it is root.
fn owner_of(dir: &std::path::Path) -> Option<Identity> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(dir).ok()?;
    (meta.uid() != 0 && meta.gid() != 0).then(|| Identity::Fixed {
        uid: meta.uid(),
        gid: meta.gid(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        assert_eq!("state".parse::<BackendSpec>().unwrap(), BackendSpec::State);
        assert_eq!("fs".parse::<BackendSpec>().unwrap(), BackendSpec::Fs(None));
        assert_eq!(
            "fs=/tmp/ws".parse::<BackendSpec>().unwrap(),
            BackendSpec::Fs(Some(PathBuf::from("/tmp/ws")))
        );
        assert_eq!(
            "docker".parse::<BackendSpec>().unwrap(),
            BackendSpec::Docker
        );
        for bad in ["", "fs=", "memory", "FS"] {
            let err = bad.parse::<BackendSpec>().unwrap_err();
            assert!(
                err.to_string().contains("use state, fs, fs=DIR or docker"),
                "{err}"
            );
        }
    }
}
