//! A local process jail for sandbay: process groups, rlimits, an unprivileged uid, Linux namespaces, timeouts that kill the whole tree.
#![deny(missing_docs)]
