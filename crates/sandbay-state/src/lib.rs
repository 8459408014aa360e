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
//!   sizes; an operation that would exceed it fails with `quota_exceeded`
//!   and writes nothing.
//! * **Snapshots**: [`StateBackend::snapshot`] gives a [`Snapshot`] that
//!   serialises with serde and is JSON safe (text as strings, other bytes
//!   as base64); [`StateBackend::restore`] brings it back byte for byte.
//! * **Store**: [`StateStore`] hands out one backend per user and session.
//! * **Durable sessions** (default `persist` feature): [`StateStore::open`]
//!   keeps each session in a checksummed file under a data directory,
//!   loaded on first use and written behind its changes within a bounded
//!   window ([`WriteBehind`]); see [`StateStore`] for what a crash can
//!   lose.
//!
//! A [`StateBackend`] alone cannot run commands (its capabilities say
//! `execute: false`); with the default `exec` feature a [`StateSandbox`]
//! can.
//!
//! # Running commands
//!
//! [`StateSandbox`] wraps a backend and a [`sandbay_exec::Jail`] of its
//! own ([`StateStore::sandbox`] makes one per user and session). Every
//! `execute`:
//!
//! 1. takes a snapshot of the workspace (shared bytes, no copy) and writes
//!    it into a new private scratch directory on the host
//!    (`sandbay-state-exec-<pid>-<random>`, mode 0700; where, see "Cost
//!    and limits");
//! 2. runs the command there in the jail (at `namespaces` the directory is
//!    `/workspace` and nothing else of the host is visible; see the
//!    `sandbay-exec` docs for each level);
//! 3. reads the directory back through a `cap_std` handle that never
//!    leaves it, and stores what the command created, changed and deleted,
//!    directories included, byte for byte, in one swap under the workspace
//!    lock: other readers see the workspace before or after, never half;
//! 4. removes the scratch directory, also when the command fails, times
//!    out, or the caller drops the future (then the jail kills the
//!    command and the directory goes at once, or as soon as blocking work
//!    on it stops at its next file).
//!
//! So a file written with `write` is what `cat` sees, and a file a command
//! makes is what `read` sees afterwards. Changes show up in the workspace
//! when the command ends, not while it runs; what a command changed before
//! its timeout, or before it failed, is kept like any other change. A run
//! that never started (a missing `workdir`, a jail that cannot start)
//! changes nothing, and neither does a dropped future.
//!
//! What is kept, and what is not:
//!
//! * **Symlinks a command makes are skipped**: this workspace cannot hold
//!   links, and the read-back never follows one (a link to `/etc/passwd`
//!   imports nothing). A path that became a link counts as deleted. Named
//!   pipes, sockets and devices are skipped too, and so are names that
//!   cannot be workspace paths (not UTF-8, backslashes, control
//!   characters). Each skip adds a note to the output's own
//!   [`notes`](sandbay_core::ExecOutput::notes) (never to its stderr, so a
//!   command cannot forge one), ten at most and then a count.
//! * **Modes and times are not kept**: files are written 0644 and
//!   directories 0755 for every run, with fresh timestamps; run scripts
//!   with `sh script.sh`, or `chmod +x` them in the same command.
//! * **Size**: when the files the command leaves add up to more than the
//!   workspace quota ([`StateConfig::max_total_bytes`]) or, without one,
//!   the sync limit ([`DEFAULT_MAX_SYNC_BYTES`],
//!   [`StateSandbox::with_max_sync_bytes`]), or count more than
//!   [`MAX_SYNC_ENTRIES`], **none** of the command's file changes are
//!   saved: the output, exit code and a note saying so are still returned.
//!   Reading back is bounded by that limit, so a command cannot make the
//!   host process read gigabytes.
//!
//! # Concurrent changes
//!
//! The workspace stays usable through the API while a command runs. When
//! the command ends, its changes are taken relative to the snapshot it
//! started with: **for every path the command created, changed or
//! deleted, its version wins; every other path keeps its current content**,
//! including what the API wrote meanwhile. Where both cannot hold (the API
//! put a file into a directory the command removed, or replaced a path by
//! another kind), the API's version is kept and a note says so. Up to the
//! jail's `max_concurrent` commands of one sandbox may run at once (more
//! wait for a place before their scratch copy is made, at most the jail's
//! `queue_timeout`, then fail with `unavailable`); each is merged by the
//! same rule when it ends.
//!
//! # Cost and limits
//!
//! Every run writes and reads back the whole workspace: fine for the light
//! sessions this backend is for, not for large trees (use `sandbay-fs`).
//! Where the scratch directory lives matters most. It goes to `/dev/shm`
//! when that is a tmpfs with room for the workspace plus its sync limit
//! and the jail caps its memory with a cgroup (root hosts with cgroup v1
//! `memory`; one cap for all the sandbox's runs together): the cgroup
//! then also caps what its commands can write there, since tmpfs pages
//! count as their memory. Otherwise it goes to
//! `std::env::temp_dir()`, on disk, which the jail does not cap beyond the
//! size of one file (`RLIMIT_FSIZE`); [`StateSandbox::with_scratch_dir`]
//! picks a directory explicitly. *Measured* on a 2-core VM (ext4 with
//! `discard` as `/tmp`), `execute("true")` at p50: empty workspace 2.3 ms
//! (the jail alone 2.2 ms); 100 files of 1 kB 3.9 ms in `/dev/shm`
//! (16 ms on disk); 1,000 files 20 ms (880 ms on disk); 5,000 files
//! 180 ms (2 s on disk).
//!
//! The sync limit bounds what is read back, not what is written. A host
//! process killed outright (`SIGKILL`) leaves its scratch directories
//! behind; they carry its pid in their name, and the next process removes
//! those of dead processes before its first command
//! ([`sweep_orphaned_scratch`]).
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
//!
//! With the `exec` feature (on by default):
//!
//! * `sandbay-exec`: the local jail commands run in;
//! * `tokio`: the blocking pool for the scratch directory's I/O;
//! * `tempfile`: the private scratch directory of a run;
//! * `cap-std`, `cap-fs-ext`: reading the scratch directory back through
//!   a handle that never leaves it and never follows a symlink;
//! * `libc`: the `O_NONBLOCK`/`O_NOCTTY` flags and errno numbers of that
//!   read-back.
//!
//! With the default `persist` feature (durable sessions):
//!
//! * `serde_json`: the body of a session file (the JSON [`Snapshot`]);
//! * `sha2`: the checksum that tells a damaged file from a good one;
//! * `tempfile`: the temporary file each atomic write renames into place;
//! * `thiserror`: [`LoadError`];
//! * `tokio`: the blocking pool for writes that a call waits for.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod backend;
mod config;
#[cfg(feature = "exec")]
mod exec;
#[cfg(feature = "persist")]
mod persist;
mod snapshot;
mod store;
mod tree;

pub use backend::StateBackend;
pub use config::StateConfig;
#[cfg(feature = "exec")]
pub use exec::{DEFAULT_MAX_SYNC_BYTES, MAX_SYNC_ENTRIES, StateSandbox, sweep_orphaned_scratch};
#[cfg(feature = "persist")]
pub use persist::{Durability, FILE_FORMAT, LoadError, WriteBehind};
pub use snapshot::{SNAPSHOT_FORMAT, Snapshot, SnapshotEntry};
pub use store::StateStore;
