//! The pool and the registry over real workspaces on disk (the fs
//! backend), no Docker needed: every sandbox serves one lease and is
//! then destroyed, on disk too.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use sandbay_core::{Backend, BackendExt, Error, Result, VPath};
use sandbay_fs::{FsBackend, FsProvider};
use sandbay_pool::{Pool, PoolConfig, PoolError, Registry, RegistryConfig, SandboxFactory};

/// A workspace directory per sandbox under one base: what a pool of
/// local workspaces is. It counts what is alive, so the tests can check
/// the bound and the clean-up on the real disk.
struct DirFactory {
    provider: FsProvider,
    next: AtomicU64,
    live: AtomicUsize,
    peak: AtomicUsize,
    fail_next: AtomicBool,
    base: std::path::PathBuf,
}

/// A sandbox of [`DirFactory`]: the backend and its directory name.
struct Workspace {
    backend: FsBackend,
    name: String,
}

impl std::ops::Deref for Workspace {
    type Target = FsBackend;
    fn deref(&self) -> &FsBackend {
        &self.backend
    }
}

/// A file a test plants to make the sandbox's destruction take 300 ms.
const SLOW: &str = "/.slow";

impl DirFactory {
    async fn new(base: &std::path::Path) -> DirFactory {
        DirFactory {
            provider: FsProvider::open(base).await.expect("provider"),
            next: AtomicU64::new(0),
            live: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            fail_next: AtomicBool::new(false),
            base: base.to_path_buf(),
        }
    }

    fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    /// Workspace directories on disk now.
    fn dirs_on_disk(&self) -> usize {
        let user = self.base.join(FsProvider::dir_name("pool").unwrap());
        std::fs::read_dir(user).map(|d| d.count()).unwrap_or(0)
    }
}

#[async_trait]
impl SandboxFactory for DirFactory {
    type Sandbox = Workspace;

    async fn create(&self) -> Result<Workspace> {
        if self.fail_next.swap(false, Ordering::SeqCst) {
            return Err(Error::Unavailable {
                message: "no room for a workspace".into(),
            });
        }
        let name = format!("ws{}", self.next.fetch_add(1, Ordering::SeqCst));
        let backend = self.provider.session("pool", &name).await?;
        let live = self.live.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(live, Ordering::SeqCst);
        Ok(Workspace { backend, name })
    }

    async fn destroy(&self, ws: Workspace) -> Result<()> {
        if ws.exists(&VPath::parse(SLOW)?).await? {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        self.provider.remove_session("pool", &ws.name).await?;
        self.live.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    }
}

fn p(s: &str) -> VPath {
    VPath::parse(s).unwrap()
}

async fn new_pool(config: PoolConfig) -> (Pool<DirFactory>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let factory = DirFactory::new(dir.path()).await;
    (Pool::new(factory, config).expect("valid config"), dir)
}

/// Waits until `cond` holds (background work), failing after 10 s.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("still not true after 10 s: {what}");
}

#[tokio::test]
async fn a_released_sandbox_is_destroyed_and_never_handed_out_again() {
    let (pool, _dir) = new_pool(PoolConfig::default().with_max_size(1)).await;
    let lease = pool.acquire().await.unwrap();
    lease.write(&p("/secret.txt"), "user A").await.unwrap();
    lease
        .write(&p("/deep/er/file.txt"), "user A")
        .await
        .unwrap();
    let name = lease.name.clone();
    lease.release().await;
    let status = pool.status();
    assert_eq!(
        (status.destroyed, status.live, status.leased),
        (1, 0, 0),
        "{status:?}"
    );
    assert_eq!(pool.factory().dirs_on_disk(), 0, "gone from disk");

    let next = pool.acquire().await.unwrap();
    assert_ne!(next.name, name, "max_size 1: a new workspace, not A's");
    assert!(next.ls(&VPath::root()).await.unwrap().is_empty());
    let status = pool.status();
    assert_eq!(
        (status.created, status.warm_acquires, status.destroyed),
        (2, 0, 1),
        "{status:?}"
    );
    next.release().await;
    pool.shutdown().await;
    assert_eq!(pool.factory().live(), 0);
}

