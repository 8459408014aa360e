//! [`FsProvider`]: per-user, per-session roots under one base directory.
//!
//! # Ambient Authority
//!
//! This module is the **only** place in the crate that uses ambient
//! authority (`cap_std::ambient_authority()`, i.e. plain host paths):
//! [`FsProvider::open`] opens (creating it if needed) the base directory
//! from a host path. Everything after that goes through the base
//! directory's capability handle: user and session directories are
//! created and opened with `*at` calls relative to it, never by path. A
//! unit test scans the crate's sources and fails if ambient authority or
//! `std::fs` shows up anywhere else.
//!
//! The one exception is a workspace with a mounted quota (`quota.rs`):
//! `mkfs.ext4`, `mount` and `umount2` take host paths, so the image and
//! mount point below `base/<user>` are named by path for those calls.
//! Those levels belong to the host process (root, `0711`); no command or
//! container can reach them, only the workspace inside the image.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cap_fs_ext::DirExt;
use cap_std::ambient_authority;
use cap_std::fs::Dir;
use sandbay_core::{Error, Result};
use sha2::{Digest, Sha256};

use crate::backend::FsBackend;
use crate::config::FsConfig;
use crate::error::{join_error, provider_io};
use crate::quota::{self, Enforcement};

/// How many times a removal starts over when files appeared in the tree
/// while it was being emptied.
const REMOVAL_ROUNDS: u32 = 50;

