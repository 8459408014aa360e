//! The multi-user isolation section of `sandbay-testkit` against
//! [`FsSandbox`]es: users A and B, each with a workspace of their own under
//! one provider and a jail at the `namespaces` level, capped at 256
//! processes and 256 MiB of memory per command. Skipped with the reason
//! when the host cannot give the level (a failure under `CI=true`).
#![cfg(feature = "exec")]

use std::sync::atomic::{AtomicUsize, Ordering};

use sandbay_core::Isolation;
use sandbay_exec::{Jail, JailConfig};
use sandbay_fs::FsProvider;
use sandbay_testkit::Fixture;

/// Jails for users who may attack: small caps, so every attack is bounded.
fn jail_config() -> JailConfig {
    let mut config = JailConfig::new(Isolation::Namespaces);
    config.limits.processes = 256;
    config.limits.memory_bytes = 256 << 20;
    config
}

async fn fixture() -> Fixture {
    static USERS: AtomicUsize = AtomicUsize::new(0);
    let base = tempfile::Builder::new()
        .prefix("sandbay-fs-isolation-")
        .tempdir()
        .expect("a temporary directory");
    let provider = FsProvider::open(base.path()).await.expect("the provider");
    let user = format!("user-{}", USERS.fetch_add(1, Ordering::Relaxed));
    let sandbox = provider
        .sandbox(&user, "s1", &jail_config())
        .await
        .expect("a sandbox");
    let root = provider.session_path(&user, "s1").expect("its path");
    Fixture::with_sandbox(sandbox).host_root(root).guard(base)
}

sandbay_testkit::isolation_tests!(
    fixture(),
    requires = Jail::host_support().check(Isolation::Namespaces),
);
