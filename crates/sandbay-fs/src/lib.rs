//! Host-directory workspaces for sandbay, jailed by capabilities
//! (cap-std): no path, `..` or symlink leaves the root.
//!
//! [`FsBackend`] implements [`sandbay_core::Backend`] over a
//! [`cap_std::fs::Dir`]. That handle is the only way to the files: every
//! open, stat, rename and delete is made relative to it, and cap-std
//! resolves paths with `openat2(RESOLVE_BENEATH)` so the kernel itself
//! refuses anything that would leave the root, even while someone swaps
//! directories and symlinks underneath. Results agree byte for byte with
//! every other backend because the text rules come from
//! [`sandbay_core::text`].
//!
//! [`FsProvider`] hands out one root per user and session under a base
//! directory (`base/<user>/<session>`), with directory names that are
//! safe for any id string. It is the only code that touches ambient
//! authority (see its "Ambient Authority" section).
//!
//! # Example
//!
//! ```
//! # async fn demo() -> sandbay_core::Result<()> {
//! use sandbay_core::{Backend, GlobRequest, GrepRequest, VPath};
//! use sandbay_fs::FsProvider;
//!
//! # let tmp = tempfile::tempdir().unwrap();
//! let provider = FsProvider::open(tmp.path()).await?;
//! let fs = provider.session("user-a", "session-1").await?;
//!
//! fs.write(&VPath::parse("/src/main.py")?, "print('hi')\n").await?;
//! let found = fs.glob(&GlobRequest::new("**/*.py")).await?;
//! assert_eq!(found.paths[0].as_str(), "/src/main.py");
//! let hits = fs.grep(&GrepRequest::new("print")).await?;
//! assert_eq!(hits.files.len(), 1);
//!
//! // Paths are virtual: `..` cannot climb out, absolute paths stay inside.
//! assert!(VPath::parse("../../etc/passwd").is_err());
//! let err = fs.read(&VPath::parse("/etc/passwd")?, Default::default()).await.unwrap_err();
//! assert_eq!(err.code().as_str(), "not_found");
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```
//!
//! # Running commands
//!
//! With the default `exec` feature, [`FsSandbox`] adds
//! [`sandbay_core::Sandbox::execute`] to a workspace:
//! [`FsProvider::sandbox`] gives one per user and session, each with a
//! [`sandbay_exec::Jail`] of its own. A command runs as `sh -c` in the
//! jail with the workspace directory as its working directory; the
//! backend and the command share that one directory, so a file written
//! through the backend is what `cat` sees and a file a command makes is
//! what `read` sees, with nothing copied.
//!
//! What the jail isolates depends on its level (reported as
//! [`sandbay_core::Capabilities::isolation`]; see the `sandbay-exec` docs
//! and `docs/security.md` for the full table):
//!
//! * **`namespaces`** (the default where the host allows it): the command
//!   sees its workspace at `/workspace`, the host's system directories
//!   read-only and nothing else of the host (no other workspace, no
//!   `/home`, no host `/tmp`); its own processes only; only a loopback
//!   network of its own; a private `/tmp`; a distinct host uid per
//!   sandbox (root hosts); process, memory, CPU and file-size caps.
//! * **`limits`**: a distinct uid and the caps, but the host's file
//!   system, process list and network are visible as far as Unix
//!   permissions allow; the jail's uid must be able to traverse the
//!   parents of the workspace (the provider makes its levels `0711`).
//!
//! Limits of the design: the command shares the directory with the
//! backend, so what it leaves behind is workspace content. Symlinks it
//! makes are ordinary workspace entries, and the backend's capability
//! rules apply to them (links leading out are refused, never followed);
//! hard links to files outside cannot be made (the outside is not
//! visible at `namespaces`; the kernel's `protected_hardlinks` refuses
//! other users' files at `limits`), and [`HardLinkPolicy::Refuse`] refuses
//! hard-linked files anyway. On a root host every run hands entries of the
//! workspace not owned by the sandbox uid over to it (root keeps full
//! access), so the owner of the files is the sandbox's uid; a dropped
//! sandbox gives the workspace root back to the host (see the
//! `sandbay-exec` docs, "Workspace files").
//!
//! # Disk quotas
//!
//! [`FsConfig::with_quota`] caps each workspace in bytes and files. On a
//! root host with `mkfs.ext4` ([`host_can_mount`]) every session of an
//! [`FsProvider`] is a loop-mounted ext4 image of the quota's size, so the
//! file API, jailed commands and containers all meet the same kernel
//! limit, and `df` inside shows the quota; elsewhere the file API counts
//! bytes and commands are not capped.
//! [`sandbay_core::Capabilities::quota`] tells which holds. A write over
//! the quota fails with `quota_exceeded`; being atomic, it leaves the old
//! content intact, and deleting files makes room again. The layout, the
//! re-attaching of images and their clean-up are described at [`Quota`].
//!
//! # Workspaces that outlive compute
//!
//! [`WorkspaceStore`] grows the provider into a store: one workspace per
//! user and session that outlives every jail, container and process
//! working in it, with metadata next to it ([`WorkspaceInfo`]: owner,
//! session, created, last used, bytes, entries), `list`, `list_of(user)`,
//! `get`, [`WorkspaceStore::attach`] (the backend and the host directory
//! to run commands in or bind into a container) and
//! [`WorkspaceStore::remove`], the only way its files go. Opening it
//! cleans up after a killed process ([`Recovery`]). An acknowledged write
//! survives a `kill -9` of the process without an `fsync` (it is in the
//! kernel when the call returns); [`FsConfig::sync_writes`] adds
//! survival of a power loss at the cost of an `fsync` per write (see the
//! store's "Durability" docs).
//!
//! # Capability checklist
//!
//! | property | how |
//! |---|---|
//! | one handle to the root | `FsBackend::new(Dir)`; every call goes through it, no host path is kept |
//! | no escape by path | [`sandbay_core::VPath`] refuses `..` above `/`, NUL, over-long paths; cap-std refuses the rest |
//! | no escape by symlink | absolute links, links climbing above the root and loops give `permission_denied`; relative links that stay inside work for `read`, `stat`, `edit`, `write`, `download` |
//! | no escape by race | the kernel resolves every path below the handle (`RESOLVE_BENEATH`); tree walks open each directory from its parent with `O_NOFOLLOW`; a test swaps a directory with a symlink to the outside during reads, writes, edits, greps and globs |
//! | walks never follow symlinks | `ls`, `glob`, `grep` report or skip links; the walk is our own over capability handles (no ambient walker) |
//! | atomic writes | temporary file in the target directory (`O_TMPFILE` via `cap-tempfile`) and `rename`; on failure nothing partial stays and the old content is intact; the file mode is kept |
//! | special files never block | files open with `O_NONBLOCK \| O_NOCTTY`, the type is checked on the open handle; FIFOs, sockets and devices give `permission_denied` ("not a regular file") |
//! | hard links | a regular file with more than one link is refused for `read`, `edit`, `download` and skipped by `grep` ([`HardLinkPolicy::Refuse`], the default); writes replace the name by rename and never write through a link |
//! | bounded memory | `read` streams the file through a buffer; `edit` and `grep` refuse or skip files over [`sandbay_core::Limits::max_text_file_bytes`] before loading them |
//! | no host path in errors | every I/O error is mapped in one place (`error.rs`) to the *virtual* path and the error kind only |
//! | long blocking I/O off the runtime | tree walks (`grep`, `glob`, `clear`, `delete`), changes of files over 64 KiB, batches and synced writes run on tokio's blocking pool; `ls`, `stat`, a `read` (bounded by its window) and small writes and edits, a few system calls each, run on the calling task and never wait for a lock there |
//!
//! # Semantics chosen here
//!
//! * `write`, `upload` and `edit` follow a symlink in the last component
//!   while it stays inside (the link is kept, its target changes); missing
//!   parent directories are created only when no symlink was followed.
//! * `ls` of a symlinked directory lists the directory it points to;
//!   `grep` of a symlinked file searches it. Inside the tree, links are
//!   never followed.
//! * Names that cannot be virtual path components (not UTF-8, control
//!   characters, backslashes) are invisible to `ls`, `glob` and `grep`;
//!   `clear` removes them too (it walks the raw entries of the handle).
//! * A temporary file exists under a `.tmp*` name only for the instant
//!   between naming the finished content and the rename.
//! * Changes through one backend (and its clones) to the same virtual
//!   path are serialised: two concurrent edits of a file both land.
//!   Changes by other processes are not locked out; each single change
//!   is still atomic.
//! * `read` and `grep` see a file as it was when opened: files up to
//!   256 KiB are read whole, larger ones are streamed through a 64 KiB
//!   buffer.
//! * A grep skips, without an error, files it meets while walking that it
//!   cannot use (special, hard-linked, vanished, over the size limit); a
//!   file named as the search path reports those errors instead.
//!
//! # Dependencies
//!
//! * `cap-std`, `cap-fs-ext`: the directory capability, `openat2`-based
//!   lookups, `O_NOFOLLOW` opens and symlink-safe removal;
//! * `cap-tempfile`: anonymous (`O_TMPFILE`) temporary files for atomic
//!   replacement;
//! * `libc`: the `O_NONBLOCK`/`O_NOCTTY` flags and errno numbers;
//! * `sha2`: stable hashes for directory names of very long ids;
//! * `serde`, `serde_json`: the workspace store's metadata files;
//! * `nix`: `umount2` and the effective uid for mounted quotas, and the
//!   `flock` that keeps a second process off a workspace store (the image
//!   is made and mounted by `mkfs.ext4` and `mount` from e2fsprogs and
//!   util-linux, which need no unsafe code here);
//! * `tokio`: the blocking pool; `tracing`: debug logs;
//! * `sandbay-core`: the contract and the shared text rules;
//! * `sandbay-exec` (feature `exec`, on by default): the local jail that
//!   runs the commands of an [`FsSandbox`].
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod backend;
mod clear;
mod config;
mod error;
#[cfg(feature = "exec")]
mod exec;
mod handle;
mod locks;
mod provider;
mod quota;
mod read;
mod search;
mod store;
mod walk;
mod write;

pub use backend::FsBackend;
pub use config::{FsConfig, HardLinkPolicy};
#[cfg(feature = "exec")]
pub use exec::FsSandbox;
pub use provider::{FsProvider, open_root};
pub use quota::{MIN_QUOTA_BYTES, MIN_QUOTA_FILES, Quota, host_can_mount};
pub use store::{Recovery, Workspace, WorkspaceInfo, WorkspaceStore};
