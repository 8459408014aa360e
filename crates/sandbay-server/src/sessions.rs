//! The users' sessions: durable state workspaces (storage) and, made on
//! first use, a local jail per session for its commands (compute).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::http::StatusCode;
use sandbay_core::{Isolation, Sandbox};
use sandbay_exec::{Jail, JailConfig};
use sandbay_middleware::Toolbox;
use sandbay_state::{Durability, StateBackend, StateConfig, StateSandbox, StateStore, WriteBehind};
use serde::Serialize;

use crate::config::{ServerConfig, ServerLimits};
use crate::error::ApiError;

/// A session's identity: (user, session id).
type Key = (String, String);

/// What the API says about a session.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct SessionInfo {
    /// The session id, unique per user.
    pub id: String,
    /// Whether its workspace is in memory now (files are on disk either way).
    pub loaded: bool,
}

/// A session in use: its toolbox, over a sandbox when commands can run.
#[derive(Debug)]
pub(crate) struct Live {
    pub(crate) toolbox: Toolbox,
    pub(crate) sandbox: Option<Arc<StateSandbox>>,
}

/// Every user's sessions.
#[derive(Debug)]
pub(crate) struct Sessions {
    store: StateStore,
    jail: Option<JailConfig>,
    limits: ServerLimits,
    live: Mutex<HashMap<Key, Arc<Live>>>,
    total: AtomicUsize,
    /// Orders creations so that the caps hold.
    creating: tokio::sync::Mutex<()>,
}

/// Whether `id` is a session id: 1 to 64 of `A-Z a-z 0-9 . _ -`, not
/// `.` or `..`.
pub(crate) fn valid_session_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn check_id(id: &str) -> Result<(), ApiError> {
    if valid_session_id(id) {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "a session id is 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' and '-'",
        ))
    }
}

impl Sessions {
    /// Opens the store under `DATA/state` and probes the jail level.
    pub(crate) async fn open(config: &ServerConfig) -> Result<Sessions, String> {
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
        let total = store
            .saved_sessions()
            .map_err(|e| format!("cannot list the saved sessions: {e}"))?
            .len();
        let jail = tokio::task::spawn_blocking(|| {
            let level = Jail::probe();
            (level != Isolation::None).then(|| JailConfig::new(level))
        })
        .await
        .map_err(|e| format!("probing the jail: {e}"))?;
        match &jail {
            Some(j) => tracing::info!(
                isolation = j.isolation.as_str(),
                "commands run in a local jail"
            ),
            None => tracing::warn!("this host gives no jail level: execute is not offered"),
        }
        Ok(Sessions {
            store,
            jail,
            limits: config.limits.clone(),
            live: Mutex::default(),
            total: AtomicUsize::new(total),
            creating: tokio::sync::Mutex::new(()),
        })
    }

    /// The isolation commands run with (`none`: no execute).
    pub(crate) fn isolation(&self) -> Isolation {
        self.jail.as_ref().map_or(Isolation::None, |j| j.isolation)
    }

