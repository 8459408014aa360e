//! `--backend fs=DIR`: each session a host directory under `DIR`
//! ([`FsProvider`]), its commands in the user's local jail on that very
//! directory (nothing copied).
//!
//! Which sessions exist is kept in an index file,
//! `DATA/fs-sessions.json` (written atomically on every create and
//! delete): the directory names under `DIR` are encoded and cannot always
//! be decoded back to ids.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use sandbay_core::{Backend, Isolation, async_trait};
use sandbay_exec::Jail;
use sandbay_fs::{FsBackend, FsConfig, FsProvider, FsSandbox, Quota};

use super::index::SessionIndex;
use super::{Key, Opened, Workspaces};
use crate::config::ServerConfig;
use crate::error::ApiError;

/// Files and directories a session may hold under a mounted quota.
const QUOTA_FILES: u64 = 100_000;

/// Sessions as host directories of an [`FsProvider`].
#[derive(Debug)]
pub(crate) struct FsWorkspaces {
    provider: FsProvider,
    isolation: Isolation,
    index: SessionIndex,
    /// Backends opened for the file routes, by session.
    open: Mutex<HashMap<Key, FsBackend>>,
}

impl FsWorkspaces {
    /// Opens (creating) `dir` and the index under the data directory.
    pub(crate) async fn open(
        config: &ServerConfig,
        dir: &Path,
        isolation: Isolation,
    ) -> Result<Self, String> {
        let provider = FsProvider::open(dir)
            .await
            .map_err(|e| format!("cannot open the fs backend's directory: {e}"))?;
        // A mounted quota image cannot be entered by the jail's uid at
        // `limits` (no namespaces): the quota goes only where commands
        // can use it (see docs/security.md).
        let provider = if isolation == Isolation::Limits {
            provider
        } else {
            provider.with_config(
                FsConfig::default()
                    .with_quota(Quota::new(config.limits.session_bytes, QUOTA_FILES)),
            )
        };
        let index = SessionIndex::open(&config.data, "fs-sessions.json", "fs")?;
        Ok(FsWorkspaces {
            provider,
            isolation,
            index,
            open: Mutex::default(),
        })
    }

    async fn backend(&self, user: &str, id: &str) -> Result<FsBackend, ApiError> {
        let key = (user.to_owned(), id.to_owned());
        if let Some(fs) = self
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            return Ok(fs.clone());
        }
        let fs = self.provider.session(user, id).await?;
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(open.entry(key).or_insert(fs).clone())
    }
}

#[async_trait]
impl Workspaces for FsWorkspaces {
    fn isolation(&self) -> Isolation {
        self.isolation
    }

    fn local_jail(&self) -> bool {
        true
    }

    fn all(&self) -> Result<Vec<Key>, ApiError> {
        Ok(self.index.all())
    }

    fn of_user(&self, user: &str) -> Result<Vec<String>, ApiError> {
        Ok(self.index.of_user(user))
    }

    fn exists(&self, user: &str, id: &str) -> bool {
        self.index.contains(user, id)
    }

    fn loaded(&self, _user: &str, _id: &str) -> bool {
        false
    }

    async fn create(&self, user: &str, id: &str) -> Result<(), ApiError> {
        let fs = self.provider.session(user, id).await?;
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((user.to_owned(), id.to_owned()), fs);
        self.index.insert(user, id).await
    }

    async fn remove(&self, user: &str, id: &str) -> Result<(), ApiError> {
        let key = (user.to_owned(), id.to_owned());
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&key);
        match self.provider.remove_session(user, id).await {
            Ok(()) | Err(sandbay_core::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        self.index.remove(user, id).await
    }

    async fn files(&self, user: &str, id: &str) -> Result<Option<Arc<dyn Backend>>, ApiError> {
        Ok(Some(Arc::new(self.backend(user, id).await?)))
    }

    async fn open(&self, user: &str, id: &str, jail: Option<Jail>) -> Result<Opened, ApiError> {
        let fs = self.backend(user, id).await?;
        let files: Arc<dyn Backend> = Arc::new(fs.clone());
        let sandbox = match jail {
            Some(jail) => {
                let host_root = self.provider.session_path(user, id)?;
                Some(Arc::new(FsSandbox::new(
                    format!("fs:{user}/{id}"),
                    fs,
                    host_root,
                    jail,
                )) as Arc<dyn sandbay_core::Sandbox>)
            }
            None => None,
        };
        Ok(Opened {
            files,
            sandbox,
            broken: None,
        })
    }

    async fn unload(&self, user: &str, id: &str) -> Result<bool, ApiError> {
        let key = (user.to_owned(), id.to_owned());
        let was = self
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&key)
            .is_some();
        Ok(was)
    }

    fn loaded_keys(&self) -> Vec<Key> {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect()
    }

    async fn flush(&self) -> Result<(), ApiError> {
        Ok(())
    }

    /// Unmounts every session's quota image (their files stay in it).
    async fn shutdown(&self) {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        let keys: Vec<Key> = self.index.all();
        for (user, id) in keys {
            if let Err(e) = self.provider.detach_session(&user, &id).await {
                tracing::warn!(user, session = id, error = %e, "a session's image stayed mounted");
            }
        }
    }
}
