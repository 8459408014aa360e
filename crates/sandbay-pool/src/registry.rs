//! Sticky user -> sandbox assignment on top of a pool.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::OnceCell;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::SandboxFactory;
use crate::error::PoolError;
use crate::pool::Pool;
use crate::storage::{Ephemeral, Storage, WorkspaceKey};

/// A user's sandbox as the [`Registry`] hands it out: shared by every
/// caller working for that user's session at the same time. With
/// [`Ephemeral`] storage it is the [`Lease`](crate::Lease) itself; with
/// another [`Storage`], the compute joined to the session's workspace.
pub type UserSandbox<F, S = Ephemeral> = Arc<<S as Storage<F>>::Workspace>;

/// The session [`Registry::get`] and [`Registry::release`] mean when none
/// is named.
pub const DEFAULT_SESSION: &str = "default";

/// How a [`Registry`] expires users.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RegistryConfig {
    /// A session not used for this long loses its compute at the next
    /// [`Registry::evict_idle`] (its storage stays). Default 10 minutes.
    pub idle_timeout: Duration,
    /// When a session needs compute and the pool is full, release the
    /// least recently used session whose sandbox no caller holds
    /// (destroying that sandbox to free its place; its storage stays),
    /// instead of waiting for a place. Default on: the number of sessions
    /// with compute stays bounded by the pool, and newcomers are served as
    /// long as someone is merely idle.
    pub evict_lru_when_full: bool,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            idle_timeout: Duration::from_secs(600),
            evict_lru_when_full: true,
        }
    }
}

impl RegistryConfig {
    /// Sets [`RegistryConfig::idle_timeout`].
    pub fn with_idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Sets [`RegistryConfig::evict_lru_when_full`].
    pub fn with_evict_lru_when_full(mut self, on: bool) -> Self {
        self.evict_lru_when_full = on;
        self
    }
}

struct Entry<W> {
    lease: OnceCell<Arc<W>>,
    last_used: Mutex<Instant>,
}

impl<W> Entry<W> {
    /// Whether only the registry holds this entry and its sandbox: no
    /// caller is using the sandbox, and no `get` is under way for it
    /// (a `get` holds the entry from the map lookup until it returns).
    fn unused(self: &Arc<Self>) -> bool {
        Arc::strong_count(self) == 1
            && self
                .lease
                .get()
                .is_none_or(|lease| Arc::strong_count(lease) == 1)
    }

