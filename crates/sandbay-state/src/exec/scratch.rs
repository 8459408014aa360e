//! The scratch directory of one run: made private, filled with the
//! workspace's files, read back after the command, and always removed.
//!
//! All host I/O goes through a `cap_std` handle to the scratch directory,
//! so no lookup leaves it (a symlink a command planted can never lead the
//! read-back to a host file), and paths stay short (relative to the handle)
//! however deep the workspace is.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use cap_fs_ext::{FollowSymlinks, OpenOptionsFollowExt};
use cap_std::ambient_authority;
use cap_std::fs::{Dir, OpenOptions, OpenOptionsExt, Permissions};
use sandbay_core::{Error, Result, VPath};

/// What a workspace path held when the run started.
#[derive(Debug, Clone)]
pub(crate) enum Entry {
    /// A directory.
    Dir,
    /// A file and its bytes.
    File(Arc<[u8]>),
}

/// What a path holds in the scratch directory after the run.
#[derive(Debug)]
pub(crate) enum Seen {
    /// A directory.
    Dir,
    /// A regular file whose bytes equal those it started with.
    Same,
    /// A regular file with new bytes.
    File(Vec<u8>),
}

/// Bounds of one read-back.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    /// Most bytes of regular files the scratch directory may hold.
    pub(crate) max_bytes: u64,
    /// What the limit is called in the refusal (`quota`, `sync limit`).
    pub(crate) what: &'static str,
    /// Most directories and files it may hold.
    pub(crate) max_entries: usize,
}

/// The scratch directory after the run.
#[derive(Debug, Default)]
pub(crate) struct ReadBack {
    /// Every directory and regular file, by workspace path.
    pub(crate) seen: BTreeMap<VPath, Seen>,
    /// Entries left out (symlinks, special files, unusable names), as notes.
    pub(crate) skipped: Vec<String>,
}

/// Why nothing of a run can be synced back (the note says why).
#[derive(Debug)]
pub(crate) struct Refused(pub(crate) String);

/// The directory itself; removed when the last handle to it goes.
#[derive(Debug)]
struct ScratchDir {
    path: PathBuf,
    /// Set when the owning call ends: blocking work stops early.
    cancelled: AtomicBool,
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        remove(&self.path);
    }
}

/// A private scratch directory for one run (see the module docs).
///
/// Dropping it (the call returned, failed, or its future was dropped)
/// removes the directory; blocking work still running on it stops at the
/// next file and the directory goes when that work ends.
#[derive(Debug)]
pub(crate) struct Scratch {
    dir: Arc<ScratchDir>,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        self.dir.cancelled.store(true, Ordering::Relaxed);
    }
}

/// The error for host I/O that has no workspace path (never names the host path).
fn unavailable(what: &str, err: &io::Error) -> Error {
    Error::Unavailable {
        message: format!("{what} ({})", err.kind()),
    }
}

/// Stops blocking work whose call has ended.
fn check_cancelled(dir: &ScratchDir) -> Result<()> {
    if dir.cancelled.load(Ordering::Relaxed) {
        return Err(Error::Unavailable {
            message: "the command was cancelled".into(),
        });
    }
    Ok(())
}

/// Runs `work` on the blocking pool with the scratch directory open.
async fn blocking<T: Send + 'static>(
    dir: &Arc<ScratchDir>,
    work: impl FnOnce(&ScratchDir, &Dir) -> Result<T> + Send + 'static,
) -> Result<T> {
    let dir = Arc::clone(dir);
    tokio::task::spawn_blocking(move || {
        let root = Dir::open_ambient_dir(&dir.path, ambient_authority())
            .map_err(|e| unavailable("the scratch directory cannot be opened", &e))?;
        work(&dir, &root)
    })
    .await
    .unwrap_or_else(|_| {
        Err(Error::Unavailable {
            message: "the scratch directory work failed".into(),
        })
    })
}

