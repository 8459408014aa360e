//! The users' sessions: storage and compute behind one narrow internal
//! trait ([`Workspaces`]), one implementation per backend (`state`, `fs`,
//! `docker`), and the rules every backend shares here: session ids, the
//! caps, one jail per user, the sessions in use.

mod docker;
mod fs;
mod index;
mod state;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::http::StatusCode;
use sandbay_core::{Backend, Isolation, Sandbox, async_trait};
use sandbay_exec::{Jail, JailConfig};
use sandbay_middleware::Toolbox;
use serde::Serialize;

use crate::config::{BackendChoice, ServerConfig, ServerLimits};
use crate::error::ApiError;
use crate::offload::{Gate, Offloaded};

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

/// What a backend opens for a session in use.
pub(crate) struct Opened {
    /// Its files.
    pub(crate) files: Arc<dyn Backend>,
    /// Its commands, when they can run.
    pub(crate) sandbox: Option<Arc<dyn Sandbox>>,
    /// Set when it stopped working for good (a container whose daemon
    /// went away): the session is opened afresh on its next call.
    pub(crate) broken: Option<Arc<AtomicBool>>,
}

/// Where sessions' files live and their commands run: what the server
/// needs of a backend, and no more, so that a backend can be re-wired
/// (another registry, another store) without touching the routes.
#[async_trait]
pub(crate) trait Workspaces: Send + Sync + fmt::Debug {
    /// The isolation commands get (`none`: no execute).
    fn isolation(&self) -> Isolation;
    /// Whether its commands run in a local jail (one per user, handed to
    /// [`Workspaces::open`]).
    fn local_jail(&self) -> bool;
    /// Every session there is, as (user, id).
    fn all(&self) -> Result<Vec<Key>, ApiError>;
    /// The ids of one user's sessions.
    fn of_user(&self, user: &str) -> Result<Vec<String>, ApiError>;
    /// Whether the session exists.
    fn exists(&self, user: &str, id: &str) -> bool;
    /// Whether its files are in memory now (`false` where files are never
    /// held in memory).
    fn loaded(&self, user: &str, id: &str) -> bool;
    /// Makes an empty session (the caller checked it does not exist).
    async fn create(&self, user: &str, id: &str) -> Result<(), ApiError>;
    /// Deletes a session and its files for good.
    async fn remove(&self, user: &str, id: &str) -> Result<(), ApiError>;
    /// The files of a session without opening its compute, where the
    /// backend can (`None`: open it).
    async fn files(&self, user: &str, id: &str) -> Result<Option<Arc<dyn Backend>>, ApiError>;
    /// Opens a session for use: its files and, when commands can run, its
    /// sandbox (in `jail` for a local backend).
    async fn open(&self, user: &str, id: &str, jail: Option<Jail>) -> Result<Opened, ApiError>;
    /// Frees what an idle session holds (no request uses it); its files
    /// stay. Whether there was anything to free.
    async fn unload(&self, user: &str, id: &str) -> Result<bool, ApiError>;
    /// Lets go of a session's compute that [broke](Opened::broken).
    async fn discard(&self, _user: &str, _id: &str) {}
    /// Sessions whose files are in memory, as (user, id).
    fn loaded_keys(&self) -> Vec<Key>;
    /// Writes every change to disk.
    async fn flush(&self) -> Result<(), ApiError>;
    /// Ends every session's compute and waits until it is gone.
    async fn shutdown(&self);
}

/// A session in use: its toolbox, its files, its sandbox when commands
/// can run.
pub(crate) struct Live {
    pub(crate) toolbox: Toolbox,
    pub(crate) files: Arc<dyn Backend>,
    pub(crate) sandbox: Option<Arc<dyn Sandbox>>,
    broken: Option<Arc<AtomicBool>>,
}

impl Live {
    fn is_broken(&self) -> bool {
        self.broken
            .as_ref()
            .is_some_and(|b| b.load(Ordering::Acquire))
    }
}

impl fmt::Debug for Live {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Live")
            .field("execute", &self.sandbox.is_some())
            .finish_non_exhaustive()
    }
}

