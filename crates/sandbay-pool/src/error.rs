//! Why a pool could not hand out a sandbox.

use std::time::Duration;

/// Why a [`Pool`](crate::Pool) or [`Registry`](crate::Registry) call
/// failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// Every place was taken and none became free in time.
    #[error("no sandbox became free within {waited:?} (the pool holds at most {max_size})")]
    Exhausted {
        /// The pool's [`max_size`](crate::PoolConfig::max_size).
        max_size: usize,
        /// How long the call waited.
        waited: Duration,
    },
    /// The pool was shut down.
    #[error("the sandbox pool is shut down")]
    Closed,
    /// The factory could not make a sandbox.
    #[error("creating a sandbox failed: {0}")]
    Create(#[source] sandbay_core::Error),
    /// The storage could not attach the session's workspace to the fresh
    /// sandbox (which was destroyed); the workspace is unchanged.
    #[error("attaching the workspace failed: {0}")]
    Attach(#[source] sandbay_core::Error),
    /// The configuration is inconsistent.
    #[error("invalid pool configuration: {0}")]
    Config(String),
}

impl From<PoolError> for sandbay_core::Error {
    /// `Create` and `Attach` give the factory's or storage's own error back; the others become
    /// `unavailable` (`invalid_argument` for a bad configuration), so a
    /// caller that speaks only [`sandbay_core::Error`] keeps a stable code.
    fn from(e: PoolError) -> Self {
        match e {
            PoolError::Create(inner) | PoolError::Attach(inner) => inner,
            PoolError::Config(message) => sandbay_core::Error::InvalidArgument { message },
            other => sandbay_core::Error::Unavailable {
                message: other.to_string(),
            },
        }
    }
}
