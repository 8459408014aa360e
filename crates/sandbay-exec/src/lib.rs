//! A local process jail for sandbay: the `execute` of the state and fs
//! backends, without Docker.
//!
//! A [`Jail`] belongs to one sandbox (one user or session). It runs shell
//! commands (`sh -c`) in a host directory, the workspace, and enforces an
//! [`Isolation`](sandbay_core::Isolation) level on every command:
//!
//! ```no_run
//! # async fn demo() -> sandbay_core::Result<()> {
//! use std::time::Duration;
//! use sandbay_core::{ExecRequest, Isolation};
//! use sandbay_exec::{Jail, JailConfig};
//!
//! // Ask for a level; `Jail::new` fails if the host cannot give it.
//! let jail = Jail::new(JailConfig::new(Isolation::Namespaces))?;
//! let out = jail
//!     .run("/srv/sandbay/alice".as_ref(), ExecRequest::new("ls; ps aux").timeout(Duration::from_secs(10)))
//!     .await?;
//! println!("{}", String::from_utf8_lossy(&out.stdout));
//! # Ok(()) }
//! ```
//!
//! # What every level does
//!
//! - **One tree per run, and it always dies.** The command runs in a new
//!   session and process group. When the time limit passes, when the shell
//!   exits (background jobs do not outlive their command), and when the
//!   caller drops the future, the whole tree is killed with `SIGKILL`; the
//!   output produced until then is kept. A timeout is not an error: the
//!   result has `timed_out` set. If the host process itself dies, the first
//!   process of every run gets `SIGKILL` (parent-death signal).
//! - **Output is capped while streaming**: stdout and stderr are read
//!   separately, up to [`JailConfig::max_output_bytes`] each; the rest is
//!   read and dropped (so the writer never blocks and memory stays bounded)
//!   and the result is marked `truncated`.
//! - **Scrubbed environment**: only `PATH`, `HOME`, `LANG=C.UTF-8` and the
//!   request's variables; the working directory is the workspace (or
//!   `workdir` below it); stdin is the request's bytes or `/dev/null`;
//!   every descriptor of the host process is closed; `no_new_privs` is set
//!   (setuid binaries and file capabilities grant nothing).
//! - **Resource limits** ([`ResourceLimits`]): `RLIMIT_CPU`, `_AS`,
//!   `_FSIZE`, `_NOFILE`, `_NPROC` (and no core dumps); with cgroup v1
//!   controllers (root hosts), the jail gets one parent cgroup per
//!   controller with a `pids` cap, a `memory` cap (tmpfs pages included)
//!   and a `cpu` quota, and each run a child of it: the caps hold for all
//!   runs of the jail together, however many run at once, and the child
//!   lists every process of its run so none escapes the kill. After a run
//!   its child is emptied and kept for the jail's next run (creating and
//!   removing them costs half a millisecond a run); the jail removes its
//!   cgroups when it is dropped (also while a test unwinds from a panic),
//!   and cgroups left by a killed host process are swept by the next
//!   process that uses them.
//! - **A bounded number of runs at once**: at most
//!   [`JailConfig::max_concurrent`] commands of a jail run at the same time
//!   (default 4); a further call waits for one to end, at most
//!   [`JailConfig::queue_timeout`], then fails with `unavailable` without
//!   having run.
//!
//! # Streamed output
//!
//! [`exec_stream`] runs a command as a task of its own and returns a live
//! [`ExecStream`](sandbay_core::ExecStream) once it started: the run
//! passes the [`OutputSink`] it is handed to [`Jail::run_streaming`] (or
//! [`Jail::run_in_streaming`]), whose reads go to the stream as chunks
//! instead of a buffer (the same cap; a consumer that reads slowly holds
//! the command back rather than memory growing). Errors before `execve`
//! are the result of [`exec_stream`]; dropping the stream aborts the task,
//! and the run's guard kills the whole tree, as a dropped [`Jail::run`]
//! does.
//!
//! # Levels
//!
//! | | `Limits` | `Namespaces` |
//! |---|---|---|
//! | host uid of the command | a uid of its own per jail (root hosts only) | the same, mapped to uid 1000 inside a user namespace; the host process's own uid when it is not root |
//! | processes it sees | all of the host (`ps aux`) | only its own (PID namespace; the shell is PID 1) |
//! | file system | the whole host, as far as Unix permissions let its uid | a new root: the workspace at `/workspace`, host `/usr`, `/bin`, `/lib*`, `/sbin` read-only, a synthesized `/etc`, a minimal `/dev`, a private `/proc`, `/tmp` and `/dev/shm`; nothing else of the host exists, nothing but the workspace and its tmpfs dirs is writable |
//! | `/tmp` | the host's (the sticky bit keeps other users' files) | private per run |
//! | network | the host's | only `lo`, in a network namespace of the jail (shared by its runs) |
//! | SysV IPC, hostname | the host's | private per run |
//! | fork bomb, memory hog | stopped by the jail's cgroups (one cap for all its runs), `RLIMIT_NPROC` (per jail uid) and `RLIMIT_AS` | the same, `RLIMIT_NPROC` counted per run |
//!
//! `Limits` needs a root host process (to switch to the jail's uid: without
//! it `RLIMIT_NPROC` would count the host user's own processes and the
//! command could signal or trace the host process). `Namespaces` works for
//! root and, where unprivileged user namespaces are allowed, for any user.
//! [`Jail::probe`] reports the strongest level this host gives, found once
//! per process by starting a process through the whole setup of each level;
//! [`Jail::new`] refuses a level the host cannot give (`unavailable`, with
//! the reason) and never falls back to a weaker one. [`Jail::enforcement`]
//! lists what is really in force.
//!
//! # How a run starts
//!
//! A dedicated thread calls `clone3` with `CLONE_PIDFD` and, for
//! `Namespaces`, `CLONE_NEWUSER | NEWNS | NEWPID | NEWIPC | NEWUTS` (the
//! jail's network namespace is entered around the call). The child is thus
//! PID 1 of its PID namespace by itself: no `unshare` in a `pre_exec` hook,
//! no double fork, no helper process holding a copy of the host's memory.
//! The parent writes the uid/gid maps, moves the child into its cgroups and
//! lets it go; the child (async-signal-safe system calls only) clones the
//! bind sources with `open_tree`, switches to the sandbox uid, builds the
//! root on a tmpfs, `pivot_root`s into it, detaches the host's mounts, sets
//! the limits and `execve`s `/bin/sh -c <command>`. A failure before
//! `execve` comes back as a stage and an `errno` (never a host path). The
//! pidfd names the process for waiting and killing, immune to pid reuse;
//! `exit_signal` is 0, so nobody else's `waitpid(-1)` can reap it.
//!
//! # Workspace files
//!
//! On a root host every entry of the workspace not owned by the jail's uid
//! is handed over to it before a run (a descriptor-relative walk that never
//! follows symlinks and leaves hard-linked files it does not own alone), so
//! the command can change any file; root keeps full access to what the
//! command creates. On a non-root host files belong to the host user on
//! both sides.
//!
//! The workspace root becomes mode `0700`, so at `Limits` no other jail's
//! uid can enter it even when workspaces sit side by side under a parent
//! every uid may traverse. A uid lease goes back to the pool when its jail
//! is dropped and may later be leased to another jail, which would then
//! own the files the first one left; so a dropped jail gives each workspace
//! root it handed over back to the host process (`0700`, the files inside
//! unchanged until the next hand-over). A host process that dies without
//! dropping its jails leaves their roots with the leased uids.
//!
//! Since a run takes the workspace over as root, [`Jail::run`] refuses a
//! directory that must not be taken over, with `permission_denied` and a
//! fixed reason: `/` and top-level directories, system trees (`/usr`,
//! `/etc`, `/proc`, `/dev` but `/dev/shm`, ...), mount points, and
//! directories owned by anyone but root, the host user, the jail's uid or
//! another sandbox uid.
//!
//! # Blocking work
//!
//! [`Jail::new`] blocks (the first call probes the host; every call scans
//! `/proc` for a free uid and may create a network namespace): async code
//! uses [`Jail::new_async`]. [`Jail::run`] does its file system work (the
//! workspace checks and walk, creating cgroup directories) in one
//! `spawn_blocking` hop and starts the process on a dedicated thread; what
//! stays on the async thread is pipe setup and reads of `cgroup.procs`
//! (in-kernel files, no disk).
//!
//! # Limits: what is *not* isolated
//!
//! - **At `Limits`** the command sees the host: every world-readable file,
//!   every process, the network (including loopback services and abstract
//!   Unix sockets), SysV IPC, world-writable directories. Without cgroups, a
//!   process that leaves the session (`setsid` plus a double fork) escapes
//!   the group kill and runs on until its own limits stop it.
//! - **At `Namespaces`** the kernel is shared: the only seccomp filter is
//!   [`seccomp`]'s (it refuses the calls that draw on host-wide budgets)
//!   and there is no Landlock ruleset, so kernel bugs are reachable (nested user
//!   namespaces are turned off best effort). `/proc` still shows host-wide
//!   figures (memory, CPUs, load, uptime, kernel version), and the host's
//!   installed software is readable under `/usr`. Runs of one jail share its
//!   uid and network namespace, so they can see each other's loopback
//!   services. PID 1 of the namespace is the command's shell, which ignores
//!   signals sent from inside (`kill $$` does nothing). `/proc/self/mountinfo`
//!   names the workspace's directory within the host file system that
//!   holds it (the kernel prints a bind mount's source path, and no mount
//!   option or namespace hides it; inside a per-workspace disk image it is
//!   the path in the image) and, in tmpfs options, the jail's host uid,
//!   which `/proc/self/uid_map` shows anyway.
//! - **Both**: disk usage is not capped (`RLIMIT_FSIZE` bounds one file);
//!   CPU time is capped per process (and, with the `cpu` cgroup, the jail's
//!   share of the CPUs at any moment), not per jail over time; without
//!   cgroups (non-root hosts, or cgroup v2 only hosts, which this crate does
//!   not drive yet) memory is capped per process only and processes per
//!   uid (at `Namespaces`, per run), so a jail's caps multiply with its
//!   concurrent runs, up to [`JailConfig::max_concurrent`] times:
//!   [`Jail::enforcement`] then reports no cgroup caps. Timing side channels are out of scope.
//! - **Cost**: `clone3` copies the host process's page tables, so starting
//!   a command gets slower as the host process grows. Moving a process into
//!   a cgroup v1 takes a kernel-wide lock that waits for an RCU grace period
//!   now and then (a p95 of about +5 ms per start here) and for every fork
//!   in flight on the host, so while a neighbour's fork bomb runs, starts
//!   with cgroups take about 12 ms instead of 2.5 ms; [`JailConfig::cgroups`]
//!   trades the whole-run caps for that latency. Processes of a dead host
//!   process's `Limits` runs (other than the first) are only killed when a
//!   later process sweeps their stale cgroups.
//!
//! # Dependencies
//!
//! - `sandbay-core`: the contract types (`ExecRequest`, `ExecOutput`,
//!   `Isolation`, `Error`).
//! - `tokio`: async pipe reads, pidfd readiness, timers, the blocking pool
//!   for the workspace walk.
//! - `nix`: safe wrappers for `waitid` on a pidfd, signals, `setns`,
//!   `unshare`, `fcntl` and the `*at` calls of the ownership walk.
//! - `libc`: the system calls nix lacks (`clone3`, `open_tree`, `statx`,
//!   `move_mount`, `mount_setattr`, `pidfd_send_signal`) and the raw,
//!   async-signal-safe calls of the child.
//! - `tracing`: logs.
//!
//! All `unsafe` code is in one private module (`sys`), each block with a
//! `SAFETY` note.
#![deny(missing_docs)]
#![deny(unsafe_code)]

mod capture;
mod cgroup;
mod config;
mod guard;
mod jail;
mod launch;
mod ownership;
mod plan;
mod probe;
mod run;
#[allow(unsafe_code)] // one prctl, in a child before execve
pub mod seccomp;
mod spawner;
mod stream;
#[allow(unsafe_code)]
mod sys;
mod uid;
mod workspace;

pub use config::{Identity, JailConfig, ResourceLimits};
pub use jail::{Enforcement, Jail, Place};
pub use launch::MAX_STDIN;
pub use ownership::{give_back_root, hand_over};
pub use plan::{SANDBOX_UID, WORKSPACE_DIR};
pub use probe::HostSupport;
pub use stream::{OutputSink, exec_stream};
pub use uid::{JAIL_UIDS, UID_RANGE, UidLease, UidPool};
