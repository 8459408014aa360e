//! The sandbay command line.
//!
//! ```text
//! sandbay demo                        the requirement's multi-user scenario, measured live
//! sandbay mcp --backend state|fs[=DIR]|docker   an MCP server over stdio with the agent tools
//! sandbay serve [--config FILE] [--listen ADDR] [--data DIR] [--keys FILE] [--backend state|fs=DIR|docker]
//!                                     the multi-user service over HTTP
//! sandbay keys add USER [--keys FILE] a new API key, printed once
//! ```
#![forbid(unsafe_code)]

mod demo;
mod mcp;
mod serve;

use std::process::ExitCode;

/// The environment variable naming the image of Docker sandboxes
/// (default [`sandbay_docker::DEFAULT_IMAGE`]).
pub(crate) const IMAGE_VAR: &str = "SANDBAY_IMAGE";

/// The Docker settings the commands start from: the defaults, with the
/// image from `SANDBAY_IMAGE` when it is set.
pub(crate) fn docker_config() -> sandbay_docker::DockerConfig {
    let config = sandbay_docker::DockerConfig::default();
    match std::env::var(IMAGE_VAR) {
        Ok(image) if !image.trim().is_empty() => config.with_image(image.trim()),
        _ => config,
    }
}

use clap::{Parser, Subcommand};

/// Isolated workspaces for AI agents.
#[derive(Debug, Parser)]
#[command(name = "sandbay", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the multi-user scenario on every available backend and print
    /// what is isolated, measured live.
    Demo,
    /// Serve the agent tools for one workspace as an MCP server over stdio.
    Mcp {
        /// The workspace: `state` (in memory, gone when the client
        /// leaves), `fs` (the current directory, jailed), `fs=DIR` (that
        /// directory, created if missing) or `docker` (a fresh container,
        /// removed when the client leaves; its image is `SANDBAY_IMAGE`,
        /// default `busybox:1.37`).
        #[arg(long, default_value = "state")]
        backend: String,
    },
    /// Serve every user's workspaces over HTTP (API keys, one session
    /// store, commands in the local jail). Stops on SIGTERM or SIGINT
    /// after writing every change to disk.
    Serve(serve::ServeArgs),
    /// Manage the API keys of `sandbay serve`.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Make a key for USER and add its digest to the keys file; the key
    /// is printed once, alone on the last line.
    Add {
        /// The user the key acts for.
        user: String,
        /// The keys file (default: `SANDBAY_KEYS`, else `DATA/keys`).
        #[arg(long)]
        keys: Option<std::path::PathBuf>,
        /// The data directory (default: `SANDBAY_DATA`, else `./sandbay-data`).
        #[arg(long)]
        data: Option<std::path::PathBuf>,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sandbay: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::Demo => match runtime.block_on(demo::run()) {
            Ok(table) => {
                println!("{table}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("sandbay demo: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Mcp { backend } => match runtime.block_on(mcp::run(&backend)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("sandbay mcp: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Serve(args) => match runtime.block_on(serve::run(args)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("sandbay serve: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Keys {
            command: KeysCommand::Add { user, keys, data },
        } => match serve::add_key(&user, keys, data) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("sandbay keys: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
