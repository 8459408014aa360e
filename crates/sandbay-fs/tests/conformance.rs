//! The whole conformance suite of `sandbay-testkit` against the fs
//! backend, over a fresh temporary directory per case (every expected
//! error is also checked not to name that directory).

use sandbay_fs::{FsBackend, FsConfig};
use sandbay_testkit::{Fixture, conformance_tests};

conformance_tests!(async {
    let dir = tempfile::Builder::new()
        .prefix("sandbay-fs-conformance-")
        .tempdir()
        .expect("a temporary directory");
    let config = FsConfig::default();
    let root = sandbay_fs::open_root(dir.path())
        .await
        .expect("open the root");
    Fixture::new(FsBackend::with_config(root, config))
        .limits(config.limits)
        .host_root(dir.path())
        .guard(dir)
});