/// Every user's sessions.
#[derive(Debug)]
pub(crate) struct Sessions {
    backend: Box<dyn Workspaces>,
    /// The jail level for local backends (`None`: no execute).
    jail: Option<JailConfig>,
    /// One jail per user, shared by all the user's sessions: its caps
    /// (processes, memory, CPU, commands at once) hold for the user as a
    /// whole.
    jails: Mutex<HashMap<String, Jail>>,
    limits: ServerLimits,
    /// Places for searches: per user, and the host's CPUs.
    search_users: Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>,
    search_host: Arc<tokio::sync::Semaphore>,
    live: Mutex<HashMap<Key, Arc<Live>>>,
    total: AtomicUsize,
    /// Orders creations so that the caps hold.
    creating: tokio::sync::Mutex<()>,
    /// Per session: opening its storage or compute holds it shared, a
    /// delete holds it alone, so nothing is opened (made, mounted,
    /// leased) for a session while or after it is deleted.
    gates: Mutex<HashMap<Key, Arc<tokio::sync::RwLock<()>>>>,
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

/// The jail level of this host, probed once (`None`: no execute).
async fn probe_jail() -> Result<Option<JailConfig>, String> {
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
    Ok(jail)
}

impl Sessions {
    /// Opens the configured backend and probes the jail level.
    pub(crate) async fn open(config: &ServerConfig) -> Result<Sessions, String> {
        let (backend, jail): (Box<dyn Workspaces>, _) = match &config.backend {
            BackendChoice::State => {
                let jail = probe_jail().await?;
                let isolation = jail.as_ref().map_or(Isolation::None, |j| j.isolation);
                (
                    Box::new(state::StateWorkspaces::open(config, isolation)?),
                    jail,
                )
            }
            BackendChoice::Fs(dir) => {
                let jail = probe_jail().await?;
                let isolation = jail.as_ref().map_or(Isolation::None, |j| j.isolation);
                (
                    Box::new(fs::FsWorkspaces::open(config, dir, isolation).await?),
                    jail,
                )
            }
            BackendChoice::Docker => (
                Box::new(docker::DockerWorkspaces::open(config).await?),
                None,
            ),
        };
        let total = backend
            .all()
            .map_err(|e| format!("cannot list the saved sessions: {}", e.message))?
            .len();
        Ok(Sessions {
            backend,
            jail,
            jails: Mutex::default(),
            limits: config.limits.clone(),
            search_users: Mutex::default(),
            search_host: Arc::new(tokio::sync::Semaphore::new(host_search_places(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
                config.limits.searches_per_user,
            ))),
            live: Mutex::default(),
            total: AtomicUsize::new(total),
            creating: tokio::sync::Mutex::new(()),
            gates: Mutex::default(),
        })
    }

    /// The isolation commands run with (`none`: no execute).
    pub(crate) fn isolation(&self) -> Isolation {
        self.backend.isolation()
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
        if self.backend.exists(user, id) {
            return Ok(false);
        }
        let mine = self.backend.of_user(user)?.len();
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
        self.backend.create(user, id).await?;
        self.total.fetch_add(1, Ordering::Relaxed);
        tracing::info!(user, session = id, "session created");
        Ok(true)
    }

    /// The caller's sessions, sorted by id.
    pub(crate) fn list(&self, user: &str) -> Result<Vec<SessionInfo>, ApiError> {
        let mut ids = self.backend.of_user(user)?;
        ids.sort_unstable();
        ids.dedup();
        Ok(ids
            .into_iter()
            .map(|id| SessionInfo {
                loaded: self.loaded(user, &id),
                id,
            })
            .collect())
    }

    fn loaded(&self, user: &str, id: &str) -> bool {
        self.backend.loaded(user, id)
            || self
                .live
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .contains_key(&(user.to_owned(), id.to_owned()))
    }

    /// One of the caller's sessions.
    pub(crate) fn info(&self, user: &str, id: &str) -> Result<SessionInfo, ApiError> {
        self.check_exists(user, id)?;
        Ok(SessionInfo {
            id: id.to_owned(),
            loaded: self.loaded(user, id),
        })
    }

    /// Whether the caller has this session.
    pub(crate) fn exists(&self, user: &str, id: &str) -> bool {
        valid_session_id(id) && self.backend.exists(user, id)
    }

    fn check_exists(&self, user: &str, id: &str) -> Result<(), ApiError> {
        if self.exists(user, id) {
            Ok(())
        } else {
            Err(ApiError::no_session(id))
        }
    }

    /// The gate of an existing session (see `gates`).
    fn gate(&self, key: &Key) -> Arc<tokio::sync::RwLock<()>> {
        Arc::clone(
            self.gates
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(key.clone())
                .or_default(),
        )
    }