    fn touch(&self) {
        *self.last_used.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    fn idle_for(&self) -> Duration {
        self.last_used
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .elapsed()
    }
}

type Entries<W> = HashMap<WorkspaceKey, Arc<Entry<W>>>;

/// Gives each user's session compute from a [`Pool`] joined to the
/// session's workspace ([`Storage`]), the same on every call until the
/// session is [released](Registry::release_session) or
/// [evicted](Registry::evict_idle) for being idle.
///
/// **Storage outlives compute.** Release, idle eviction and LRU eviction
/// end the *compute* (the pool destroys the sandbox: its processes, its
/// uid, its container) and then [detach](Storage::detach) the workspace;
/// they never delete it. A user who comes back gets fresh compute from
/// the pool, attached to the same storage, and finds their files. Only
/// [`Registry::remove`] deletes a workspace. With [`Ephemeral`] storage
/// ([`Registry::new`]) there is nothing to keep: the sandbox's own files
/// end with it.
///
/// Concurrent first calls for one session wait for the same acquisition,
/// so a session never gets two sandboxes by racing. The number of
/// sessions with compute is bounded by the pool's `max_size`; when it is
/// reached, a newcomer takes the place of the least recently used session
/// whose sandbox no caller holds ([`RegistryConfig::evict_lru_when_full`]),
/// or waits. A sandbox is never given to a second user (a caller still
/// holding a [`UserSandbox`] after a release keeps it working until it
/// drops it).
///
/// # Example
///
/// ```
/// # use async_trait::async_trait;
/// # use sandbay_core::{Backend, BackendExt, Result, VPath};
/// # use sandbay_pool::{Pool, PoolConfig, Registry, RegistryConfig, SandboxFactory};
/// # use sandbay_state::StateBackend;
/// # struct Memory;
/// # #[async_trait]
/// # impl SandboxFactory for Memory {
/// #     type Sandbox = StateBackend;
/// #     async fn create(&self) -> Result<StateBackend> { Ok(StateBackend::default()) }
/// #     async fn destroy(&self, _s: StateBackend) -> Result<()> { Ok(()) }
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
/// // Ephemeral storage: each sandbox holds its own files
/// let pool = Pool::new(Memory, PoolConfig::default())?;
/// let registry = Registry::new(pool, RegistryConfig::default());
/// let notes = VPath::parse("/notes.txt")?;
///
/// registry.get("alice").await?.write(&notes, "alice's").await?;
/// assert_eq!(registry.get("alice").await?.read_to_string(&notes).await?, "alice's");
/// assert!(!registry.get("bob").await?.exists(&notes).await?);
///
/// registry.release("alice"); // her sandbox is destroyed, and with it its files
/// assert!(!registry.get("alice").await?.exists(&notes).await?);
///
/// registry.shutdown().await;
/// # Ok(())
/// # }
/// ```
///
/// With storage that outlives compute (feature `fs`; `state` works the same
/// way with a durable [`sandbay_state::StateStore`]):
///
/// ```no_run
/// # #[cfg(feature = "fs")]
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use sandbay_core::{Backend, BackendExt, VPath};
/// use sandbay_exec::{Jail, JailConfig};
/// use sandbay_fs::{FsConfig, WorkspaceStore};
/// use sandbay_pool::{FsStorage, JailFactory, Pool, PoolConfig, Registry, RegistryConfig};
///
/// let store = WorkspaceStore::open("/srv/sandbay", FsConfig::default()).await?;
/// let pool = Pool::new(JailFactory::new(JailConfig::new(Jail::probe())), PoolConfig::default())?;
/// let registry = Registry::with_storage(pool, FsStorage::new(store), RegistryConfig::default());
/// let notes = VPath::parse("/notes.txt")?;
/// registry.session("alice", "s1").await?.write(&notes, "kept").await?;
/// registry.release_session("alice", "s1"); // her jail ends; her files stay
/// assert_eq!(registry.session("alice", "s1").await?.read_to_string(&notes).await?, "kept");
/// registry.remove("alice", "s1").await?; // now they are gone
/// # Ok(()) }
/// ```
pub struct Registry<F: SandboxFactory, S: Storage<F> = Ephemeral> {
    pool: Pool<F>,
    storage: Arc<S>,
    config: RegistryConfig,
    users: Mutex<Entries<S::Workspace>>,
    detaching: Mutex<Vec<JoinHandle<()>>>,
}

impl<F: SandboxFactory, S: Storage<F>> fmt::Debug for Registry<F, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("config", &self.config)
            .field("sessions", &self.len())
            .field("pool", &self.pool)
            .finish()
    }
}

impl<F: SandboxFactory> Registry<F, Ephemeral> {
    /// A registry drawing from `pool`, with no storage of its own: each
    /// sandbox keeps its own files, which end with it ([`Ephemeral`]).
    pub fn new(pool: Pool<F>, config: RegistryConfig) -> Registry<F, Ephemeral> {
        Registry::with_storage(pool, Ephemeral, config)
    }
}

impl<F: SandboxFactory, S: Storage<F>> Registry<F, S> {
    /// A registry drawing compute from `pool` and joining it to workspaces
    /// from `storage`.
    pub fn with_storage(pool: Pool<F>, storage: S, config: RegistryConfig) -> Registry<F, S> {
        Registry {
            pool,
            storage: Arc::new(storage),
            config,
            users: Mutex::new(HashMap::new()),
            detaching: Mutex::new(Vec::new()),
        }
    }

    /// The pool behind this registry.
    pub fn pool(&self) -> &Pool<F> {
        &self.pool
    }

    /// The storage behind this registry.
    pub fn storage(&self) -> &S {
        &self.storage
    }

    fn lock(&self) -> MutexGuard<'_, Entries<S::Workspace>> {
        // the map is consistent after any panic (insert/remove only)
        self.users.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The sandbox of the user's [`DEFAULT_SESSION`] (see
    /// [`Registry::session`]).
    ///
    /// # Errors
    /// As [`Registry::session`].
    pub async fn get(&self, user: &str) -> Result<UserSandbox<F, S>, PoolError> {
        self.session(user, DEFAULT_SESSION).await
    }

