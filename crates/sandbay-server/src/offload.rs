//! Searches off the request threads: `grep`, `glob` and `edit` of the
//! local backends run in the server process and can take seconds of CPU
//! over large files. Here they run on tokio's blocking pool, at most
//! `limits.searches_per_user` of one user and as many as the host has
//! CPUs over all users at once (at least one more than one user's share,
//! so one user never holds them all); the threads that serve requests stay
//! free, so one user's searches cannot stall another user's calls.

use std::sync::Arc;

use sandbay_core::{
    Backend, Capabilities, DirEntry, EditOutcome, EditRequest, Error, ExecOutput, ExecRequest,
    ExecStream, GlobOutput, GlobRequest, GrepOutput, GrepRequest, ReadRequest, Result, Sandbox,
    TextWindow, VPath, async_trait,
};
use tokio::sync::Semaphore;

/// The places a search needs: one of its user's, one of the host's.
#[derive(Debug, Clone)]
pub(crate) struct Gate {
    pub(crate) user: Arc<Semaphore>,
    pub(crate) host: Arc<Semaphore>,
}

/// A backend whose searches run on the blocking pool, through a [`Gate`].
pub(crate) struct Offloaded<T: ?Sized> {
    inner: Arc<T>,
    gate: Gate,
}

impl<T: ?Sized> std::fmt::Debug for Offloaded<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Offloaded").finish_non_exhaustive()
    }
}

impl<T: ?Sized> Offloaded<T> {
    pub(crate) fn new(inner: Arc<T>, gate: Gate) -> Self {
        Offloaded { inner, gate }
    }
}

fn closed() -> Error {
    Error::Unavailable {
        message: "the server is stopping".into(),
    }
}

impl<T: Backend + ?Sized + 'static> Offloaded<T> {
    /// Runs `work` over the inner backend on the blocking pool, once a
    /// place is free; the places are held until the work is done, even
    /// when the caller has gone.
    async fn run<R, F, Fut>(&self, work: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(Arc<T>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<R>>,
    {
        let user = Arc::clone(&self.gate.user)
            .acquire_owned()
            .await
            .map_err(|_| closed())?;
        let host = Arc::clone(&self.gate.host)
            .acquire_owned()
            .await
            .map_err(|_| closed())?;
        let inner = Arc::clone(&self.inner);
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let _places = (user, host);
            runtime.block_on(work(inner))
        })
        .await
        .map_err(|_| Error::Unavailable {
            message: "a search failed to run".into(),
        })?
    }
}

#[async_trait]
impl<T: Backend + ?Sized + 'static> Backend for Offloaded<T> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn ls(&self, path: &VPath) -> Result<Vec<DirEntry>> {
        self.inner.ls(path).await
    }
    async fn stat(&self, path: &VPath) -> Result<DirEntry> {
        self.inner.stat(path).await
    }
    async fn read(&self, path: &VPath, request: ReadRequest) -> Result<TextWindow> {
        self.inner.read(path, request).await
    }
    async fn write(&self, path: &VPath, content: &str) -> Result<()> {
        self.inner.write(path, content).await
    }
    async fn edit(&self, path: &VPath, request: &EditRequest) -> Result<EditOutcome> {
        let (path, request) = (path.clone(), request.clone());
        self.run(move |inner: Arc<T>| async move { inner.edit(&path, &request).await })
            .await
    }
    async fn delete(&self, path: &VPath) -> Result<()> {
        self.inner.delete(path).await
    }
    async fn grep(&self, request: &GrepRequest) -> Result<GrepOutput> {
        let request = request.clone();
        self.run(move |inner: Arc<T>| async move { inner.grep(&request).await })
            .await
    }
    async fn glob(&self, request: &GlobRequest) -> Result<GlobOutput> {
        let request = request.clone();
        self.run(move |inner: Arc<T>| async move { inner.glob(&request).await })
            .await
    }
    async fn upload(&self, files: Vec<(VPath, Vec<u8>)>) -> Vec<Result<()>> {
        self.inner.upload(files).await
    }
    async fn download(&self, paths: &[VPath]) -> Vec<Result<Vec<u8>>> {
        self.inner.download(paths).await
    }
    async fn clear(&self) -> Result<usize> {
        self.inner.clear().await
    }
}

#[async_trait]
impl Sandbox for Offloaded<dyn Sandbox> {
    fn id(&self) -> &str {
        self.inner.id()
    }
    async fn execute(&self, request: ExecRequest) -> Result<ExecOutput> {
        self.inner.execute(request).await
    }
    async fn execute_stream(&self, request: ExecRequest) -> Result<ExecStream> {
        self.inner.execute_stream(request).await
    }
}
