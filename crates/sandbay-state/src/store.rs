//! [`StateStore`]: per-user, per-session state backends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::backend::StateBackend;
use crate::config::StateConfig;
#[cfg(feature = "persist")]
use crate::persist::{Durability, Durable, LoadError, Saver};

type Sessions = HashMap<String, Arc<StateBackend>>;

/// Hands out one [`StateBackend`] per `(user, session)` pair.
///
/// The same ids always give the same backend; different users, and
/// different sessions of one user, get fully separate workspaces (they
/// share no data structure at all). Safe under concurrent use: two first
/// requests for one pair create exactly one backend.
///
/// Removing a session or user drops the store's handle: callers that
/// still hold an `Arc` keep a working, but detached, workspace.
///
/// # Durable stores
///
/// A store made with [`StateStore::open`] keeps every session in a file
/// under its data directory (`<dir>/sessions/<user>/<session>.snap`, ids
/// encoded so that any id is a safe name). Opening the store reads
/// nothing: a session is loaded on first use, so memory goes only to live
/// sessions and a store of 10,000 saved sessions opens at once. Changes are
/// written behind ([`crate::WriteBehind`]: within one second by default,
/// or before every call returns), each write atomic (temporary file,
/// fsync, rename, directory fsync) and checksummed (SHA-256). What a
/// crash of the process can lose is exactly the changes of the last
/// window; with [`crate::WriteBehind::EveryWrite`], nothing that was
/// acknowledged. [`StateStore::unload`] writes a session and frees its
/// memory; [`StateStore::flush`] and dropping the store write everything.
///
/// A saved session that cannot be loaded (damaged, truncated, another
/// format version) is renamed aside (`<session>.snap.corrupt`), never
/// dropped or overwritten; its calls fail with `unavailable` naming the
/// reason ([`StateStore::try_session`] returns the [`crate::LoadError`])
/// until the session is removed, and every other session is served as
/// usual.
///
/// ```
/// # async fn demo() -> sandbay_core::Result<()> {
/// use std::sync::Arc;
/// use sandbay_core::{Backend, BackendExt, VPath};
/// use sandbay_state::StateStore;
///
/// let store = StateStore::default();
/// let path = VPath::parse("/file.txt")?;
/// store.session("alice", "s1").write(&path, "A1").await?;
/// store.session("bob", "s1").write(&path, "B1").await?;
/// assert_eq!(store.session("alice", "s1").read_to_string(&path).await?, "A1");
/// assert!(!store.session("alice", "s2").exists(&path).await?);
/// assert!(Arc::ptr_eq(&store.session("bob", "s1"), &store.session("bob", "s1")));
/// assert_eq!((store.user_count(), store.session_count()), (2, 3));
/// # Ok(()) }
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(demo()).unwrap();
/// ```
#[derive(Debug, Default)]
pub struct StateStore {
    inner: Arc<Inner>,
}

/// What a store's flusher thread shares with it.
#[derive(Debug, Default)]
pub(crate) struct Inner {
    config: StateConfig,
    users: Mutex<HashMap<String, Sessions>>,
    #[cfg(feature = "persist")]
    durable: Option<Arc<Durable>>,
}

impl Inner {
    fn users(&self) -> MutexGuard<'_, HashMap<String, Sessions>> {
        // Nothing panics while holding the lock; recover anyway.
        self.users.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A loaded session, if there is one.
    #[cfg(feature = "persist")]
    pub(crate) fn loaded(&self, key: &(String, String)) -> Option<Arc<StateBackend>> {
        self.users().get(&key.0)?.get(&key.1).cloned()
    }

    /// Every loaded session.
    #[cfg(feature = "persist")]
    fn all(&self) -> Vec<Arc<StateBackend>> {
        self.users()
            .values()
            .flat_map(|s| s.values().cloned())
            .collect()
    }

