//! Isolated workspaces for AI agents: files and a shell per user, with the
//! isolation, limits and clean-up a multi-user service needs.
//!
//! This crate is a thin facade: it re-exports the contract
//! ([`sandbay_core`]) and, behind features, each backend crate, so an
//! application depends on one crate and picks what it needs.
//!
//! | feature | default | re-export | what it is |
//! |---|---|---|---|
//! | `state` | yes | [`state`] | files in memory per session, serialisable |
//! | `fs` | yes | [`fs`] | one host directory per user, jailed by capabilities |
//! | `exec` | no | `exec` | the local process jail behind `execute` |
//! | `docker` | no | `docker` | one container per user |
//! | `pool` | no | `pool` | warm pools and a per-user registry (with `docker`: pooled containers) |
//! | `middleware` | no | `middleware` | agent tools with JSON schemas |
//! | `mcp` | no | `mcp` | the agent tools as an MCP server over stdio |
//! | `full` | no | all of the above | |
//!
//! # Example
//!
//! ```
//! # #[cfg(feature = "state")]
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use sandbay::{Backend, VPath, ReadRequest};
//!
//! let store = sandbay::state::StateStore::default();
//! let alice = store.session("alice", "s1");
//! let bob = store.session("bob", "s1");
//! let path = VPath::parse("/notes.txt")?;
//! alice.write(&path, "hello\n").await?;
//! let window = alice.read(&path, ReadRequest::default()).await?;
//! assert_eq!(window.lines, ["hello"]);
//! // another user's workspace does not have it
//! assert_eq!(bob.read(&path, ReadRequest::default()).await.unwrap_err().code().as_str(), "not_found");
//! # Ok::<(), sandbay::Error>(())
//! # }).unwrap();
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub use sandbay_core::*;

#[cfg(feature = "state")]
#[doc(inline)]
pub use sandbay_state as state;

#[cfg(feature = "fs")]
#[doc(inline)]
pub use sandbay_fs as fs;

#[cfg(feature = "exec")]
#[doc(inline)]
pub use sandbay_exec as exec;

#[cfg(feature = "docker")]
#[doc(inline)]
pub use sandbay_docker as docker;

#[cfg(feature = "pool")]
#[doc(inline)]
pub use sandbay_pool as pool;

#[cfg(feature = "middleware")]
#[doc(inline)]
pub use sandbay_middleware as middleware;

#[cfg(feature = "mcp")]
#[doc(inline)]
pub use sandbay_mcp as mcp;

/// The top-level README's Rust examples, compiled as doctests
/// (`cargo test -p sandbay --features full --doc`; `cargo xtask test` runs
/// it). The Docker ones are `no_run`: they need a daemon.
#[cfg(all(
    doctest,
    feature = "state",
    feature = "fs",
    feature = "docker",
    feature = "pool"
))]
#[doc = include_str!("../../../README.md")]
mod readme {}