    /// Deletes a session and its files for good. Calls that were opening
    /// it finish first; calls that come after find no session.
    pub(crate) async fn delete(&self, user: &str, id: &str) -> Result<(), ApiError> {
        let _creating = self.creating.lock().await;
        self.check_exists(user, id)?;
        let key = (user.to_owned(), id.to_owned());
        let gate = self.gate(&key);
        let _alone = gate.write().await;
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&key);
        self.backend.remove(user, id).await?;
        self.gates
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&key);
        self.total.fetch_sub(1, Ordering::Relaxed);
        tracing::info!(user, session = id, "session deleted");
        Ok(())
    }

    /// The files of one of the caller's sessions.
    pub(crate) async fn files(&self, user: &str, id: &str) -> Result<Arc<dyn Backend>, ApiError> {
        self.check_exists(user, id)?;
        let gate = self.gate(&(user.to_owned(), id.to_owned()));
        let opened = {
            let _shared = gate.read().await;
            // deleted while this call waited: nothing is opened
            self.check_exists(user, id)?;
            self.backend.files(user, id).await?
        };
        match opened {
            Some(files) => Ok(files),
            None => Ok(Arc::clone(&self.live(user, id).await?.files)),
        }
    }

    /// The user's jail, made on first use.
    async fn jail_of(&self, user: &str) -> Result<Option<Jail>, ApiError> {
        let Some(config) = self.jail.as_ref().filter(|_| self.backend.local_jail()) else {
            return Ok(None);
        };
        if let Some(jail) = self
            .jails
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(user)
        {
            return Ok(Some(jail.clone()));
        }
        let made = Jail::new_async(config.clone())
            .await
            .map_err(ApiError::from)?;
        let mut jails = self.jails.lock().unwrap_or_else(PoisonError::into_inner);
        // another request may have made one meanwhile: keep the first
        Ok(Some(jails.entry(user.to_owned()).or_insert(made).clone()))
    }

    /// The toolbox of one of the caller's sessions, made on first use
    /// (with the user's jail when commands can run here).
    pub(crate) async fn live(&self, user: &str, id: &str) -> Result<Arc<Live>, ApiError> {
        let key = (user.to_owned(), id.to_owned());
        if let Some(live) = self.live_get(&key) {
            if !live.is_broken() {
                return Ok(live);
            }
            self.live
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&key);
            self.backend.discard(user, id).await;
            tracing::warn!(user, session = id, "a broken session's compute was let go");
        }
        self.check_exists(user, id)?;
        let gate = self.gate(&key);
        let _shared = gate.read().await;
        // deleted while this call waited: nothing is opened
        self.check_exists(user, id)?;
        let jail = self.jail_of(user).await?;
        let mut opened = self.backend.open(user, id, jail).await?;
        if self.backend.local_jail() {
            // local backends search in this process: off the request threads
            let gate = self.search_gate(user);
            opened.files = Arc::new(Offloaded::new(opened.files, gate.clone()));
            opened.sandbox = opened
                .sandbox
                .map(|s| Arc::new(Offloaded::new(s, gate)) as Arc<dyn Sandbox>);
        }
        let toolbox = match &opened.sandbox {
            Some(sandbox) => Toolbox::with_sandbox(Arc::clone(sandbox)),
            None => Toolbox::new(Arc::clone(&opened.files)),
        }
        .with_config(self.tool_config());
        let made = Live {
            toolbox,
            files: opened.files,
            sandbox: opened.sandbox,
            broken: opened.broken,
        };
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        // another request may have made it meanwhile: keep the first
        Ok(live.entry(key).or_insert_with(|| Arc::new(made)).clone())
    }

    /// The places a search of `user` needs.
    fn search_gate(&self, user: &str) -> Gate {
        let user = self
            .search_users
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(user.to_owned())
            .or_insert_with(|| {
                Arc::new(tokio::sync::Semaphore::new(
                    self.limits.searches_per_user.max(1),
                ))
            })
            .clone();
        Gate {
            user,
            host: Arc::clone(&self.search_host),
        }
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
        let mut keys = self.backend.all()?;
        keys.sort_unstable();
        keys.dedup();
        Ok(keys
            .into_iter()
            .map(|(user, id)| {
                let loaded = self.loaded(&user, &id);
                (user, SessionInfo { id, loaded })
            })
            .collect())
    }

    /// Ends the compute of every session no request is using (its tools,
    /// and the user's jail once none of the user's sessions is in use),
    /// and frees the memory of its files after writing them; the files
    /// stay. Returns how many sessions were unloaded.
    pub(crate) async fn evict_idle(&self) -> Result<usize, ApiError> {
        let mut dropped: Vec<Key> = Vec::new();
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|key, live| {
                let keep = Arc::strong_count(live) > 1;
                if !keep {
                    dropped.push(key.clone());
                }
                keep
            });
        let mut candidates = self.backend.loaded_keys();
        candidates.extend(dropped);
        candidates.sort_unstable();
        candidates.dedup();
        let mut unloaded = 0;
        for (user, id) in candidates {
            let in_use = self
                .live
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .contains_key(&(user.clone(), id.clone()));
            if !in_use && self.backend.unload(&user, &id).await? {
                unloaded += 1;
            }
        }
        let live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        self.jails
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|user, _| live.keys().any(|(u, _)| u == user));
        Ok(unloaded)
    }

    /// Writes every change to disk.
    pub(crate) async fn flush(&self) -> Result<(), ApiError> {
        self.backend.flush().await
    }

    /// Ends every session's compute (containers included) and writes
    /// every change.
    pub(crate) async fn shutdown(&self) -> Result<(), ApiError> {
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        self.jails
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        self.backend.shutdown().await;
        self.flush().await
    }
}

/// Searches that may run at once over all users: one per CPU, and always
/// at least one more than a single user may hold, so that a user who
/// keeps every one of their places busy never leaves another user's
/// search waiting for a place (it shares the CPUs instead).
fn host_search_places(cpus: usize, per_user: usize) -> usize {
    cpus.max(per_user.max(1) + 1)
}

#[cfg(test)]
mod search_places_tests {
    use super::host_search_places;

    #[test]
    fn one_user_never_holds_every_search_place() {
        for cpus in 1..=64 {
            for per_user in 0..=64 {
                let host = host_search_places(cpus, per_user);
                assert!(host > per_user.max(1), "{cpus} CPUs, {per_user} per user");
                assert!(host >= cpus);
            }
        }
        assert_eq!(
            host_search_places(8, 2),
            8,
            "no more than the CPUs when they suffice"
        );
    }
}
