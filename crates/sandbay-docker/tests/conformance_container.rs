//! The whole conformance suite, files in a Docker volume (operations inside
//! the container), the daemon reached over loopback TCP like a remote one.

mod common;

use sandbay_docker::FileMode;

sandbay_testkit::__sandbay_core_cases!(__sandbay_emit_cases! {
    [cfg_attr(sandbay_no_docker, ignore = "no Docker daemon")]
    common::fixture(FileMode::Container, false)
});
sandbay_testkit::__sandbay_execute_cases!(__sandbay_emit_cases! {
    [cfg_attr(sandbay_no_docker, ignore = "no Docker daemon")]
    common::fixture(FileMode::Container, false)
});

#[test]
#[cfg_attr(sandbay_no_docker, ignore = "no Docker daemon")]
fn conformance_selection_matches_capabilities() {
    sandbay_testkit::block_on(async {
        let fixture = common::fixture(FileMode::Container, false).await;
        assert!(fixture.backend.capabilities().execute);
        assert!(fixture.sandbox.is_some());
    });
}
