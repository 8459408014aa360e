//! Helpers shared by the integration tests: a labelled temp dir and a
//! backend over it.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};

use sandbay_core::{Error, VPath};
use sandbay_fs::{FsBackend, FsConfig};

/// A backend over a fresh temporary directory (removed on drop).
#[derive(Debug)]
pub struct Ws {
    pub tmp: tempfile::TempDir,
    pub fs: FsBackend,
}

impl Ws {
    pub async fn new() -> Ws {
        Ws::with_config(FsConfig::default()).await
    }

    pub async fn with_config(config: FsConfig) -> Ws {
        let tmp = tempfile::Builder::new()
            .prefix("sandbay-fs-test-")
            .tempdir()
            .unwrap();
        let root = sandbay_fs::open_root(tmp.path()).await.unwrap();
        Ws {
            fs: FsBackend::with_config(root, config),
            tmp,
        }
    }

    /// The host path of a virtual path.
    pub fn host(&self, path: &str) -> PathBuf {
        self.tmp.path().join(path.trim_start_matches('/'))
    }

    pub fn root(&self) -> &Path {
        self.tmp.path()
    }

    /// Asserts an error has the code and names no host path.
    pub fn check(&self, err: &Error, code: &str) {
        assert_eq!(err.code().as_str(), code, "{err}");
        let text = err.to_string();
        let host = self.tmp.path().to_string_lossy();
        assert!(!text.contains(host.as_ref()), "host path in {text:?}");
        assert!(!text.contains("/tmp/"), "host path in {text:?}");
    }

    /// Names in a host directory, sorted.
    pub fn host_names(&self, dir: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.host(dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

pub fn p(s: &str) -> VPath {
    VPath::parse(s).unwrap()
}
