//! The whole conformance suite, execute cases included, against
//! [`FsSandbox`]: the fs backend over a fresh temporary directory, commands
//! in a local jail at the `namespaces` level. The file cases run
//! everywhere; the execute cases are skipped with the reason when the host
//! cannot give the level (a failure under CI).
#![cfg(feature = "exec")]

use sandbay_core::Isolation;
use sandbay_exec::{Jail, JailConfig};
use sandbay_fs::{FsBackend, FsConfig, FsSandbox};
use sandbay_testkit::{Fixture, conformance_tests};

/// The `namespaces` level where the host gives it. The file cases need no
/// jail and run everywhere, over a jail at the `limits` level elsewhere;
/// the execute cases are gated on `namespaces`.
fn level() -> Isolation {
    if Jail::host_support().check(Isolation::Namespaces).is_ok() {
        Isolation::Namespaces
    } else {
        Isolation::Limits
    }
}

async fn fixture() -> Fixture {
    let dir = tempfile::Builder::new()
        .prefix("sandbay-fs-exec-conformance-")
        .tempdir()
        .expect("a temporary directory");
    let config = FsConfig::default();
    let root = sandbay_fs::open_root(dir.path())
        .await
        .expect("open the root");
    let jail = Jail::new(JailConfig::new(level())).expect("a jail");
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
    execute_requires = Jail::host_support().check(Isolation::Namespaces),
);
