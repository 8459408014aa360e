//! [`WorkspaceStore`]: workspaces that outlive every jail, container and
//! process that works in them.
//!
//! # Layout
//!
//! ```text
//! base/.lock                         held (flock) by the one process serving the store
//! base/<user>/<session>/             a plain workspace, or with a mounted quota:
//! base/<user>/<session>.img          its ext4 image
//! base/<user>/<session>.mnt/workspace/   the mounted workspace
//! base/<user>/<session>.json         its metadata (next to the workspace, never inside)
//! ```
//!
//! Directory names come from [`FsProvider::dir_name`]; a name never
//! contains `.`, so `<session>.json` and its temporaries
//! (`<session>.json.<pid>-<n>.tmp`) cannot meet a workspace.
//!
//! # Durability
//!
//! Metadata is written atomically: a temporary file, `fsync`, `rename`,
//! `fsync` of the directory. A workspace's own files are written by the
//! backend atomically (temporary file and `rename`) before the call
//! returns, so an acknowledged write is in the kernel and survives a
//! `kill -9` of the process without an `fsync`; surviving a power loss
//! as well takes [`FsConfig::sync_writes`](crate::FsConfig::sync_writes)
//! (an `fsync` of the file and its directory per write; the cost is
//! measured by `cargo xtask bench`, section `storage`).

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use cap_fs_ext::DirExt;
use cap_std::fs::{Dir, MetadataExt, OpenOptions};
use nix::fcntl::{Flock, FlockArg};
use sandbay_core::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::backend::FsBackend;
use crate::config::FsConfig;
use crate::error::{join_error, provider_io};
use crate::provider::FsProvider;
use crate::quota;

/// The lock file that keeps a second process off a store's base.
const LOCK_FILE: &str = ".lock";
/// The suffix of a workspace's metadata file.
const META_SUFFIX: &str = ".json";
/// The suffix of a metadata temporary.
const TMP_SUFFIX: &str = ".tmp";

/// What is known of one workspace without opening it: the content of its
/// metadata file.
///
/// `bytes` and `files` are as counted when the workspace was last
/// [detached](WorkspaceStore::detach) or [recorded](WorkspaceStore::record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WorkspaceInfo {
    /// The user id, as given.
    pub user: String,
    /// The session id, as given.
    pub session: String,
    /// When the workspace was made, milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// When it was last attached or recorded, milliseconds since the Unix epoch.
    pub last_used_ms: u64,
    /// Bytes in its regular files.
    pub bytes: u64,
    /// Entries in it (files, directories, links).
    pub files: u64,
    /// Whether it is a quota image of its own ([`crate::Quota`]).
    pub imaged: bool,
    /// Whether it was made completely (a workspace whose making was cut
    /// short by a crash is removed when the store opens).
    ready: bool,
}

/// What [`WorkspaceStore::open`] cleaned up after a process that was
/// killed while serving the same base directory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Recovery {
    /// Quota images left mounted, now unmounted (their loop devices are
    /// freed with them; the next attach mounts them again).
    pub unmounted: usize,
    /// Metadata temporaries removed.
    pub temporaries: usize,
    /// Workspaces whose making was interrupted (they never held a file a
    /// caller was told about), removed.
    pub unfinished: usize,
}

/// The per-(user, session) count of attached [`Workspace`] handles.
type Live = Arc<Mutex<HashMap<(String, String), usize>>>;

fn lock_live(live: &Live) -> MutexGuard<'_, HashMap<(String, String), usize>> {
    live.lock().unwrap_or_else(|p| p.into_inner())
}

