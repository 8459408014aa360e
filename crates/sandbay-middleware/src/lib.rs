//! Agent tools over any sandbay workspace.
//!
//! A [`Toolbox`] binds the tools an agent works with to one workspace (any
//! [`sandbay_core::Backend`], or a [`sandbay_core::Sandbox`] to offer
//! `execute` too). It is framework-agnostic: hand [`Toolbox::specs`] to a
//! model, pass each tool call it makes to [`Toolbox::call`] (or
//! [`Toolbox::call_batch`] for parallel calls), and give the
//! [`ToolOutput`] text back.
//!
//! | tool | arguments | does |
//! |---|---|---|
//! | `ls` | `path` | lists a directory |
//! | `read_file` | `file_path`, `offset`, `limit` | numbered lines, `cat -n` style |
//! | `write_file` | `file_path`, `content` | creates or overwrites a file |
//! | `edit_file` | `file_path`, `old_string`, `new_string`, `replace_all` | replaces exact text |
//! | `delete` | `file_path` | removes a file or a directory tree |
//! | `glob` | `pattern`, `path` | finds files by name |
//! | `grep` | `pattern`, `path`, `glob`, `output_mode`, ... | searches contents |
//! | `execute` | `command`, `timeout` | runs a shell command (sandboxes only) |
//!
//! # Texts for models
//!
//! Every text is a pure function of the backend's answer, and the
//! backends share sandbay-core's text rules, so one call gives the same
//! text on every backend. Failures read `Error: <message>` with
//! `is_error: true`, sometimes followed by a `Hint:` line (a near match
//! for a failed edit, the lines of an ambiguous one). Messages come from
//! [`sandbay_core::Error`] and never contain a host path.
//!
//! Results over [`ToolConfig::max_output_bytes`] are saved in the
//! workspace under `/.sandbay/results/` and the model gets the first and
//! last lines and the path to page through with `read_file`. `glob` and
//! `grep` search around that directory (so saved results never use up
//! their limits) unless the search starts inside it, and only the 32 most
//! recently saved results are kept.
//!
//! # Example
//!
//! ```
//! # async fn demo(backend: std::sync::Arc<dyn sandbay_core::Backend>) {
//! use sandbay_middleware::Toolbox;
//! use serde_json::json;
//!
//! let tools = Toolbox::new(backend);
//! for spec in tools.strict_specs() {
//!     println!("{}: {}", spec.name, spec.parameters);
//! }
//! let out = tools
//!     .call("grep", json!({"pattern": "TODO", "output_mode": "content"}))
//!     .await;
//! assert!(!out.is_error || out.text.starts_with("Error: "));
//! # }
//! ```
//!
//! # Dependencies
//!
//! * `sandbay-core`: the backend traits, paths, errors and text rules;
//! * `schemars`: JSON Schemas generated from the argument structs;
//! * `serde`, `serde_json`: arguments in, specs and outputs out;
//! * `serde_path_to_error`: argument errors that name the field;
//! * `futures-util`: runs a batch of calls concurrently;
//! * `sha2`: content-derived names for saved oversized results;
//! * `tracing`: one debug event per call;
//! * `tokio` (`rt`): builds the edit hints of large files on the blocking
//!   pool, off the async threads;
//! * `rig-core` (feature `rig`): the tools as rig tools.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod args;
mod batch;
mod budget;
mod config;
mod describe;
mod format;
mod hints;
mod output;
#[cfg(feature = "rig")]
pub mod rig;
mod rotate;
mod scope;
mod spec;
mod toolbox;
mod tools;

pub use config::{ToolConfig, default_results_dir};
pub use output::ToolOutput;
pub use spec::{ToolName, ToolSpec};
pub use toolbox::Toolbox;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
