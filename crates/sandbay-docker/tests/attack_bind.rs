//! The attack suite against a bind-mounted workspace: links, FIFOs, hard
//! links and a swap race planted from the host side in the directory the
//! container mounts, refused by the host-side fs backend.

mod common;

use sandbay_docker::FileMode;

sandbay_testkit::attack_tests!(
    common::fixture(FileMode::Bind, true),
    requires = common::ready(),
);
