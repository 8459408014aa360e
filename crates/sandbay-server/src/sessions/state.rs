//! The embedded default: durable state workspaces under `DATA/state`,
//! commands in the user's local jail over a scratch copy.

use std::sync::Arc;

use sandbay_core::{Backend, Isolation, async_trait};
use sandbay_exec::Jail;
use sandbay_state::{Durability, StateBackend, StateConfig, StateSandbox, StateStore, WriteBehind};

use super::{Key, Opened, Workspaces};
use crate::config::ServerConfig;
use crate::error::ApiError;

/// Sessions as state workspaces in a [`StateStore`].
#[derive(Debug)]
pub(crate) struct StateWorkspaces {
    store: StateStore,
    isolation: Isolation,
}

impl StateWorkspaces {
    /// Opens the store under `DATA/state`.
    pub(crate) fn open(config: &ServerConfig, isolation: Isolation) -> Result<Self, String> {
        let write_behind = match config.write_behind_ms {
            0 => WriteBehind::EveryWrite,
            _ => WriteBehind::Within(config.write_behind()),
        };
        let store = StateStore::open(
            StateConfig {
                max_total_bytes: Some(config.limits.session_bytes),
                ..StateConfig::default()
            },
            Durability::new(config.data.join("state")).write_behind(write_behind),
        )
        .map_err(|e| format!("cannot open the data directory: {e}"))?;
        Ok(StateWorkspaces { store, isolation })
    }

    fn backend(&self, user: &str, id: &str) -> Result<Arc<StateBackend>, ApiError> {
        self.store
            .try_session(user, id)
            .map_err(|e| ApiError::from(sandbay_core::Error::from(e)))
    }
}

#[async_trait]
impl Workspaces for StateWorkspaces {
    fn isolation(&self) -> Isolation {
        self.isolation
    }

    fn local_jail(&self) -> bool {
        true
    }

    fn all(&self) -> Result<Vec<Key>, ApiError> {
        let mut keys = self.store.saved_sessions()?;
        keys.extend(self.store.loaded());
        Ok(keys)
    }

    fn of_user(&self, user: &str) -> Result<Vec<String>, ApiError> {
        let mut ids = self.store.saved_sessions_of(user)?;
        ids.extend(self.store.sessions(user));
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }

    fn exists(&self, user: &str, id: &str) -> bool {
        self.store.exists(user, id)
    }

    fn loaded(&self, user: &str, id: &str) -> bool {
        self.store.get(user, id).is_some()
    }

    async fn create(&self, user: &str, id: &str) -> Result<(), ApiError> {
        self.store.insert(user, id, StateBackend::default());
        Ok(())
    }

    async fn remove(&self, user: &str, id: &str) -> Result<(), ApiError> {
        self.store.remove_session(user, id);
        Ok(())
    }

    async fn files(&self, user: &str, id: &str) -> Result<Option<Arc<dyn Backend>>, ApiError> {
        Ok(Some(self.backend(user, id)?))
    }

    async fn open(&self, user: &str, id: &str, jail: Option<Jail>) -> Result<Opened, ApiError> {
        let backend = self.backend(user, id)?;
        Ok(match jail {
            Some(jail) => Opened {
                files: backend.clone(),
                sandbox: Some(Arc::new(StateSandbox::new(
                    format!("state:{user}/{id}"),
                    backend,
                    jail,
                ))),
                broken: None,
            },
            None => Opened {
                files: backend,
                sandbox: None,
                broken: None,
            },
        })
    }

    async fn unload(&self, user: &str, id: &str) -> Result<bool, ApiError> {
        Ok(self.store.unload(user, id).await?)
    }

    fn loaded_keys(&self) -> Vec<Key> {
        self.store.loaded()
    }

    async fn flush(&self) -> Result<(), ApiError> {
        self.store.flush().await.map_err(ApiError::from)
    }

    async fn shutdown(&self) {}
}