    /// The sandbox of a user's session: the one it holds, or fresh compute
    /// from the pool attached to the session's workspace on first use and
    /// after a release or eviction.
    ///
    /// # Errors
    /// What [`Pool::acquire`] returns, or [`PoolError::Attach`] when the
    /// storage cannot attach the workspace; the next call tries again.
    pub async fn session(&self, user: &str, session: &str) -> Result<UserSandbox<F, S>, PoolError> {
        let key = WorkspaceKey::new(user, session);
        let entry = Arc::clone(self.lock().entry(key.clone()).or_insert_with(|| {
            Arc::new(Entry {
                lease: OnceCell::new(),
                last_used: Mutex::new(Instant::now()),
            })
        }));
        let got = entry.lease.get_or_try_init(|| self.acquire_for(&key)).await;
        match got {
            Ok(lease) => {
                entry.touch();
                Ok(Arc::clone(lease))
            }
            Err(e) => {
                let mut users = self.lock();
                if users.get(&key).is_some_and(|current| {
                    Arc::ptr_eq(current, &entry) && current.lease.get().is_none()
                }) {
                    users.remove(&key);
                }
                Err(e)
            }
        }
    }

    /// Compute for a session: from the pool, making room by releasing the
    /// least recently used unheld session when the pool is full and the
    /// configuration allows it; then attached to the session's workspace.
    async fn acquire_for(&self, key: &WorkspaceKey) -> Result<UserSandbox<F, S>, PoolError> {
        let mut lease = None;
        if self.config.evict_lru_when_full {
            lease = self.pool.try_acquire().await?;
            if lease.is_none()
                && let Some(evicted) = self.release_lru(key)
            {
                tracing::debug!(session = %evicted, "least recently used session released for a new one");
            }
        }
        let lease = match lease {
            Some(lease) => lease,
            None => self.pool.acquire().await?,
        };
        let workspace = self
            .storage
            .attach(key, lease)
            .await
            .map_err(PoolError::Attach)?;
        Ok(Arc::new(workspace))
    }

    /// Releases the least recently used session (other than `except`)
    /// whose sandbox only the registry holds; returns which.
    fn release_lru(&self, except: &WorkspaceKey) -> Option<WorkspaceKey> {
        let removed = {
            let mut users = self.lock();
            let lru = users
                .iter()
                .filter(|(k, _)| *k != except)
                .filter(|(_, e)| e.lease.initialized() && e.unused())
                .max_by_key(|(_, e)| e.idle_for())
                .map(|(k, _)| k.clone())?;
            let entry = users.remove(&lru)?;
            (lru, entry)
        };
        let key = removed.0.clone();
        self.let_go(vec![removed]);
        Some(key)
    }

