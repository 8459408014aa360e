//! The sandbay contract.
//!
//! `sandbay-core` defines what every sandbay backend is: a workspace of
//! files addressed by validated virtual paths ([`VPath`]), operated on
//! through the object-safe [`Backend`] trait, and, for backends that can
//! run commands, [`Sandbox`]. It also holds the shared text rules
//! ([`text`]): read windowing, exact-string edits, glob and grep matching,
//! so every backend answers byte for byte the same.
//!
//! It performs no I/O of its own and pulls in no runtime.
//!
//! # Errors
//!
//! Every failure is an [`Error`] with a stable [`ErrorCode`]
//! (`not_found`, `invalid_path`, `ambiguous_match`, ...). Messages are
//! meant for a language model and never contain a host path.
//!
//! # Example
//!
//! ```
//! use sandbay_core::{VPath, Error};
//!
//! let p = VPath::parse("notes/../todo.md")?;
//! assert_eq!(p.as_str(), "/todo.md");
//! let err: Error = VPath::parse("../../etc/passwd").unwrap_err().into();
//! assert_eq!(err.code().as_str(), "invalid_path");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod backend;
mod error;
mod lines;
mod path;
mod stream;
pub mod text;
mod types;

pub use backend::{Backend, BackendExt, DynBackend, DynSandbox, Sandbox, clear_listed};
pub use error::{Error, ErrorCode, Result};
pub use lines::Lines;
pub use path::{MAX_COMPONENT_BYTES, MAX_PATH_BYTES, PathError, PathErrorKind, VPath};
pub use stream::{ExecEvent, ExecExit, ExecStream};
pub use types::*;

/// Re-export so backends implement the traits with the same macro version.
pub use async_trait::async_trait;
/// Re-export of the `Stream` trait's crate, so a backend builds an
/// [`ExecStream`] without naming it as a dependency of its own.
pub use futures_core;