/// Removes `name` below `dir` with everything in it (cap-std never follows
/// a symlink inside the tree). A write that was already under way when the
/// removal began can still add a file after the tree was emptied, and the
/// last `rmdir` then fails with "directory not empty", or an entry it
/// listed was renamed before it could be unlinked ("not found" while the
/// tree is still there): the removal starts over, a bounded number of
/// times. Once the directory is gone, such a write finds no directory to
/// add to.
fn remove_tree(dir: &Dir, name: &str) -> io::Result<()> {
    let mut round = 0;
    loop {
        let err = match dir.remove_dir_all(name) {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        let raced = match err.kind() {
            io::ErrorKind::DirectoryNotEmpty => true,
            io::ErrorKind::NotFound => match dir.symlink_metadata(name) {
                Ok(_) => true,
                // gone: an earlier round emptied it before this one failed
                Err(e) if e.kind() == io::ErrorKind::NotFound && round > 0 => return Ok(()),
                Err(_) => false,
            },
            _ => false,
        };
        if !raced || round >= REMOVAL_ROUNDS {
            return Err(err);
        }
        round += 1;
        std::thread::sleep(std::time::Duration::from_millis(u64::from(round.min(10))));
    }
}

/// A removal that could not finish: still being filled after every round
/// is `unavailable` (nothing is listed any more; removing again finishes).
fn removal_error(err: io::Error) -> Error {
    if err.kind() == io::ErrorKind::DirectoryNotEmpty {
        Error::Unavailable {
            message:
                "the workspace was still being written to while it was removed; remove it again"
                    .into(),
        }
    } else {
        provider_io(err)
    }
}

/// Longest directory name made by plain encoding; longer ids are hashed.
const MAX_ENCODED: usize = 96;
/// Length of the readable prefix kept in front of a hash.
const HASHED_PREFIX: usize = 48;

/// Opens an existing host directory as a workspace root capability, for
/// building an [`FsBackend`] without a provider (e.g. over a directory
/// that is bind-mounted into a container). Uses ambient authority.
///
/// ```
/// # async fn demo() -> sandbay_core::Result<()> {
/// # let tmp = tempfile::tempdir().unwrap();
/// let root = sandbay_fs::open_root(tmp.path()).await?;
/// let fs = sandbay_fs::FsBackend::new(root);
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
///
/// # Errors
/// `unavailable` if it cannot be opened; the message never repeats the
/// host path.
pub async fn open_root(path: impl AsRef<Path>) -> Result<Dir> {
    let path = path.as_ref().to_path_buf();
    tokio::task::spawn_blocking(move || Dir::open_ambient_dir(&path, ambient_authority()))
        .await
        .map_err(join_error)?
        .map_err(|e| Error::Unavailable {
            message: format!("the workspace directory cannot be opened ({})", e.kind()),
        })
}

/// Hands out one [`FsBackend`] per user and session, rooted at
/// `base/<user>/<session>`, creating the directories on first use.
///
/// Directory names come from [`FsProvider::dir_name`], which is safe for
/// *any* id string: no id can climb out of the base directory or land in
/// another user's directory.
///
/// ```
/// # async fn demo() -> sandbay_core::Result<()> {
/// use sandbay_core::{Backend, BackendExt, VPath};
/// use sandbay_fs::FsProvider;
///
/// # let tmp = tempfile::tempdir().unwrap();
/// let provider = FsProvider::open(tmp.path()).await?;
/// let alice = provider.session("alice", "s1").await?;
/// let bob = provider.session("../bob", "s1").await?;
/// let file = VPath::parse("/file.txt")?;
/// alice.write(&file, "A1").await?;
/// bob.write(&file, "B1").await?;
/// assert_eq!(alice.read_to_string(&file).await?, "A1");
/// assert_eq!(bob.read_to_string(&file).await?, "B1");
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
#[derive(Clone)]
pub struct FsProvider {
    base: Arc<Dir>,
    base_path: PathBuf,
    config: FsConfig,
}

impl std::fmt::Debug for FsProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FsProvider")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl FsProvider {
    /// Opens the base directory at a host path, creating it (and its
    /// parents) if missing. This is the one use of ambient authority.
    ///
    /// # Errors
    /// `unavailable` if the directory cannot be created or opened; the
    /// message never repeats the host path.
    pub async fn open(base: impl AsRef<Path>) -> Result<Self> {
        let base_path = base.as_ref().to_path_buf();
        let path = base_path.clone();
        let dir = tokio::task::spawn_blocking(move || {
            Dir::create_ambient_dir_all(&path, ambient_authority())?;
            Dir::open_ambient_dir(&path, ambient_authority())
        })
        .await
        .map_err(join_error)?
        .map_err(|e| Error::Unavailable {
            message: format!(
                "the workspace base directory cannot be opened ({})",
                e.kind()
            ),
        })?;
        Ok(FsProvider {
            base: Arc::new(dir),
            base_path,
            config: FsConfig::default(),
        })
    }

    /// The base directory's capability handle (for the workspace store).
    pub(crate) fn base(&self) -> &Arc<Dir> {
        &self.base
    }

    /// The base directory's host path (for the workspace store).
    pub(crate) fn base_path(&self) -> &Path {
        &self.base_path
    }

    /// The settings of the backends this provider hands out.
    pub fn config(&self) -> &FsConfig {
        &self.config
    }

    /// Sets the settings of the backends handed out from now on.
    pub fn with_config(mut self, config: FsConfig) -> Self {
        self.config = config;
        self
    }

    /// The backend of one session of one user, creating its directory.
    ///
    /// # Errors
    /// `invalid_argument` for an empty id; `io` if a directory cannot be
    /// made; `permission_denied` if something other than a directory
    /// (e.g. a symlink) sits where a user or session directory belongs.
    ///
    /// With a [`FsConfig::quota`] on a host that can mount
    /// ([`crate::host_can_mount`]) the workspace is a file system of its
    /// own (see [`crate::Quota`]): its image is made on first use and
    /// mounted when not mounted yet, so opening a session again
    /// re-attaches its files. `unavailable` if that fails; `invalid_argument`
    /// for a quota no file system can be made for.
    pub async fn session(&self, user: &str, session: &str) -> Result<FsBackend> {
        let names = [Self::dir_name(user)?, Self::dir_name(session)?];
        let base = Arc::clone(&self.base);
        if let Some(q) = self.mounted_quota() {
            q.check()?;
            let user_path = self.base_path.join(&names[0]);
            let dir = tokio::task::spawn_blocking(move || {
                let user_dir = open_or_create(&base, &names[..1])?;
                quota::attach(&user_dir, &user_path, &names[1], q)
            })
            .await
            .map_err(join_error)??;
            return Ok(FsBackend::with_enforcement(
                dir,
                self.config,
                Some(Enforcement::Mounted(q)),
            ));
        }
        let dir = tokio::task::spawn_blocking(move || open_or_create(&base, &names))
            .await
            .map_err(join_error)??;
        Ok(FsBackend::with_config(dir, self.config))
    }

    /// The quota, when workspaces get a file system of their own.
    fn mounted_quota(&self) -> Option<crate::Quota> {
        self.config.quota.filter(|_| quota::host_can_mount())
    }

    /// Unmounts a session's image (see [`crate::Quota`]) without deleting
    /// it: its files stay in the image, and [`FsProvider::session`]
    /// mounts it again. Open backends of the session keep working until
    /// dropped; the loop device is freed when the last one is. Does
    /// nothing for a workspace without a mounted quota.
    ///
    /// # Errors
    /// `unavailable` if the image cannot be unmounted.
    pub async fn detach_session(&self, user: &str, session: &str) -> Result<()> {
        let user = Self::dir_name(user)?;
        let session = Self::dir_name(session)?;
        let base = Arc::clone(&self.base);
        let user_path = self.base_path.join(&user);
        tokio::task::spawn_blocking(move || {
            let user_dir = match base.open_dir_nofollow(&user) {
                Ok(dir) => dir,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(provider_io(e)),
            };
            quota::detach(&user_dir, &user_path, &session).map(drop)
        })
        .await
        .map_err(join_error)?
    }

    /// The sandbox of one session: its backend (as [`FsProvider::session`])
    /// plus a new [`sandbay_exec::Jail`] made from `jail`, so commands run
    /// with the session directory as working directory.
    ///
    /// Every call makes a new jail, with a host uid of its own (root
    /// hosts): keep the sandbox for as long as the session lives. The first
    /// call in a process probes the host (see [`sandbay_exec::Jail::probe`]).
    ///
    /// # Errors
    /// As [`FsProvider::session`], plus those of [`sandbay_exec::Jail::new`]:
    /// `invalid_argument` for a bad configuration, `unavailable` when the
    /// host cannot give the requested isolation level.
    #[cfg(feature = "exec")]
    pub async fn sandbox(
        &self,
        user: &str,
        session: &str,
        jail: &sandbay_exec::JailConfig,
    ) -> Result<crate::FsSandbox> {
        let fs = self.session(user, session).await?;
        let host_root = self.session_path(user, session)?;
        let id = format!("fs-{}-{}", Self::dir_name(user)?, Self::dir_name(session)?);
        let config = jail.clone();
        let jail = tokio::task::spawn_blocking(move || sandbay_exec::Jail::new(config))
            .await
            .map_err(join_error)??;
        Ok(crate::FsSandbox::new(id, fs, host_root, jail))
    }

    /// The host directory of a session (whether or not it exists yet), for
    /// host-side tools that need a real path: a command's working
    /// directory, a container's bind mount. Never show it to a user.
    ///
    /// # Errors
    /// `invalid_argument` for an empty id.
    ///
    /// With a mounted quota this is the workspace directory inside the
    /// session's image, `base/<user>/<session>.mnt/workspace`.
    pub fn session_path(&self, user: &str, session: &str) -> Result<PathBuf> {
        let user = self.base_path.join(Self::dir_name(user)?);
        let session = Self::dir_name(session)?;
        Ok(if self.mounted_quota().is_some() {
            user.join(format!("{session}{}", quota::MOUNT_SUFFIX))
                .join(quota::WORKSPACE)
        } else {
            user.join(session)
        })
    }

    /// Deletes one session's directory with all its files (its image,
    /// unmounted first, with a mounted quota), and the user's directory
    /// with it when that was the user's last session (a later
    /// [`FsProvider::session`] makes it again).
    ///
    /// # Errors
    /// `not_found` if it does not exist; `unavailable` if its image cannot
    /// be unmounted.
    pub async fn remove_session(&self, user: &str, session: &str) -> Result<()> {
        let user = Self::dir_name(user)?;
        let session = Self::dir_name(session)?;
        let base = Arc::clone(&self.base);
        let user_path = self.base_path.join(&user);
        let names = (user.clone(), session);
        tokio::task::spawn_blocking(move || {
            let (user, session) = names;
            let user_dir = base.open_dir_nofollow(&user).map_err(provider_io)?;
            let imaged = quota::remove(&user_dir, &user_path, &session)?;
            match remove_tree(&user_dir, &session) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound && imaged => Ok(()),
                Err(e) => Err(removal_error(e)),
            }
        })
        .await
        .map_err(join_error)??;
        let base = Arc::clone(&self.base);
        // `rmdir` removes only an empty directory, atomically: another
        // session keeps it, and a session being made meanwhile starts over
        // (see `open_or_create`).
        let _ = tokio::task::spawn_blocking(move || base.remove_dir(&user)).await;
        Ok(())
    }

    /// Deletes a user's directory with all sessions in it (their images
    /// unmounted first).
    ///
    /// # Errors
    /// `not_found` if it does not exist; `unavailable` if an image cannot
    /// be unmounted.
    pub async fn remove_user(&self, user: &str) -> Result<()> {
        let user = Self::dir_name(user)?;
        let base = Arc::clone(&self.base);
        let user_path = self.base_path.join(&user);
        let name = user.clone();
        tokio::task::spawn_blocking(move || match base.open_dir_nofollow(&name) {
            Ok(dir) => quota::detach_all(&dir, &user_path).map(drop),
            Err(e) => Err(provider_io(e)),
        })
        .await
        .map_err(join_error)??;
        self.remove(vec![user]).await
    }

    async fn remove(&self, names: Vec<String>) -> Result<()> {
        let base = Arc::clone(&self.base);
        tokio::task::spawn_blocking(move || {
            let (last, parents) = names.split_last().expect("at least one name");
            let mut dir = base.try_clone().map_err(provider_io)?;
            for name in parents {
                dir = dir.open_dir_nofollow(name).map_err(provider_io)?;
            }
            remove_tree(&dir, last).map_err(removal_error)
        })
        .await
        .map_err(join_error)?
    }

    /// The directory name for a user or session id.
    ///
    /// * Lower-case ASCII letters, digits and `-` are kept; every other
    ///   byte (upper case, `.`, `/`, `_`, NUL, non-ASCII) becomes `_` and
    ///   two hex digits. The encoding is one-to-one, so distinct ids get
    ///   distinct names, and no name is `.`, `..`, empty, hidden, or
    ///   differs from another only by case.
    /// * An id whose encoding is longer than 96 bytes becomes a readable
    ///   prefix, `~`, and the SHA-256 of the whole id (`~` never appears
    ///   in a plain encoding, so the two forms cannot meet).
    ///
    /// ```
    /// use sandbay_fs::FsProvider;
    /// assert_eq!(FsProvider::dir_name("alice").unwrap(), "alice");
    /// assert_eq!(FsProvider::dir_name("Bob").unwrap(), "_42ob");
    /// assert_eq!(FsProvider::dir_name("../x").unwrap(), "_2e_2e_2fx");
    /// assert!(FsProvider::dir_name("").is_err());
    /// ```
    ///
    /// # Errors
    /// `invalid_argument` for the empty id.
    pub fn dir_name(id: &str) -> Result<String> {
        if id.is_empty() {
            return Err(Error::invalid_argument(
                "a user or session id must not be empty",
            ));
        }
        let mut name = String::with_capacity(id.len());
        let mut cut = None;
        for &byte in id.as_bytes() {
            if name.len() <= HASHED_PREFIX {
                cut = Some(name.len());
            }
            if byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-' {
                name.push(byte as char);
            } else {
                // writing to a String cannot fail
                let _ = write!(name, "_{byte:02x}");
            }
        }
        if name.len() <= MAX_ENCODED {
            return Ok(name);
        }
        name.truncate(cut.unwrap_or(0));
        name.push('~');
        for byte in Sha256::digest(id.as_bytes()) {
            let _ = write!(name, "{byte:02x}");
        }
        Ok(name)
    }
}

