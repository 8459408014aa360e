//! The warm pool: bounded, pre-warmed, every sandbox used once.

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

/// How a [`Pool`] sizes and waits.
///
/// ```
/// use std::time::Duration;
/// use sandbay_pool::PoolConfig;
///
/// let config = PoolConfig::default()
///     .with_max_size(32)
///     .with_min_idle(4)
///     .with_acquire_timeout(Duration::from_secs(5))
///     .with_max_age(Some(Duration::from_secs(3600)));
/// assert_eq!(config.max_size, 32);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PoolConfig {
    /// Most sandboxes alive at once: idle, leased, being made or being
    /// destroyed. Default 16.
    pub max_size: usize,
    /// Fresh sandboxes kept ready, made in the background (never beyond
    /// `max_size`). Default 0.
    pub min_idle: usize,
    /// How long [`Pool::acquire`] waits for a free place before it gives
    /// up with [`PoolError::Exhausted`]. Creating the sandbox is not
    /// counted. Default 30 s.
    pub acquire_timeout: Duration,
    /// An idle sandbox older than this is destroyed instead of handed
    /// out (checked when one is taken). Default: no limit.
    pub max_age: Option<Duration>,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_size: 16,
            min_idle: 0,
            acquire_timeout: Duration::from_secs(30),
            max_age: None,
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
    /// Sets [`PoolConfig::max_age`].
    pub fn with_max_age(mut self, max_age: Option<Duration>) -> Self {
        self.max_age = max_age;
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
        Ok(())
    }
}

/// A snapshot of a pool's occupancy and history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct PoolStatus {
    /// [`PoolConfig::max_size`].
    pub max_size: usize,
    /// Places taken: sandboxes idle, leased, being made or being
    /// destroyed.
    pub live: usize,
    /// Fresh sandboxes ready to be handed out.
    pub idle: usize,
    /// Sandboxes leased now.
    pub leased: usize,
    /// Sandboxes being made now (for a caller or in the background).
    pub creating: usize,
    /// Sandboxes being destroyed now.
    pub destroying: usize,
    /// Sandboxes created so far.
    pub created: u64,
    /// Creations that failed so far.
    pub create_failures: u64,
    /// Leases served by an idle sandbox (no creation on the caller's path).
    pub warm_acquires: u64,
    /// Sandboxes destroyed so far.
    pub destroyed: u64,
}

#[derive(Debug, Default)]
struct Counters {
    created: AtomicU64,
    create_failures: AtomicU64,
    warm_acquires: AtomicU64,
    destroyed: AtomicU64,
    leased: AtomicUsize,
    creating: AtomicUsize,
    destroying: AtomicUsize,
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
///
/// A slot is made only by [`Inner::create`]; it then goes to the idle
/// queue or straight into a [`Lease`], and from a lease only to
/// [`Inner::destroy`]. No path leads from a lease back to the queue: a
/// sandbox is handed out at most once.
struct Slot<S> {
    sandbox: S,
    created: Instant,
    ticket: Ticket,
}

/// Counts a gauge up for as long as it lives.
struct Gauge<'a>(&'a AtomicUsize);

impl<'a> Gauge<'a> {
    fn up(gauge: &'a AtomicUsize) -> Gauge<'a> {
        gauge.fetch_add(1, Ordering::SeqCst);
        Gauge(gauge)
    }
}

impl Drop for Gauge<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
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
    /// Other work in flight that shutdown waits for (see [`InFlight`]).
    background: AtomicUsize,
    settled: Notify,
    counters: Counters,
}