/// One workspace per (user, session) on the host's disk that outlives
/// every jail, container and process working in it: made on first
/// [`attach`](WorkspaceStore::attach), found again by every later one,
/// and deleted only by [`remove`](WorkspaceStore::remove).
///
/// Built on an [`FsProvider`] (same layout, same names): a plain
/// directory, or with a [`crate::Quota`] on a root host a loop-mounted
/// ext4 image, each with a small metadata file next to it
/// ([`WorkspaceInfo`]). One process serves a base directory at a time
/// (an `flock` on `base/.lock`); opening it cleans up what a killed
/// predecessor left ([`Recovery`]).
///
/// ```
/// # async fn demo() -> sandbay_core::Result<()> {
/// use sandbay_core::{Backend, BackendExt, VPath};
/// use sandbay_fs::{FsConfig, WorkspaceStore};
///
/// # let tmp = tempfile::tempdir().unwrap();
/// let path = VPath::parse("/notes.md")?;
/// {
///     let store = WorkspaceStore::open(tmp.path(), FsConfig::default()).await?;
///     let ws = store.attach("alice", "s1").await?;
///     ws.backend().write(&path, "kept\n").await?;
/// } // the process may end here, or be killed
/// let store = WorkspaceStore::open(tmp.path(), FsConfig::default()).await?;
/// assert_eq!(store.list_of("alice").await?[0].session, "s1");
/// let ws = store.attach("alice", "s1").await?;
/// assert_eq!(ws.backend().read_to_string(&path).await?, "kept\n");
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
#[derive(Clone)]
pub struct WorkspaceStore {
    provider: FsProvider,
    live: Live,
    recovery: Recovery,
    _lock: Arc<Flock<OwnedFd>>,
}

impl std::fmt::Debug for WorkspaceStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkspaceStore")
            .field("provider", &self.provider)
            .field("recovery", &self.recovery)
            .finish_non_exhaustive()
    }
}

/// A workspace attached for use: its backend and host directory. While a
/// handle of a workspace exists, [`WorkspaceStore::detach`] leaves its
/// image mounted.
pub struct Workspace {
    backend: FsBackend,
    host_dir: PathBuf,
    info: WorkspaceInfo,
    _live: LiveGuard,
}

impl std::fmt::Debug for Workspace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // never the host path
        f.debug_struct("Workspace")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl Workspace {
    /// The file backend (clones share it).
    pub fn backend(&self) -> &FsBackend {
        &self.backend
    }

    /// The host directory of the workspace: the working directory of a
    /// jail, the source of a container's bind mount. Valid while this
    /// handle lives. Never show it to a user.
    pub fn host_dir(&self) -> &Path {
        &self.host_dir
    }

    /// The metadata as of the attach.
    pub fn info(&self) -> &WorkspaceInfo {
        &self.info
    }

    /// A sandbox over this workspace whose commands run in `jail`, named
    /// `id`. The sandbox does not keep the workspace attached: keep this
    /// handle for as long as the sandbox is used.
    #[cfg(feature = "exec")]
    pub fn sandbox(&self, id: impl Into<String>, jail: sandbay_exec::Jail) -> crate::FsSandbox {
        crate::FsSandbox::new(id, self.backend.clone(), self.host_dir.clone(), jail)
    }
}

/// Counts one attached handle of a workspace.
struct LiveGuard {
    live: Live,
    key: (String, String),
}

