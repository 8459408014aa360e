//! Disk quotas: a file system of its own per workspace, or a byte count
//! kept by the file API.
//!
//! # Mounted (root hosts with `mkfs.ext4`): commands are capped too
//!
//! Each session of an [`FsProvider`](crate::FsProvider) with a [`Quota`]
//! gets a sparse ext4 image of exactly `bytes` bytes, made once with
//! `mkfs.ext4` and loop-mounted (`nosuid,nodev`) whenever the session is
//! opened:
//!
//! ```text
//! base/<user>/<session>.img             the image (sparse, 0600, root's)
//! base/<user>/<session>.mnt/            its mount point (0711)
//! base/<user>/<session>.mnt/workspace/  the workspace root (0700)
//! ```
//!
//! The workspace is a directory *inside* the image rather than the mount
//! root, because the local jail refuses a mount point as workspace (and
//! `lost+found` stays out of it). Every writer, the file API, a jailed
//! command or a container with the directory bind-mounted, meets the same
//! kernel limit: a write past it fails with `ENOSPC`, which the backend
//! reports as `quota_exceeded`; `df` inside shows the image's size and
//! `df -i` its file count. The image counts the file system's own
//! metadata (the journal, inode tables: a few MiB), so a little less
//! than `bytes` is free for files, and the host's disk grows by at most
//! `bytes` per workspace.
//!
//! Re-attaching is opening the session again: an existing image is
//! mounted as it is (its files are kept) and an image that is still
//! mounted (after a crash of the process) is used in place.
//! [`FsProvider::detach_session`](crate::FsProvider::detach_session)
//! unmounts without deleting, [`FsProvider::remove_session`](crate::FsProvider::remove_session)
//! unmounts and deletes the image. Unmounting is lazy (`MNT_DETACH`): the
//! mount leaves the host's tree at once and the kernel frees the loop
//! device when the last open handle of the workspace is closed (`mount
//! -o loop` sets the loop device to clear itself).
//!
//! # Counted (other hosts): only the file API
//!
//! Without root (or without `mkfs.ext4`), no file system can be mounted.
//! The backend then counts the sizes of the regular files below its root
//! and refuses a `write`, `upload` or `edit` that would take the sum past
//! `bytes`; files are not counted and commands are **not** capped.
//! [`sandbay_core::Capabilities::quota`] says which of the two is in
//! force (`commands`, `files`).

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};

use cap_fs_ext::DirExt;
use cap_std::fs::{Dir, MetadataExt, OpenOptions, OpenOptionsExt};
use sandbay_core::{DiskQuota, Error, Result, VPath};

/// The smallest byte quota: an ext4 image below it has no room for files.
pub const MIN_QUOTA_BYTES: u64 = 1 << 20;
/// The fewest files a quota may allow.
pub const MIN_QUOTA_FILES: u64 = 16;
/// Inodes added to the requested file count: the file system's reserved
/// inodes, its root, `lost+found`, the workspace directory, and what
/// `mkfs.ext4` rounds away.
const SPARE_INODES: u64 = 64;
/// Bytes of image per requested inode at most (an inode takes 256 bytes
/// of the image; more than a quarter of it in inode tables is refused).
const MIN_BYTES_PER_FILE: u64 = 1024;

/// The suffix of a session's image file.
pub(crate) const IMAGE_SUFFIX: &str = ".img";
/// The suffix of a session's mount point.
pub(crate) const MOUNT_SUFFIX: &str = ".mnt";
/// The workspace directory inside a mounted image.
pub(crate) const WORKSPACE: &str = "workspace";

/// A disk quota for every workspace an [`FsProvider`](crate::FsProvider)
/// hands out (see [`FsConfig::with_quota`](crate::FsConfig::with_quota)).
///
/// ```
/// use sandbay_fs::{FsConfig, Quota};
/// let config = FsConfig::default().with_quota(Quota::new(256 << 20, 10_000));
/// assert_eq!(config.quota.unwrap().bytes, 256 << 20);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quota {
    /// Bytes a workspace may take on the host disk, file system metadata
    /// included when it is mounted (at least [`MIN_QUOTA_BYTES`]).
    pub bytes: u64,
    /// Files and directories it may hold (at least [`MIN_QUOTA_FILES`];
    /// enforced only when mounted).
    pub files: u64,
}

