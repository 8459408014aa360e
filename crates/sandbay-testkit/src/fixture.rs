//! [`Fixture`]: one backend under test, with what keeps it alive and what
//! its errors must never reveal.

use std::any::Any;
use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::Arc;

use sandbay_core::{
    Backend, BackendExt, DirEntry, Error, ErrorCode, Limits, ReadRequest, Result, Sandbox, VPath,
};

/// A fresh backend for one test case.
///
/// `guard` is dropped with the fixture: a temp dir, a container handle,
/// anything that must live as long as the backend and be cleaned up
/// after. `host_root`, when the backend stores files on the host, lets
/// every case check that no error message names a host path.
///
/// The helper methods panic with a clear message: they are for test
/// scripts, where a failed setup step is a failed test.
pub struct Fixture {
    /// The backend under test.
    pub backend: Arc<dyn Backend>,
    /// The same backend as a [`Sandbox`], when it can run commands.
    pub sandbox: Option<Arc<dyn Sandbox>>,
    /// Where the backend keeps files on the host, if anywhere.
    pub host_root: Option<PathBuf>,
    /// The limits the backend was built with (cases size their inputs by them).
    pub limits: Limits,
    guard: Option<Box<dyn Any + Send + Sync>>,
}

impl Debug for Fixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fixture")
            .field("backend", &self.backend.name())
            .field("sandbox", &self.sandbox.is_some())
            .field("host_root", &self.host_root)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Fixture {
    /// A fixture for a backend with the default [`Limits`].
    pub fn new<B: Backend + 'static>(backend: B) -> Self {
        Self::from_arc(Arc::new(backend))
    }

    /// A fixture for a shared backend.
    pub fn from_arc(backend: Arc<dyn Backend>) -> Self {
        Fixture {
            backend,
            sandbox: None,
            host_root: None,
            limits: Limits::default(),
            guard: None,
        }
    }

    /// A fixture for a backend that can also run commands.
    pub fn with_sandbox<S: Sandbox + 'static>(sandbox: S) -> Self {
        let sandbox = Arc::new(sandbox);
        let mut fx = Self::from_arc(sandbox.clone());
        fx.sandbox = Some(sandbox);
        fx
    }

    /// Keeps `guard` alive as long as the fixture (dropped after the backend).
    pub fn guard(mut self, guard: impl Any + Send + Sync) -> Self {
        self.guard = Some(Box::new(guard));
        self
    }

    /// Declares the host directory no error message may mention.
    pub fn host_root(mut self, root: impl Into<PathBuf>) -> Self {
        self.host_root = Some(root.into());
        self
    }

    /// Declares the limits the backend was built with.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Parses a path, panicking on an invalid one (test input is trusted).
    pub fn path(&self, path: &str) -> VPath {
        VPath::parse(path).unwrap_or_else(|e| panic!("test path {path:?} is invalid: {e}"))
    }

    /// Writes a text file; the step must succeed.
    pub async fn put(&self, path: &str, content: &str) {
        let p = self.path(path);
        if let Err(e) = self.backend.write(&p, content).await {
            panic!("setup: write {path} failed: {e}");
        }
    }

    /// Writes a file of bytes; the step must succeed.
    pub async fn put_bytes(&self, path: &str, bytes: Vec<u8>) {
        let p = self.path(path);
        if let Err(e) = self.backend.write_bytes(&p, bytes).await {
            panic!("setup: upload {path} failed: {e}");
        }
    }

    /// The whole content of a file; it must exist.
    pub async fn bytes(&self, path: &str) -> Vec<u8> {
        let p = self.path(path);
        self.backend
            .read_bytes(&p)
            .await
            .unwrap_or_else(|e| panic!("download {path} failed: {e}"))
    }

    /// The whole content of a text file; it must exist and be UTF-8.
    pub async fn text(&self, path: &str) -> String {
        String::from_utf8(self.bytes(path).await)
            .unwrap_or_else(|_| panic!("{path} is expected to be UTF-8"))
    }

    /// The lines of a text file through `read` with the default window.
    pub async fn lines(&self, path: &str) -> Vec<String> {
        let p = self.path(path);
        self.backend
            .read(&p, ReadRequest::default())
            .await
            .unwrap_or_else(|e| panic!("read {path} failed: {e}"))
            .lines
            .to_vec()
    }

    /// Whether a path exists (`stat` succeeds).
    pub async fn exists(&self, path: &str) -> bool {
        let p = self.path(path);
        self.backend
            .exists(&p)
            .await
            .unwrap_or_else(|e| panic!("exists {path} failed: {e}"))
    }

    /// The listing of a directory; it must succeed.
    pub async fn ls(&self, path: &str) -> Vec<DirEntry> {
        let p = self.path(path);
        self.backend
            .ls(&p)
            .await
            .unwrap_or_else(|e| panic!("ls {path} failed: {e}"))
    }

    /// The names in a directory listing, in the order returned.
    pub async fn names(&self, path: &str) -> Vec<String> {
        self.ls(path)
            .await
            .into_iter()
            .map(|e| e.path.file_name().unwrap_or("").to_owned())
            .collect()
    }

    /// Asserts that an error's text names no host path.
    pub fn assert_no_host_path(&self, err: &Error) {
        let Some(root) = &self.host_root else { return };
        let shown = format!("{err} {err:?}");
        let mut forms = vec![root.display().to_string()];
        if let Ok(real) = root.canonicalize() {
            forms.push(real.display().to_string());
        }
        for form in forms {
            assert!(
                !shown.contains(&form),
                "an error message reveals the host root {form}: {shown}"
            );
        }
    }

    /// Asserts that `result` failed with `code`, that the message names no
    /// host path, and returns the error. `what` describes the step.
    #[track_caller]
    pub fn expect_err<T: Debug>(&self, result: Result<T>, code: ErrorCode, what: &str) -> Error {
        match result {
            Ok(value) => panic!("{what}: expected the error `{code}`, got Ok({value:?})"),
            Err(err) => {
                assert_eq!(
                    err.code(),
                    code,
                    "{what}: wrong error code; the error was: {err}"
                );
                self.assert_no_host_path(&err);
                err
            }
        }
    }
}
