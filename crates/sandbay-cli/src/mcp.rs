//! `sandbay mcp --backend state|fs[=DIR]|docker`: serves the agent tools
//! of one workspace to an MCP client over standard input and output.
//!
//! * `state`: a fresh in-memory workspace that lives as long as the
//!   server;
//! * `fs`: the current directory; `fs=DIR`: the directory `DIR` (created
//!   if missing); every file operation stays inside it;
//! * `docker`: a fresh container from the default image (see
//!   `sandbay_docker::DockerConfig`), with `execute`; it is removed when
//!   the client disconnects (and by the daemon if this process dies).
//!
//! Standard output carries the protocol; logs go to standard error.

use std::path::PathBuf;
use std::sync::Arc;

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
        BackendSpec::State => Ok((
            Toolbox::new(Arc::new(sandbay_state::StateBackend::default())),
            None,
        )),
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
            Ok((
                Toolbox::new(Arc::new(sandbay_fs::FsBackend::new(root))),
                None,
            ))
        }
        BackendSpec::Docker => {
            let client = sandbay_docker::DockerClient::connect().await?;
            let config = sandbay_docker::DockerConfig::default().with_owner("sandbay-mcp");
            let sandbox = Arc::new(sandbay_docker::DockerSandbox::create(&client, config).await?);
            let toolbox = Toolbox::with_sandbox(sandbox.clone());
            Ok((toolbox, Some(sandbox)))
        }
    }
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
