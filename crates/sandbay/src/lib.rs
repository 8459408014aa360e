//! Isolated workspaces for AI agents: files and a shell per user, with the isolation, limits and clean-up a multi-user service needs.
#![deny(missing_docs)]
