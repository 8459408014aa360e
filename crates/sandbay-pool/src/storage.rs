//! Storage that outlives compute: what a [`Registry`](crate::Registry)
//! attaches to each fresh sandbox it takes from the pool.

use std::any::Any;
use std::fmt;
use std::ops::Deref;

use async_trait::async_trait;
use sandbay_core::Result;

use crate::SandboxFactory;
use crate::pool::Lease;

/// Names one workspace: a user and one of their sessions.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkspaceKey {
    /// The user id.
    pub user: String,
    /// The session id.
    pub session: String,
}

impl WorkspaceKey {
    /// The key of `user`'s `session`.
    pub fn new(user: impl Into<String>, session: impl Into<String>) -> Self {
        WorkspaceKey {
            user: user.into(),
            session: session.into(),
        }
    }
}

impl fmt::Display for WorkspaceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.user, self.session)
    }
}

/// Workspaces that outlive compute. A [`Registry`](crate::Registry)
/// takes a fresh sandbox (compute: a jail, a container) from its pool for
/// a user's session and hands it to [`Storage::attach`], which joins it to
/// that session's workspace; what `attach` returns is what the registry's
/// callers get. Release and eviction end the compute (the lease inside
/// is dropped, and the pool destroys the sandbox) and then call
/// [`Storage::detach`]; the workspace stays until [`Storage::remove`].
///
/// Implementations here: [`Ephemeral`] (no storage: the sandbox's own
/// files go with it), [`StateStorage`](crate::StateStorage) (durable
/// in-memory sessions, feature `state`) and
/// [`FsStorage`](crate::FsStorage) (workspaces on the host's disk,
/// feature `fs`) and [`DockerStorage`](crate::DockerStorage) (the same
/// workspaces mounted into warm containers, feature `docker`).
#[async_trait]
pub trait Storage<F: SandboxFactory>: Send + Sync + 'static {
    /// What the registry hands out: compute joined to a workspace. It
    /// owns the [`Lease`]; dropping it ends the compute.
    type Workspace: Send + Sync + 'static;

    /// Joins a fresh sandbox to `key`'s workspace, making the workspace
    /// on first use. On an error the lease is dropped (the sandbox is
    /// destroyed) and the registry's caller gets the error.
    async fn attach(&self, key: &WorkspaceKey, lease: Lease<F>) -> Result<Self::Workspace>;

    /// Called after the registry let go of `key`'s compute (release,
    /// idle or LRU eviction): a place to save the workspace and free what
    /// only live compute needs (memory, a mount). The files must stay.
    /// May run while the same key is attached again, and must then leave
    /// the new attachment working. The default does nothing.
    async fn detach(&self, key: &WorkspaceKey) -> Result<()> {
        let _ = key;
        Ok(())
    }

    /// Deletes `key`'s workspace for good.
    async fn remove(&self, key: &WorkspaceKey) -> Result<()>;
}

/// No storage: the registry hands out the [`Lease`] itself, and the
/// sandbox's own files end with it. The default of
/// [`Registry::new`](crate::Registry::new), for sandboxes that keep their
/// files themselves (a container's own volume).
#[derive(Debug, Clone, Copy, Default)]
pub struct Ephemeral;

#[async_trait]
impl<F: SandboxFactory> Storage<F> for Ephemeral {
    type Workspace = Lease<F>;

    async fn attach(&self, _key: &WorkspaceKey, lease: Lease<F>) -> Result<Lease<F>> {
        Ok(lease)
    }

    async fn remove(&self, _key: &WorkspaceKey) -> Result<()> {
        Ok(())
    }
}

/// A workspace joined to the compute it runs on: derefs to the workspace
/// `W`; dropping it drops `W` first, then what holds the workspace
/// attached (a mount, see [`Attached::holding`]), then ends the lease (the
/// pool destroys the compute).
pub struct Attached<F: SandboxFactory, W> {
    workspace: W,
    hold: Option<Box<dyn Any + Send + Sync>>,
    lease: Lease<F>,
}

impl<F: SandboxFactory, W> Attached<F, W> {
    /// `workspace` running on `lease`'s sandbox.
    pub fn new(workspace: W, lease: Lease<F>) -> Self {
        Attached {
            workspace,
            hold: None,
            lease,
        }
    }

    /// Keeps `hold` (for example the [`sandbay_fs::Workspace`] handle that
    /// keeps an image mounted) for as long as the workspace is used.
    pub fn holding(mut self, hold: impl Any + Send + Sync) -> Self {
        self.hold = Some(Box::new(hold));
        self
    }

    /// The workspace.
    pub fn workspace(&self) -> &W {
        &self.workspace
    }

    /// What [`Attached::holding`] keeps, if it is a `T`.
    pub fn held<T: Any>(&self) -> Option<&T> {
        self.hold.as_ref()?.downcast_ref()
    }

    /// The lease of the compute.
    pub fn lease(&self) -> &Lease<F> {
        &self.lease
    }
}

impl<F: SandboxFactory, W> Deref for Attached<F, W> {
    type Target = W;
    fn deref(&self) -> &W {
        &self.workspace
    }
}

impl<F: SandboxFactory, W: fmt::Debug> fmt::Debug for Attached<F, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attached")
            .field("workspace", &self.workspace)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}
