//! What a pool needs to know about the sandboxes it holds.

use async_trait::async_trait;
use sandbay_core::Result;

/// Makes, resets and disposes of the sandboxes a [`Pool`](crate::Pool)
/// holds.
///
/// `reset` is the heart of pooling: a sandbox goes back to the pool only
/// after `reset` succeeded, so it must leave nothing of the previous user
/// behind (files, processes, temporary files). When it fails, the pool
/// destroys the sandbox instead of handing it out again.
///
/// # Example
///
/// A pool of in-memory workspaces:
///
/// ```
/// use async_trait::async_trait;
/// use sandbay_core::Result;
/// use sandbay_core::Backend;
/// use sandbay_pool::SandboxFactory;
/// use sandbay_state::StateBackend;
///
/// struct Memory;
///
/// #[async_trait]
/// impl SandboxFactory for Memory {
///     type Sandbox = StateBackend;
///     async fn create(&self) -> Result<StateBackend> {
///         Ok(StateBackend::default())
///     }
///     async fn reset(&self, sandbox: &StateBackend) -> Result<()> {
///         sandbox.clear().await.map(drop)
///     }
///     async fn destroy(&self, _sandbox: StateBackend) -> Result<()> {
///         Ok(())
///     }
/// }
/// ```
#[async_trait]
pub trait SandboxFactory: Send + Sync + 'static {
    /// What the pool hands out.
    type Sandbox: Send + Sync + 'static;

    /// Makes a new sandbox.
    async fn create(&self) -> Result<Self::Sandbox>;

    /// Brings a used sandbox back to the state `create` left it in. An
    /// error means the sandbox cannot be reused; the pool destroys it.
    async fn reset(&self, sandbox: &Self::Sandbox) -> Result<()>;

    /// Releases a sandbox's resources for good (containers, directories).
    async fn destroy(&self, sandbox: Self::Sandbox) -> Result<()>;
}
