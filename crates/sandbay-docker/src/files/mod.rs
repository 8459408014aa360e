//! Where a sandbox's files live and how file operations reach them.

pub(crate) mod bind;
pub(crate) mod container;
pub(crate) mod side;

use sandbay_core::{
    Backend, DirEntry, EditOutcome, EditRequest, GlobOutput, GlobRequest, GrepOutput, GrepRequest,
    ReadRequest, Result, TextWindow, VPath,
};

pub(crate) use bind::BindFiles;
pub(crate) use container::ContainerFiles;
pub(crate) use side::FileSide;

/// The file side of a sandbox.
#[derive(Debug)]
pub(crate) enum Files {
    /// A host directory bind-mounted at `/workspace`.
    Bind(BindFiles),
    /// A Docker volume reached from inside the container.
    Container(ContainerFiles),
}

impl Files {
    pub(crate) async fn ls(&self, path: &VPath) -> Result<Vec<DirEntry>> {
        match self {
            Files::Bind(b) => {
                let p = path.clone();
                b.call(|fs| async move { fs.ls(&p).await }).await
            }
            Files::Container(c) => c.ls(path).await,
        }
    }

    pub(crate) async fn stat(&self, path: &VPath) -> Result<DirEntry> {
        match self {
            Files::Bind(b) => {
                let p = path.clone();
                b.call(|fs| async move { fs.stat(&p).await }).await
            }
            Files::Container(c) => c.stat(path).await,
        }
    }

    pub(crate) async fn read(&self, path: &VPath, request: ReadRequest) -> Result<TextWindow> {
        match self {
            Files::Bind(b) => {
                let p = path.clone();
                b.call(|fs| async move { fs.read(&p, request).await }).await
            }
            Files::Container(c) => c.read(path, request).await,
        }
    }

    pub(crate) async fn write(&self, path: &VPath, content: &str) -> Result<()> {
        match self {
            Files::Bind(b) => {
                let (p, content) = (path.clone(), content.to_string());
                b.call(|fs| async move { fs.write(&p, &content).await })
                    .await
            }
            Files::Container(c) => c.write(path, content).await,
        }
    }

    pub(crate) async fn edit(&self, path: &VPath, request: &EditRequest) -> Result<EditOutcome> {
        match self {
            Files::Bind(b) => {
                let (p, r) = (path.clone(), request.clone());
                b.call(|fs| async move { fs.edit(&p, &r).await }).await
            }
            Files::Container(c) => c.edit(path, request).await,
        }
    }

    pub(crate) async fn delete(&self, path: &VPath) -> Result<()> {
        match self {
            Files::Bind(b) => {
                let p = path.clone();
                b.call(|fs| async move { fs.delete(&p).await }).await
            }
            Files::Container(c) => c.delete(path).await,
        }
    }

    pub(crate) async fn grep(&self, request: &GrepRequest) -> Result<GrepOutput> {
        match self {
            Files::Bind(b) => {
                let r = request.clone();
                b.call(|fs| async move { fs.grep(&r).await }).await
            }
            Files::Container(c) => c.grep(request).await,
        }
    }

    pub(crate) async fn glob(&self, request: &GlobRequest) -> Result<GlobOutput> {
        match self {
            Files::Bind(b) => {
                let r = request.clone();
                b.call(|fs| async move { fs.glob(&r).await }).await
            }
            Files::Container(c) => c.glob(request).await,
        }
    }

    pub(crate) async fn upload(&self, files: Vec<(VPath, Vec<u8>)>) -> Vec<Result<()>> {
        match self {
            Files::Bind(b) => {
                let n = files.len();
                b.call_vec(n, |fs| async move { fs.upload(files).await })
                    .await
            }
            Files::Container(c) => c.upload(files).await,
        }
    }

    pub(crate) async fn download(&self, paths: &[VPath]) -> Vec<Result<Vec<u8>>> {
        match self {
            Files::Bind(b) => {
                let p = paths.to_vec();
                b.call_vec(p.len(), |fs| async move { fs.download(&p).await })
                    .await
            }
            Files::Container(c) => c.download(paths).await,
        }
    }

    /// Removes every workspace entry, whatever its name, through the fs
    /// backend's raw handle walk: on the host, or in the agent as the
    /// sandbox user.
    pub(crate) async fn clear(&self) -> Result<usize> {
        match self {
            Files::Bind(b) => b.call(|fs| async move { fs.clear().await }).await,
            Files::Container(c) => c.clear().await,
        }
    }
}