    /// Writes every loaded session with changes not yet on disk.
    #[cfg(feature = "persist")]
    fn flush_all(&self) -> std::io::Result<()> {
        let mut first_error = None;
        for backend in self.all() {
            if let Some(saver) = backend.saver()
                && let Err(e) = saver.save(&backend)
            {
                tracing::error!(error = %e, "writing a state session failed");
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl StateStore {
    /// An empty in-memory store whose new sessions use `config`.
    pub fn new(config: StateConfig) -> Self {
        StateStore {
            inner: Arc::new(Inner {
                config,
                ..Inner::default()
            }),
        }
    }

    /// A durable store: sessions saved under `durability`'s directory
    /// (made when missing) and loaded on first use. Reads no session.
    ///
    /// ```
    /// # async fn demo() -> sandbay_core::Result<()> {
    /// use sandbay_core::{Backend, BackendExt, VPath};
    /// use sandbay_state::{Durability, StateStore};
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = VPath::parse("/notes.md")?;
    /// {
    ///     let store = StateStore::open(Default::default(), Durability::new(dir.path()))?;
    ///     store.session("alice", "s1").write(&path, "kept\n").await?;
    /// } // dropping the store writes what is pending
    /// let store = StateStore::open(Default::default(), Durability::new(dir.path()))?;
    /// assert_eq!(store.session("alice", "s1").read_to_string(&path).await?, "kept\n");
    /// # Ok(()) }
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(demo()).unwrap();
    /// ```
    ///
    /// # Errors
    /// `io` when the directory cannot be made or the flusher thread
    /// cannot start.
    #[cfg(feature = "persist")]
    pub fn open(config: StateConfig, durability: Durability) -> sandbay_core::Result<Self> {
        let io = |e: std::io::Error| sandbay_core::Error::Io {
            path: None,
            kind: e.kind(),
        };
        let durable = Durable::open(&durability).map_err(io)?;
        let inner = Arc::new(Inner {
            config,
            users: Mutex::default(),
            durable: Some(durable.clone()),
        });
        durable.start(Arc::downgrade(&inner)).map_err(io)?;
        Ok(StateStore { inner })
    }

    /// The settings new sessions get.
    pub fn config(&self) -> &StateConfig {
        &self.inner.config
    }

    /// Whether sessions are saved on disk ([`StateStore::open`]).
    pub fn is_durable(&self) -> bool {
        #[cfg(feature = "persist")]
        return self.inner.durable.is_some();
        #[cfg(not(feature = "persist"))]
        false
    }

    fn users(&self) -> MutexGuard<'_, HashMap<String, Sessions>> {
        self.inner.users()
    }

    /// The backend of a session: loaded from disk on first use in a
    /// durable store, created empty otherwise.
    ///
    /// In a durable store, a session that cannot be loaded gives a backend
    /// whose every call fails with `unavailable` (see
    /// [`StateStore::try_session`] for the reason as a value). The first
    /// use reads the session's file on the calling thread.
    pub fn session(&self, user_id: &str, session_id: &str) -> Arc<StateBackend> {
        if let Some(backend) = self.get(user_id, session_id) {
            return backend;
        }
        let made = Arc::new(self.make(user_id, session_id));
        let mut users = self.users();
        let sessions = users.entry(user_id.to_owned()).or_default();
        if let Some(backend) = sessions.get(session_id) {
            // another caller made it first: theirs is the session
            return backend.clone();
        }
        tracing::debug!(user_id, session_id, "state session opened");
        sessions.insert(session_id.to_owned(), made.clone());
        made
    }

    /// Like [`StateStore::session`], but a session that cannot be loaded
    /// is an error.
    ///
    /// # Errors
    /// The [`LoadError`] of the session's file.
    #[cfg(feature = "persist")]
    pub fn try_session(
        &self,
        user_id: &str,
        session_id: &str,
    ) -> Result<Arc<StateBackend>, LoadError> {
        let backend = self.session(user_id, session_id);
        match backend.load_error() {
            Some(e) => Err(e.clone()),
            None => Ok(backend),
        }
    }

    /// A new backend for a session not loaded yet.
    fn make(&self, user_id: &str, session_id: &str) -> StateBackend {
        let config = self.inner.config;
        #[cfg(feature = "persist")]
        if let Some(durable) = &self.inner.durable {
            let key = (user_id.to_owned(), session_id.to_owned());
            let Some(path) = durable.path(&key) else {
                return StateBackend::broken(config, LoadError::InvalidId);
            };
            let tree = match durable.load(&path) {
                Ok(None) => Ok(crate::tree::Tree::default()),
                // no quota check: a quota lowered since is no damage
                Ok(Some(snapshot)) => snapshot.into_tree(None).map_err(|e| LoadError::Corrupt {
                    reason: e.to_string(),
                }),
                Err(e) => Err(e),
            };
            return match tree {
                Ok(tree) => StateBackend::durable(
                    config,
                    tree,
                    Arc::new(Saver::new(key, path, durable.clone())),
                ),
                Err(e) => {
                    tracing::error!(user_id, session_id, error = %e, "a state session cannot be loaded");
                    StateBackend::broken(config, e)
                }
            };
        }
        let _ = (user_id, session_id);
        StateBackend::new(config)
    }

    /// The session's backend (as [`StateStore::session`]) as a sandbox
    /// whose commands run in a new [`sandbay_exec::Jail`] made from
    /// `jail` (see [`crate::StateSandbox`]).
    ///
    /// Every call makes a new jail, with a host uid of its own (root
    /// hosts): keep the sandbox for as long as the session lives. Sandboxes
    /// of one session share its files. The first call in a process probes
    /// the host (see [`sandbay_exec::Jail::probe`]), which blocks briefly.
    ///
    /// # Errors
    /// Those of [`sandbay_exec::Jail::new`]: `invalid_argument` for a bad
    /// configuration, `unavailable` when the host cannot give the requested
    /// isolation level.
    #[cfg(feature = "exec")]
    pub fn sandbox(
        &self,
        user_id: &str,
        session_id: &str,
        jail: &sandbay_exec::JailConfig,
    ) -> sandbay_core::Result<crate::StateSandbox> {
        let backend = self.session(user_id, session_id);
        let jail = sandbay_exec::Jail::new(jail.clone())?;
        Ok(crate::StateSandbox::new(
            format!("state:{user_id}/{session_id}"),
            backend,
            jail,
        ))
    }

    /// The backend of a session if it exists (never creates one).
    pub fn get(&self, user_id: &str, session_id: &str) -> Option<Arc<StateBackend>> {
        self.users().get(user_id)?.get(session_id).cloned()
    }

    /// Writes a session to disk and frees its memory, when nobody else
    /// holds it; returns whether it was unloaded. Its files stay: the next
    /// [`StateStore::session`] loads it again. An in-memory store never
    /// unloads (that would lose the files).
    ///
    /// # Errors
    /// `io` when the session cannot be written; it stays loaded.
    pub async fn unload(&self, user_id: &str, session_id: &str) -> sandbay_core::Result<bool> {
        #[cfg(feature = "persist")]
        if self.inner.durable.is_some() {
            let Some(backend) = self.get(user_id, session_id) else {
                return Ok(false);
            };
            let Some(saver) = backend.saver().cloned() else {
                return Ok(false); // a session that could not be loaded
            };
            let to_save = backend.clone();
            tokio::task::spawn_blocking(move || saver.save(&to_save))
                .await
                .map_err(|_| sandbay_core::Error::Unavailable {
                    message: "the write to disk was cancelled".into(),
                })?
                .map_err(|e| sandbay_core::Error::Io {
                    path: None,
                    kind: e.kind(),
                })?;
            let mut users = self.users();
            let Some(sessions) = users.get_mut(user_id) else {
                return Ok(false);
            };
            let idle = sessions.get(session_id).is_some_and(|b| {
                // the map and `backend` are the only holders, and nothing
                // changed since the write
                Arc::ptr_eq(b, &backend)
                    && Arc::strong_count(&backend) == 2
                    && b.saver().is_some_and(|s| s.is_clean())
            });
            if idle {
                sessions.remove(session_id);
                if sessions.is_empty() {
                    users.remove(user_id);
                }
                tracing::debug!(user_id, session_id, "state session unloaded");
            }
            return Ok(idle);
        }
        let _ = (user_id, session_id);
        Ok(false)
    }

    /// Writes every loaded session with changes not yet on disk (a
    /// durable store; nothing otherwise).
    ///
    /// # Errors
    /// `io` for the first session that could not be written; the others
    /// are still tried, and the failed ones stay queued.
    pub async fn flush(&self) -> sandbay_core::Result<()> {
        #[cfg(feature = "persist")]
        if self.inner.durable.is_some() {
            let inner = self.inner.clone();
            return tokio::task::spawn_blocking(move || inner.flush_all())
                .await
                .map_err(|_| sandbay_core::Error::Unavailable {
                    message: "the write to disk was cancelled".into(),
                })?
                .map_err(|e| sandbay_core::Error::Io {
                    path: None,
                    kind: e.kind(),
                });
        }
        Ok(())
    }

    /// The (user, session) pairs saved on disk, loaded or not, sorted
    /// (empty for an in-memory store).
    ///
    /// # Errors
    /// `io` when the data directory cannot be read.
    pub fn saved_sessions(&self) -> sandbay_core::Result<Vec<(String, String)>> {
        #[cfg(feature = "persist")]
        if let Some(durable) = &self.inner.durable {
            return durable.saved().map_err(|e| sandbay_core::Error::Io {
                path: None,
                kind: e.kind(),
            });
        }
        Ok(Vec::new())
    }

    /// The session ids of `user` saved on disk, sorted (empty for an
    /// in-memory store).
    ///
    /// # Errors
    /// `io` when the user's directory cannot be read.
    pub fn saved_sessions_of(&self, user_id: &str) -> sandbay_core::Result<Vec<String>> {
        #[cfg(feature = "persist")]
        if let Some(durable) = &self.inner.durable {
            return durable
                .saved_of(user_id)
                .map_err(|e| sandbay_core::Error::Io {
                    path: None,
                    kind: e.kind(),
                });
        }
        let _ = user_id;
        Ok(Vec::new())
    }

    /// Whether a session is loaded or saved on disk (never loads or
    /// creates one).
    pub fn exists(&self, user_id: &str, session_id: &str) -> bool {
        if self.get(user_id, session_id).is_some() {
            return true;
        }
        #[cfg(feature = "persist")]
        if let Some(durable) = &self.inner.durable {
            return durable.is_saved(&(user_id.to_owned(), session_id.to_owned()));
        }
        false
    }

    /// Deletes a durable session's files (the one kept aside included).
    #[cfg(feature = "persist")]
    fn delete_files(&self, backend: Option<&Arc<StateBackend>>, user_id: &str, session_id: &str) {
        let Some(durable) = &self.inner.durable else {
            return;
        };
        if let Some(saver) = backend.and_then(|b| b.saver()) {
            saver.detach();
        }
        let key = (user_id.to_owned(), session_id.to_owned());
        if let Some(path) = durable.path(&key)
            && let Err(e) = durable.remove(&path)
        {
            tracing::error!(user_id, session_id, error = %e, "a state session's file could not be deleted");
        }
    }

    /// Puts a backend (for example one restored from a snapshot) in place
    /// of a session, returning the one it replaced.
    ///
    /// In a durable store the backend's files become the session's and
    /// are written like any change.
    pub fn insert(
        &self,
        user_id: &str,
        session_id: &str,
        backend: StateBackend,
    ) -> Option<Arc<StateBackend>> {
        #[cfg(feature = "persist")]
        let backend = match &self.inner.durable {
            Some(durable) => {
                let key = (user_id.to_owned(), session_id.to_owned());
                match durable.path(&key) {
                    Some(path) => {
                        let saver = Arc::new(Saver::new(key, path, durable.clone()));
                        let tree = backend.into_tree();
                        let backend = StateBackend::durable(self.inner.config, tree, saver);
                        drop(backend.write_tree()); // queue the first write
                        backend
                    }
                    None => StateBackend::broken(self.inner.config, LoadError::InvalidId),
                }
            }
            None => backend,
        };
        self.users()
            .entry(user_id.to_owned())
            .or_default()
            .insert(session_id.to_owned(), Arc::new(backend))
    }

    /// Forgets one session, and in a durable store deletes its files for
    /// good; returns its backend if it was loaded. (A file that cannot be
    /// deleted is logged and stays, so nothing is lost by accident.)
    pub fn remove_session(&self, user_id: &str, session_id: &str) -> Option<Arc<StateBackend>> {
        let removed = {
            let mut users = self.users();
            let removed = users
                .get_mut(user_id)
                .and_then(|sessions| sessions.remove(session_id));
            if users.get(user_id).is_some_and(HashMap::is_empty) {
                users.remove(user_id);
            }
            removed
        };
        #[cfg(feature = "persist")]
        self.delete_files(removed.as_ref(), user_id, session_id);
        if removed.is_some() {
            tracing::debug!(user_id, session_id, "state session removed");
        }
        removed
    }

    /// Forgets a user and all their sessions (in a durable store, saved
    /// ones too, files deleted); returns how many loaded sessions were
    /// removed.
    pub fn remove_user(&self, user_id: &str) -> usize {
        let removed = self.users().remove(user_id).unwrap_or_default();
        #[cfg(feature = "persist")]
        if self.inner.durable.is_some() {
            for (session_id, backend) in &removed {
                self.delete_files(Some(backend), user_id, session_id);
            }
            let saved = self.saved_sessions().unwrap_or_default();
            for (_, session_id) in saved.iter().filter(|(u, _)| u == user_id) {
                self.delete_files(None, user_id, session_id);
            }
        }
        if !removed.is_empty() {
            tracing::debug!(user_id, sessions = removed.len(), "state user removed");
        }
        removed.len()
    }

    /// The session ids of a user, sorted.
    pub fn sessions(&self, user_id: &str) -> Vec<String> {
        let mut ids: Vec<String> = self
            .users()
            .get(user_id)
            .map(|s| s.keys().cloned().collect())
            .unwrap_or_default();
        ids.sort_unstable();
        ids
    }

    /// Every loaded (user, session) pair, sorted.
    pub fn loaded(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .users()
            .iter()
            .flat_map(|(user, sessions)| sessions.keys().map(|s| (user.clone(), s.clone())))
            .collect();
        out.sort_unstable();
        out
    }

    /// Number of users with at least one session.
    pub fn user_count(&self) -> usize {
        self.users().len()
    }

    /// Number of sessions over all users.
    pub fn session_count(&self) -> usize {
        self.users().values().map(HashMap::len).sum()
    }
}

impl Drop for StateStore {
    fn drop(&mut self) {
        #[cfg(feature = "persist")]
        if let Some(durable) = &self.inner.durable {
            let _ = self.inner.flush_all();
            durable.stop();
        }
    }
}
