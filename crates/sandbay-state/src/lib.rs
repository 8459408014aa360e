//! In-memory, serialisable per-session workspaces for sandbay.
//!
//! [`StateBackend`] implements [`sandbay_core::Backend`] over a tree held
//! in memory: one per agent session, cheap to create, fully isolated from
//! every other by construction. It behaves like a small POSIX filesystem
//! so that the same operations give the same results (and the same errors)
//! as the disk backend `sandbay-fs`; both run the conformance suite of
//! `sandbay-testkit`, and a model test compares them on random operation
//! sequences.
//!
//! * **Files and directories**: directories are explicit nodes and stay
//!   after their last file is deleted; `write` and `upload` create
//!   parents; `ls` sorts by name; errors name the requested virtual path.
//! * **Atomic changes**: every write, edit and delete is built completely
//!   and swapped in under the workspace lock.
//! * **Text rules** from [`sandbay_core::text`]: read windows bounded by
//!   [`sandbay_core::Limits::max_window_bytes`], edits refused with
//!   `too_large` above [`sandbay_core::Limits::max_text_file_bytes`],
//!   grep skipping such files, glob with the shared matcher.
//! * **Quota**: [`StateConfig::max_total_bytes`] caps the sum of file
//!   sizes; an operation that would exceed it fails with `too_large` and
//!   writes nothing.
//! * **Snapshots**: [`StateBackend::snapshot`] gives a [`Snapshot`] that
//!   serialises with serde and is JSON safe (text as strings, other bytes
//!   as base64); [`StateBackend::restore`] brings it back byte for byte.
//! * **Store**: [`StateStore`] hands out one backend per user and session.
//!
//! Commands cannot run yet: the capabilities say `execute: false`.
//!
//! # Example
//!
//! ```
//! # async fn demo() -> sandbay_core::Result<()> {
//! use sandbay_core::{Backend, EditRequest, GlobRequest, VPath};
//! use sandbay_state::{StateBackend, StateStore};
//!
//! let store = StateStore::default();
//! let ws = store.session("user-a", "session-1");
//! let path = VPath::parse("/src/main.py")?;
//! ws.write(&path, "print('hello')\n").await?;
//! let edit = EditRequest { old: "hello".into(), new: "world".into(), replace_all: false };
//! assert_eq!(ws.edit(&path, &edit).await?.replacements, 1);
//! assert_eq!(ws.glob(&GlobRequest::new("*.py")).await?.paths, [path.clone()]);
//!
//! // Snapshots survive JSON, binary files included.
//! let json = serde_json::to_string(&ws.snapshot()).unwrap();
//! let copy = StateBackend::restore(serde_json::from_str(&json).unwrap())?;
//! assert_eq!(copy.snapshot(), ws.snapshot());
//! # Ok(()) }
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(demo()).unwrap();
//! ```
//!
//! # Dependencies
//!
//! * `sandbay-core`: the contract (traits, paths, errors, text rules);
//! * `serde`: snapshots and configuration are serde types;
//! * `base64`: binary file content inside JSON-safe snapshots;
//! * `tracing`: debug events for session lifecycle and quota refusals.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod backend;
mod config;
#[cfg(feature = "exec")]
mod exec;
mod snapshot;
mod store;
mod tree;

pub use backend::StateBackend;
pub use config::StateConfig;
#[cfg(feature = "exec")]
pub use exec::{DEFAULT_MAX_SYNC_BYTES, MAX_SYNC_ENTRIES, NOTE_PREFIX, StateSandbox};
pub use snapshot::{SNAPSHOT_FORMAT, Snapshot, SnapshotEntry};
pub use store::StateStore;
