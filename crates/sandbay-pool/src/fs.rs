//! Workspaces on the host's disk as a registry's storage.

use async_trait::async_trait;
use sandbay_core::Result;
use sandbay_fs::{FsProvider, FsSandbox, WorkspaceStore};

use crate::jail::JailFactory;
use crate::pool::Lease;
use crate::storage::{Attached, Storage, WorkspaceKey};

/// A session of an [`FsStorage`] registry: an [`FsSandbox`] over the
/// session's workspace, its commands in a pooled jail. Derefs to the
/// sandbox; [`Attached::held`]`::<`[`sandbay_fs::Workspace`]`>()` is the
/// handle that keeps the workspace attached (its image mounted).
pub type FsWorkspace = Attached<JailFactory, FsSandbox>;

/// Workspaces of a [`WorkspaceStore`] as storage that outlives compute:
/// `attach` opens (makes, mounts) the session's workspace and runs its
/// commands in a fresh jail from the pool, `detach` records its usage and
/// unmounts an image nobody uses, `remove` deletes it.
///
/// Acknowledged writes survive a `kill -9` of the process (see
/// [`WorkspaceStore`], "Durability").
#[derive(Debug, Clone)]
pub struct FsStorage {
    store: WorkspaceStore,
}

impl FsStorage {
    /// Storage over `store`.
    pub fn new(store: WorkspaceStore) -> FsStorage {
        FsStorage { store }
    }

    /// The store.
    pub fn store(&self) -> &WorkspaceStore {
        &self.store
    }
}

#[async_trait]
impl Storage<JailFactory> for FsStorage {
    type Workspace = FsWorkspace;

    async fn attach(&self, key: &WorkspaceKey, lease: Lease<JailFactory>) -> Result<FsWorkspace> {
        let workspace = self.store.attach(&key.user, &key.session).await?;
        let id = format!(
            "fs-{}-{}",
            FsProvider::dir_name(&key.user)?,
            FsProvider::dir_name(&key.session)?
        );
        let sandbox = workspace.sandbox(id, lease.sandbox().clone());
        Ok(Attached::new(sandbox, lease).holding(workspace))
    }

    async fn detach(&self, key: &WorkspaceKey) -> Result<()> {
        self.store.detach(&key.user, &key.session).await.map(drop)
    }

    async fn remove(&self, key: &WorkspaceKey) -> Result<()> {
        self.store.remove(&key.user, &key.session).await
    }
}
