//! The multi-user isolation section of `sandbay-testkit` against
//! [`StateSandbox`]es: users A and B, each with a session of one store and
//! a jail at the `namespaces` level, capped at 256 processes and 256 MiB
//! of memory per command. Skipped with the reason when the host cannot
//! give the level (a failure under `CI=true`).
#![cfg(feature = "exec")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use sandbay_core::Isolation;
use sandbay_exec::{Jail, JailConfig};
use sandbay_state::StateStore;
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
    let store = Arc::new(StateStore::default());
    let user = format!("user-{}", USERS.fetch_add(1, Ordering::Relaxed));
    let sandbox = store
        .sandbox(&user, "s1", &jail_config())
        .expect("a sandbox");
    Fixture::with_sandbox(sandbox).guard(store)
}

sandbay_testkit::isolation_tests!(
    fixture(),
    requires = Jail::host_support().check(Isolation::Namespaces),
);
