//! The warm pool: bounded, pre-warmed, reset on release.

use std::collections::VecDeque;
use std::fmt;
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::SandboxFactory;
use crate::error::PoolError;

/// How a [`Pool`] sizes, waits and recycles.
///
/// ```
/// use std::time::Duration;
/// use sandbay_pool::PoolConfig;
///
/// let config = PoolConfig::default()
///     .with_max_size(32)
///     .with_min_idle(4)
///     .with_acquire_timeout(Duration::from_secs(5))
///     .with_max_uses(Some(100));
/// assert_eq!(config.max_size, 32);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PoolConfig {
    /// Most sandboxes alive at once: idle, leased, being reset or being
    /// destroyed. Default 16.
    pub max_size: usize,
    /// Idle sandboxes kept ready, made in the background (never beyond
    /// `max_size`). Default 0.
    pub min_idle: usize,
    /// How long [`Pool::acquire`] waits for a free place before it gives
    /// up with [`PoolError::Exhausted`]. Creating the sandbox is not
    /// counted. Default 30 s.
    pub acquire_timeout: Duration,
    /// A sandbox is destroyed instead of reset after this many leases.
    /// Default: no limit.
    pub max_uses: Option<u32>,
    /// A sandbox older than this is destroyed instead of handed out or
    /// reset. Default: no limit.
    pub max_age: Option<Duration>,
    /// A reset that takes longer fails, and the sandbox is destroyed.
    /// Default 30 s.
    pub reset_timeout: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_size: 16,
            min_idle: 0,
            acquire_timeout: Duration::from_secs(30),
            max_uses: None,
            max_age: None,
            reset_timeout: Duration::from_secs(30),
        }
    }
}

impl PoolConfig {
    /// Sets [`PoolConfig::max_size`].
    pub fn with_max_size(mut self, max_size: usize) -> Self {
        self.max_size = max_size;
        self
    }
    /// Sets [`PoolConfig::min_idle`].
    pub fn with_min_idle(mut self, min_idle: usize) -> Self {
        self.min_idle = min_idle;
        self
    }
    /// Sets [`PoolConfig::acquire_timeout`].
    pub fn with_acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }
    /// Sets [`PoolConfig::max_uses`].
    pub fn with_max_uses(mut self, max_uses: Option<u32>) -> Self {
        self.max_uses = max_uses;
        self
    }
    /// Sets [`PoolConfig::max_age`].
    pub fn with_max_age(mut self, max_age: Option<Duration>) -> Self {
        self.max_age = max_age;
        self
    }
    /// Sets [`PoolConfig::reset_timeout`].
    pub fn with_reset_timeout(mut self, timeout: Duration) -> Self {
        self.reset_timeout = timeout;
        self
    }

    fn check(&self) -> Result<(), PoolError> {
        if self.max_size == 0 {
            return Err(PoolError::Config("max_size must be at least 1".into()));
        }
        if self.max_size > Semaphore::MAX_PERMITS {
            return Err(PoolError::Config("max_size is too large".into()));
        }
        if self.min_idle > self.max_size {
            return Err(PoolError::Config(format!(
                "min_idle ({}) is larger than max_size ({})",
                self.min_idle, self.max_size
            )));
        }
        if self.max_uses == Some(0) {
            return Err(PoolError::Config("max_uses must be at least 1".into()));
        }
        Ok(())
    }
}

/// A snapshot of a pool's occupancy and history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct PoolStatus {
    /// [`PoolConfig::max_size`].
    pub max_size: usize,
    /// Sandboxes alive now, or places taken for one being made: idle,
    /// leased, being created, reset or destroyed.
    pub live: usize,
    /// Idle sandboxes ready to be handed out.
    pub idle: usize,
    /// Sandboxes created so far.
    pub created: u64,
    /// Leases served by an idle sandbox (no creation on the caller's path).
    pub reused: u64,
    /// Successful resets (including those of sandboxes then destroyed
    /// because the pool closed meanwhile).
    pub resets: u64,
    /// Failed or timed-out resets (each one destroyed its sandbox).
    pub reset_failures: u64,
    /// Sandboxes destroyed so far.
    pub destroyed: u64,
}

