//! In-memory, serialisable per-session workspaces for sandbay.
#![deny(missing_docs)]