impl Quota {
    /// A quota of `bytes` bytes and `files` files.
    pub fn new(bytes: u64, files: u64) -> Self {
        Quota { bytes, files }
    }

    /// Refuses a quota no file system can be made for.
    pub(crate) fn check(&self) -> Result<()> {
        if self.bytes < MIN_QUOTA_BYTES {
            return Err(Error::invalid_argument(format!(
                "a disk quota needs at least {MIN_QUOTA_BYTES} bytes"
            )));
        }
        if self.files < MIN_QUOTA_FILES {
            return Err(Error::invalid_argument(format!(
                "a disk quota needs at least {MIN_QUOTA_FILES} files"
            )));
        }
        if self.files.saturating_add(SPARE_INODES) > self.bytes / MIN_BYTES_PER_FILE {
            return Err(Error::invalid_argument(format!(
                "a disk quota of {} bytes holds at most {} files",
                self.bytes,
                (self.bytes / MIN_BYTES_PER_FILE).saturating_sub(SPARE_INODES)
            )));
        }
        Ok(())
    }
}

/// How a backend's quota is enforced.
#[derive(Debug)]
pub(crate) enum Enforcement {
    /// The workspace is a file system of the quota's size.
    Mounted(Quota),
    /// The file API counts bytes; commands are not capped.
    Counted(Budget),
}

impl Enforcement {
    /// The quota as [`sandbay_core::Capabilities`] reports it.
    pub(crate) fn declared(&self) -> DiskQuota {
        match self {
            Enforcement::Mounted(q) => DiskQuota {
                bytes: q.bytes,
                files: Some(q.files),
                commands: true,
            },
            Enforcement::Counted(b) => DiskQuota {
                bytes: b.limit,
                files: None,
                commands: false,
            },
        }
    }

    /// The byte limit.
    pub(crate) fn bytes(&self) -> u64 {
        match self {
            Enforcement::Mounted(q) => q.bytes,
            Enforcement::Counted(b) => b.limit,
        }
    }

    /// The byte budget the file API keeps, when it keeps one.
    pub(crate) fn budget(&self) -> Option<&Budget> {
        match self {
            Enforcement::Counted(b) => Some(b),
            Enforcement::Mounted(_) => None,
        }
    }
}

/// The bytes the file API admits, counted from the files below the root.
#[derive(Debug)]
pub(crate) struct Budget {
    limit: u64,
    /// Bytes in use when last counted; `None` after a change the backend
    /// did not measure (a delete, a command).
    used: Mutex<Option<u64>>,
}

impl Budget {
    pub(crate) fn new(limit: u64) -> Self {
        Budget {
            limit,
            used: Mutex::new(None),
        }
    }

    /// Takes the budget for one change (changes under quota are
    /// serialised), counting the workspace if needed.
    pub(crate) fn hold(&self, root: &Dir) -> Result<Held<'_>> {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        if used.is_none() {
            *used = Some(usage(root).map_err(|e| crate::error::map_io(&VPath::root(), &e))?);
        }
        Ok(Held {
            used,
            limit: self.limit,
        })
    }

    /// Forgets the count: the next change counts again.
    pub(crate) fn forget(&self) {
        *self.used.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// The budget held for one change.
pub(crate) struct Held<'a> {
    used: MutexGuard<'a, Option<u64>>,
    limit: u64,
}

impl Held<'_> {
    /// Refuses replacing `old` bytes by `new` bytes at `path` if that
    /// takes the workspace over the limit (shrinking is always allowed).
    pub(crate) fn admit(&self, path: &VPath, old: u64, new: u64) -> Result<()> {
        let used = self.used.unwrap_or(0);
        if new > old && used.saturating_sub(old).saturating_add(new) > self.limit {
            tracing::debug!(%path, used, new, limit = self.limit, "the fs quota refused a write");
            return Err(Error::QuotaExceeded {
                path: path.clone(),
                limit: Some(self.limit),
            });
        }
        Ok(())
    }

    /// Records a replacement that happened.
    pub(crate) fn commit(mut self, old: u64, new: u64) {
        if let Some(used) = self.used.as_mut() {
            *used = used.saturating_sub(old).saturating_add(new);
        }
    }
}

