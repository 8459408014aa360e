//! A Model Context Protocol server for one sandbay workspace.
//!
//! [`McpServer`] exposes the tools of a [`sandbay_middleware::Toolbox`]
//! over MCP (stdio, or any byte stream pair): `ls`, `read_file`,
//! `write_file`, `edit_file`, `delete`, `glob`, `grep`, and `execute` when
//! the toolbox was built over a sandbox. The texts the model reads, and
//! `isError` for failures, are exactly the toolbox's, so an agent sees
//! the same thing through MCP as through any other integration.
//!
//! Calls run concurrently as they arrive; two concurrent calls that change
//! one path are not both run (see
//! [`sandbay_middleware::Toolbox::call_guarded`]).
//!
//! ```no_run
//! use std::sync::Arc;
//! use sandbay_middleware::Toolbox;
//! use sandbay_mcp::McpServer;
//!
//! # async fn demo(backend: Arc<dyn sandbay_core::Backend>) -> Result<(), sandbay_mcp::ServeError> {
//! McpServer::new(Toolbox::new(backend)).serve_stdio().await
//! # }
//! ```
//!
//! The `sandbay mcp --backend state|fs[=DIR]|docker` command of
//! `sandbay-cli` runs this server; a desktop or CLI agent starts it as a
//! stdio MCP server (see the README for a configuration snippet).
//!
//! # Dependencies
//!
//! * `rmcp`: the official Rust MCP SDK (protocol, stdio transport);
//! * `sandbay-middleware`: the tools, their schemas and texts;
//! * `sandbay-core`: the backend traits;
//! * `serde_json`: tool arguments and schemas;
//! * `tokio`: the async I/O the transport runs on;
//! * `thiserror`: [`ServeError`]; `tracing`: session start and end logs.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod error;
mod server;

pub use error::ServeError;
pub use server::{McpServer, call_result};

/// The README's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
