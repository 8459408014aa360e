//! The whole conformance suite against the state backend.

use sandbay_state::{StateBackend, StateConfig};
use sandbay_testkit::{Fixture, conformance_tests};

conformance_tests!(async {
    let config = StateConfig::default();
    Fixture::new(StateBackend::new(config)).limits(config.limits)
});