    /// Ends the compute of entries taken out of the map (once no caller
    /// holds it) and detaches their workspaces in the background.
    fn let_go(&self, removed: Vec<(WorkspaceKey, Arc<Entry<S::Workspace>>)>) {
        let mut keys = Vec::new();
        for (key, entry) in removed {
            if entry.lease.initialized() {
                keys.push(key);
            }
            drop(entry);
        }
        if keys.is_empty() {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let storage = Arc::clone(&self.storage);
        let task = handle.spawn(async move {
            for key in keys {
                if let Err(e) = storage.detach(&key).await {
                    tracing::warn!(session = %key, error = %e, "detaching a workspace failed");
                }
            }
        });
        let mut detaching = self.detaching.lock().unwrap_or_else(|e| e.into_inner());
        detaching.retain(|t| !t.is_finished());
        detaching.push(task);
    }

    /// Waits until every workspace detach started so far has finished
    /// (a released or evicted session is saved by then).
    pub async fn detached(&self) {
        loop {
            let tasks: Vec<_> =
                std::mem::take(&mut *self.detaching.lock().unwrap_or_else(|e| e.into_inner()));
            if tasks.is_empty() {
                return;
            }
            for task in tasks {
                let _ = task.await;
            }
        }
    }

    /// Ends the compute of every session of `user` (see
    /// [`Registry::release_session`]); returns whether there was one.
    pub fn release(&self, user: &str) -> bool {
        let removed: Vec<_> = {
            let mut users = self.lock();
            let keys: Vec<WorkspaceKey> =
                users.keys().filter(|k| k.user == user).cloned().collect();
            keys.into_iter()
                .filter_map(|k| users.remove(&k).map(|e| (k, e)))
                .collect()
        };
        let any = !removed.is_empty();
        self.let_go(removed);
        any
    }

    /// Ends a session's compute; returns whether it had any. The sandbox
    /// is destroyed once no caller holds it any more and the workspace is
    /// then detached, its files kept; the next [`Registry::session`] gets
    /// fresh compute attached to them.
    pub fn release_session(&self, user: &str, session: &str) -> bool {
        let key = WorkspaceKey::new(user, session);
        let removed = self.lock().remove(&key);
        let any = removed.is_some();
        self.let_go(removed.map(|e| (key, e)).into_iter().collect());
        any
    }

    /// Ends a session's compute (as [`Registry::release_session`]) and
    /// deletes its workspace for good ([`Storage::remove`]).
    ///
    /// # Errors
    /// What the storage's `remove` returns (`not_found` for a workspace
    /// that does not exist, with storage that keeps track).
    pub async fn remove(&self, user: &str, session: &str) -> sandbay_core::Result<()> {
        let key = WorkspaceKey::new(user, session);
        let removed = self.lock().remove(&key);
        drop(removed);
        self.storage.remove(&key).await
    }

    /// Releases (see [`Registry::release_session`]) every session idle for
    /// longer than [`RegistryConfig::idle_timeout`] whose sandbox no caller
    /// is using right now (a long command keeps its session); returns how
    /// many. Also forgets entries of calls that were cancelled before they
    /// got a sandbox.
    pub fn evict_idle(&self) -> usize {
        let timeout = self.config.idle_timeout;
        let evicted: Vec<_> = {
            let mut users = self.lock();
            let stale: Vec<WorkspaceKey> = users
                .iter()
                .filter(|(_, e)| e.unused() && e.idle_for() >= timeout)
                .map(|(k, _)| k.clone())
                .collect();
            stale
                .into_iter()
                .filter_map(|k| users.remove(&k).map(|e| (k, e)))
                .filter(|(_, e)| e.lease.initialized())
                .collect()
        };
        let count = evicted.len();
        if count > 0 {
            tracing::debug!(sessions = count, "idle sessions released");
        }
        self.let_go(evicted);
        count
    }

    /// The users that have a session with compute now, sorted, each once.
    pub fn users(&self) -> Vec<String> {
        let mut users: Vec<String> = self
            .lock()
            .iter()
            .filter(|(_, e)| e.lease.initialized())
            .map(|(k, _)| k.user.clone())
            .collect();
        users.sort();
        users.dedup();
        users
    }

    /// The sessions that have compute now, sorted.
    pub fn sessions(&self) -> Vec<WorkspaceKey> {
        let mut keys: Vec<WorkspaceKey> = self
            .lock()
            .iter()
            .filter(|(_, e)| e.lease.initialized())
            .map(|(k, _)| k.clone())
            .collect();
        keys.sort();
        keys
    }

    /// How many sessions have compute now.
    pub fn len(&self) -> usize {
        self.lock()
            .values()
            .filter(|e| e.lease.initialized())
            .count()
    }

    /// Whether no session has compute.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Releases every session (their workspaces detached, not deleted),
    /// waits for the detaches, then shuts the pool down (see
    /// [`Pool::shutdown`]).
    pub async fn shutdown(&self) {
        self.pool.close();
        let all: Vec<_> = self.lock().drain().collect();
        self.let_go(all);
        self.detached().await;
        self.pool.shutdown().await;
    }
}

impl<F: SandboxFactory, S: Storage<F>> Registry<F, S> {
    /// Calls [`Registry::evict_idle`] every `every` in the background
    /// until the returned handle or the registry is dropped.
    /// An `every` below a millisecond is taken as a millisecond.
    pub fn spawn_reaper(self: &Arc<Self>, every: Duration) -> Reaper {
        let every = every.max(Duration::from_millis(1));
        let registry: Weak<Self> = Arc::downgrade(self);
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(registry) = registry.upgrade() else {
                    return;
                };
                registry.evict_idle();
            }
        });
        Reaper { task }
    }
}

/// The background task of [`Registry::spawn_reaper`]; stops when dropped.
#[derive(Debug)]
pub struct Reaper {
    task: JoinHandle<()>,
}

impl Drop for Reaper {
    fn drop(&mut self) {
        self.task.abort();
    }
}