impl LiveGuard {
    fn new(live: &Live, user: &str, session: &str) -> LiveGuard {
        let key = (user.to_owned(), session.to_owned());
        *lock_live(live).entry(key.clone()).or_default() += 1;
        LiveGuard {
            live: Arc::clone(live),
            key,
        }
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        let mut live = lock_live(&self.live);
        if let Some(n) = live.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                live.remove(&self.key);
            }
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn meta_name(session: &str) -> String {
    format!("{session}{META_SUFFIX}")
}

fn meta_io(e: io::Error) -> Error {
    tracing::warn!(kind = ?e.kind(), "workspace metadata I/O failed");
    provider_io(e)
}

/// Reads a metadata file; `None` when there is none.
fn read_meta(user_dir: &Dir, name: &str) -> io::Result<Option<WorkspaceInfo>> {
    let mut file = match user_dir.open(name) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut text = Vec::new();
    file.read_to_end(&mut text)?;
    serde_json::from_slice(&text)
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Writes a metadata file atomically and durably.
fn write_meta(user_dir: &Dir, info: &WorkspaceInfo, session_name: &str) -> io::Result<()> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = meta_name(session_name);
    let tmp = format!(
        "{name}.{}-{}{TMP_SUFFIX}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let text = serde_json::to_vec_pretty(info).map_err(io::Error::other)?;
    let result = (|| {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        let mut file = user_dir.open_with(&tmp, &options)?;
        file.write_all(&text)?;
        file.sync_all()?;
        user_dir.rename(&tmp, user_dir, &name)?;
        user_dir.open(".")?.sync_all()
    })();
    if result.is_err() {
        let _ = user_dir.remove_file(&tmp);
    }
    result
}

/// Bytes of regular files and entries below `root` (links not followed).
fn usage(root: &Dir) -> io::Result<(u64, u64)> {
    let (mut bytes, mut files) = (0u64, 0u64);
    let mut dirs = vec![root.try_clone()?];
    while let Some(dir) = dirs.pop() {
        for entry in dir.entries()? {
            let entry = entry?;
            files += 1;
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
                bytes = bytes.saturating_add(meta.len());
            }
        }
    }
    Ok((bytes, files))
}

/// Opens a user's directory if it exists.
fn user_dir(base: &Dir, user_name: &str) -> io::Result<Option<Dir>> {
    match base.open_dir_nofollow(user_name) {
        Ok(dir) => Ok(Some(dir)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Every ready workspace's metadata in a user's directory.
fn metas_in(user_dir: &Dir) -> io::Result<Vec<WorkspaceInfo>> {
    let mut out = Vec::new();
    for entry in user_dir.entries()? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(META_SUFFIX)
            && let Some(info) = read_meta(user_dir, name)?
            && info.ready
        {
            out.push(info);
        }
    }
    Ok(out)
}

impl WorkspaceStore {
    /// Opens the store at a host path (made when missing), taking it for
    /// this process and cleaning up after a killed predecessor (see
    /// [`Recovery`]): quota images it left mounted are unmounted,
    /// metadata temporaries and workspaces whose making it did not finish
    /// are removed. Workspaces are created with `config`.
    ///
    /// # Errors
    /// `unavailable` if the directory cannot be opened or another process
    /// (or another store in this one) still holds it after two seconds;
    /// `io` if cleaning up fails.
    pub async fn open(base: impl AsRef<Path>, config: FsConfig) -> Result<Self> {
        let provider = FsProvider::open(base).await?.with_config(config);
        let dir = Arc::clone(provider.base());
        let base_path = provider.base_path().to_path_buf();
        let (lock, recovery) = tokio::task::spawn_blocking(move || {
            let lock = take_lock(&dir)?;
            let recovery = recover(&dir, &base_path)?;
            Ok::<_, Error>((lock, recovery))
        })
        .await
        .map_err(join_error)??;
        if recovery != Recovery::default() {
            tracing::info!(?recovery, "workspace store recovered after a crash");
        }
        Ok(WorkspaceStore {
            provider,
            live: Live::default(),
            recovery,
            _lock: Arc::new(lock),
        })
    }

    /// What opening the store cleaned up.
    pub fn recovery(&self) -> Recovery {
        self.recovery
    }

    /// The provider underneath (same base and settings).
    pub fn provider(&self) -> &FsProvider {
        &self.provider
    }

    /// Attaches a workspace, making it on first use: its directory (or
    /// image, made and mounted) and its metadata; later calls find the same
    /// files. Marks it used now.
    ///
    /// # Errors
    /// As [`FsProvider::session`]; `io` if the metadata cannot be written.
    pub async fn attach(&self, user: &str, session: &str) -> Result<Workspace> {
        let guard = LiveGuard::new(&self.live, user, session);
        let user_name = FsProvider::dir_name(user)?;
        let session_name = FsProvider::dir_name(session)?;
        let imaged = self.imaged();
        let known = self.read_info(&user_name, &session_name).await?;
        let mut info = match known {
            Some(info) if info.ready => info,
            _ => {
                let now = now_ms();
                let info = WorkspaceInfo {
                    user: user.to_owned(),
                    session: session.to_owned(),
                    created_ms: now,
                    last_used_ms: now,
                    bytes: 0,
                    files: 0,
                    imaged,
                    ready: false,
                };
                // written before anything is made: a crash while making it
                // leaves a marker the next open removes
                self.write_info(&user_name, &session_name, &info, true)
                    .await?;
                info
            }
        };
        let backend = self.provider.session(user, session).await?;
        info.ready = true;
        info.last_used_ms = now_ms();
        self.write_info(&user_name, &session_name, &info, false)
            .await?;
        Ok(Workspace {
            backend,
            host_dir: self.provider.session_path(user, session)?,
            info,
            _live: guard,
        })
    }

    /// The host directory to bind into a container or use as a jail's
    /// working directory, attaching (making or mounting) the workspace as
    /// needed. Keep the returned [`Workspace`] for as long as the directory
    /// is in use; this is `attach` for callers that want the path first.
    ///
    /// # Errors
    /// As [`WorkspaceStore::attach`].
    pub async fn mount_source(&self, user: &str, session: &str) -> Result<(PathBuf, Workspace)> {
        let ws = self.attach(user, session).await?;
        Ok((ws.host_dir.clone(), ws))
    }

    /// A workspace's metadata, if it exists.
    ///
    /// # Errors
    /// `invalid_argument` for an empty id; `io` if the metadata cannot be read.
    pub async fn get(&self, user: &str, session: &str) -> Result<Option<WorkspaceInfo>> {
        let info = self
            .read_info(
                &FsProvider::dir_name(user)?,
                &FsProvider::dir_name(session)?,
            )
            .await?;
        Ok(info.filter(|i| i.ready))
    }

    /// Every workspace, sorted by user and session.
    ///
    /// # Errors
    /// `io` if the base directory or a metadata file cannot be read.
    pub async fn list(&self) -> Result<Vec<WorkspaceInfo>> {
        let base = Arc::clone(self.provider.base());
        let mut all = tokio::task::spawn_blocking(move || {
            let mut all = Vec::new();
            for entry in base.entries()? {
                let entry = entry?;
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                if name.starts_with('.') || !entry.file_type()?.is_dir() {
                    continue;
                }
                if let Some(dir) = user_dir(&base, name)? {
                    all.extend(metas_in(&dir)?);
                }
            }
            Ok::<_, io::Error>(all)
        })
        .await
        .map_err(join_error)?
        .map_err(meta_io)?;
        all.sort_by(|a, b| (&a.user, &a.session).cmp(&(&b.user, &b.session)));
        Ok(all)
    }

    /// Every workspace of one user, sorted by session.
    ///
    /// # Errors
    /// `invalid_argument` for an empty id; `io` if metadata cannot be read.
    pub async fn list_of(&self, user: &str) -> Result<Vec<WorkspaceInfo>> {
        let base = Arc::clone(self.provider.base());
        let name = FsProvider::dir_name(user)?;
        let mut all = tokio::task::spawn_blocking(move || match user_dir(&base, &name)? {
            Some(dir) => metas_in(&dir),
            None => Ok(Vec::new()),
        })
        .await
        .map_err(join_error)?
        .map_err(meta_io)?;
        // two ids never share a directory name, but a user directory
        // holds only that user's workspaces anyway
        all.retain(|i| i.user == user);
        all.sort_by(|a, b| a.session.cmp(&b.session));
        Ok(all)
    }

    /// Counts a workspace's bytes and entries now and writes them, with the
    /// time, to its metadata. An image that is not mounted keeps its last
    /// count.
    ///
    /// # Errors
    /// `not_found` if the workspace does not exist; `io` on I/O failure.
    pub async fn record(&self, user: &str, session: &str) -> Result<WorkspaceInfo> {
        let user_name = FsProvider::dir_name(user)?;
        let session_name = FsProvider::dir_name(session)?;
        let Some(mut info) = self
            .read_info(&user_name, &session_name)
            .await?
            .filter(|i| i.ready)
        else {
            return Err(provider_io(io::ErrorKind::NotFound.into()));
        };
        let base = Arc::clone(self.provider.base());
        let imaged = info.imaged;
        let names = (user_name.clone(), session_name.clone());
        let counted = tokio::task::spawn_blocking(move || {
            let Some(user_dir) = user_dir(&base, &names.0)? else {
                return Ok(None);
            };
            let root = if imaged {
                let mount = format!("{}{}", names.1, quota::MOUNT_SUFFIX);
                let top = user_dir.open_dir_nofollow(&mount)?;
                if top.dir_metadata()?.dev() == user_dir.dir_metadata()?.dev() {
                    return Ok(None); // not mounted
                }
                top.open_dir_nofollow(quota::WORKSPACE)?
            } else {
                user_dir.open_dir_nofollow(&names.1)?
            };
            usage(&root).map(Some)
        })
        .await
        .map_err(join_error)?
        .map_err(meta_io)?;
        if let Some((bytes, files)) = counted {
            info.bytes = bytes;
            info.files = files;
        }
        info.last_used_ms = now_ms();
        self.write_info(&user_name, &session_name, &info, false)
            .await?;
        Ok(info)
    }

    /// Ends a workspace's attachment to compute: records its usage (see
    /// [`WorkspaceStore::record`]) and, when no [`Workspace`] handle of it
    /// is left in this process, unmounts its image (the loop device is
    /// freed; the next attach mounts it again with its files). The files
    /// stay. Safe to call while the same workspace is being attached again:
    /// an image in use is never unmounted.
    ///
    /// # Errors
    /// As [`WorkspaceStore::record`]; `unavailable` if the image cannot be
    /// unmounted.
    pub async fn detach(&self, user: &str, session: &str) -> Result<WorkspaceInfo> {
        let info = self.record(user, session).await?;
        if info.imaged {
            let live = Arc::clone(&self.live);
            let key = (user.to_owned(), session.to_owned());
            let base = Arc::clone(self.provider.base());
            let user_name = FsProvider::dir_name(user)?;
            let user_path = self.provider.base_path().join(&user_name);
            let session_name = FsProvider::dir_name(session)?;
            tokio::task::spawn_blocking(move || {
                // held across the unmount: an attach counts itself first,
                // then mounts, so it either stops this or comes after it
                let live = lock_live(&live);
                if live.contains_key(&key) {
                    return Ok(());
                }
                match user_dir(&base, &user_name).map_err(provider_io)? {
                    Some(dir) => quota::detach(&dir, &user_path, &session_name).map(drop),
                    None => Ok(()),
                }
            })
            .await
            .map_err(join_error)??;
        }
        Ok(info)
    }

    /// Deletes a workspace for good: its files (its image, unmounted
    /// first) and its metadata. Open handles of it see an empty, detached
    /// directory.
    ///
    /// # Errors
    /// `not_found` if it does not exist; `unavailable` if its image cannot
    /// be unmounted.
    pub async fn remove(&self, user: &str, session: &str) -> Result<()> {
        let user_name = FsProvider::dir_name(user)?;
        let session_name = FsProvider::dir_name(session)?;
        let base = Arc::clone(self.provider.base());
        let names = (user_name, session_name);
        // the metadata goes first: a crash half way leaves files nobody
        // lists, never a listed workspace without files
        let had_meta = tokio::task::spawn_blocking(move || {
            let Some(dir) = user_dir(&base, &names.0)? else {
                return Ok(false);
            };
            match dir.remove_file(meta_name(&names.1)) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(e),
            }
        })
        .await
        .map_err(join_error)?
        .map_err(meta_io)?;
        match self.provider.remove_session(user, session).await {
            Err(e) if had_meta && e.code().as_str() == "not_found" => Ok(()),
            other => other,
        }
    }

    fn imaged(&self) -> bool {
        self.provider.config().quota.is_some() && quota::host_can_mount()
    }

    async fn read_info(
        &self,
        user_name: &str,
        session_name: &str,
    ) -> Result<Option<WorkspaceInfo>> {
        let base = Arc::clone(self.provider.base());
        let names = (user_name.to_owned(), meta_name(session_name));
        tokio::task::spawn_blocking(move || match user_dir(&base, &names.0)? {
            Some(dir) => read_meta(&dir, &names.1),
            None => Ok(None),
        })
        .await
        .map_err(join_error)?
        .map_err(meta_io)
    }

    async fn write_info(
        &self,
        user_name: &str,
        session_name: &str,
        info: &WorkspaceInfo,
        create_user: bool,
    ) -> Result<()> {
        let base = Arc::clone(self.provider.base());
        let names = (user_name.to_owned(), session_name.to_owned());
        let info = info.clone();
        tokio::task::spawn_blocking(move || {
            let dir = match user_dir(&base, &names.0)? {
                Some(dir) => dir,
                None if create_user => {
                    let mut builder = cap_std::fs::DirBuilder::new();
                    cap_std::fs::DirBuilderExt::mode(&mut builder, 0o711);
                    match base.create_dir_with(&names.0, &builder) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                        Err(e) => return Err(e),
                    }
                    base.open_dir_nofollow(&names.0)?
                }
                None => return Err(io::ErrorKind::NotFound.into()),
            };
            write_meta(&dir, &info, &names.1)
        })
        .await
        .map_err(join_error)?
        .map_err(meta_io)
    }
}

/// How long [`WorkspaceStore::open`] waits for the lock: a killed
/// predecessor's last child processes may hold its descriptor for a
/// moment while they exit.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Takes the store's lock file, or says that someone holds it.
fn take_lock(base: &Dir) -> Result<Flock<OwnedFd>> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true);
    let file = base
        .open_with(LOCK_FILE, &options)
        .map_err(provider_io)?
        .into_std();
    let mut file = OwnedFd::from(file);
    let started = std::time::Instant::now();
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(lock),
            Err((back, errno)) if errno == nix::errno::Errno::EWOULDBLOCK => {
                if started.elapsed() >= LOCK_WAIT {
                    tracing::warn!("the workspace store is held by another process");
                    return Err(Error::Unavailable {
                        message:
                            "the workspace store is served by another process (or store) already"
                                .into(),
                    });
                }
                file = back;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err((_, errno)) => {
                tracing::warn!(%errno, "the workspace store cannot be locked");
                return Err(Error::Unavailable {
                    message: format!("the workspace store cannot be locked ({errno})"),
                });
            }
        }
    }
}

