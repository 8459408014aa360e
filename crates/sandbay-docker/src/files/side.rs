//! [`FileSide`]: the file side of a sandbox, which a workspace attached
//! later can replace (or leave empty until then).

use std::sync::{Arc, PoisonError, RwLock};

use sandbay_core::{
    DirEntry, DiskQuota, EditOutcome, EditRequest, Error, GlobOutput, GlobRequest, GrepOutput,
    GrepRequest, ReadRequest, Result, TextWindow, VPath,
};

use super::Files;

/// The files a sandbox's operations reach now: fixed at creation, or
/// attached and detached over its life (a warm container's slot).
/// Operations already running keep the files they started on.
#[derive(Debug)]
pub(crate) struct FileSide {
    current: RwLock<Option<Arc<Files>>>,
}

fn detached() -> Error {
    Error::Unavailable {
        message: "no workspace is attached to this sandbox".into(),
    }
}

impl FileSide {
    pub(crate) fn new(files: Option<Files>) -> FileSide {
        FileSide {
            current: RwLock::new(files.map(Arc::new)),
        }
    }

    /// Puts `files` in place; what was there before.
    pub(crate) fn replace(&self, files: Option<Files>) -> Option<Arc<Files>> {
        let mut g = self.current.write().unwrap_or_else(PoisonError::into_inner);
        std::mem::replace(&mut *g, files.map(Arc::new))
    }

    /// Whether a workspace is there.
    pub(crate) fn is_set(&self) -> bool {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    fn get(&self) -> Result<Arc<Files>> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(detached)
    }

    /// The disk quota of the files in place, if any.
    pub(crate) fn quota(&self) -> Option<DiskQuota> {
        match self.get().ok().as_deref() {
            Some(Files::Bind(b)) => b.quota(),
            _ => None,
        }
    }

    pub(crate) async fn ls(&self, path: &VPath) -> Result<Vec<DirEntry>> {
        self.get()?.ls(path).await
    }

    pub(crate) async fn stat(&self, path: &VPath) -> Result<DirEntry> {
        self.get()?.stat(path).await
    }

    pub(crate) async fn read(&self, path: &VPath, request: ReadRequest) -> Result<TextWindow> {
        self.get()?.read(path, request).await
    }

    pub(crate) async fn write(&self, path: &VPath, content: &str) -> Result<()> {
        self.get()?.write(path, content).await
    }

    pub(crate) async fn edit(&self, path: &VPath, request: &EditRequest) -> Result<EditOutcome> {
        self.get()?.edit(path, request).await
    }

    pub(crate) async fn delete(&self, path: &VPath) -> Result<()> {
        self.get()?.delete(path).await
    }

    pub(crate) async fn grep(&self, request: &GrepRequest) -> Result<GrepOutput> {
        self.get()?.grep(request).await
    }

    pub(crate) async fn glob(&self, request: &GlobRequest) -> Result<GlobOutput> {
        self.get()?.glob(request).await
    }

    pub(crate) async fn upload(&self, files: Vec<(VPath, Vec<u8>)>) -> Vec<Result<()>> {
        match self.get() {
            Ok(f) => f.upload(files).await,
            Err(_) => files.iter().map(|_| Err(detached())).collect(),
        }
    }

    pub(crate) async fn download(&self, paths: &[VPath]) -> Vec<Result<Vec<u8>>> {
        match self.get() {
            Ok(f) => f.download(paths).await,
            Err(_) => paths.iter().map(|_| Err(detached())).collect(),
        }
    }

    pub(crate) async fn clear(&self) -> Result<usize> {
        self.get()?.clear().await
    }
}
