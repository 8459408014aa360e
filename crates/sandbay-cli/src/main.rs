//! The sandbay command line.
fn main() {}