/// Opens `base/names[0]/names[1]/...`, creating missing levels, never
/// following a symlink.
/// How often [`open_or_create`] starts over when a concurrent removal
/// takes a directory away under it.
const CREATE_ATTEMPTS: usize = 16;

fn open_or_create(base: &Dir, names: &[String]) -> Result<Dir> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match try_open_or_create(base, names) {
            // A user directory is removed when its last session goes
            // (`remove_session`): when that happens between our opening it
            // and making the session inside, start again from the base.
            Err(e) if e.kind() == io::ErrorKind::NotFound && attempt < CREATE_ATTEMPTS => {}
            Err(e) => {
                return Err(
                    if e.kind() == io::ErrorKind::NotADirectory
                        || e.raw_os_error() == Some(libc::ELOOP)
                    {
                        Error::PermissionDenied {
                            path: sandbay_core::VPath::root(),
                            reason: "the workspace directory is not a plain directory".into(),
                        }
                    } else {
                        provider_io(e)
                    },
                );
            }
            Ok(dir) => return Ok(dir),
        }
    }
}

fn try_open_or_create(base: &Dir, names: &[String]) -> io::Result<Dir> {
    let mut dir = base.try_clone()?;
    for (i, name) in names.iter().enumerate() {
        // A workspace is private to its owner (0700); the levels above it
        // can be traversed but not listed (0711), so one user's command
        // can neither list nor read another user's workspace.
        let mut builder = cap_std::fs::DirBuilder::new();
        cap_std::fs::DirBuilderExt::mode(
            &mut builder,
            if i + 1 == names.len() { 0o700 } else { 0o711 },
        );
        match dir.create_dir_with(name, &builder) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        dir = dir.open_dir_nofollow(name)?;
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_safe_and_distinct() {
        let long = "é".repeat(400);
        let ids = [
            "a", "A", "..", ".", "/", "a/b", "a\0b", "_", "_5f", "~", "ü", "日本", "a b", "-",
            "con", &long,
        ];
        let mut seen = std::collections::BTreeSet::new();
        for id in ids {
            let name = FsProvider::dir_name(id).unwrap();
            assert!(!name.is_empty() && name.len() <= 255, "{id:?} -> {name}");
            assert!(
                name != "." && name != ".." && !name.starts_with('.'),
                "{name}"
            );
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_~".contains(&b)),
                "{name}"
            );
            assert!(seen.insert(name), "collision for {id:?}");
        }
    }

    #[test]
    fn long_ids_hash_and_stay_distinct() {
        let a = "x".repeat(5000);
        let b = format!("{}y", "x".repeat(4999));
        let (na, nb) = (
            FsProvider::dir_name(&a).unwrap(),
            FsProvider::dir_name(&b).unwrap(),
        );
        assert_ne!(na, nb);
        assert!(na.contains('~') && na.len() < 130, "{na}");
        assert!(na.starts_with("xxxx"));
        // the same id always maps to the same name
        assert_eq!(na, FsProvider::dir_name(&a).unwrap());
        // prefix never splits an escape
        let weird = "/".repeat(200);
        let n = FsProvider::dir_name(&weird).unwrap();
        let prefix = n.split('~').next().unwrap();
        assert_eq!(prefix.len() % 3, 0, "{n}");
    }

    /// Scans this crate's sources: ambient authority and `std::fs` may
    /// appear only in this module.
    #[test]
    fn ambient_authority_only_here() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        let mut dirs = vec![src.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    files.push(path);
                }
            }
        }
        assert!(files.len() >= 5, "scan found too few files: {files:?}");
        let needles = ["ambient_authority", "std::fs::"];
        let mut offenders = Vec::new();
        for file in &files {
            if file.file_name().is_some_and(|n| n == "provider.rs") {
                continue;
            }
            let text = std::fs::read_to_string(file).unwrap();
            for needle in needles {
                for (i, _) in text.match_indices(needle) {
                    // `cap_std::fs::` contains `std::fs::` and is fine
                    let before = text[..i].chars().next_back();
                    if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                        continue;
                    }
                    let line = text[..i].lines().count();
                    offenders.push(format!("{}:{line}: {needle}", file.display()));
                }
            }
        }
        assert!(
            offenders.is_empty(),
            "ambient authority outside the provider: {offenders:?}"
        );
    }
}