/// The sum of the sizes of the regular files below `root` (links are
/// not followed, every raw name counts).
fn usage(root: &Dir) -> io::Result<u64> {
    let mut total = 0u64;
    let mut dirs = vec![root.try_clone()?];
    while let Some(dir) = dirs.pop() {
        for entry in dir.entries()? {
            let entry = entry?;
            let Ok(file_type) = entry.file_type() else {
                continue;
            };
            if file_type.is_dir() {
                if let Ok(sub) = dir.open_dir_nofollow(entry.file_name()) {
                    dirs.push(sub);
                }
            } else if file_type.is_file()
                && let Ok(meta) = entry.metadata()
            {
                total = total.saturating_add(meta.len());
            }
        }
    }
    Ok(total)
}

/// Whether this process can give workspaces a file system of their own:
/// it is root, `mkfs.ext4` runs and loop devices exist. Asked once.
pub fn host_can_mount() -> bool {
    static CAN: OnceLock<bool> = OnceLock::new();
    *CAN.get_or_init(|| {
        let root = nix::unistd::geteuid().is_root();
        let loop_control = Path::new("/dev/loop-control").exists();
        let mkfs = Command::new("mkfs.ext4")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success());
        if !(root && loop_control && mkfs) {
            tracing::info!(
                root,
                loop_control,
                mkfs,
                "workspace quotas are counted by the file API only; commands are not capped"
            );
        }
        root && loop_control && mkfs
    })
}

/// Mounts and unmounts of this process, one at a time (two opens of a
/// session must not mount its image twice).
fn mount_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn unavailable(what: &str) -> Error {
    Error::Unavailable {
        message: format!("the workspace's disk image {what}"),
    }
}

/// The names of a session's image and mount point.
fn names(session: &str) -> (OsString, OsString) {
    (
        format!("{session}{IMAGE_SUFFIX}").into(),
        format!("{session}{MOUNT_SUFFIX}").into(),
    )
}

/// Whether `name` in `dir` is a directory with another file system
/// mounted on it.
fn is_mounted(dir: &Dir, name: &OsString) -> io::Result<bool> {
    let here = dir.dir_metadata()?;
    match dir.symlink_metadata(name) {
        Ok(meta) => Ok(meta.is_dir() && meta.dev() != here.dev()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Runs a host tool; its output goes to the log, never to a user.
fn run(tool: &str, args: &[&std::ffi::OsStr]) -> bool {
    match Command::new(tool).args(args).output() {
        Ok(out) if out.status.success() => true,
        Ok(out) => {
            tracing::warn!(
                tool,
                status = ?out.status,
                stderr = %String::from_utf8_lossy(&out.stderr).trim(),
                "a quota tool failed"
            );
            false
        }
        Err(e) => {
            tracing::warn!(tool, kind = ?e.kind(), "a quota tool cannot run");
            false
        }
    }
}

/// Opens the workspace of `session` in `user_dir` (at host path
/// `user_path`), making and mounting its image as needed.
pub(crate) fn attach(user_dir: &Dir, user_path: &Path, session: &str, quota: Quota) -> Result<Dir> {
    quota.check()?;
    let (image, mount) = names(session);
    let _lock = mount_lock();
    let io_err = |what: &'static str| {
        move |e: io::Error| {
            tracing::warn!(kind = ?e.kind(), what, "cannot prepare a workspace image");
            unavailable(what)
        }
    };
    let mut builder = cap_std::fs::DirBuilder::new();
    cap_std::fs::DirBuilderExt::mode(&mut builder, 0o711);
    match user_dir.create_dir_with(&mount, &builder) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_err("cannot get a mount point")(e)),
    }
    if !is_mounted(user_dir, &mount).map_err(io_err("cannot be looked at"))? {
        let image_path = user_path.join(&image);
        let mut options = OpenOptions::new();
        options.write(true).create_new(true).mode(0o600);
        match user_dir.open_with(&image, &options) {
            Ok(file) => {
                // sparse: the host's disk fills only as the workspace does
                let made = file.set_len(quota.bytes).is_ok()
                    && run(
                        "mkfs.ext4",
                        &[
                            "-q".as_ref(),
                            "-F".as_ref(),
                            "-m".as_ref(),
                            "0".as_ref(),
                            "-N".as_ref(),
                            (quota.files + SPARE_INODES).to_string().as_ref(),
                            "-E".as_ref(),
                            "root_owner=0:0".as_ref(),
                            "-L".as_ref(),
                            "sandbay".as_ref(),
                            image_path.as_os_str(),
                        ],
                    );
                if !made {
                    let _ = user_dir.remove_file(&image);
                    return Err(unavailable("cannot be made"));
                }
            }
            // made before: mount it as it is, with its files
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err("cannot be created")(e)),
        }
        let mount_path = user_path.join(&mount);
        if !run(
            "mount",
            &[
                "-t".as_ref(),
                "ext4".as_ref(),
                "-o".as_ref(),
                "loop,nosuid,nodev".as_ref(),
                image_path.as_os_str(),
                mount_path.as_os_str(),
            ],
        ) {
            return Err(unavailable("cannot be mounted"));
        }
        if !is_mounted(user_dir, &mount).map_err(io_err("cannot be looked at"))? {
            return Err(unavailable("was not mounted"));
        }
    }
    let top = user_dir
        .open_dir_nofollow(&mount)
        .map_err(io_err("cannot be opened"))?;
    // the jail's uid (at `limits`) must traverse the mount root
    top.open(".")
        .and_then(|d| {
            d.set_permissions(cap_std::fs::Permissions::from_std(
                std::os::unix::fs::PermissionsExt::from_mode(0o711),
            ))
        })
        .map_err(io_err("cannot be opened"))?;
    let mut builder = cap_std::fs::DirBuilder::new();
    cap_std::fs::DirBuilderExt::mode(&mut builder, 0o700);
    match top.create_dir_with(WORKSPACE, &builder) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_err("has no workspace directory")(e)),
    }
    top.open_dir_nofollow(WORKSPACE)
        .map_err(io_err("has no workspace directory"))
}

