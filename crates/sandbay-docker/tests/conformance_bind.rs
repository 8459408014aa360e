//! The whole conformance suite, files in a bind-mounted host directory (host-side fs backend).

mod common;

use sandbay_docker::FileMode;

sandbay_testkit::conformance_tests!(
    common::fixture(FileMode::Bind, false),
    execute = true,
    requires = common::ready(),
);
