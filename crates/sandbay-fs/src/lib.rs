//! Host-directory workspaces for sandbay, jailed by capabilities (cap-std): no path, .. or symlink leaves the root.
#![deny(missing_docs)]