#[derive(Debug, Default)]
struct Counters {
    created: AtomicU64,
    reused: AtomicU64,
    resets: AtomicU64,
    reset_failures: AtomicU64,
    destroyed: AtomicU64,
}

/// A place in the pool: holding it is what "alive" means. Dropping it
/// frees the place and wakes waiters.
struct Ticket {
    permit: Option<OwnedSemaphorePermit>,
    changed: Arc<Notify>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        // the place is free before anyone is woken to take it
        drop(self.permit.take());
        self.changed.notify_waiters();
    }
}

/// A live sandbox with its bookkeeping.
struct Slot<S> {
    sandbox: S,
    created: Instant,
    uses: u32,
    ticket: Ticket,
}

struct Inner<F: SandboxFactory> {
    factory: Arc<F>,
    config: PoolConfig,
    permits: Arc<Semaphore>,
    idle: Mutex<VecDeque<Slot<F::Sandbox>>>,
    /// Signalled when an idle sandbox or a free place appears, and on close.
    changed: Arc<Notify>,
    closed: AtomicBool,
    /// Background creations for `min_idle` in flight.
    warming: AtomicUsize,
    /// Background recycles and destroys in flight.
    background: AtomicUsize,
    settled: Notify,
    counters: Counters,
}

/// A bounded pool of sandboxes that are made ahead of need and reset
/// before each reuse.
///
/// Cloning a `Pool` gives another handle to the same pool. A [`Lease`]
/// returns its sandbox when dropped: in the background, the sandbox is
/// [reset](SandboxFactory::reset) and put back, or destroyed when the
/// reset fails, when it reached [`PoolConfig::max_uses`] or
/// [`PoolConfig::max_age`], or when the pool is shut down. Call
/// [`Pool::shutdown`] to destroy everything and wait for it; a pool
/// dropped without it destroys its idle sandboxes in the background.
///
/// # Example
///
/// ```
/// # use async_trait::async_trait;
/// # use sandbay_core::{Backend, BackendExt, Result, VPath};
/// # use sandbay_pool::{Pool, PoolConfig, SandboxFactory};
/// # use sandbay_state::StateBackend;
/// # struct Memory;
/// # #[async_trait]
/// # impl SandboxFactory for Memory {
/// #     type Sandbox = StateBackend;
/// #     async fn create(&self) -> Result<StateBackend> { Ok(StateBackend::default()) }
/// #     async fn reset(&self, s: &StateBackend) -> Result<()> { s.clear().await.map(drop) }
/// #     async fn destroy(&self, _s: StateBackend) -> Result<()> { Ok(()) }
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
/// let pool = Pool::new(Memory, PoolConfig::default().with_max_size(1))?;
/// let lease = pool.acquire().await?;
/// lease.write(&VPath::parse("/notes.txt")?, "private").await?;
/// lease.release().await; // reset, then back in the pool
///
/// let again = pool.acquire().await?; // the same sandbox, wiped
/// assert!(again.ls(&VPath::root()).await?.is_empty());
/// # drop(again);
/// pool.shutdown().await;
/// # Ok(())
/// # }
/// ```
pub struct Pool<F: SandboxFactory> {
    inner: Arc<Inner<F>>,
}

impl<F: SandboxFactory> Clone for Pool<F> {
    fn clone(&self) -> Self {
        Pool {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<F: SandboxFactory> fmt::Debug for Pool<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("config", &self.inner.config)
            .field("status", &self.status())
            .finish()
    }
}

impl<F: SandboxFactory> Pool<F> {
    /// A pool over `factory`. Nothing is created until [`Pool::warm`] or
    /// the first [`Pool::acquire`].
    ///
    /// # Errors
    ///
    /// [`PoolError::Config`] for `max_size` 0, `min_idle` above
    /// `max_size`, or `max_uses` 0.
    pub fn new(factory: F, config: PoolConfig) -> Result<Pool<F>, PoolError> {
        config.check()?;
        Ok(Pool {
            inner: Arc::new(Inner {
                factory: Arc::new(factory),
                permits: Arc::new(Semaphore::new(config.max_size)),
                config,
                idle: Mutex::new(VecDeque::new()),
                changed: Arc::new(Notify::new()),
                closed: AtomicBool::new(false),
                warming: AtomicUsize::new(0),
                background: AtomicUsize::new(0),
                settled: Notify::new(),
                counters: Counters::default(),
            }),
        })
    }

