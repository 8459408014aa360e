//! The whole conformance suite, files in a bind-mounted host directory (host-side fs backend).

mod common;

use sandbay_docker::FileMode;

sandbay_testkit::__sandbay_core_cases!(__sandbay_emit_cases! {
    [cfg_attr(sandbay_no_docker, ignore = "no Docker daemon")]
    common::fixture(FileMode::Bind, false)
});
sandbay_testkit::__sandbay_execute_cases!(__sandbay_emit_cases! {
    [cfg_attr(sandbay_no_docker, ignore = "no Docker daemon")]
    common::fixture(FileMode::Bind, false)
});

#[test]
#[cfg_attr(sandbay_no_docker, ignore = "no Docker daemon")]
fn conformance_selection_matches_capabilities() {
    sandbay_testkit::block_on(async {
        let fixture = common::fixture(FileMode::Bind, false).await;
        assert!(fixture.backend.capabilities().execute);
        assert!(fixture.sandbox.is_some());
    });
}