#[tokio::test]
async fn a_dropped_lease_is_replaced_by_a_fresh_sandbox_in_the_background() {
    let config = PoolConfig::default().with_max_size(1).with_min_idle(1);
    let (pool, _dir) = new_pool(config).await;
    pool.warm().await.unwrap();
    let lease = pool.acquire().await.unwrap();
    assert_eq!(pool.status().warm_acquires, 1);
    let name = lease.name.clone();
    lease.write(&p("/a.txt"), "x").await.unwrap();
    drop(lease);
    eventually("destroyed and replaced", || {
        let s = pool.status();
        s.destroyed == 1 && s.idle == 1
    })
    .await;
    assert_eq!(pool.factory().live(), 1, "one place: the old one is gone");
    let next = pool.acquire().await.unwrap();
    assert_ne!(next.name, name);
    assert!(!next.exists(&p("/a.txt")).await.unwrap());
    let status = pool.status();
    assert_eq!((status.created, status.warm_acquires), (2, 2), "{status:?}");
    drop(next);
    pool.shutdown().await;
    assert_eq!(pool.factory().live(), 0);
    assert_eq!(pool.factory().dirs_on_disk(), 0);
}

/// A sandbox being destroyed holds its place: with `max_size` 1, the
/// replacement is made only after the destruction is done.
#[tokio::test]
async fn a_sandbox_being_destroyed_counts_against_max_size() {
    let config = PoolConfig::default().with_max_size(1).with_min_idle(1);
    let (pool, _dir) = new_pool(config).await;
    let lease = pool.acquire().await.unwrap();
    lease.write(&p(SLOW), "").await.unwrap();
    drop(lease);
    eventually("destroying", || pool.status().destroying == 1).await;
    let status = pool.status();
    assert_eq!(
        (status.live, status.creating, status.idle),
        (1, 0, 0),
        "{status:?}"
    );
    assert!(matches!(pool.try_acquire().await, Ok(None)), "full");
    eventually("replaced", || pool.status().idle == 1).await;
    assert_eq!(pool.factory().peak.load(Ordering::SeqCst), 1);
    pool.shutdown().await;
    assert_eq!(pool.factory().live(), 0);
}

#[tokio::test]
async fn the_pool_is_bounded_and_a_waiter_gets_a_fresh_sandbox() {
    let config = PoolConfig::default()
        .with_max_size(2)
        .with_acquire_timeout(Duration::from_millis(200));
    let (pool, _dir) = new_pool(config).await;
    let a = pool.acquire().await.unwrap();
    let b = pool.acquire().await.unwrap();
    match pool.acquire().await {
        Err(PoolError::Exhausted { max_size, waited }) => {
            assert_eq!(max_size, 2);
            assert!(waited >= Duration::from_millis(200), "{waited:?}");
        }
        other => panic!("expected exhausted, got {other:?}"),
    }
    let core: Error = PoolError::Exhausted {
        max_size: 2,
        waited: Duration::from_millis(200),
    }
    .into();
    assert_eq!(core.code().as_str(), "unavailable");

    // a waiter wakes up when a lease ends and its place is freed
    let waiter = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.acquire().await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    a.write(&p("/left-behind"), "A").await.unwrap();
    let (a_name, b_name) = (a.name.clone(), b.name.clone());
    drop(a);
    let c = waiter.await.unwrap().expect("a fresh sandbox");
    assert!(c.name != a_name && c.name != b_name, "{}", c.name);
    assert!(!c.exists(&p("/left-behind")).await.unwrap());
    assert!(pool.factory().peak.load(Ordering::SeqCst) <= 2);
    drop((b, c));
    pool.shutdown().await;
}

#[tokio::test]
async fn a_failed_creation_frees_its_place_and_is_counted() {
    let (pool, _dir) = new_pool(PoolConfig::default().with_max_size(1)).await;
    pool.factory().fail_next.store(true, Ordering::SeqCst);
    match pool.acquire().await {
        Err(PoolError::Create(e)) => assert_eq!(e.code().as_str(), "unavailable"),
        other => panic!("expected a creation error, got {other:?}"),
    }
    let status = pool.status();
    assert_eq!((status.live, status.create_failures), (0, 1), "{status:?}");
    let lease = pool.acquire().await.expect("the place is free again");
    drop(lease);
    pool.shutdown().await;
    assert_eq!(pool.factory().live(), 0);
}

#[tokio::test]
async fn an_expired_idle_sandbox_is_not_handed_out() {
    let config = PoolConfig::default()
        .with_min_idle(1)
        .with_max_age(Some(Duration::from_millis(100)));
    let (pool, _dir) = new_pool(config).await;
    pool.warm().await.unwrap();
    let old = pool.factory().next.load(Ordering::SeqCst) - 1;
    tokio::time::sleep(Duration::from_millis(150)).await;
    let young = pool.acquire().await.unwrap();
    assert_ne!(young.name, format!("ws{old}"), "an expired one");
    eventually("the expired one is destroyed", || {
        pool.status().destroyed == 1
    })
    .await;
    drop(young);
    pool.shutdown().await;
    assert_eq!(pool.factory().live(), 0);
}