/// The name every scratch directory starts with, followed by the pid of
/// the process that made it, `-`, and a random part.
const SCRATCH_PREFIX: &str = "sandbay-state-exec-";

/// Removes the scratch directories in `parent` that processes which no
/// longer exist left behind (a process killed with `SIGKILL` cannot clean
/// up after its runs). Directories of live processes are kept, as is
/// anything that is not a directory named like a scratch directory.
/// Returns how many were removed.
///
/// Runs once per process by itself before the first command; call it for
/// a scratch parent set with [`crate::StateSandbox::with_scratch_dir`].
///
/// ```
/// let removed = sandbay_state::sweep_orphaned_scratch(&std::env::temp_dir()).unwrap();
/// # let _ = removed;
/// ```
///
/// # Errors
///
/// When `parent` cannot be listed.
pub fn sweep_orphaned_scratch(parent: &Path) -> io::Result<usize> {
    let mut removed = 0;
    for entry in std::fs::read_dir(parent)? {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(SCRATCH_PREFIX))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        // the entry itself, never what a symlink points to
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if !is_dir || Path::new("/proc").join(pid.to_string()).exists() {
            continue;
        }
        // `remove_dir_all` does not follow symlinks inside the tree
        match std::fs::remove_dir_all(entry.path()) {
            Ok(()) => removed += 1,
            Err(e) => tracing::debug!(kind = ?e.kind(), "an orphaned scratch directory stays"),
        }
    }
    if removed > 0 {
        tracing::info!(removed, "orphaned scratch directories removed");
    }
    Ok(removed)
}

/// Sweeps the usual scratch parents once per process.
fn sweep_once() {
    static SWEPT: std::sync::Once = std::sync::Once::new();
    SWEPT.call_once(|| {
        for parent in [Path::new(super::SHM), &std::env::temp_dir()] {
            let _ = sweep_orphaned_scratch(parent);
        }
    });
}

impl Scratch {
    /// Makes a new directory `sandbay-state-exec-<pid>-<random>` (mode
    /// 0700) in `parent` and writes `files` into it (directories 0755,
    /// files 0644, parents before children).
    pub(crate) async fn create(
        parent: &Path,
        files: Arc<BTreeMap<VPath, Entry>>,
    ) -> Result<Scratch> {
        let parent = parent.to_path_buf();
        // The guard is made where the directory is: if this call is
        // dropped meanwhile, the unclaimed guard removes it there.
        let dir = tokio::task::spawn_blocking(move || {
            sweep_once();
            tempfile::Builder::new()
                .prefix(&format!("{SCRATCH_PREFIX}{}-", std::process::id()))
                .permissions(std::fs::Permissions::from_mode(0o700))
                .tempdir_in(&parent)
                .map(|tmp| {
                    Arc::new(ScratchDir {
                        path: tmp.keep(),
                        cancelled: AtomicBool::new(false),
                    })
                })
        })
        .await
        .map_err(|_| Error::Unavailable {
            message: "the scratch directory cannot be made".into(),
        })?
        .map_err(|e| unavailable("the scratch directory cannot be made", &e))?;
        let scratch = Scratch { dir };
        blocking(&scratch.dir, move |dir, root| fill(dir, root, &files)).await?;
        Ok(scratch)
    }

    /// The host path, for the jail. Never show it to a user.
    pub(crate) fn path(&self) -> &Path {
        &self.dir.path
    }

    /// Reads the directory back, comparing files with `before`.
    pub(crate) async fn read_back(
        &self,
        before: Arc<BTreeMap<VPath, Entry>>,
        bounds: Bounds,
    ) -> Result<std::result::Result<ReadBack, Refused>> {
        blocking(&self.dir, move |dir, root| {
            Walk {
                dir,
                root,
                before: &before,
                bounds,
                bytes: 0,
                out: ReadBack::default(),
            }
            .run()
        })
        .await
    }

