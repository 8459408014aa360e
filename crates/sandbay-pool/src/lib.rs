//! Warm pools of sandbay sandboxes and a per-user registry: bounded,
//! reset on release, nothing leaked.
//!
//! A multi-user agent service should not make its users wait for a
//! container to start, should not let one user see what the previous
//! user of a sandbox left, and should not grow without bound. This crate
//! gives it:
//!
//! * [`Pool`]: sandboxes made ahead of need ([`PoolConfig::min_idle`]),
//!   at most [`PoolConfig::max_size`] alive, [`Pool::acquire`] with a
//!   timeout, and a [`Lease`] guard that gives the sandbox back when
//!   dropped. A returned sandbox is [reset](SandboxFactory::reset) in the
//!   background before anyone gets it again, and destroyed instead when
//!   the reset fails or it is worn out ([`PoolConfig::max_uses`],
//!   [`PoolConfig::max_age`]).
//! * [`Registry`]: one sandbox per user, the same on every call, released
//!   explicitly, after an idle timeout ([`Registry::spawn_reaper`]), or,
//!   when the pool is full and a new user arrives, as the least recently
//!   used user that nobody is serving right now.
//! * [`SandboxFactory`]: what a pool needs to make, reset and destroy a
//!   sandbox of any backend; [`sandbay_core::Backend::clear`] is the
//!   file part of a reset for any backend. With the `docker` feature,
//!   [`DockerFactory`] pools containers from `sandbay-docker`.
//!
//! # Why it is hand-written
//!
//! General object pools (deadpool, bb8) recycle an object when it is next
//! checked out, on the caller's path, and keep no minimum of idle objects.
//! Here a reset (killing processes, wiping files) is the expensive part,
//! so it runs in the background as soon as a sandbox is returned, and
//! `min_idle` sandboxes are kept ready; the pool itself is a semaphore, a
//! queue and a notifier.
//!
//! # Dependencies and why
//!
//! * `sandbay-core`: the backend contract and its error type.
//! * `sandbay-docker` (feature `docker`): the containers [`DockerFactory`] makes.
//! * `tokio`: the semaphore, notifier, timers and background tasks.
//! * `async-trait`: the object-safe async [`SandboxFactory`] trait.
//! * `futures-util`: destroying idle sandboxes concurrently at shutdown.
//! * `thiserror`: [`PoolError`]; `tracing`: logs.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

#[cfg(feature = "docker")]
mod docker;
mod error;
mod factory;
mod pool;
mod registry;

#[cfg(feature = "docker")]
pub use docker::{DockerFactory, POOL_OWNER};
pub use error::PoolError;
pub use factory::SandboxFactory;
pub use pool::{Lease, Pool, PoolConfig, PoolStatus, Recycled};
pub use registry::{Reaper, Registry, RegistryConfig, UserSandbox};