#[tokio::test]
async fn min_idle_is_warmed_and_kept_up() {
    let config = PoolConfig::default().with_max_size(4).with_min_idle(2);
    let (pool, _dir) = new_pool(config).await;
    pool.warm().await.unwrap();
    assert_eq!((pool.status().idle, pool.status().created), (2, 2));
    let lease = pool.acquire().await.unwrap();
    assert_eq!(pool.status().warm_acquires, 1, "served from the warm ones");
    eventually("refilled to two idle", || pool.status().idle == 2).await;
    assert_eq!(pool.status().created, 3);
    drop(lease);
    eventually("the lease's sandbox is destroyed", || {
        pool.status().destroyed == 1
    })
    .await;
    let status = pool.status();
    assert_eq!((status.idle, status.created), (2, 3), "{status:?}");
    pool.shutdown().await;
    assert_eq!(pool.factory().live(), 0);
}

#[tokio::test]
async fn shutdown_destroys_everything_and_refuses_new_leases() {
    let config = PoolConfig::default().with_max_size(5).with_min_idle(2);
    let (pool, _dir) = new_pool(config).await;
    pool.warm().await.unwrap();
    let held = pool.acquire().await.unwrap();
    let other = pool.acquire().await.unwrap();
    other.write(&p(SLOW), "").await.unwrap();
    drop(other); // being destroyed while the pool shuts down
    pool.shutdown().await;
    assert_eq!(pool.status().destroying, 0, "shutdown waited for it");
    assert!(matches!(pool.acquire().await, Err(PoolError::Closed)));
    assert_eq!(pool.factory().live(), 1, "only the held lease is alive");
    drop(held);
    eventually("the last lease is destroyed", || pool.factory().live() == 0).await;
    assert_eq!(pool.factory().dirs_on_disk(), 0);
    let status = pool.status();
    assert_eq!(status.created, status.destroyed, "{status:?}");
    assert_eq!(status.live, 0);
}

#[tokio::test]
async fn a_dropped_pool_destroys_its_idle_sandboxes() {
    let dir = tempfile::tempdir().unwrap();
    let factory = Arc::new(DirFactory::new(dir.path()).await);
    struct Shared(Arc<DirFactory>);
    #[async_trait]
    impl SandboxFactory for Shared {
        type Sandbox = Workspace;
        async fn create(&self) -> Result<Workspace> {
            self.0.create().await
        }
        async fn destroy(&self, ws: Workspace) -> Result<()> {
            self.0.destroy(ws).await
        }
    }
    let pool = Pool::new(
        Shared(Arc::clone(&factory)),
        PoolConfig::default().with_min_idle(3),
    )
    .unwrap();
    pool.warm().await.unwrap();
    assert_eq!(factory.live(), 3);
    drop(pool);
    eventually("idle sandboxes destroyed", || factory.live() == 0).await;
    assert_eq!(factory.dirs_on_disk(), 0);
}

#[tokio::test]
async fn bad_configurations_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (config, needle) in [
        (PoolConfig::default().with_max_size(0), "max_size"),
        (
            PoolConfig::default().with_max_size(2).with_min_idle(3),
            "min_idle",
        ),
    ] {
        let factory = DirFactory::new(dir.path()).await;
        let err = Pool::new(factory, config).unwrap_err();
        assert!(err.to_string().contains(needle), "{err}");
        let core: Error = err.into();
        assert_eq!(core.code().as_str(), "invalid_argument");
    }
}