/// Cleans up after a killed process (see [`Recovery`]).
fn recover(base: &Dir, base_path: &Path) -> Result<Recovery> {
    let mut recovery = Recovery::default();
    let can_mount = quota::host_can_mount();
    for entry in base.entries().map_err(provider_io)? {
        let entry = entry.map_err(provider_io)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') || !entry.file_type().map_err(provider_io)?.is_dir() {
            continue;
        }
        let Some(dir) = user_dir(base, name).map_err(provider_io)? else {
            continue;
        };
        let user_path = base_path.join(name);
        if can_mount {
            recovery.unmounted += quota::detach_all(&dir, &user_path)?;
        }
        let names: Vec<String> = dir
            .entries()
            .map_err(provider_io)?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        for file in names {
            if file.ends_with(TMP_SUFFIX) && file.contains(META_SUFFIX) {
                dir.remove_file(&file).map_err(provider_io)?;
                recovery.temporaries += 1;
            } else if let Some(session) = file.strip_suffix(META_SUFFIX) {
                let info = match read_meta(&dir, &file) {
                    Ok(info) => info,
                    Err(e) => {
                        tracing::warn!(kind = ?e.kind(), "unreadable workspace metadata kept");
                        continue;
                    }
                };
                if info.is_some_and(|i| !i.ready) {
                    quota::remove(&dir, &user_path, session)?;
                    match dir.remove_dir_all(session) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(provider_io(e)),
                    }
                    dir.remove_file(&file).map_err(provider_io)?;
                    recovery.unfinished += 1;
                }
            }
        }
    }
    Ok(recovery)
}