    /// Removes the directory now, on the blocking pool.
    pub(crate) async fn remove(self) {
        let dir = Arc::clone(&self.dir);
        drop(self);
        // The last handle goes on the blocking pool, which removes it there.
        let _ = tokio::task::spawn_blocking(move || drop(dir)).await;
    }
}

/// Writes the workspace into the scratch directory.
fn fill(dir: &ScratchDir, root: &Dir, files: &BTreeMap<VPath, Entry>) -> Result<()> {
    for (path, entry) in files {
        check_cancelled(dir)?;
        let rel = path.relative();
        match entry {
            Entry::Dir => root.create_dir(rel),
            Entry::File(data) => root.write(rel, data),
        }
        .map_err(|e| Error::io(path, &e))?;
    }
    Ok(())
}

/// Options that open a regular file for reading and never follow a
/// symlink or block on a FIFO.
fn read_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .follow(FollowSymlinks::No);
    options
}

/// One walk over the scratch directory.
struct Walk<'a> {
    dir: &'a ScratchDir,
    root: &'a Dir,
    before: &'a BTreeMap<VPath, Entry>,
    bounds: Bounds,
    bytes: u64,
    out: ReadBack,
}

/// A name the walk met, as shown in a note (lossy, never a host path).
fn shown(parent: &VPath, name: &std::ffi::OsStr) -> String {
    let name = name.to_string_lossy();
    if parent.is_root() {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

impl Walk<'_> {
    fn run(mut self) -> Result<std::result::Result<ReadBack, Refused>> {
        let mut dirs = vec![VPath::root()];
        while let Some(dir) = dirs.pop() {
            check_cancelled(self.dir)?;
            if let Err(refused) = self.visit(&dir, &mut dirs)? {
                return Ok(Err(refused));
            }
        }
        Ok(Ok(self.out))
    }

    /// Lists one directory: records files and subdirectories, queues the
    /// subdirectories.
    fn visit(
        &mut self,
        dir: &VPath,
        dirs: &mut Vec<VPath>,
    ) -> Result<std::result::Result<(), Refused>> {
        let rel = if dir.is_root() { "." } else { dir.relative() };
        let entries = match retry_readable(self.root, rel, 0o700, || self.root.read_dir(rel)) {
            Ok(entries) => entries,
            Err(e) => {
                return Ok(Err(Refused(format!(
                    "{dir} could not be read back ({}), so none of the command's file changes were saved",
                    e.kind()
                ))));
            }
        };
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(dir, &e))?;
            let name = entry.file_name();
            let file_type = entry.file_type().map_err(|e| Error::io(dir, &e))?;
            let Some(path) = name.to_str().and_then(|n| dir.child(n)) else {
                self.out.skipped.push(format!(
                    "{}: the name cannot be a workspace path; skipped",
                    shown(dir, &name)
                ));
                continue;
            };
            if self.out.seen.len() >= self.bounds.max_entries {
                return Ok(Err(Refused(format!(
                    "the command left more than {} files and directories, so none of its file changes were saved",
                    self.bounds.max_entries
                ))));
            }
            if file_type.is_dir() {
                self.out.seen.insert(path.clone(), Seen::Dir);
                dirs.push(path);
            } else if file_type.is_file() {
                match self.file(&path)? {
                    Ok(Some(seen)) => {
                        self.out.seen.insert(path, seen);
                    }
                    Ok(None) => {}
                    Err(refused) => return Ok(Err(refused)),
                }
            } else if file_type.is_symlink() {
                self.out.skipped.push(format!(
                    "{path}: symbolic links are not kept by this workspace; skipped"
                ));
            } else {
                self.out
                    .skipped
                    .push(format!("{path}: not a regular file or directory; skipped"));
            }
        }
        Ok(Ok(()))
    }

    /// Reads one regular file, unless it equals what it started with.
    /// `None`: it turned out not to be a regular file (noted).
    fn file(&mut self, path: &VPath) -> Result<std::result::Result<Option<Seen>, Refused>> {
        let rel = path.relative();
        let opened = retry_readable(self.root, rel, 0o600, || {
            self.root.open_with(rel, &read_options())
        });
        let file = match opened {
            Ok(file) => file,
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                // Replaced by a symlink since it was listed.
                self.out.skipped.push(format!(
                    "{path}: symbolic links are not kept by this workspace; skipped"
                ));
                return Ok(Ok(None));
            }
            Err(e) => {
                return Ok(Err(Refused(format!(
                    "{path} could not be read back ({}), so none of the command's file changes were saved",
                    e.kind()
                ))));
            }
        };
        let meta = file.metadata().map_err(|e| Error::io(path, &e))?;
        if !meta.is_file() {
            self.out
                .skipped
                .push(format!("{path}: not a regular file or directory; skipped"));
            return Ok(Ok(None));
        }
        let room = self.bounds.max_bytes.saturating_sub(self.bytes);
        if meta.len() > room {
            return Ok(Err(self.over_limit(meta.len())));
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        // The file may have grown since `fstat`: one byte past the room tells.
        (&file)
            .take(room + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io(path, &e))?;
        if bytes.len() as u64 > room {
            return Ok(Err(self.over_limit(bytes.len() as u64)));
        }
        self.bytes += bytes.len() as u64;
        Ok(Ok(Some(match self.before.get(path) {
            Some(Entry::File(old)) if **old == *bytes => Seen::Same,
            _ => Seen::File(bytes),
        })))
    }

    fn over_limit(&self, more: u64) -> Refused {
        Refused(format!(
            "the command's files add up to more than {} bytes (at least {} bytes), over the workspace {} of {} bytes, so none of its file changes were saved",
            self.bounds.max_bytes,
            self.bytes + more,
            self.bounds.what,
            self.bounds.max_bytes
        ))
    }
}

