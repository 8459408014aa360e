//! [`FsBackend`]: the [`Backend`] implementation.

use std::fmt;
use std::sync::Arc;

use cap_std::fs::Dir;
use sandbay_core::{
    Backend, Capabilities, DirEntry, EditOutcome, EditRequest, GlobOutput, GlobRequest, GrepOutput,
    GrepRequest, ReadRequest, Result, TextWindow, VPath, async_trait,
};

use crate::config::FsConfig;
use crate::error::join_error;
use crate::locks::PathLocks;
use crate::quota::{Budget, Enforcement};
use crate::{clear, read, search, write};

/// Writes and edits of files up to this size run on the calling task:
/// building and renaming a temporary file of that size takes about as
/// long as a hop to the blocking pool. Larger ones, tree walks (`grep`,
/// `glob`, `clear`, `delete` of a directory), batches and synced writes
/// run on the pool.
const INLINE_BYTES: usize = 64 * 1024;

/// A workspace in a host directory, reached only through a
/// [`cap_std::fs::Dir`] capability.
///
/// Cheap to clone (the handle is shared). Calls whose work is small and
/// bounded (`ls`, `stat`, `read`, writes and edits of files up to 64 KiB)
/// run on the calling task; tree walks, larger changes, batches and synced
/// writes run on tokio's blocking pool, so a call needs a tokio runtime.
///
/// ```
/// # async fn demo() -> sandbay_core::Result<()> {
/// use sandbay_core::{Backend, VPath};
/// use sandbay_fs::FsBackend;
///
/// # let tmp = tempfile::tempdir().unwrap();
/// // Any `cap_std::fs::Dir` will do; `open_root` opens one from a host path.
/// let root = sandbay_fs::open_root(tmp.path()).await?;
/// let fs = FsBackend::new(root);
/// let path = VPath::parse("/notes/todo.md")?;
/// fs.write(&path, "buy milk\n").await?;
/// let window = fs.read(&path, Default::default()).await?;
/// assert_eq!(window.lines, ["buy milk"]);
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
#[derive(Clone)]
pub struct FsBackend {
    inner: Arc<Inner>,
}

/// What the blocking work needs: the capability, the settings, the locks.
#[derive(Debug)]
struct Inner {
    root: Dir,
    config: FsConfig,
    locks: PathLocks,
    quota: Option<Enforcement>,
}

impl fmt::Debug for FsBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print anything that could name a host path.
        f.debug_struct("FsBackend")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl FsBackend {
    /// A backend over `root` with the default [`FsConfig`].
    pub fn new(root: Dir) -> Self {
        Self::with_config(root, FsConfig::default())
    }

    /// A backend over `root` with the given settings.
    ///
    /// A [`FsConfig::quota`] is counted by the file API here (a byte
    /// quota; commands are not capped): only
    /// [`FsProvider`](crate::FsProvider) can give a workspace a file
    /// system of its own (see [`crate::Quota`]).
    pub fn with_config(root: Dir, config: FsConfig) -> Self {
        let quota = config
            .quota
            .map(|q| Enforcement::Counted(Budget::new(q.bytes)));
        Self::with_enforcement(root, config, quota)
    }

    /// A backend whose quota is enforced as given.
    pub(crate) fn with_enforcement(
        root: Dir,
        config: FsConfig,
        quota: Option<Enforcement>,
    ) -> Self {
        FsBackend {
            inner: Arc::new(Inner {
                root,
                config,
                locks: PathLocks::default(),
                quota,
            }),
        }
    }

    /// Forgets the byte count of a counted quota: files changed behind
    /// the backend's back (a command ran) are counted again on the next
    /// write.
    pub(crate) fn forget_usage(&self) {
        if let Some(budget) = self.budget() {
            budget.forget();
        }
    }

    fn budget(&self) -> Option<&Budget> {
        self.inner.quota.as_ref().and_then(Enforcement::budget)
    }

    /// The settings in force.
    pub fn config(&self) -> &FsConfig {
        &self.inner.config
    }

    /// The root capability (for host-side helpers that need the same
    /// handle, e.g. to pass it on).
    pub fn root(&self) -> &Dir {
        &self.inner.root
    }

    /// Runs blocking file work on tokio's blocking pool.
    async fn blocking<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Dir, &FsConfig, &PathLocks) -> Result<T> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || work(&inner.root, &inner.config, &inner.locks))
            .await
            .unwrap_or_else(|e| Err(join_error(e)))
            .map_err(|e| self.with_limit(e))
    }

    /// Whether a change may run on the calling task: not with a counted
    /// quota (its first change counts the whole tree) nor with synced
    /// writes (an `fsync` can take milliseconds).
    fn changes_inline(&self) -> bool {
        !self.inner.config.sync_writes && self.budget().is_none()
    }

    /// Names the byte quota in a `quota_exceeded` the kernel reported.
    fn with_limit(&self, err: sandbay_core::Error) -> sandbay_core::Error {
        match (err, &self.inner.quota) {
            (sandbay_core::Error::QuotaExceeded { path, limit: None }, Some(quota)) => {
                sandbay_core::Error::QuotaExceeded {
                    path,
                    limit: Some(quota.bytes()),
                }
            }
            (err, _) => err,
        }
    }
}

