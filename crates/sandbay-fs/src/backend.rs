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
use crate::{read, search, write};

/// A workspace in a host directory, reached only through a
/// [`cap_std::fs::Dir`] capability.
///
/// Cheap to clone (the handle is shared). All file I/O runs on tokio's
/// blocking pool, so a call needs a tokio runtime.
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
    root: Arc<Dir>,
    config: FsConfig,
}

impl fmt::Debug for FsBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print anything that could name a host path.
        f.debug_struct("FsBackend")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl FsBackend {
    /// A backend over `root` with the default [`FsConfig`].
    pub fn new(root: Dir) -> Self {
        Self::with_config(root, FsConfig::default())
    }

    /// A backend over `root` with the given settings.
    pub fn with_config(root: Dir, config: FsConfig) -> Self {
        FsBackend {
            root: Arc::new(root),
            config,
        }
    }

    /// The settings in force.
    pub fn config(&self) -> &FsConfig {
        &self.config
    }

    /// The root capability (for host-side helpers that need the same
    /// handle, e.g. to pass it on).
    pub fn root(&self) -> &Dir {
        &self.root
    }

    /// Runs blocking file work on tokio's blocking pool.
    async fn blocking<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Dir, &FsConfig) -> Result<T> + Send + 'static,
    {
        let root = Arc::clone(&self.root);
        let config = self.config;
        tokio::task::spawn_blocking(move || work(&root, &config))
            .await
            .unwrap_or_else(|e| Err(join_error(e)))
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
            ..Capabilities::default()
        }
    }

    async fn ls(&self, path: &VPath) -> Result<Vec<DirEntry>> {
        let path = path.clone();
        self.blocking(move |root, _| read::ls(root, &path)).await
    }

    async fn stat(&self, path: &VPath) -> Result<DirEntry> {
        let path = path.clone();
        self.blocking(move |root, _| read::stat(root, &path)).await
    }

    async fn read(&self, path: &VPath, request: ReadRequest) -> Result<TextWindow> {
        let path = path.clone();
        self.blocking(move |root, config| read::read(root, &path, request, config))
            .await
    }

    async fn write(&self, path: &VPath, content: &str) -> Result<()> {
        let path = path.clone();
        let content = content.to_owned();
        self.blocking(move |root, config| write::write(root, &path, content.as_bytes(), config))
            .await
    }

    async fn edit(&self, path: &VPath, request: &EditRequest) -> Result<EditOutcome> {
        let path = path.clone();
        let request = request.clone();
        self.blocking(move |root, config| write::edit(root, &path, &request, config))
            .await
    }

    async fn delete(&self, path: &VPath) -> Result<()> {
        let path = path.clone();
        self.blocking(move |root, _| write::delete(root, &path))
            .await
    }

    async fn grep(&self, request: &GrepRequest) -> Result<GrepOutput> {
        let request = request.clone();
        self.blocking(move |root, config| search::grep(root, &request, config))
            .await
    }

    async fn glob(&self, request: &GlobRequest) -> Result<GlobOutput> {
        let request = request.clone();
        self.blocking(move |root, _| search::glob(root, &request))
            .await
    }

    async fn upload(&self, files: Vec<(VPath, Vec<u8>)>) -> Vec<Result<()>> {
        let count = files.len();
        let results = self
            .blocking(move |root, config| {
                Ok(files
                    .iter()
                    .map(|(path, bytes)| write::write(root, path, bytes, config))
                    .collect::<Vec<_>>())
            })
            .await;
        spread(results, count)
    }

    async fn download(&self, paths: &[VPath]) -> Vec<Result<Vec<u8>>> {
        let paths = paths.to_vec();
        let count = paths.len();
        let results = self
            .blocking(move |root, config| {
                Ok(paths
                    .iter()
                    .map(|path| read::read_bytes(root, path, config))
                    .collect::<Vec<_>>())
            })
            .await;
        spread(results, count)
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
