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
use crate::pool::{Lease, Pool};

/// A user's sandbox as the [`Registry`] hands it out: shared by every
/// caller working for that user at the same time.
pub type UserSandbox<F> = Arc<Lease<F>>;

/// How a [`Registry`] expires users.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RegistryConfig {
    /// A user not seen for this long loses their sandbox at the next
    /// [`Registry::evict_idle`]. Default 10 minutes.
    pub idle_timeout: Duration,
    /// When a new user arrives and the pool is full, release the least
    /// recently used user whose sandbox no caller holds (destroying that
    /// sandbox to free its place), instead of
    /// waiting for a place. Default on: the number of users with a
    /// sandbox stays bounded by the pool, and new users are served as
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

struct Entry<F: SandboxFactory> {
    lease: OnceCell<UserSandbox<F>>,
    last_used: Mutex<Instant>,
}

impl<F: SandboxFactory> Entry<F> {
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

/// Gives each user one fresh sandbox from a [`Pool`], the same one on
/// every call until the user is [released](Registry::release) or
/// [evicted](Registry::evict_idle) for being idle.
///
/// Concurrent first calls for one user wait for the same acquisition, so
/// a user never gets two sandboxes by racing. The number of users with a
/// sandbox is bounded by the pool's `max_size`; when it is reached, a new
/// user takes the place of the least recently used one whose sandbox no
/// caller holds ([`RegistryConfig::evict_lru_when_full`]), or waits.
///
/// Release and eviction end the user's lease: the sandbox is destroyed
/// once no caller holds it (a caller still holding a [`UserSandbox`] keeps
/// it working until it drops it), and a user who comes back gets a fresh
/// one. A sandbox is never given to a second user.
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
/// let pool = Pool::new(Memory, PoolConfig::default())?;
/// let registry = Registry::new(pool, RegistryConfig::default());
/// let notes = VPath::parse("/notes.txt")?;
///
/// registry.get("alice").await?.write(&notes, "alice's").await?;
/// assert_eq!(registry.get("alice").await?.read_to_string(&notes).await?, "alice's");
/// assert!(!registry.get("bob").await?.exists(&notes).await?);
///
/// registry.release("alice"); // her sandbox is destroyed
/// assert!(!registry.get("alice").await?.exists(&notes).await?); // a fresh one
///
/// registry.shutdown().await;
/// # Ok(())
/// # }
/// ```
pub struct Registry<F: SandboxFactory> {
    pool: Pool<F>,
    config: RegistryConfig,
    users: Mutex<HashMap<String, Arc<Entry<F>>>>,
}

impl<F: SandboxFactory> fmt::Debug for Registry<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("config", &self.config)
            .field("users", &self.len())
            .field("pool", &self.pool)
            .finish()
    }
}

impl<F: SandboxFactory> Registry<F> {
    /// A registry drawing from `pool`.
    pub fn new(pool: Pool<F>, config: RegistryConfig) -> Registry<F> {
        Registry {
            pool,
            config,
            users: Mutex::new(HashMap::new()),
        }
    }

    /// The pool behind this registry.
    pub fn pool(&self) -> &Pool<F> {
        &self.pool
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<Entry<F>>>> {
        // the map is consistent after any panic (insert/remove only)
        self.users.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The user's sandbox: the one they hold, or a fresh one from the
    /// pool on first use and after a release or eviction.
    ///
    /// # Errors
    ///
    /// What [`Pool::acquire`] returns; the next call tries again.
    pub async fn get(&self, user: &str) -> Result<UserSandbox<F>, PoolError> {
        let entry = Arc::clone(self.lock().entry(user.to_owned()).or_insert_with(|| {
            Arc::new(Entry {
                lease: OnceCell::new(),
                last_used: Mutex::new(Instant::now()),
            })
        }));
        let got = entry.lease.get_or_try_init(|| self.acquire_for(user)).await;
        match got {
            Ok(lease) => {
                entry.touch();
                Ok(Arc::clone(lease))
            }
            Err(e) => {
                let mut users = self.lock();
                if users.get(user).is_some_and(|current| {
                    Arc::ptr_eq(current, &entry) && current.lease.get().is_none()
                }) {
                    users.remove(user);
                }
                Err(e)
            }
        }
    }

    /// A sandbox for a new user: from the pool, making room by releasing
    /// the least recently used unheld user when the pool is full and the
    /// configuration allows it.
    async fn acquire_for(&self, user: &str) -> Result<UserSandbox<F>, PoolError> {
        if self.config.evict_lru_when_full {
            if let Some(lease) = self.pool.try_acquire().await? {
                return Ok(Arc::new(lease));
            }
            if let Some(evicted) = self.release_lru(user) {
                tracing::debug!(user = %evicted, "least recently used user released for a new one");
            }
        }
        self.pool.acquire().await.map(Arc::new)
    }

    /// Releases the least recently used user (other than `except`) whose
    /// sandbox only the registry holds; returns who.
    fn release_lru(&self, except: &str) -> Option<String> {
        let mut users = self.lock();
        let lru = users
            .iter()
            .filter(|(u, _)| u.as_str() != except)
            .filter(|(_, e)| e.lease.initialized() && e.unused())
            .max_by_key(|(_, e)| e.idle_for())
            .map(|(u, _)| u.clone())?;
        users.remove(&lru);
        Some(lru)
    }

    /// Ends the user's assignment. Returns whether the user had one. The
    /// sandbox is destroyed once no caller holds it any more; the user's
    /// next [`Registry::get`] gets a fresh one.
    pub fn release(&self, user: &str) -> bool {
        let removed = self.lock().remove(user);
        removed.is_some()
    }

    /// Releases (see [`Registry::release`]) every user idle for longer than
    /// [`RegistryConfig::idle_timeout`] whose sandbox no caller is using
    /// right now (a long command keeps its user); returns how many. Also
    /// forgets entries of calls that were cancelled before they got a
    /// sandbox.
    pub fn evict_idle(&self) -> usize {
        let timeout = self.config.idle_timeout;
        let evicted: Vec<_> = {
            let mut users = self.lock();
            let stale: Vec<String> = users
                .iter()
                .filter(|(_, e)| e.unused() && e.idle_for() >= timeout)
                .map(|(user, _)| user.clone())
                .collect();
            stale
                .iter()
                .filter_map(|u| users.remove(u))
                .filter(|e| e.lease.initialized())
                .collect()
        };
        if !evicted.is_empty() {
            tracing::debug!(users = evicted.len(), "idle users released");
        }
        evicted.len()
    }

    /// The users that have a sandbox now, sorted.
    pub fn users(&self) -> Vec<String> {
        let mut users: Vec<String> = self
            .lock()
            .iter()
            .filter(|(_, e)| e.lease.initialized())
            .map(|(u, _)| u.clone())
            .collect();
        users.sort();
        users
    }

    /// How many users have a sandbox now.
    pub fn len(&self) -> usize {
        self.lock()
            .values()
            .filter(|e| e.lease.initialized())
            .count()
    }

    /// Whether no user has a sandbox.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Releases every user, then shuts the pool down (see
    /// [`Pool::shutdown`]).
    pub async fn shutdown(&self) {
        self.pool.close();
        let users: Vec<_> = self.lock().drain().collect();
        drop(users);
        self.pool.shutdown().await;
    }
}

impl<F: SandboxFactory> Registry<F>
where
    F::Sandbox: Send + Sync,
{
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
