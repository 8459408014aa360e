//! Durable sessions: each session of a [`crate::StateStore`] opened with a
//! [`Durability`] is a file on disk, loaded on first use and written
//! behind its changes.

mod file;
mod names;

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use file::FILE_FORMAT;

use crate::backend::StateBackend;

/// How soon a change reaches the disk.
///
/// ```
/// use std::time::Duration;
/// use sandbay_state::WriteBehind;
/// assert_eq!(WriteBehind::default(), WriteBehind::Within(Duration::from_secs(1)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteBehind {
    /// Every `write`, `edit`, `delete` and `upload` returns only after the
    /// session's file is on disk (written, fsynced, renamed into place).
    /// Each change rewrites the whole session: for small workspaces.
    EveryWrite,
    /// A change is on disk at most this long after it was made; many
    /// changes in the window cost one write. A crash of the process loses
    /// at most the changes of the last window.
    Within(Duration),
}

impl Default for WriteBehind {
    fn default() -> Self {
        WriteBehind::Within(Duration::from_secs(1))
    }
}

impl WriteBehind {
    fn window(self) -> Duration {
        match self {
            WriteBehind::EveryWrite => Duration::ZERO,
            WriteBehind::Within(window) => window,
        }
    }
}

/// Where a durable [`crate::StateStore`] keeps its sessions, and how soon.
///
/// ```
/// use sandbay_state::{Durability, WriteBehind};
/// let durability = Durability::new("/var/lib/agent/state").write_behind(WriteBehind::EveryWrite);
/// assert_eq!(durability.dir(), std::path::Path::new("/var/lib/agent/state"));
/// ```
#[derive(Debug, Clone)]
pub struct Durability {
    dir: PathBuf,
    write_behind: WriteBehind,
}

impl Durability {
    /// Sessions under `dir` (made when missing), written behind within
    /// the default window of one second.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Durability {
            dir: dir.into(),
            write_behind: WriteBehind::default(),
        }
    }

    /// Sets how soon changes reach the disk.
    pub fn write_behind(mut self, write_behind: WriteBehind) -> Self {
        self.write_behind = write_behind;
        self
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How soon changes reach the disk.
    pub fn write_behind_policy(&self) -> WriteBehind {
        self.write_behind
    }
}

/// Why a saved session could not be loaded. The session's calls fail
/// with this (as `unavailable`) until it is removed; other sessions are
/// not affected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file is damaged: truncated, a checksum mismatch, not a
    /// session file. It was renamed aside (`<session>.snap.corrupt`),
    /// never dropped or overwritten.
    #[error("the saved session is damaged ({reason}); it was kept aside")]
    Corrupt {
        /// What is wrong with it.
        reason: String,
    },
    /// The file was written by a build with another format version. It
    /// is kept aside like a damaged one.
    #[error(
        "the saved session has format version {found}; this build reads version {FILE_FORMAT}; it was kept aside"
    )]
    ForeignVersion {
        /// The version the file declares.
        found: u32,
    },
    /// An earlier load kept this session's file aside; the session stays
    /// unusable until it is removed.
    #[error("the saved session was kept aside after it could not be loaded")]
    KeptAside,
    /// The file exists but could not be read.
    #[error("the saved session cannot be read ({0})")]
    Io(io::ErrorKind),
    /// A user or session id cannot name a file: empty, or longer than 128
    /// bytes.
    #[error("user and session ids must be 1 to 128 bytes long")]
    InvalidId,
}

impl From<LoadError> for sandbay_core::Error {
    fn from(e: LoadError) -> Self {
        match e {
            LoadError::InvalidId => sandbay_core::Error::invalid_argument(e.to_string()),
            _ => sandbay_core::Error::Unavailable {
                message: format!("this session's files cannot be loaded: {e}"),
            },
        }
    }
}

/// A session's identity: (user id, session id).
pub(crate) type Key = (String, String);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Sessions waiting to be written, each with the time it is due.
#[derive(Debug, Default)]
struct Queue {
    due: HashMap<Key, Instant>,
    stop: bool,
}

