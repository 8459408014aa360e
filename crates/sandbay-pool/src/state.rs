//! Durable state sessions as a registry's storage.

use std::sync::Arc;

use async_trait::async_trait;
use sandbay_core::{Error, Result};
use sandbay_state::{StateSandbox, StateStore};

use crate::jail::JailFactory;
use crate::pool::Lease;
use crate::storage::{Attached, Storage, WorkspaceKey};

/// A session of a [`StateStorage`] registry: a [`StateSandbox`] on a
/// pooled jail. Derefs to the sandbox.
pub type StateWorkspace = Attached<JailFactory, StateSandbox>;

/// In-memory sessions of a [`StateStore`] as storage that outlives
/// compute: `attach` joins the session's backend to a fresh jail from the
/// pool, `detach` writes the session to disk and frees its memory
/// ([`StateStore::unload`], when nobody holds it), `remove` deletes it.
///
/// Open the store durable ([`StateStore::open`]) for files that survive the
/// process; what a crash can lose is the store's write-behind window (none
/// with [`sandbay_state::WriteBehind::EveryWrite`]). An in-memory store
/// keeps sessions across evictions only while the process lives.
#[derive(Debug, Clone)]
pub struct StateStorage {
    store: Arc<StateStore>,
}

impl StateStorage {
    /// Storage over `store`.
    pub fn new(store: Arc<StateStore>) -> StateStorage {
        StateStorage { store }
    }

    /// The store.
    pub fn store(&self) -> &Arc<StateStore> {
        &self.store
    }
}

fn cancelled(_: tokio::task::JoinError) -> Error {
    Error::Unavailable {
        message: "loading a state session was cancelled".into(),
    }
}

#[async_trait]
impl Storage<JailFactory> for StateStorage {
    type Workspace = StateWorkspace;

    async fn attach(
        &self,
        key: &WorkspaceKey,
        lease: Lease<JailFactory>,
    ) -> Result<StateWorkspace> {
        let store = Arc::clone(&self.store);
        let (user, session) = (key.user.clone(), key.session.clone());
        // the first use reads the session's file
        let backend = tokio::task::spawn_blocking(move || store.try_session(&user, &session))
            .await
            .map_err(cancelled)?
            .map_err(|e| Error::Unavailable {
                message: format!("the session cannot be loaded: {e}"),
            })?;
        let sandbox = StateSandbox::new(
            format!("state:{}/{}", key.user, key.session),
            backend,
            lease.sandbox().clone(),
        );
        Ok(Attached::new(sandbox, lease))
    }

    async fn detach(&self, key: &WorkspaceKey) -> Result<()> {
        self.store.unload(&key.user, &key.session).await.map(drop)
    }

    async fn remove(&self, key: &WorkspaceKey) -> Result<()> {
        if !self.store.exists(&key.user, &key.session) {
            return Err(Error::NotFound {
                path: sandbay_core::VPath::root(),
            });
        }
        self.store.remove_session(&key.user, &key.session);
        Ok(())
    }
}