/// A bounded pool of fresh sandboxes, made ahead of need and each handed
/// out once.
///
/// Cloning a `Pool` gives another handle to the same pool. A sandbox
/// goes to one [`Lease`] only: when the lease ends ([`Lease::release`]
/// or drop), the sandbox is [destroyed](SandboxFactory::destroy) in the
/// background and, if [`PoolConfig::min_idle`] asks for it, a fresh one
/// is made to take its place. Nothing a user leaves in a sandbox
/// (processes, files, shared memory, kernel objects) can reach the next
/// user, because the next user never gets that sandbox. Call
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
/// #     async fn destroy(&self, _s: StateBackend) -> Result<()> { Ok(()) }
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
/// let pool = Pool::new(Memory, PoolConfig::default().with_max_size(1).with_min_idle(1))?;
/// pool.warm().await?; // one fresh sandbox ready
/// let lease = pool.acquire().await?;
/// lease.write(&VPath::parse("/notes.txt")?, "private").await?;
/// lease.release().await; // destroyed; a fresh one is being made
///
/// let next = pool.acquire().await?; // a different, never-used sandbox
/// assert!(next.ls(&VPath::root()).await?.is_empty());
/// # drop(next);
/// pool.shutdown().await;
/// assert_eq!(pool.status().created, pool.status().destroyed);
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
    /// [`PoolError::Config`] for `max_size` 0 or `min_idle` above
    /// `max_size`.
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

    /// Creates sandboxes until [`PoolConfig::min_idle`] are idle (or every
    /// place is taken), and waits for them.
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

    /// Takes a fresh sandbox: an idle one when there is one, a new one
    /// when the pool has room, otherwise the first that becomes idle or
    /// whose place is freed, waiting at most
    /// [`PoolConfig::acquire_timeout`].
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
            if let Some(lease) = self.try_acquire().await? {
                return Ok(lease);
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
        if let Some(slot) = inner.take_idle() {
            inner.counters.warm_acquires.fetch_add(1, Ordering::Relaxed);
            let lease = self.lease(slot);
            inner.refill();
            return Ok(Some(lease));
        }
        let Some(ticket) = inner.try_ticket() else {
            return Ok(None);
        };
        let slot = self.create_for_lease(ticket).await?;
        let lease = self.lease(slot);
        inner.refill();
        Ok(Some(lease))
    }

    /// Occupancy and counters, as of now.
    pub fn status(&self) -> PoolStatus {
        let inner = &self.inner;
        let c = &inner.counters;
        PoolStatus {
            max_size: inner.config.max_size,
            live: inner.config.max_size - inner.permits.available_permits(),
            idle: inner.lock_idle().len(),
            leased: c.leased.load(Ordering::SeqCst),
            creating: c.creating.load(Ordering::SeqCst),
            destroying: c.destroying.load(Ordering::SeqCst),
            created: c.created.load(Ordering::Relaxed),
            create_failures: c.create_failures.load(Ordering::Relaxed),
            warm_acquires: c.warm_acquires.load(Ordering::Relaxed),
            destroyed: c.destroyed.load(Ordering::Relaxed),
        }
    }

    /// Closes the pool: waiting and later [`Pool::acquire`] calls fail
    /// with [`PoolError::Closed`], idle sandboxes are destroyed, and
    /// sandboxes being made are destroyed when they are ready. Returns
    /// once all of that and every destruction under way is done.
    /// Sandboxes still leased are destroyed when their lease ends.
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
        self.inner.counters.leased.fetch_add(1, Ordering::SeqCst);
        Lease {
            slot: Some(slot),
            inner: Arc::clone(&self.inner),
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

    /// The oldest idle sandbox young enough to hand out; expired ones
    /// found on the way are destroyed in the background.
    fn take_idle(self: &Arc<Self>) -> Option<Slot<F::Sandbox>> {
        let mut expired = Vec::new();
        let found = {
            let mut idle = self.lock_idle();
            loop {
                match idle.pop_front() {
                    Some(slot) if self.expired(&slot) => expired.push(slot),
                    other => break other,
                }
            }
        };
        for slot in expired {
            self.end(slot);
        }
        found
    }

    async fn create(&self, ticket: Ticket) -> Result<Slot<F::Sandbox>, PoolError> {
        // on error the ticket drops here, freeing the place
        let made = {
            let _creating = Gauge::up(&self.counters.creating);
            self.factory.create().await
        };
        let sandbox = made.map_err(|e| {
            self.counters
                .create_failures
                .fetch_add(1, Ordering::Relaxed);
            PoolError::Create(e)
        })?;
        self.counters.created.fetch_add(1, Ordering::Relaxed);
        tracing::debug!("pooled sandbox created");
        Ok(Slot {
            sandbox,
            created: Instant::now(),
            ticket,
        })
    }

    /// Parks a fresh sandbox as idle, or destroys it when the pool is
    /// closed. Only [`Inner::create`]'s output comes here.
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
        {
            let _destroying = Gauge::up(&self.counters.destroying);
            if let Err(e) = self.factory.destroy(sandbox).await {
                tracing::warn!(error = %e, "destroying a pooled sandbox failed");
            }
        }
        self.counters.destroyed.fetch_add(1, Ordering::Relaxed);
        // the place is freed only now: a sandbox being destroyed still
        // holds its resources
        drop(ticket);
    }

    /// Destroys a sandbox in the background, then makes fresh ones for
    /// `min_idle` in the place it freed. Returns the task, `None` without
    /// a runtime (the sandbox is then dropped, and its place freed).
    fn end(self: &Arc<Self>, slot: Slot<F::Sandbox>) -> Option<tokio::task::JoinHandle<()>> {
        let inner = Arc::clone(self);
        spawn_background(self, async move {
            inner.destroy(slot).await;
            inner.refill();
        })
    }

    /// Starts background creations until `min_idle` sandboxes are idle or
    /// being made, as far as there is room.
    fn refill(self: &Arc<Self>) {
        loop {
            let warming = self.warming.load(Ordering::SeqCst);
            if self.lock_idle().len() + warming >= self.config.min_idle {
                return;
            }
            let Ok(handle) = tokio::runtime::Handle::try_current() else {
                return;
            };
            let Some(ticket) = self.try_ticket() else {
                return;
            };
            // counted before the closed check (see `InFlight`)
            self.warming.fetch_add(1, Ordering::SeqCst);
            if self.is_closed() {
                self.warming.fetch_sub(1, Ordering::SeqCst);
                self.settled.notify_waiters();
                return;
            }
            let inner = Arc::clone(self);
            handle.spawn(async move {
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

/// Work in flight that [`Pool::shutdown`] waits for: creating or
/// destroying a sandbox. Counted from before the closed check, so a
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
fn spawn_background<F, Fut>(inner: &Arc<Inner<F>>, task: Fut) -> Option<tokio::task::JoinHandle<()>>
where
    F: SandboxFactory,
    Fut: Future<Output = ()> + Send + 'static,
{
    let handle = tokio::runtime::Handle::try_current().ok()?;
    let in_flight = InFlight::new(inner);
    Some(handle.spawn(async move {
        task.await;
        drop(in_flight);
    }))
}

/// A fresh sandbox taken from a [`Pool`], for one user. Derefs to the
/// sandbox.
///
/// When the lease ends, by [`Lease::release`] or by being dropped, the
/// sandbox is destroyed in the background; it is never handed out again.
pub struct Lease<F: SandboxFactory> {
    slot: Option<Slot<F::Sandbox>>,
    inner: Arc<Inner<F>>,
}

impl<F: SandboxFactory> fmt::Debug for Lease<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("age", &self.age())
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

    /// How long ago the sandbox was created.
    pub fn age(&self) -> Duration {
        self.slot().created.elapsed()
    }

    /// Ends the lease now and waits until the sandbox is destroyed. A
    /// fresh sandbox is then made in the background if
    /// [`PoolConfig::min_idle`] asks for one.
    ///
    /// The work runs as a pool task: if this future is dropped, the
    /// destruction still completes.
    pub async fn release(mut self) {
        if let Some(task) = self.end() {
            let _ = task.await;
        }
    }

    fn end(&mut self) -> Option<tokio::task::JoinHandle<()>> {
        let slot = self.slot.take()?;
        self.inner.counters.leased.fetch_sub(1, Ordering::SeqCst);
        self.inner.end(slot)
    }
}

impl<F: SandboxFactory> Drop for Lease<F> {
    fn drop(&mut self) {
        self.end();
    }
}
