//! File operations inside the container (the workspace is a Docker
//! volume): the agent serves each one itself
//! ([`sandbay_agent::file`]), with the fs backend's code over a handle of
//! `/workspace`, on threads acting as the sandbox user. One round trip
//! through the attached stream per operation, no process started, and
//! the same bytes and errors as every other backend.

use std::sync::Arc;
use std::time::Duration;

use sandbay_agent::file::{FileAnswer, FileCall};
use sandbay_core::{
    DirEntry, EditOutcome, EditRequest, Error, GlobOutput, GlobRequest, GrepOutput, GrepRequest,
    ReadRequest, Result, TextWindow, VPath,
};

use crate::exec::Executor;

/// The workspace of a sandbox whose files live in the container.
#[derive(Debug)]
pub(crate) struct ContainerFiles {
    exec: Arc<Executor>,
    timeout: Duration,
    max_download: u64,
}

/// The error for an answer of the wrong kind (the agent checks the kind,
/// so this means a broken agent).
fn unexpected() -> Error {
    Error::Unavailable {
        message: "the sandbox agent answered another operation".into(),
    }
}

impl ContainerFiles {
    pub(crate) fn new(exec: Arc<Executor>, timeout: Duration, max_download: u64) -> ContainerFiles {
        ContainerFiles {
            exec,
            timeout,
            max_download,
        }
    }

    async fn call(&self, call: FileCall) -> Result<FileAnswer> {
        self.exec.agent.file(&call, self.timeout).await
    }

    pub(crate) async fn stat(&self, path: &VPath) -> Result<DirEntry> {
        match self.call(FileCall::Stat(path.clone())).await? {
            FileAnswer::Entry(e) => Ok(e),
            _ => Err(unexpected()),
        }
    }

    pub(crate) async fn ls(&self, path: &VPath) -> Result<Vec<DirEntry>> {
        match self.call(FileCall::Ls(path.clone())).await? {
            FileAnswer::Entries(e) => Ok(e),
            _ => Err(unexpected()),
        }
    }

    pub(crate) async fn read(&self, path: &VPath, request: ReadRequest) -> Result<TextWindow> {
        match self.call(FileCall::Read(path.clone(), request)).await? {
            FileAnswer::Window(w) => Ok(w),
            _ => Err(unexpected()),
        }
    }

    pub(crate) async fn write(&self, path: &VPath, content: &str) -> Result<()> {
        match self
            .call(FileCall::Write(path.clone(), content.to_string()))
            .await?
        {
            FileAnswer::Done => Ok(()),
            _ => Err(unexpected()),
        }
    }

    pub(crate) async fn edit(&self, path: &VPath, request: &EditRequest) -> Result<EditOutcome> {
        match self
            .call(FileCall::Edit(path.clone(), request.clone()))
            .await?
        {
            FileAnswer::Edited(o) => Ok(o),
            _ => Err(unexpected()),
        }
    }

    pub(crate) async fn delete(&self, path: &VPath) -> Result<()> {
        match self.call(FileCall::Delete(path.clone())).await? {
            FileAnswer::Done => Ok(()),
            _ => Err(unexpected()),
        }
    }

    pub(crate) async fn glob(&self, request: &GlobRequest) -> Result<GlobOutput> {
        match self.call(FileCall::Glob(request.clone())).await? {
            FileAnswer::Glob(o) => Ok(o),
            _ => Err(unexpected()),
        }
    }

    pub(crate) async fn grep(&self, request: &GrepRequest) -> Result<GrepOutput> {
        match self.call(FileCall::Grep(request.clone())).await? {
            FileAnswer::Grep(o) => Ok(o),
            _ => Err(unexpected()),
        }
    }

    pub(crate) async fn upload(&self, files: Vec<(VPath, Vec<u8>)>) -> Vec<Result<()>> {
        if files.is_empty() {
            return Vec::new();
        }
        let n = files.len();
        match self.call(FileCall::Upload(files)).await {
            Ok(FileAnswer::Uploaded(r)) => r,
            Ok(_) => (0..n).map(|_| Err(unexpected())).collect(),
            Err(e) => (0..n).map(|_| Err(clone_error(&e))).collect(),
        }
    }

    pub(crate) async fn download(&self, paths: &[VPath]) -> Vec<Result<Vec<u8>>> {
        if paths.is_empty() {
            return Vec::new();
        }
        let call = FileCall::Download {
            paths: paths.to_vec(),
            max: self.max_download,
        };
        match self.call(call).await {
            Ok(FileAnswer::Downloaded(r)) => r,
            Ok(_) => paths.iter().map(|_| Err(unexpected())).collect(),
            Err(e) => paths.iter().map(|_| Err(clone_error(&e))).collect(),
        }
    }

    /// Removes every workspace entry, raw names included, through the
    /// fs backend's handle walk; the number removed.
    pub(crate) async fn clear(&self) -> Result<usize> {
        match self.call(FileCall::Clear).await? {
            FileAnswer::Cleared(n) => Ok(n),
            _ => Err(unexpected()),
        }
    }
}

/// `Error` is not `Clone`; batch failures repeat the same category.
pub(crate) fn clone_error(e: &Error) -> Error {
    match e {
        Error::Unavailable { message } => Error::Unavailable {
            message: message.clone(),
        },
        Error::Timeout { after } => Error::Timeout { after: *after },
        Error::TooLarge { what, size, limit } => Error::TooLarge {
            what: what.clone(),
            size: *size,
            limit: *limit,
        },
        other => Error::Unavailable {
            message: other.to_string(),
        },
    }
}