    /// The factory this pool uses.
    pub fn factory(&self) -> &F {
        &self.inner.factory
    }

    /// The configuration this pool was made with.
    pub fn config(&self) -> &PoolConfig {
        &self.inner.config
    }

    /// Creates sandboxes until [`PoolConfig::min_idle`] are idle, and
    /// waits for them.
    ///
    /// # Errors
    ///
    /// The first creation error ([`PoolError::Create`]), or
    /// [`PoolError::Closed`].
    pub async fn warm(&self) -> Result<(), PoolError> {
        let inner = &self.inner;
        loop {
            if inner.is_closed() {
                return Err(PoolError::Closed);
            }
            if inner.lock_idle().len() >= inner.config.min_idle {
                return Ok(());
            }
            let Some(ticket) = inner.try_ticket() else {
                // every place is taken: nothing more can be warmed
                return Ok(());
            };
            let in_flight = InFlight::new(inner);
            if inner.is_closed() {
                return Err(PoolError::Closed);
            }
            let slot = inner.create(ticket).await?;
            // parks it, or destroys it when the pool closed meanwhile
            inner.put_idle(slot).await;
            drop(in_flight);
        }
    }

    /// Takes a sandbox: an idle one when there is one, a new one when the
    /// pool has room, otherwise the first that becomes free, waiting at
    /// most [`PoolConfig::acquire_timeout`].
    ///
    /// # Errors
    ///
    /// [`PoolError::Exhausted`] when no place became free in time,
    /// [`PoolError::Create`] when making a sandbox failed,
    /// [`PoolError::Closed`] after [`Pool::shutdown`].
    pub async fn acquire(&self) -> Result<Lease<F>, PoolError> {
        let inner = &self.inner;
        let started = Instant::now();
        // a timeout too large to add up means: wait as long as it takes
        let deadline = started.checked_add(inner.config.acquire_timeout);
        loop {
            let notified = inner.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if inner.is_closed() {
                return Err(PoolError::Closed);
            }
            if let Some(slot) = self.take_idle() {
                inner.counters.reused.fetch_add(1, Ordering::Relaxed);
                self.refill();
                return Ok(self.lease(slot));
            }
            if let Some(ticket) = inner.try_ticket() {
                let slot = self.create_for_lease(ticket).await?;
                self.refill();
                return Ok(self.lease(slot));
            }
            match deadline {
                Some(deadline) => {
                    if tokio::time::timeout_at(deadline, notified).await.is_err() {
                        return Err(PoolError::Exhausted {
                            max_size: inner.config.max_size,
                            waited: started.elapsed(),
                        });
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Like [`Pool::acquire`], but never waits for a place: `None` when no
    /// sandbox is idle and the pool is full.
    ///
    /// # Errors
    ///
    /// [`PoolError::Create`] when making a sandbox failed,
    /// [`PoolError::Closed`] after [`Pool::shutdown`].
    pub async fn try_acquire(&self) -> Result<Option<Lease<F>>, PoolError> {
        let inner = &self.inner;
        if inner.is_closed() {
            return Err(PoolError::Closed);
        }
        if let Some(slot) = self.take_idle() {
            inner.counters.reused.fetch_add(1, Ordering::Relaxed);
            self.refill();
            return Ok(Some(self.lease(slot)));
        }
        let Some(ticket) = inner.try_ticket() else {
            return Ok(None);
        };
        let slot = self.create_for_lease(ticket).await?;
        self.refill();
        Ok(Some(self.lease(slot)))
    }

    /// Occupancy and counters, as of now.
    pub fn status(&self) -> PoolStatus {
        let inner = &self.inner;
        let c = &inner.counters;
        PoolStatus {
            max_size: inner.config.max_size,
            live: inner.config.max_size - inner.permits.available_permits(),
            idle: inner.lock_idle().len(),
            created: c.created.load(Ordering::Relaxed),
            reused: c.reused.load(Ordering::Relaxed),
            resets: c.resets.load(Ordering::Relaxed),
            reset_failures: c.reset_failures.load(Ordering::Relaxed),
            destroyed: c.destroyed.load(Ordering::Relaxed),
        }
    }

    /// Closes the pool: waiting and later [`Pool::acquire`] calls fail
    /// with [`PoolError::Closed`], idle sandboxes are destroyed, and
    /// sandboxes being reset are destroyed when their reset ends. Returns
    /// once all of that is done. Sandboxes still leased are destroyed when
    /// their lease is dropped.
    pub async fn shutdown(&self) {
        self.close();
        let inner = &self.inner;
        let idle: Vec<_> = inner.lock_idle().drain(..).collect();
        futures_util::future::join_all(idle.into_iter().map(|slot| inner.destroy(slot))).await;
        loop {
            let settled = inner.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            if inner.background.load(Ordering::SeqCst) == 0
                && inner.warming.load(Ordering::SeqCst) == 0
            {
                break;
            }
            settled.await;
        }
        // a warming task may have parked a sandbox just before it saw the flag
        let idle: Vec<_> = inner.lock_idle().drain(..).collect();
        futures_util::future::join_all(idle.into_iter().map(|slot| inner.destroy(slot))).await;
    }

    /// Marks the pool closed without waiting for anything.
    pub(crate) fn close(&self) {
        self.inner.closed.store(true, Ordering::SeqCst);
        self.inner.changed.notify_waiters();
    }

    /// Whether [`Pool::shutdown`] was called.
    pub fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// Creates a sandbox for a caller, counted as in flight; a pool closed
    /// meanwhile destroys it and answers [`PoolError::Closed`].
    async fn create_for_lease(&self, ticket: Ticket) -> Result<Slot<F::Sandbox>, PoolError> {
        let inner = &self.inner;
        let _in_flight = InFlight::new(inner);
        if inner.is_closed() {
            return Err(PoolError::Closed);
        }
        let slot = inner.create(ticket).await?;
        if inner.is_closed() {
            inner.destroy(slot).await;
            return Err(PoolError::Closed);
        }
        Ok(slot)
    }

    fn lease(&self, slot: Slot<F::Sandbox>) -> Lease<F> {
        Lease {
            slot: Some(slot),
            inner: Arc::clone(&self.inner),
        }
    }

    /// An idle sandbox young enough to hand out; expired ones found on the
    /// way are destroyed in the background.
    fn take_idle(&self) -> Option<Slot<F::Sandbox>> {
        let inner = &self.inner;
        let mut expired = Vec::new();
        let found = {
            let mut idle = inner.lock_idle();
            loop {
                match idle.pop_back() {
                    Some(slot) if inner.expired(&slot) => expired.push(slot),
                    other => break other,
                }
            }
        };
        for slot in expired {
            let task_inner = Arc::clone(inner);
            spawn_background(inner, async move { task_inner.destroy(slot).await });
        }
        found
    }

    /// Starts background creations until `min_idle` sandboxes are idle or
    /// being made, as far as there is room.
    fn refill(&self) {
        let inner = &self.inner;
        loop {
            let warming = inner.warming.load(Ordering::SeqCst);
            if inner.lock_idle().len() + warming >= inner.config.min_idle {
                return;
            }
            let Some(ticket) = inner.try_ticket() else {
                return;
            };
            // counted before the closed check (see `InFlight`)
            inner.warming.fetch_add(1, Ordering::SeqCst);
            if inner.is_closed() {
                inner.warming.fetch_sub(1, Ordering::SeqCst);
                inner.settled.notify_waiters();
                return;
            }
            let task_inner = Arc::clone(inner);
            tokio::spawn(async move {
                let inner = task_inner;
                match inner.create(ticket).await {
                    Ok(slot) => inner.put_idle(slot).await,
                    Err(e) => tracing::warn!(error = %e, "warming a pooled sandbox failed"),
                }
                inner.warming.fetch_sub(1, Ordering::SeqCst);
                inner.settled.notify_waiters();
            });
        }
    }
}

impl<F: SandboxFactory> Inner<F> {
    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    fn lock_idle(&self) -> MutexGuard<'_, VecDeque<Slot<F::Sandbox>>> {
        // the queue is consistent after any panic (push/pop only)
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn try_ticket(&self) -> Option<Ticket> {
        let permit = Arc::clone(&self.permits).try_acquire_owned().ok()?;
        Some(Ticket {
            permit: Some(permit),
            changed: Arc::clone(&self.changed),
        })
    }

    fn expired(&self, slot: &Slot<F::Sandbox>) -> bool {
        self.config
            .max_age
            .is_some_and(|age| slot.created.elapsed() >= age)
    }

    async fn create(&self, ticket: Ticket) -> Result<Slot<F::Sandbox>, PoolError> {
        // on error the ticket drops here, freeing the place
        let sandbox = self.factory.create().await.map_err(PoolError::Create)?;
        self.counters.created.fetch_add(1, Ordering::Relaxed);
        tracing::debug!("pooled sandbox created");
        Ok(Slot {
            sandbox,
            created: Instant::now(),
            uses: 0,
            ticket,
        })
    }

    /// Parks a sandbox as idle, or destroys it when the pool is closed.
    async fn put_idle(&self, slot: Slot<F::Sandbox>) {
        let slot = {
            let mut idle = self.lock_idle();
            if self.is_closed() {
                Some(slot)
            } else {
                idle.push_back(slot);
                None
            }
        };
        match slot {
            Some(slot) => self.destroy(slot).await,
            None => self.changed.notify_waiters(),
        }
    }

    async fn destroy(&self, slot: Slot<F::Sandbox>) {
        let Slot {
            sandbox, ticket, ..
        } = slot;
        if let Err(e) = self.factory.destroy(sandbox).await {
            tracing::warn!(error = %e, "destroying a pooled sandbox failed");
        }
        self.counters.destroyed.fetch_add(1, Ordering::Relaxed);
        // the place is freed only now: a sandbox being destroyed still
        // holds its resources
        drop(ticket);
    }

    /// A returned sandbox: reset and park it, or destroy it.
    async fn recycle(&self, mut slot: Slot<F::Sandbox>) -> Recycled {
        slot.uses = slot.uses.saturating_add(1);
        let worn = self.config.max_uses.is_some_and(|max| slot.uses >= max);
        if self.is_closed() || worn || self.expired(&slot) {
            self.destroy(slot).await;
            return Recycled::Destroyed;
        }
        let reset =
            tokio::time::timeout(self.config.reset_timeout, self.factory.reset(&slot.sandbox))
                .await;
        match reset {
            Ok(Ok(())) => {
                self.counters.resets.fetch_add(1, Ordering::Relaxed);
                if self.is_closed() {
                    self.destroy(slot).await;
                    return Recycled::Destroyed;
                }
                self.put_idle(slot).await;
                Recycled::Returned
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "reset failed; the sandbox is destroyed");
                self.counters.reset_failures.fetch_add(1, Ordering::Relaxed);
                self.destroy(slot).await;
                Recycled::Destroyed
            }
            Err(_) => {
                tracing::warn!(
                    timeout = ?self.config.reset_timeout,
                    "reset timed out; the sandbox is destroyed"
                );
                self.counters.reset_failures.fetch_add(1, Ordering::Relaxed);
                self.destroy(slot).await;
                Recycled::Destroyed
            }
        }
    }
}

impl<F: SandboxFactory> Drop for Inner<F> {
    fn drop(&mut self) {
        // Only idle sandboxes can be left: leases and background tasks
        // hold the pool alive. Destroy them properly when a runtime is
        // there; otherwise they are dropped (a sandbox's own drop is the
        // last line of defence, e.g. Docker's best-effort removal).
        let idle: Vec<_> = self
            .idle
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect();
        if idle.is_empty() {
            return;
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let factory = Arc::clone(&self.factory);
            handle.spawn(async move {
                for slot in idle {
                    if let Err(e) = factory.destroy(slot.sandbox).await {
                        tracing::warn!(error = %e, "destroying a pooled sandbox failed");
                    }
                }
            });
        }
    }
}

/// Work in flight that [`Pool::shutdown`] waits for: creating, recycling
/// or destroying a sandbox. Counted from before the closed check, so a
/// shutdown either sees it or it sees the shutdown.
struct InFlight<F: SandboxFactory> {
    inner: Arc<Inner<F>>,
}

impl<F: SandboxFactory> InFlight<F> {
    fn new(inner: &Arc<Inner<F>>) -> InFlight<F> {
        inner.background.fetch_add(1, Ordering::SeqCst);
        InFlight {
            inner: Arc::clone(inner),
        }
    }
}

impl<F: SandboxFactory> Drop for InFlight<F> {
    fn drop(&mut self) {
        self.inner.background.fetch_sub(1, Ordering::SeqCst);
        self.inner.settled.notify_waiters();
    }
}

/// Runs a pool task in the background, counted so that
/// [`Pool::shutdown`] can wait for it. `None` without a runtime (a lease
/// dropped after its runtime ended): the task cannot run, and dropping it
/// drops the sandbox and frees its place.
fn spawn_background<F, Fut, T>(
    inner: &Arc<Inner<F>>,
    task: Fut,
) -> Option<tokio::task::JoinHandle<T>>
where
    F: SandboxFactory,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handle = tokio::runtime::Handle::try_current().ok()?;
    let in_flight = InFlight::new(inner);
    Some(handle.spawn(async move {
        let out = task.await;
        drop(in_flight);
        out
    }))
}

/// What became of a sandbox given back with [`Lease::release`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recycled {
    /// It was reset and is idle in the pool again.
    Returned,
    /// It was destroyed: its reset failed, it was worn out
    /// ([`PoolConfig::max_uses`], [`PoolConfig::max_age`]), or the pool is
    /// closed.
    Destroyed,
}

/// A sandbox taken from a [`Pool`]. Derefs to the sandbox.
///
/// Dropping a lease gives the sandbox back: it is reset in the background
/// and parked, or destroyed (see [`Pool`]). [`Lease::release`] does the
/// same and waits for it; [`Lease::discard`] destroys the sandbox.
pub struct Lease<F: SandboxFactory> {
    slot: Option<Slot<F::Sandbox>>,
    inner: Arc<Inner<F>>,
}

impl<F: SandboxFactory> fmt::Debug for Lease<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("uses", &self.uses())
            .finish_non_exhaustive()
    }
}

impl<F: SandboxFactory> Deref for Lease<F> {
    type Target = F::Sandbox;
    fn deref(&self) -> &F::Sandbox {
        &self.slot().sandbox
    }
}

impl<F: SandboxFactory> Lease<F> {
    fn slot(&self) -> &Slot<F::Sandbox> {
        self.slot
            .as_ref()
            .expect("a lease holds its slot until it is consumed")
    }