/// Many users hammer a small pool: the bound holds, every lease gets a
/// workspace nobody had before, and everything is gone at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_users_always_get_a_never_used_sandbox() {
    let config = PoolConfig::default()
        .with_max_size(3)
        .with_min_idle(1)
        .with_acquire_timeout(Duration::from_secs(20));
    let (pool, _dir) = new_pool(config).await;
    let handed = Arc::new(std::sync::Mutex::new(HashSet::new()));
    let mut tasks = Vec::new();
    for user in 0..8 {
        let pool = pool.clone();
        let handed = Arc::clone(&handed);
        tasks.push(tokio::spawn(async move {
            for round in 0..15 {
                let lease = pool.acquire().await.expect("acquire");
                let first = handed.lock().unwrap().insert(lease.name.clone());
                assert!(first, "{} handed out twice", lease.name);
                let seen = lease.ls(&VPath::root()).await.unwrap();
                assert!(seen.is_empty(), "user {user} round {round} found {seen:?}");
                let file = p(&format!("/u{user}/r{round}.txt"));
                lease.write(&file, "mine").await.unwrap();
                tokio::task::yield_now().await;
                assert_eq!(lease.read_to_string(&file).await.unwrap(), "mine");
                if round % 2 == 0 {
                    drop(lease);
                } else {
                    lease.release().await;
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("a user task failed");
    }
    assert_eq!(handed.lock().unwrap().len(), 8 * 15);
    let peak = pool.factory().peak.load(Ordering::SeqCst);
    assert!(peak <= 3, "peak {peak} above max_size");
    pool.shutdown().await;
    let status = pool.status();
    assert_eq!(status.created, status.destroyed, "{status:?}");
    assert_eq!(pool.factory().live(), 0);
    assert_eq!(pool.factory().dirs_on_disk(), 0);
}

#[tokio::test]
async fn the_registry_keeps_a_user_on_their_own_sandbox_and_never_passes_it_on() {
    let (pool, _dir) = new_pool(PoolConfig::default().with_max_size(4)).await;
    let registry = Registry::new(pool, RegistryConfig::default());
    let notes = p("/notes.txt");

    // concurrent first calls for one user share one acquisition
    let (a1, a2) = tokio::join!(registry.get("alice"), registry.get("alice"));
    let (a1, a2) = (a1.unwrap(), a2.unwrap());
    assert!(Arc::ptr_eq(&a1, &a2));
    assert_eq!(registry.pool().status().created, 1);

    a1.write(&notes, "alice's").await.unwrap();
    let b = registry.get("bob").await.unwrap();
    assert_ne!(a1.name, b.name);
    assert!(
        !b.exists(&notes).await.unwrap(),
        "bob cannot see alice's file"
    );
    assert_eq!(registry.users(), ["alice", "bob"]);
    assert_eq!(registry.len(), 2);
    let sticky = registry.get("alice").await.unwrap();
    assert!(Arc::ptr_eq(&a1, &sticky), "sticky while she holds it");
    assert_eq!(sticky.read_to_string(&notes).await.unwrap(), "alice's");
    drop(sticky);

    // released: destroyed once the last holder lets go
    let alice_ws = a1.name.clone();
    assert!(registry.release("alice"));
    assert!(!registry.release("alice"));
    assert_eq!(
        a1.read_to_string(&notes).await.unwrap(),
        "alice's",
        "a holder keeps working"
    );
    assert_eq!(registry.pool().status().destroyed, 0);
    drop((a1, a2));
    eventually("alice's sandbox is destroyed", || {
        registry.pool().status().destroyed == 1
    })
    .await;
    let carol = registry.get("carol").await.unwrap();
    assert_ne!(carol.name, alice_ws, "carol never gets alice's sandbox");
    assert!(!carol.exists(&notes).await.unwrap());
    let back = registry.get("alice").await.unwrap();
    assert_ne!(back.name, alice_ws, "a returning user gets a fresh one");
    assert!(!back.exists(&notes).await.unwrap());
    drop((b, carol, back));
    registry.shutdown().await;
    assert_eq!(registry.pool().factory().live(), 0);
    assert!(registry.is_empty());
}

#[tokio::test]
async fn idle_users_are_evicted_and_failures_are_retried() {
    let config = PoolConfig::default()
        .with_max_size(1)
        .with_acquire_timeout(Duration::from_millis(50));
    let (pool, _dir) = new_pool(config).await;
    let registry = Arc::new(Registry::new(
        pool,
        RegistryConfig::default()
            .with_idle_timeout(Duration::from_secs(1))
            .with_evict_lru_when_full(false),
    ));
    let alice_ws = registry.get("alice").await.unwrap().name.clone();
    // the pool has one place, held by alice: bob waits and fails
    assert!(matches!(
        registry.get("bob").await,
        Err(PoolError::Exhausted { .. })
    ));
    assert_eq!(registry.users(), ["alice"], "a failed get leaves no entry");

    assert_eq!(registry.evict_idle(), 0, "alice is not idle yet");
    let reaper = registry.spawn_reaper(Duration::from_millis(20));
    eventually("alice evicted", || registry.is_empty()).await;
    eventually("her sandbox is destroyed", || {
        registry.pool().status().destroyed == 1
    })
    .await;
    let bob = registry.get("bob").await.expect("bob gets the freed place");
    assert_ne!(bob.name, alice_ws);
    assert_eq!(registry.users(), ["bob"]);
    drop((bob, reaper));
    registry.shutdown().await;
    assert_eq!(registry.pool().factory().live(), 0);
}

#[tokio::test]
async fn a_full_registry_makes_room_by_ending_the_least_recently_used_user() {
    let config = PoolConfig::default()
        .with_max_size(2)
        .with_acquire_timeout(Duration::from_secs(5));
    let (pool, _dir) = new_pool(config).await;
    let registry = Registry::new(pool, RegistryConfig::default());
    let notes = p("/notes.txt");
    let alice_ws = {
        let alice = registry.get("alice").await.unwrap();
        alice.write(&notes, "a").await.unwrap();
        alice.name.clone()
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    registry
        .get("bob")
        .await
        .unwrap()
        .write(&notes, "b")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    // alice was seen last before bob, and nobody holds her sandbox
    let carol = registry.get("carol").await.expect("room is made");
    assert_eq!(registry.users(), ["bob", "carol"]);
    assert_ne!(carol.name, alice_ws, "carol gets a fresh sandbox");
    assert!(!carol.exists(&notes).await.unwrap());
    let status = registry.pool().status();
    assert_eq!((status.created, status.destroyed), (3, 1), "{status:?}");
    assert!(
        registry.pool().factory().peak.load(Ordering::SeqCst) <= 2,
        "bounded"
    );

    let bob = registry.get("bob").await.unwrap();

    // a sandbox in use is never taken away: frank waits, then fails
    let config = PoolConfig::default()
        .with_max_size(1)
        .with_acquire_timeout(Duration::from_millis(100));
    let (small, _dir2) = new_pool(config).await;
    let strict = Registry::new(small, RegistryConfig::default());
    let held = strict.get("erin").await.unwrap();
    assert!(matches!(
        strict.get("frank").await,
        Err(PoolError::Exhausted { .. })
    ));
    assert_eq!(
        strict.users(),
        ["erin"],
        "erin keeps her sandbox while it is held"
    );
    drop(held);
    let frank = strict.get("frank").await.expect("erin is unheld now");
    assert_eq!(strict.users(), ["frank"]);
    drop((bob, carol, frank));
    strict.shutdown().await;
    registry.shutdown().await;
    assert_eq!(registry.pool().factory().live(), 0);
    assert_eq!(strict.pool().factory().live(), 0);
}

#[tokio::test]
async fn a_cancelled_release_still_finishes_and_leaks_nothing() {
    let (pool, _dir) = new_pool(PoolConfig::default().with_max_size(1)).await;
    let lease = pool.acquire().await.unwrap();
    lease.write(&p(SLOW), "").await.unwrap();
    let cancelled = tokio::time::timeout(Duration::from_millis(50), lease.release()).await;
    assert!(
        cancelled.is_err(),
        "the destruction takes longer than the caller waits"
    );
    eventually("the destruction finished anyway", || {
        pool.status().destroyed == 1
    })
    .await;
    assert_eq!(pool.factory().dirs_on_disk(), 0);
    let again = pool.acquire().await.unwrap();
    assert!(again.ls(&VPath::root()).await.unwrap().is_empty());
    drop(again);
    pool.shutdown().await;
    let status = pool.status();
    assert_eq!((status.created, status.destroyed), (2, 2), "{status:?}");
    assert_eq!(pool.factory().dirs_on_disk(), 0);
}

#[tokio::test]
async fn a_user_whose_sandbox_is_in_use_is_not_evicted_for_idleness() {
    let (pool, _dir) = new_pool(PoolConfig::default()).await;
    let registry = Registry::new(
        pool,
        RegistryConfig::default().with_idle_timeout(Duration::from_millis(50)),
    );
    let held = registry.get("alice").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(registry.evict_idle(), 0, "a long command keeps its user");
    assert_eq!(registry.users(), ["alice"]);
    drop(held);
    assert_eq!(registry.evict_idle(), 1);
    assert!(registry.is_empty());
    registry.shutdown().await;
    assert_eq!(registry.pool().factory().live(), 0);
}

#[tokio::test]
async fn shutdown_waits_for_a_sandbox_being_made_for_a_caller() {
    let (pool, _dir) = new_pool(PoolConfig::default()).await;
    let acquiring = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.acquire().await })
    };
    tokio::task::yield_now().await;
    pool.shutdown().await;
    match acquiring.await.unwrap() {
        // it either finished before the shutdown began, or was refused
        Ok(lease) => drop(lease),
        Err(e) => assert!(matches!(e, PoolError::Closed), "{e}"),
    }
    eventually("nothing alive", || pool.factory().live() == 0).await;
    assert_eq!(pool.factory().dirs_on_disk(), 0);
}
