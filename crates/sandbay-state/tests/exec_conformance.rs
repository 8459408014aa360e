//! The whole conformance suite, execute cases included, against
//! [`StateSandbox`]: an in-memory workspace whose commands run in a local
//! jail at the `namespaces` level over a scratch copy of the files. The
//! file cases run everywhere; the execute cases are skipped with the
//! reason when the host cannot give the level (a failure under CI).
#![cfg(feature = "exec")]

use std::sync::Arc;

use sandbay_core::Isolation;
use sandbay_exec::{Jail, JailConfig};
use sandbay_state::{StateBackend, StateConfig, StateSandbox};
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
    let config = StateConfig::default();
    let jail = Jail::new(JailConfig::new(level())).expect("a jail");
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
    execute_requires = Jail::host_support().check(Isolation::Namespaces),
);
