//! The whole conformance suite, execute cases included, against
//! [`StateSandbox`]: an in-memory workspace whose commands run in a local
//! jail at the `namespaces` level over a scratch copy of the files
//! (skipped with the reason when the host cannot give the level, and a
//! failure under `CI=true`).
#![cfg(feature = "exec")]

use std::sync::Arc;

use sandbay_core::Isolation;
use sandbay_exec::{Jail, JailConfig};
use sandbay_state::{StateBackend, StateConfig, StateSandbox};
use sandbay_testkit::{Fixture, conformance_tests};

async fn fixture() -> Fixture {
    let config = StateConfig::default();
    let jail = Jail::new(JailConfig::new(Isolation::Namespaces)).expect("a jail");
    let sandbox = StateSandbox::new(
        "state-conformance",
        Arc::new(StateBackend::new(config)),
        jail,
    );
    Fixture::with_sandbox(sandbox).limits(config.limits)
}

conformance_tests!(
    fixture(),
    execute = true,
    requires = Jail::host_support().check(Isolation::Namespaces),
);