#[async_trait]
impl Backend for FsBackend {
    fn name(&self) -> &'static str {
        "fs"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            symlinks: true,
            persistent: true,
            quota: self.inner.quota.as_ref().map(Enforcement::declared),
            ..Capabilities::default()
        }
    }

    // `ls`, `stat` and `read` run on the calling task: a listing, one
    // `statx`, or one file read up to the window's byte budget are a few
    // system calls on the page cache, cheaper than the hand-off to the
    // blocking pool and back. Small changes do the same (see `INLINE_BYTES`).

    async fn ls(&self, path: &VPath) -> Result<Vec<DirEntry>> {
        read::ls(&self.inner.root, path)
    }

    async fn stat(&self, path: &VPath) -> Result<DirEntry> {
        read::stat(&self.inner.root, path)
    }

    async fn read(&self, path: &VPath, request: ReadRequest) -> Result<TextWindow> {
        read::read(&self.inner.root, path, request, &self.inner.config)
    }

    async fn write(&self, path: &VPath, content: &str) -> Result<()> {
        if content.len() <= INLINE_BYTES && self.changes_inline() {
            // Never wait for a lock on the calling task: if another change
            // of a path of this stripe is under way, go to the pool.
            if let Some(_guard) = self.inner.locks.try_lock(path) {
                let inner = &self.inner;
                return write::write(&inner.root, path, content.as_bytes(), &inner.config, None)
                    .map_err(|e| self.with_limit(e));
            }
        }
        let path = path.clone();
        let content = content.to_owned();
        let this = self.clone();
        self.blocking(move |root, config, locks| {
            let _guard = locks.lock(&path);
            write::write(root, &path, content.as_bytes(), config, this.budget())
        })
        .await
    }

    async fn edit(&self, path: &VPath, request: &EditRequest) -> Result<EditOutcome> {
        if self.changes_inline()
            && let Some(_guard) = self.inner.locks.try_lock(path)
        {
            let inner = &self.inner;
            let small = write::edit_up_to(
                &inner.root,
                path,
                request,
                &inner.config,
                None,
                INLINE_BYTES as u64,
            )
            .map_err(|e| self.with_limit(e))?;
            if let Some(outcome) = small {
                return Ok(outcome);
            }
            // a larger file: edited on the pool, nothing was changed here
        }
        let path = path.clone();
        let request = request.clone();
        let this = self.clone();
        self.blocking(move |root, config, locks| {
            let _guard = locks.lock(&path);
            write::edit(root, &path, &request, config, this.budget())
        })
        .await
    }

    async fn delete(&self, path: &VPath) -> Result<()> {
        let path = path.clone();
        let result = self
            .blocking(move |root, _, locks| {
                let _guard = locks.lock(&path);
                write::delete(root, &path)
            })
            .await;
        self.forget_usage();
        result
    }

    async fn grep(&self, request: &GrepRequest) -> Result<GrepOutput> {
        let request = request.clone();
        self.blocking(move |root, config, _| search::grep(root, &request, config))
            .await
    }

    async fn glob(&self, request: &GlobRequest) -> Result<GlobOutput> {
        let request = request.clone();
        self.blocking(move |root, _, _| search::glob(root, &request))
            .await
    }

    async fn upload(&self, files: Vec<(VPath, Vec<u8>)>) -> Vec<Result<()>> {
        let count = files.len();
        let this = self.clone();
        let results = self
            .blocking(move |root, config, locks| {
                Ok(files
                    .iter()
                    .map(|(path, bytes)| {
                        let _guard = locks.lock(path);
                        write::write(root, path, bytes, config, this.budget())
                            .map_err(|e| this.with_limit(e))
                    })
                    .collect::<Vec<_>>())
            })
            .await;
        spread(results, count)
    }

    async fn download(&self, paths: &[VPath]) -> Vec<Result<Vec<u8>>> {
        let paths = paths.to_vec();
        let count = paths.len();
        let results = self
            .blocking(move |root, config, _| {
                Ok(paths
                    .iter()
                    .map(|path| read::read_bytes(root, path, config))
                    .collect::<Vec<_>>())
            })
            .await;
        spread(results, count)
    }

    /// Removes every entry through the root handle, raw names included
    /// (names `ls` does not show: a newline, a control character, a
    /// backslash, invalid UTF-8), never following a link; then lists the
    /// raw entries again to check that none is left.
    async fn clear(&self) -> Result<usize> {
        let result = self.blocking(|root, _, _| clear::clear(root)).await;
        self.forget_usage();
        result
    }
}

/// Per-item results, or the one failure of the whole batch repeated.
fn spread<T>(results: Result<Vec<Result<T>>>, count: usize) -> Vec<Result<T>> {
    match results {
        Ok(results) => results,
        Err(e) => (0..count)
            .map(|_| {
                Err(match &e {
                    sandbay_core::Error::Unavailable { message } => {
                        sandbay_core::Error::Unavailable {
                            message: message.clone(),
                        }
                    }
                    _ => sandbay_core::Error::Io {
                        path: None,
                        kind: std::io::ErrorKind::Other,
                    },
                })
            })
            .collect(),
    }
}
