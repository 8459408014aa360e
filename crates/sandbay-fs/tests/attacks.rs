//! The attack suite of `sandbay-testkit` against the fs backend over a
//! fresh temporary directory per case.

use sandbay_fs::FsBackend;
use sandbay_testkit::Fixture;

async fn fixture() -> Fixture {
    let dir = tempfile::Builder::new()
        .prefix("sandbay-fs-attack-")
        .tempdir()
        .expect("a temporary directory");
    let root = sandbay_fs::open_root(dir.path())
        .await
        .expect("open the root");
    Fixture::new(FsBackend::new(root))
        .host_root(dir.path())
        .guard(dir)
}

sandbay_testkit::attack_tests!(fixture());