    /// Number of sessions over all users.
    pub(crate) fn total(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    /// Number of sessions with a toolbox in memory.
    pub(crate) fn live_count(&self) -> usize {
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Creates the session unless it exists; `true` when it was created.
    pub(crate) async fn create(&self, user: &str, id: &str) -> Result<bool, ApiError> {
        check_id(id)?;
        let _creating = self.creating.lock().await;
        if self.store.exists(user, id) {
            return Ok(false);
        }
        let mine = self.list(user)?.len();
        if mine >= self.limits.sessions_per_user {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "limit_reached",
                format!("you have {mine} sessions, the most one user may hold; delete one first"),
            ));
        }
        if self.total() >= self.limits.sessions_total {
            return Err(ApiError {
                retry_after: Some(60),
                ..ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "limit_reached",
                    "the server holds as many sessions as it may; try again later",
                )
            });
        }
        self.store.insert(user, id, StateBackend::default());
        self.total.fetch_add(1, Ordering::Relaxed);
        tracing::info!(user, session = id, "session created");
        Ok(true)
    }

    /// The caller's sessions, sorted by id.
    pub(crate) fn list(&self, user: &str) -> Result<Vec<SessionInfo>, ApiError> {
        let mut ids = self.store.saved_sessions_of(user)?;
        for loaded in self.store.sessions(user) {
            if !ids.contains(&loaded) {
                ids.push(loaded);
            }
        }
        ids.sort_unstable();
        Ok(ids
            .into_iter()
            .map(|id| SessionInfo {
                loaded: self.store.get(user, &id).is_some(),
                id,
            })
            .collect())
    }

    /// One of the caller's sessions.
    pub(crate) fn info(&self, user: &str, id: &str) -> Result<SessionInfo, ApiError> {
        self.check_exists(user, id)?;
        Ok(SessionInfo {
            id: id.to_owned(),
            loaded: self.store.get(user, id).is_some(),
        })
    }

    /// Whether the caller has this session.
    pub(crate) fn exists(&self, user: &str, id: &str) -> bool {
        valid_session_id(id) && self.store.exists(user, id)
    }

    fn check_exists(&self, user: &str, id: &str) -> Result<(), ApiError> {
        if valid_session_id(id) && self.store.exists(user, id) {
            Ok(())
        } else {
            Err(ApiError::no_session(id))
        }
    }

    /// Deletes a session and its files for good.
    pub(crate) async fn delete(&self, user: &str, id: &str) -> Result<(), ApiError> {
        let _creating = self.creating.lock().await;
        self.check_exists(user, id)?;
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(user.to_owned(), id.to_owned()));
        self.store.remove_session(user, id);
        self.total.fetch_sub(1, Ordering::Relaxed);
        tracing::info!(user, session = id, "session deleted");
        Ok(())
    }

    /// The workspace of one of the caller's sessions.
    pub(crate) fn backend(&self, user: &str, id: &str) -> Result<Arc<StateBackend>, ApiError> {
        self.check_exists(user, id)?;
        self.store
            .try_session(user, id)
            .map_err(|e| ApiError::from(sandbay_core::Error::from(e)))
    }

    /// The toolbox of one of the caller's sessions, made on first use
    /// (with a jail of its own when commands can run here).
    pub(crate) async fn live(&self, user: &str, id: &str) -> Result<Arc<Live>, ApiError> {
        let key = (user.to_owned(), id.to_owned());
        if let Some(live) = self.live_get(&key) {
            return Ok(live);
        }
        let backend = self.backend(user, id)?;
        let made = match &self.jail {
            Some(config) => {
                let config = config.clone();
                let jail = Jail::new_async(config).await.map_err(ApiError::from)?;
                let sandbox = Arc::new(StateSandbox::new(
                    format!("state:{user}/{id}"),
                    backend,
                    jail,
                ));
                let as_sandbox: Arc<dyn Sandbox> = sandbox.clone();
                Live {
                    toolbox: Toolbox::with_sandbox(as_sandbox).with_config(self.tool_config()),
                    sandbox: Some(sandbox),
                }
            }
            None => Live {
                toolbox: Toolbox::new(backend).with_config(self.tool_config()),
                sandbox: None,
            },
        };
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        // another request may have made it meanwhile: keep the first
        Ok(live.entry(key).or_insert_with(|| Arc::new(made)).clone())
    }

    /// The tools' settings: command time limits are the server's.
    fn tool_config(&self) -> sandbay_middleware::ToolConfig {
        sandbay_middleware::ToolConfig {
            default_timeout: std::time::Duration::from_secs(self.limits.exec_timeout_default_secs),
            max_timeout: std::time::Duration::from_secs(self.limits.exec_timeout_max_secs),
            ..sandbay_middleware::ToolConfig::default()
        }
    }

    fn live_get(&self, key: &Key) -> Option<Arc<Live>> {
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    /// Every user's sessions, sorted by user and id.
    pub(crate) fn all(&self) -> Result<Vec<(String, SessionInfo)>, ApiError> {
        let mut keys = self.store.saved_sessions()?;
        for loaded in self.store.loaded() {
            if !keys.contains(&loaded) {
                keys.push(loaded);
            }
        }
        keys.sort_unstable();
        Ok(keys
            .into_iter()
            .map(|(user, id)| {
                let loaded = self.store.get(&user, &id).is_some();
                (user, SessionInfo { id, loaded })
            })
            .collect())
    }

    /// Ends the compute of every session no request is using (its jail
    /// and tools), and frees the memory of its files after writing them;
    /// the files stay. Returns how many sessions were unloaded.
    pub(crate) async fn evict_idle(&self) -> Result<usize, ApiError> {
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, live| Arc::strong_count(live) > 1);
        let mut unloaded = 0;
        for (user, id) in self.store.loaded() {
            let in_use = self
                .live
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .contains_key(&(user.clone(), id.clone()));
            if !in_use && self.store.unload(&user, &id).await? {
                unloaded += 1;
            }
        }
        Ok(unloaded)
    }

    /// Writes every change to disk.
    pub(crate) async fn flush(&self) -> Result<(), ApiError> {
        self.store.flush().await.map_err(ApiError::from)
    }
}