/// Unmounts the image of `session` if it is mounted (lazily: the loop
/// device is freed when the last handle closes); returns whether it was.
pub(crate) fn detach(user_dir: &Dir, user_path: &Path, session: &str) -> Result<bool> {
    let (_, mount) = names(session);
    let _lock = mount_lock();
    detach_locked(user_dir, user_path, &mount)
}

fn detach_locked(user_dir: &Dir, user_path: &Path, mount: &OsString) -> Result<bool> {
    let mounted = is_mounted(user_dir, mount).map_err(|e| {
        tracing::warn!(kind = ?e.kind(), "cannot look at a workspace mount");
        unavailable("cannot be looked at")
    })?;
    if mounted {
        let path: PathBuf = user_path.join(mount);
        nix::mount::umount2(&path, nix::mount::MntFlags::MNT_DETACH).map_err(|e| {
            tracing::warn!(errno = %e, "cannot unmount a workspace image");
            unavailable("cannot be unmounted")
        })?;
    }
    Ok(mounted)
}

/// Unmounts every image mounted in `user_dir` (before the user's
/// directory is removed, or orphans a killed process left); returns how
/// many were mounted.
pub(crate) fn detach_all(user_dir: &Dir, user_path: &Path) -> Result<usize> {
    let _lock = mount_lock();
    let entries = user_dir.entries().map_err(crate::error::provider_io)?;
    let mut detached = 0;
    for entry in entries {
        let name = entry.map_err(crate::error::provider_io)?.file_name();
        if name.to_str().is_some_and(|n| n.ends_with(MOUNT_SUFFIX))
            && detach_locked(user_dir, user_path, &name)?
        {
            detached += 1;
        }
    }
    Ok(detached)
}

/// Unmounts and deletes the image of `session`; returns whether there was
/// one.
pub(crate) fn remove(user_dir: &Dir, user_path: &Path, session: &str) -> Result<bool> {
    let (image, mount) = names(session);
    let _lock = mount_lock();
    detach_locked(user_dir, user_path, &mount)?;
    let mut found = false;
    for removed in [user_dir.remove_dir(&mount), user_dir.remove_file(&image)] {
        match removed {
            Ok(()) => found = true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(crate::error::provider_io(e)),
        }
    }
    Ok(found)
}
