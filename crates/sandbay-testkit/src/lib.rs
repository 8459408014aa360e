//! Conformance and attack suites every sandbay backend runs.
//!
//! * [`conformance`]: the contract of [`sandbay_core::Backend`] as one
//!   public async function per behaviour (`read_crlf_terminators_are_removed`,
//!   `delete_root_is_permission_denied`, ...), each a straight script of
//!   operations and assertions over a [`Fixture`]. The
//!   [`conformance_tests!`] macro turns the whole registry into one
//!   `#[test]` per case for a backend factory, so a new case reaches every
//!   backend and a failure names the behaviour.
//! * [`model`]: a proptest model test: random operation sequences run on
//!   two backends must give equal results, errors included.
//! * [`attack`]: escapes, special files and races against disk backends.
//! * [`isolation`]: users A and B on one host, each with a sandbox: what A
//!   runs (`ps`, `rm -rf /tmp/*`, a fork bomb, a memory hog, network and
//!   file probes) must not reach B or the host;
//!   [`isolation_tests!`] makes the tests.
//! * [`quota`]: a workspace's disk quota filled through the file API and
//!   commands: a clean refusal, nothing lost, room again after a delete.
//! * [`skip`]: honest skips; the one place that reads `CI`.
//! * [`docker`]: the run-time Docker gate (daemon and image) of the
//!   Docker suites.
//!
//! # Example
//!
//! In a backend crate's `tests/conformance.rs`:
//!
//! ```ignore
//! use sandbay_testkit::{Fixture, conformance_tests};
//! use sandbay_state::StateBackend;
//!
//! conformance_tests!(async { Fixture::new(StateBackend::default()) });
//! ```
//!
//! A disk backend adds its temp dir as guard and host root, so every case
//! also checks that no error message names the host directory:
//!
//! ```ignore
//! conformance_tests!(async {
//!     let dir = tempfile::tempdir().unwrap();
//!     let backend = make_backend(dir.path());
//!     Fixture::new(backend).host_root(dir.path()).guard(dir)
//! });
//! ```
//!
//! # Dependencies
//!
//! * `sandbay-core`: the contract under test;
//! * `tokio`: the runtime the generated tests run on, tasks for the
//!   concurrency cases, a loopback listener for the network case;
//! * `tempfile`: labelled host files and directories the cases plant
//!   (secrets, markers) and remove again;
//! * `proptest`: operation-sequence strategies and shrinking for the model test.
#![deny(missing_docs)]
// The attack module may allow `unsafe` locally for a syscall, with
// `// SAFETY:` notes; everything else is safe code.
#![deny(unsafe_code)]

pub mod attack;
pub mod conformance;
pub mod docker;
mod fixture;
pub mod isolation;
pub mod model;
pub mod mounts;
pub mod quota;
pub mod skip;

pub use fixture::Fixture;

/// Runs a future to completion on a fresh multi-threaded runtime.
///
/// The generated conformance tests use it, so backend crates need no
/// runtime setup of their own.
///
/// # Panics
///
/// If the runtime cannot be built (no threads can be spawned).
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime for the test")
        .block_on(future)
}
