//! The whole conformance suite, files in a Docker volume (operations inside
//! the container), the daemon reached over loopback TCP like a remote one.

mod common;

use sandbay_docker::FileMode;

sandbay_testkit::conformance_tests!(
    common::fixture(FileMode::Container, false),
    execute = true,
    requires = common::ready(),
);
