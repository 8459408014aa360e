//! `sandbay serve` and `sandbay keys add`: the multi-user service.
//!
//! Configuration comes from a TOML file (`--config`), then environment
//! variables, then flags, each overriding the one before:
//!
//! | setting | file key | environment | flag | default |
//! |---|---|---|---|---|
//! | listen address | `listen` | `SANDBAY_LISTEN` | `--listen` | `127.0.0.1:7878` |
//! | data directory | `data` | `SANDBAY_DATA` | `--data` | `./sandbay-data` |
//! | backend: `state`, `fs=DIR`, `docker` | `backend` | `SANDBAY_BACKEND` | `--backend` | `state` |
//! | keys file | `keys` | `SANDBAY_KEYS` | `--keys` | `DATA/keys` |
//! | admin key | | `SANDBAY_ADMIN_KEY` | | none |
//! | limits | `[limits]` | | | see `sandbay_server::ServerLimits` |
//! | connections | `[connections]` | | | see `sandbay_server::ConnectionLimits` |
//! | Docker backend | `[docker]` | `DOCKER_HOST`, `SANDBAY_AGENT` | | see `sandbay_server::DockerSettings` |

use std::net::SocketAddr;
use std::path::PathBuf;

use sandbay_server::{BackendChoice, Server, ServerConfig};

/// Flags of `sandbay serve`.
#[derive(Debug, Default, clap::Args)]
pub(crate) struct ServeArgs {
    /// A TOML configuration file.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Data directory: the users' files and the keys file.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Where files live and commands run: `state`, `fs=DIR` or `docker`.
    #[arg(long)]
    backend: Option<BackendChoice>,
    /// The keys file.
    #[arg(long)]
    keys: Option<PathBuf>,
}

/// The configuration in force: file, then environment, then flags.
pub(crate) fn config(args: &ServeArgs) -> Result<ServerConfig, String> {
    let mut config = match &args.config {
        Some(path) => ServerConfig::from_file(path)?,
        None => ServerConfig::default(),
    };
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if let Some(v) = env("SANDBAY_LISTEN") {
        config.listen = v.parse().map_err(|e| format!("SANDBAY_LISTEN={v}: {e}"))?;
    }
    if let Some(v) = env("SANDBAY_DATA") {
        config.data = v.into();
    }
    if let Some(v) = env("SANDBAY_BACKEND") {
        config.backend = v.parse()?;
    }
    if let Some(v) = env("SANDBAY_IMAGE") {
        config.docker.image = v;
    }
    if let Some(v) = env("SANDBAY_KEYS") {
        config.keys = Some(v.into());
    }
    config.admin_key = env("SANDBAY_ADMIN_KEY");
    if let Some(v) = args.listen {
        config.listen = v;
    }
    if let Some(v) = &args.data {
        config.data = v.clone();
    }
    if let Some(v) = &args.backend {
        config.backend = v.clone();
    }
    if let Some(v) = &args.keys {
        config.keys = Some(v.clone());
    }
    Ok(config)
}

/// Runs the server until SIGTERM or SIGINT, then finishes the requests in
/// progress and writes every change to disk.
pub(crate) async fn run(args: ServeArgs) -> Result<(), String> {
    let config = config(&args)?;
    let listen = config.listen;
    let keys = config.keys_path();
    let server = Server::open(config).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    // The first line a supervisor or a test can wait for.
    println!(
        "sandbay serve: listening on http://{local} (keys: {})",
        keys.display()
    );
    server
        .serve(listener, shutdown_signal())
        .await
        .map_err(|e| e.to_string())?;
    println!("sandbay serve: stopped; every change is on disk");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // no signal handling: run until killed
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("shutting down");
}

/// `sandbay keys add USER`: prints the new key alone on the last line.
pub(crate) fn add_key(
    user: &str,
    keys: Option<PathBuf>,
    data: Option<PathBuf>,
) -> Result<(), String> {
    let mut config = ServerConfig::default();
    if let Some(v) = std::env::var_os("SANDBAY_DATA") {
        config.data = v.into();
    }
    if let Some(v) = std::env::var_os("SANDBAY_KEYS") {
        config.keys = Some(v.into());
    }
    if let Some(d) = data {
        config.data = d;
    }
    if let Some(k) = keys {
        config.keys = Some(k);
    }
    let path = config.keys_path();
    let key = sandbay_server::auth::add_key(&path, user).map_err(|e| e.to_string())?;
    eprintln!(
        "sandbay keys: a key for {user} was added to {}; it is shown once:",
        path.display()
    );
    println!("{key}");
    Ok(())
}