/// The disk side of a durable store, shared by its sessions' savers and
/// its flusher thread.
#[derive(Debug)]
pub(crate) struct Durable {
    /// `<dir>/sessions`.
    root: PathBuf,
    write_behind: WriteBehind,
    queue: Mutex<Queue>,
    wake: Condvar,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// How long a failed write waits before it is tried again.
const RETRY: Duration = Duration::from_secs(1);

impl Durable {
    /// Opens (makes) the data directory, and removes the temporary files
    /// of writes that a crash interrupted (the file they were to replace
    /// is intact).
    pub(crate) fn open(durability: &Durability) -> io::Result<Arc<Durable>> {
        let root = durability.dir.join("sessions");
        std::fs::create_dir_all(&root)?;
        // the names below (users, their session ids) are no other host
        // account's business: the snapshots are 0600, their tree 0700
        #[cfg(unix)]
        std::fs::set_permissions(&root, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        sweep_temporaries(&root);
        Ok(Arc::new(Durable {
            root,
            write_behind: durability.write_behind,
            queue: Mutex::default(),
            wake: Condvar::new(),
            thread: Mutex::new(None),
        }))
    }

    /// Starts the thread that writes changed sessions of `store`.
    pub(crate) fn start(self: &Arc<Self>, store: Weak<crate::store::Inner>) -> io::Result<()> {
        let durable = self.clone();
        let handle = std::thread::Builder::new()
            .name("sandbay-state-flush".into())
            .spawn(move || durable.run(&store))?;
        *lock(&self.thread) = Some(handle);
        Ok(())
    }

    /// The file of a session, or `None` for ids that cannot name one.
    pub(crate) fn path(&self, key: &Key) -> Option<PathBuf> {
        let user = names::encode(&key.0)?;
        let session = names::encode(&key.1)?;
        Some(self.root.join(user).join(format!("{session}.snap")))
    }

    /// Loads a session's snapshot: `Ok(None)` when it was never saved. A
    /// damaged file is renamed aside first.
    pub(crate) fn load(&self, path: &Path) -> Result<Option<crate::Snapshot>, LoadError> {
        let aside = aside_path(path);
        if aside.exists() {
            return Err(LoadError::KeptAside);
        }
        match file::read(path) {
            Err(e @ (LoadError::Corrupt { .. } | LoadError::ForeignVersion { .. })) => {
                match std::fs::rename(path, &aside) {
                    Ok(()) => tracing::error!(error = %e, "a saved state session was kept aside"),
                    // Another caller moved it aside at the same moment.
                    Err(io) if io.kind() == io::ErrorKind::NotFound && aside.exists() => {}
                    Err(io) => return Err(LoadError::Io(io.kind())),
                }
                Err(e)
            }
            other => other,
        }
    }

    /// Removes a session's files, the one kept aside included.
    pub(crate) fn remove(&self, path: &Path) -> io::Result<()> {
        for p in [path.to_path_buf(), aside_path(path)] {
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        if let Some(dir) = path.parent() {
            // The user's directory goes with their last session.
            let _ = std::fs::remove_dir(dir);
        }
        Ok(())
    }

    /// The session ids of one user saved on disk, sorted.
    pub(crate) fn saved_of(&self, user: &str) -> io::Result<Vec<String>> {
        let Some(dir) = names::encode(user) else {
            return Ok(Vec::new());
        };
        let entries = match std::fs::read_dir(self.root.join(dir)) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out: Vec<String> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name();
                let name = name.to_str()?;
                names::decode(
                    name.strip_suffix(".snap")
                        .or_else(|| name.strip_suffix(".snap.corrupt"))?,
                )
            })
            .collect();
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Whether a session has a file (or one kept aside).
    pub(crate) fn is_saved(&self, key: &Key) -> bool {
        self.path(key)
            .is_some_and(|p| p.exists() || aside_path(&p).exists())
    }

    /// The (user, session) ids saved on disk, sorted. Files that no id
    /// maps to are skipped.
    pub(crate) fn saved(&self) -> io::Result<Vec<Key>> {
        let mut out = Vec::new();
        for user in std::fs::read_dir(&self.root)? {
            let user = user?;
            let Some(user_id) = user.file_name().to_str().and_then(names::decode) else {
                continue;
            };
            let Ok(sessions) = std::fs::read_dir(user.path()) else {
                continue;
            };
            for session in sessions.flatten() {
                let name = session.file_name();
                let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".snap")) else {
                    continue;
                };
                if let Some(session_id) = names::decode(stem) {
                    out.push((user_id.clone(), session_id));
                }
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// Queues a session for writing once its window has passed.
    fn queue(&self, key: &Key) {
        let due = Instant::now() + self.write_behind.window();
        let mut queue = lock(&self.queue);
        queue.due.entry(key.clone()).or_insert(due);
        drop(queue);
        self.wake.notify_one();
    }

    /// Stops the flusher thread after it wrote what is queued.
    pub(crate) fn stop(&self) {
        lock(&self.queue).stop = true;
        self.wake.notify_all();
        let handle = lock(&self.thread).take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }

    /// The flusher: waits for queued sessions to fall due, writes them.
    fn run(&self, store: &Weak<crate::store::Inner>) {
        loop {
            let batch: Vec<Key> = {
                let mut queue = lock(&self.queue);
                loop {
                    if queue.due.is_empty() {
                        if queue.stop {
                            return;
                        }
                        queue = self
                            .wake
                            .wait(queue)
                            .unwrap_or_else(PoisonError::into_inner);
                        continue;
                    }
                    let now = Instant::now();
                    let first = queue.due.values().min().copied().unwrap_or(now);
                    if queue.stop || first <= now {
                        break;
                    }
                    queue = self
                        .wake
                        .wait_timeout(queue, first - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
                let now = Instant::now();
                let stop = queue.stop;
                let due: Vec<Key> = queue
                    .due
                    .iter()
                    .filter(|(_, at)| stop || **at <= now)
                    .map(|(k, _)| k.clone())
                    .collect();
                for key in &due {
                    queue.due.remove(key);
                }
                due
            };
            let Some(store) = store.upgrade() else {
                return;
            };
            for key in batch {
                let Some(backend) = store.loaded(&key) else {
                    continue; // removed, or unloaded after its last write
                };
                if let Some(saver) = backend.saver() {
                    saver.queued.store(false, Ordering::Release);
                    if let Err(e) = saver.save(&backend) {
                        tracing::error!(error = %e, "writing a state session failed; retrying");
                        lock(&self.queue)
                            .due
                            .insert(key, Instant::now() + RETRY.max(self.write_behind.window()));
                    }
                }
            }
        }
    }
}

/// Removes `.tmp-*.snap` files left in the users' directories.
fn sweep_temporaries(root: &Path) {
    let Ok(users) = std::fs::read_dir(root) else {
        return;
    };
    for user in users.flatten() {
        let Ok(files) = std::fs::read_dir(user.path()) else {
            continue;
        };
        for file in files.flatten() {
            let name = file.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(".tmp-") && name.ends_with(".snap") {
                match std::fs::remove_file(file.path()) {
                    Ok(()) => tracing::info!("removed the temporary file of an interrupted write"),
                    Err(e) => {
                        tracing::warn!(error = %e, "an interrupted write's temporary file stays")
                    }
                }
            }
        }
    }
}

fn aside_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".corrupt");
    PathBuf::from(name)
}

/// The link from one session's backend to the disk.
#[derive(Debug)]
pub(crate) struct Saver {
    key: Key,
    path: PathBuf,
    durable: Arc<Durable>,
    /// Bumped by every change, while the change holds the write lock.
    generation: AtomicU64,
    /// The generation on disk; its lock orders the writes of this session.
    saved: Mutex<u64>,
    /// Set while the session waits in the flusher's queue.
    queued: AtomicBool,
    /// Set when the session was removed: nothing is written any more.
    detached: AtomicBool,
}

impl Saver {
    pub(crate) fn new(key: Key, path: PathBuf, durable: Arc<Durable>) -> Saver {
        Saver {
            key,
            path,
            durable,
            generation: AtomicU64::new(0),
            saved: Mutex::new(0),
            queued: AtomicBool::new(false),
            detached: AtomicBool::new(false),
        }
    }

    /// Records a change; called with the session's write lock held.
    pub(crate) fn touch(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        if !self.queued.swap(true, Ordering::AcqRel) {
            self.durable.queue(&self.key);
        }
    }

    /// Whether every change is on disk.
    pub(crate) fn is_clean(&self) -> bool {
        *lock(&self.saved) == self.generation.load(Ordering::Acquire)
    }

    /// Writes the session when it has changes that are not on disk.
    pub(crate) fn save(&self, backend: &StateBackend) -> io::Result<()> {
        let mut saved = lock(&self.saved);
        // Read before the snapshot: the snapshot holds at least this.
        let generation = self.generation.load(Ordering::Acquire);
        if *saved == generation || self.detached.load(Ordering::Acquire) {
            return Ok(());
        }
        let bytes = file::encode(&backend.snapshot());
        file::write_atomic(&self.path, &bytes)?;
        *saved = generation;
        Ok(())
    }

    /// With [`WriteBehind::EveryWrite`], writes the session now (on the
    /// blocking pool); otherwise nothing.
    pub(crate) async fn commit(
        self: Arc<Self>,
        backend: &StateBackend,
    ) -> sandbay_core::Result<()> {
        if self.durable.write_behind != WriteBehind::EveryWrite {
            return Ok(());
        }
        let generation = self.generation.load(Ordering::Acquire);
        let bytes = file::encode(&backend.snapshot());
        let saver = self.clone();
        let written = tokio::task::spawn_blocking(move || {
            let mut saved = lock(&saver.saved);
            if *saved >= generation || saver.detached.load(Ordering::Acquire) {
                return Ok(());
            }
            file::write_atomic(&saver.path, &bytes)?;
            *saved = generation;
            Ok::<(), io::Error>(())
        })
        .await
        .map_err(|_| sandbay_core::Error::Unavailable {
            message: "the write to disk was cancelled".into(),
        })?;
        written.map_err(|e| {
            tracing::error!(error = %e, "writing a state session failed");
            sandbay_core::Error::Io {
                path: None,
                kind: e.kind(),
            }
        })
    }

    /// Stops all writes of this session (it was removed).
    pub(crate) fn detach(&self) {
        let _saved = lock(&self.saved);
        self.detached.store(true, Ordering::Release);
    }
}
