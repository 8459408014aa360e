//! A local process jail for sandbay.
//!
//! placeholder docs, written below
#![deny(missing_docs)]
#![deny(unsafe_code)]

mod capture;
mod cgroup;
mod config;
mod guard;
mod jail;
mod launch;
mod ownership;
mod plan;
mod probe;
mod run;
mod spawner;
#[allow(unsafe_code)]
mod sys;
mod uid;

pub use config::{Identity, JailConfig, ResourceLimits};
pub use jail::{Enforcement, Jail};
pub use launch::MAX_STDIN;
pub use plan::{SANDBOX_UID, WORKSPACE_DIR};
pub use probe::HostSupport;
pub use uid::UID_RANGE;
