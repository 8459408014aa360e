//! The race case has teeth: a backend that checks paths for symlinks and
//! *then* opens them by host path (the classic check-then-use approach)
//! must be caught leaking by `rename_swap_race_leaks_nothing`, while the
//! capability backend passes the same case (in `attacks.rs`).

use std::path::{Path, PathBuf};

use sandbay_core::{
    Backend, Capabilities, DirEntry, EditOutcome, EditRequest, Error, GlobOutput, GlobRequest,
    GrepOutput, GrepRequest, ReadRequest, Result, TextWindow, VPath, async_trait, text,
};
use sandbay_fs::FsBackend;
use sandbay_testkit::Fixture;

/// Delegates to the fs backend, except `read` and `download`, which check
/// every component with `lstat` and then read by host path.
#[derive(Debug)]
struct CheckThenUse {
    inner: FsBackend,
    root: PathBuf,
}

impl CheckThenUse {
    fn read_host(&self, path: &VPath) -> Result<Vec<u8>> {
        let mut host = self.root.clone();
        for component in path.components() {
            host.push(component);
            let meta = std::fs::symlink_metadata(&host).map_err(|e| Error::io(path, &e))?;
            if meta.file_type().is_symlink() {
                return Err(Error::escape(path));
            }
        }
        // the window between the check above and this open is the bug
        std::fs::read(Path::new(&host)).map_err(|e| Error::io(path, &e))
    }
}

#[async_trait]
impl Backend for CheckThenUse {
    fn name(&self) -> &'static str {
        "check-then-use"
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
        let bytes = self.read_host(path)?;
        text::window_slice(path, &bytes, request, 1 << 20)
    }
    async fn write(&self, path: &VPath, content: &str) -> Result<()> {
        self.inner.write(path, content).await
    }
    async fn edit(&self, path: &VPath, request: &EditRequest) -> Result<EditOutcome> {
        self.inner.edit(path, request).await
    }
    async fn delete(&self, path: &VPath) -> Result<()> {
        self.inner.delete(path).await
    }
    async fn grep(&self, request: &GrepRequest) -> Result<GrepOutput> {
        self.inner.grep(request).await
    }
    async fn glob(&self, request: &GlobRequest) -> Result<GlobOutput> {
        self.inner.glob(request).await
    }
    async fn upload(&self, files: Vec<(VPath, Vec<u8>)>) -> Vec<Result<()>> {
        self.inner.upload(files).await
    }
    async fn download(&self, paths: &[VPath]) -> Vec<Result<Vec<u8>>> {
        paths.iter().map(|p| self.read_host(p)).collect()
    }
}

#[test]
fn the_race_catches_a_check_then_use_backend() {
    // The expected panic is the point of this test: keep it off the output.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let caught = std::panic::catch_unwind(|| {
        sandbay_testkit::block_on(async {
            let dir = tempfile::Builder::new()
                .prefix("sandbay-fs-teeth-")
                .tempdir()
                .unwrap();
            let root = sandbay_fs::open_root(dir.path()).await.unwrap();
            let backend = CheckThenUse {
                inner: FsBackend::new(root),
                root: dir.path().to_path_buf(),
            };
            let fixture = Fixture::new(backend).host_root(dir.path()).guard(dir);
            sandbay_testkit::attack::rename_swap_race_leaks_nothing(&fixture).await;
        })
    });
    std::panic::set_hook(default_hook);
    let err = caught.expect_err("a check-then-use backend must be caught leaking");
    let message = err
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    assert!(
        message.contains("leaks") && message.contains("secret"),
        "the failure is the leak, not something else: {message}"
    );
}
