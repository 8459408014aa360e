//! Warm pools of sandbay sandboxes and a per-user registry: bounded,
//! every sandbox fresh, nothing leaked.
//!
//! A multi-user agent service should not make its users wait for a
//! container to start, should never let one user reach anything another
//! user left in a sandbox, and should not grow without bound. This crate
//! gives it:
//!
//! * [`Pool`]: fresh sandboxes made ahead of need
//!   ([`PoolConfig::min_idle`]), at most [`PoolConfig::max_size`] alive,
//!   [`Pool::acquire`] with a timeout, and a [`Lease`] guard. Each sandbox
//!   serves one lease: when it ends, the sandbox is
//!   [destroyed](SandboxFactory::destroy) in the background and a fresh
//!   one is made to take its place. No sandbox is ever handed from one
//!   user to another, so nothing needs resetting.
//! * [`Registry`]: one sandbox per user's session, the same on every call
//!   while the session holds it (sticky), ended explicitly, after an idle
//!   timeout ([`Registry::spawn_reaper`]), or, when the pool is full and a
//!   newcomer arrives, for the least recently used session that nobody is
//!   serving right now. A user who comes back after that gets a fresh
//!   sandbox.
//! * [`Storage`]: workspaces that outlive compute. The registry joins each
//!   fresh sandbox to the session's workspace ([`Storage::attach`]);
//!   release and eviction end the compute and keep the files, and only
//!   [`Registry::remove`] deletes them. [`StateStorage`] (feature `state`)
//!   keeps durable state sessions, [`FsStorage`] (feature `fs`) workspaces
//!   of a [`sandbay_fs::WorkspaceStore`] on disk, both on pooled jails
//!   ([`JailFactory`], feature `exec`); [`Ephemeral`] keeps nothing (the
//!   sandbox's own files end with it), for sandboxes that hold their files
//!   themselves.
//! * [`SandboxFactory`]: what a pool needs to make and destroy a sandbox
//!   of any backend. With the `docker` feature, [`DockerFactory`] pools
//!   containers from `sandbay-docker`.
//!
//! # Why it is hand-written
//!
//! General object pools (deadpool, bb8) recycle objects: they hand a
//! returned object to the next caller. Here a returned sandbox must never
//! reach another caller, it must be destroyed off the caller's path, and
//! its place must count against the bound until the destruction is done;
//! `min_idle` fresh sandboxes are kept ready. The pool itself is a
//! semaphore, a queue and a notifier.
//!
//! # Dependencies and why
//!
//! * `sandbay-core`: the backend contract and its error type.
//! * `sandbay-docker` (feature `docker`): the containers [`DockerFactory`] makes.
//! * `sandbay-exec` (feature `exec`): the jails [`JailFactory`] makes.
//! * `sandbay-fs` (feature `fs`): the workspace store behind [`FsStorage`].
//! * `sandbay-state` (feature `state`): the durable sessions behind [`StateStorage`].
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
#[cfg(feature = "fs")]
mod fs;
#[cfg(feature = "exec")]
mod jail;
mod pool;
mod registry;
#[cfg(feature = "state")]
mod state;
mod storage;

#[cfg(feature = "docker")]
pub use docker::{
    DockerFactory, DockerStorage, DockerWorkspace, POOL_OWNER, PooledContainer, WarmDockerFactory,
};
pub use error::PoolError;
pub use factory::SandboxFactory;
#[cfg(feature = "fs")]
pub use fs::{FsStorage, FsWorkspace};
#[cfg(feature = "exec")]
pub use jail::JailFactory;
pub use pool::{Lease, Pool, PoolConfig, PoolStatus};
pub use registry::{DEFAULT_SESSION, Reaper, Registry, RegistryConfig, UserSandbox};
#[cfg(feature = "state")]
pub use state::{StateStorage, StateWorkspace};
pub use storage::{Attached, Ephemeral, Storage, WorkspaceKey};
