//! Conformance and attack suites every sandbay backend runs.
#![deny(missing_docs)]

pub mod attack;
pub mod conformance;
