//! What a pool needs to know about the sandboxes it holds.

use async_trait::async_trait;
use sandbay_core::{Backend, Error, Result, VPath};

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
/// use sandbay_pool::{SandboxFactory, clear_workspace};
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
///         clear_workspace(sandbox).await.map(drop)
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

/// Deletes everything in a workspace through the [`Backend`] API, and
/// checks that nothing is left. Returns how many top-level entries were
/// removed.
///
/// Going through the backend keeps every backend's own guarantees: on the
/// filesystem backend, for example, nothing outside the root can be
/// touched, whatever the previous user planted.
///
/// # Errors
///
/// The first error of a deletion, or `permission_denied` when entries
/// remain afterwards (something the backend could not remove).
pub async fn clear_workspace(backend: &(impl Backend + ?Sized)) -> Result<usize> {
    let root = VPath::root();
    let entries = backend.ls(&root).await?;
    let removed = entries.len();
    for entry in entries {
        match backend.delete(&entry.path).await {
            Ok(()) => {}
            // gone meanwhile: that is what we wanted
            Err(Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let left = backend.ls(&root).await?;
    if let Some(first) = left.first() {
        return Err(Error::PermissionDenied {
            path: first.path.clone(),
            reason: format!("{} entries could not be removed", left.len()),
        });
    }
    Ok(removed)
}
