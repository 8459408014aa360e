//! Settings of an [`FsBackend`](crate::FsBackend).

use sandbay_core::Limits;

use crate::quota::Quota;

/// What to do with a regular file that has more than one hard link.
///
/// A hard link is a second name for the same file. Someone with access to
/// the host (or a command run with the workspace as its directory) could
/// plant, inside the root, a hard link to a file that lives outside it;
/// following such a name would read or change the outside file. Directory
/// capabilities cannot see this: the link *is* inside the root.
///
/// Writes are never affected: `write`, `upload` and `edit` build the new
/// content in a temporary file and rename it over the name, which only
/// replaces that one name and never writes through a hard link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HardLinkPolicy {
    /// Refuse to read or edit a regular file whose link count is above
    /// one (`permission_denied`); `grep` skips such files. The default.
    #[default]
    Refuse,
    /// Treat hard-linked files like any other file. Choose this only when
    /// nobody but the backend itself can create files in the root.
    Allow,
}

/// Settings of an [`FsBackend`](crate::FsBackend).
///
/// ```
/// use sandbay_fs::{FsConfig, HardLinkPolicy};
/// let config = FsConfig::default()
///     .with_hard_links(HardLinkPolicy::Allow)
///     .with_sync_writes(true);
/// assert_eq!(config.hard_links, HardLinkPolicy::Allow);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct FsConfig {
    /// Size limits of text operations (`edit` and `grep` load whole files
    /// up to `max_text_file_bytes`; `read` windows are capped at
    /// `max_window_bytes`).
    pub limits: Limits,
    /// How hard-linked files are treated.
    pub hard_links: HardLinkPolicy,
    /// Flush every written file (and its directory) to disk before the
    /// write returns. Off by default: writes are atomic either way, this
    /// adds durability across a power loss at the cost of an `fsync`.
    pub sync_writes: bool,
    /// A disk quota per workspace (see [`Quota`]); `None` (the default):
    /// a workspace may fill the disk it is on.
    pub quota: Option<Quota>,
}

impl FsConfig {
    /// Sets the size limits.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets the hard-link policy.
    pub fn with_hard_links(mut self, policy: HardLinkPolicy) -> Self {
        self.hard_links = policy;
        self
    }

    /// Sets a disk quota per workspace: a file system of its own for each
    /// session of an [`FsProvider`](crate::FsProvider) on a root host,
    /// else a byte count kept by the file API (see [`Quota`]).
    pub fn with_quota(mut self, quota: Quota) -> Self {
        self.quota = Some(quota);
        self
    }

    /// Sets whether writes are flushed to disk before returning.
    pub fn with_sync_writes(mut self, sync: bool) -> Self {
        self.sync_writes = sync;
        self
    }
}