/// Runs `open`; if it fails with a permission error (a non-root host and a
/// command that took its own rights away), gives the entry `mode` and
/// tries once more. The handle never leads out of the scratch directory.
fn retry_readable<T>(
    root: &Dir,
    rel: &str,
    mode: u32,
    open: impl Fn() -> io::Result<T>,
) -> io::Result<T> {
    match open() {
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied && e.raw_os_error().is_some() => {
            root.set_permissions(
                rel,
                Permissions::from_std(std::fs::Permissions::from_mode(mode)),
            )?;
            open()
        }
        other => other,
    }
}

/// Removes a scratch directory; when that fails (a non-root host and a
/// directory the command made unreadable), restores owner rights on every
/// directory below and tries again.
fn remove(path: &Path) {
    if std::fs::remove_dir_all(path).is_ok() || !path.exists() {
        return;
    }
    // The scratch root itself may be the one made unreadable (`chmod 000
    // .` in the workspace): it cannot be opened before its rights are
    // back. The path is this process's own directory, out of the jail's
    // reach, so it is no symlink a command could have planted.
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700));
    if let Ok(root) = Dir::open_ambient_dir(path, ambient_authority()) {
        restore_rights(&root, ".", 0);
    }
    if let Err(e) = std::fs::remove_dir_all(path) {
        tracing::warn!(error = %e.kind(), "a scratch directory could not be removed");
    }
}

/// Gives every directory below `rel` mode 0700 (bounded depth).
fn restore_rights(root: &Dir, rel: &str, depth: usize) {
    if depth > 512 {
        return;
    }
    let _ = root.set_permissions(
        rel,
        Permissions::from_std(std::fs::Permissions::from_mode(0o700)),
    );
    let Ok(entries) = root.read_dir(rel) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir())
            && let Some(name) = entry.file_name().to_str()
        {
            restore_rights(root, &format!("{rel}/{name}"), depth + 1);
        }
    }
}
