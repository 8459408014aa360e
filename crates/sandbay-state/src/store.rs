//! [`StateStore`]: per-user, per-session state backends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::backend::StateBackend;
use crate::config::StateConfig;

type Sessions = HashMap<String, Arc<StateBackend>>;

/// Hands out one [`StateBackend`] per `(user, session)` pair.
///
/// The same ids always give the same backend; different users, and
/// different sessions of one user, get fully separate workspaces (they
/// share no data structure at all). Safe under concurrent use: two first
/// requests for one pair create exactly one backend.
///
/// Removing a session or user only drops the store's handle: callers that
/// still hold an `Arc` keep a working, but detached, workspace.
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
    config: StateConfig,
    users: Mutex<HashMap<String, Sessions>>,
}

impl StateStore {
    /// An empty store whose new sessions use `config`.
    pub fn new(config: StateConfig) -> Self {
        StateStore {
            config,
            users: Mutex::default(),
        }
    }

    /// The settings new sessions get.
    pub fn config(&self) -> &StateConfig {
        &self.config
    }

    fn users(&self) -> MutexGuard<'_, HashMap<String, Sessions>> {
        // Nothing panics while holding the lock; recover anyway.
        self.users.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The backend of a session, created empty on first use.
    pub fn session(&self, user_id: &str, session_id: &str) -> Arc<StateBackend> {
        let mut users = self.users();
        let sessions = users.entry(user_id.to_owned()).or_default();
        if let Some(backend) = sessions.get(session_id) {
            return backend.clone();
        }
        tracing::debug!(user_id, session_id, "state session created");
        let backend = Arc::new(StateBackend::new(self.config));
        sessions.insert(session_id.to_owned(), backend.clone());
        backend
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

    /// Puts a backend (for example one restored from a snapshot) in place
    /// of a session, returning the one it replaced.
    pub fn insert(
        &self,
        user_id: &str,
        session_id: &str,
        backend: StateBackend,
    ) -> Option<Arc<StateBackend>> {
        self.users()
            .entry(user_id.to_owned())
            .or_default()
            .insert(session_id.to_owned(), Arc::new(backend))
    }

    /// Forgets one session; returns its backend if it existed.
    pub fn remove_session(&self, user_id: &str, session_id: &str) -> Option<Arc<StateBackend>> {
        let mut users = self.users();
        let sessions = users.get_mut(user_id)?;
        let removed = sessions.remove(session_id);
        if sessions.is_empty() {
            users.remove(user_id);
        }
        if removed.is_some() {
            tracing::debug!(user_id, session_id, "state session removed");
        }
        removed
    }

    /// Forgets a user and all their sessions; returns how many sessions
    /// were removed.
    pub fn remove_user(&self, user_id: &str) -> usize {
        let removed = self.users().remove(user_id).map_or(0, |s| s.len());
        if removed > 0 {
            tracing::debug!(user_id, sessions = removed, "state user removed");
        }
        removed
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

    /// Number of users with at least one session.
    pub fn user_count(&self) -> usize {
        self.users().len()
    }

    /// Number of sessions over all users.
    pub fn session_count(&self) -> usize {
        self.users().values().map(HashMap::len).sum()
    }
}
