//! What a pool needs to know about the sandboxes it holds.

use async_trait::async_trait;
use sandbay_core::Result;

/// Makes and disposes of the sandboxes a [`Pool`](crate::Pool) holds.
///
/// A pool hands each sandbox `create` made to one lease at most, and
/// gives it to `destroy` when that lease ends: sandboxes are never reset
/// and reused, so `destroy` must release everything the sandbox holds
/// (containers and their processes, directories, volumes), whatever its
/// user left in it.
///
/// # Example
///
/// A pool of in-memory workspaces:
///
/// ```
/// use async_trait::async_trait;
/// use sandbay_core::Result;
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

    /// Releases a sandbox's resources for good (containers, directories).
    /// An error is logged; the pool frees the sandbox's place either way.
    async fn destroy(&self, sandbox: Self::Sandbox) -> Result<()>;
}
