//! Configuration of a state backend.

use sandbay_core::Limits;
use serde::{Deserialize, Serialize};

/// Settings of a [`crate::StateBackend`].
///
/// ```
/// use sandbay_state::StateConfig;
/// let config = StateConfig { max_total_bytes: Some(64 * 1024 * 1024), ..Default::default() };
/// assert_eq!(config.limits, sandbay_core::Limits::default());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StateConfig {
    /// Size limits of the text operations (read window, edit and grep).
    #[serde(default)]
    pub limits: Limits,
    /// Quota on the sum of all file sizes in one workspace. A write, edit,
    /// upload or restore that would exceed it fails with `quota_exceeded`
    /// and changes nothing. `None` means no quota.
    #[serde(default)]
    pub max_total_bytes: Option<u64>,
}
