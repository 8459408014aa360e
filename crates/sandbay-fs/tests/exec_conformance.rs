//! The whole conformance suite, execute cases included, against
//! [`FsSandbox`]: the fs backend over a fresh temporary directory, commands
//! in a local jail at the `namespaces` level (skipped with the reason when
//! the host cannot give it, and a failure under `CI=true`).
#![cfg(feature = "exec")]

use sandbay_core::Isolation;
use sandbay_exec::{Jail, JailConfig};
use sandbay_fs::{FsBackend, FsConfig, FsSandbox};
use sandbay_testkit::{Fixture, conformance_tests};

async fn fixture() -> Fixture {
    let dir = tempfile::Builder::new()
        .prefix("sandbay-fs-exec-conformance-")
        .tempdir()
        .expect("a temporary directory");
    let config = FsConfig::default();
    let root = sandbay_fs::open_root(dir.path())
        .await
        .expect("open the root");
    let jail = Jail::new(JailConfig::new(Isolation::Namespaces)).expect("a jail");
    let sandbox = FsSandbox::new(
        "fs-conformance",
        FsBackend::with_config(root, config),
        dir.path(),
        jail,
    );
    Fixture::with_sandbox(sandbox)
        .limits(config.limits)
        .host_root(dir.path())
        .guard(dir)
}

conformance_tests!(
    fixture(),
    execute = true,
    requires = Jail::host_support().check(Isolation::Namespaces),
);
