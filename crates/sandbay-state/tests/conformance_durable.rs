//! The whole conformance suite against durable state sessions that write
//! every change to disk before each call returns.

use std::sync::Arc;

use sandbay_state::{Durability, StateConfig, StateStore, WriteBehind};
use sandbay_testkit::{Fixture, conformance_tests};

conformance_tests!(async {
    let dir = tempfile::tempdir().unwrap();
    let config = StateConfig::default();
    let store = StateStore::open(
        config,
        Durability::new(dir.path()).write_behind(WriteBehind::EveryWrite),
    )
    .unwrap();
    let session: Arc<dyn sandbay_core::Backend> = store.session("conformance", "s");
    Fixture::from_arc(session)
        .limits(config.limits)
        .guard((store, dir))
});
