//! One container per user for sandbay (bollard): limits, no network,
//! non-root, nothing leaked.
//!
//! [`DockerSandbox`] implements [`sandbay_core::Sandbox`] with one Docker
//! container per sandbox, made from a [`DockerConfig`] whose defaults are
//! the safe ones: memory limit with swap pinned, half a CPU, a process
//! limit, no network, a read-only root filesystem, every capability
//! dropped, `no-new-privileges`, an unprivileged user, an init as PID 1, a
//! size-capped private `/tmp`, and labels naming sandbay, the owner and
//! the creation time. [`reap_orphans`] removes what a crashed process
//! left; [`ensure_image`] checks and pulls images with progress events.
//!
//! # Dependencies and why
//!
//! * `sandbay-core`: the contract and the shared text rules (windowing,
//!   edit, glob, grep), so results match every other backend byte for byte.
//! * `sandbay-fs`: host-side file operations on bind-mounted workspaces,
//!   through a `cap_std` capability that nothing in the container can
//!   lead out.
//! * `bollard`: the Docker Engine API client (unix socket and TCP).
//! * `tokio`, `futures-util`: the async runtime and the attached streams.
//! * `async-trait`: the object-safe async traits of the contract.
//! * `nix`: `setfsuid`/`setfsgid` for the threads that act as the sandbox
//!   user on the host, `fchmod`, `geteuid`.
//! * `sandbay-exec`: the uid lease pool ([`CONTAINER_UID_RANGE`]'s leases
//!   share their code with the local jail's), and the hand-over of an
//!   attached workspace's files to a container's uid.
//! * `sandbay-agent`: the framed protocol spoken with the in-container
//!   agent that runs every command.
//! * `uuid`: random sandbox ids.
//! * `thiserror`: the internal daemon error type; `tracing`: logs.
#![doc = include_str!("../docs.md")]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod client;
mod config;
mod exec;
mod files;
mod image;
mod labels;
mod reap;
mod sandbox;
mod slots;
mod stream;
mod uid;

pub use client::{DEFAULT_API_TIMEOUT, DockerClient};
pub use config::{DEFAULT_IMAGE, DEFAULT_USER, DockerConfig, FileMode, PullPolicy, WORKSPACE};
pub use image::{PullEvent, ensure_image, pull};
pub use labels::{CREATED, MANAGED, OWNER, PROCESS, SANDBOX};
pub use reap::{ReapOptions, ReapReport, ReapScope, reap_orphans};
pub use sandbox::DockerSandbox;
pub use slots::{AttachMode, SlotsReaped, WorkspaceSlots};
pub use uid::CONTAINER_UID_RANGE;