    /// The sandbox.
    pub fn sandbox(&self) -> &F::Sandbox {
        self
    }

    /// How many leases of this sandbox ended before this one.
    pub fn uses(&self) -> u32 {
        self.slot().uses
    }

    /// How long ago the sandbox was created.
    pub fn age(&self) -> Duration {
        self.slot().created.elapsed()
    }

    /// Gives the sandbox back now: reset and park it (or destroy it, see
    /// [`Recycled`]), and wait until that is done.
    ///
    /// The work runs as a pool task: if this future is dropped, the reset
    /// (or destruction) still completes.
    pub async fn release(mut self) -> Recycled {
        let slot = self.slot.take().expect("a lease holds its slot");
        let inner = Arc::clone(&self.inner);
        let task = spawn_background(&self.inner, async move {
            let recycled = inner.recycle(slot).await;
            Pool { inner }.refill();
            recycled
        });
        match task {
            Some(task) => task.await.unwrap_or(Recycled::Destroyed),
            None => Recycled::Destroyed,
        }
    }

    /// Destroys the sandbox instead of giving it back (for example after
    /// it misbehaved), and waits until that is done.
    pub async fn discard(mut self) {
        let slot = self.slot.take().expect("a lease holds its slot");
        let inner = Arc::clone(&self.inner);
        let task = spawn_background(&self.inner, async move {
            inner.destroy(slot).await;
            Pool { inner }.refill();
        });
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

impl<F: SandboxFactory> Drop for Lease<F> {
    fn drop(&mut self) {
        let Some(slot) = self.slot.take() else {
            return;
        };
        let inner = Arc::clone(&self.inner);
        spawn_background(&self.inner, async move {
            inner.recycle(slot).await;
            Pool { inner }.refill();
        });
    }
}
