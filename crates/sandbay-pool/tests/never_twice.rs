//! Random sequences of acquire, release, drop, per-user get, release and
//! eviction against one pool: no sandbox is ever handed out twice, never
//! to a second user, a returning user always gets a fresh one, a sandbox
//! in use is never destroyed, the bound holds, and shutdown leaves
//! nothing.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use proptest::prelude::*;
use sandbay_core::Result;
use sandbay_pool::{Lease, Pool, PoolConfig, Registry, RegistryConfig, SandboxFactory};

/// A sandbox that is only its serial number.
#[derive(Debug)]
struct Token(u64);

/// Counts what it makes and destroys; creation and destruction yield a
/// few times so that background work interleaves with the callers.
#[derive(Default)]
struct Counting {
    next: AtomicU64,
    live: Mutex<HashSet<u64>>,
    peak: AtomicUsize,
    destroyed: Mutex<HashSet<u64>>,
}

async fn yield_times(n: u64) {
    for _ in 0..n {
        tokio::task::yield_now().await;
    }
}

#[async_trait]
impl SandboxFactory for Counting {
    type Sandbox = Token;

    async fn create(&self) -> Result<Token> {
        let id = self.next.fetch_add(1, Ordering::SeqCst);
        yield_times(id % 3).await;
        let live = {
            let mut live = self.live.lock().unwrap();
            live.insert(id);
            live.len()
        };
        self.peak.fetch_max(live, Ordering::SeqCst);
        Ok(Token(id))
    }

    async fn destroy(&self, token: Token) -> Result<()> {
        yield_times(token.0 % 4).await;
        assert!(
            self.live.lock().unwrap().remove(&token.0),
            "destroyed twice"
        );
        self.destroyed.lock().unwrap().insert(token.0);
        Ok(())
    }
}

#[derive(Debug, Clone)]
enum Op {
    Acquire,
    Release(usize),
    Drop(usize),
    Get(u8),
    DropHandle(usize),
    ReleaseUser(u8),
    EvictIdle,
    Pause,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Acquire),
        2 => any::<usize>().prop_map(Op::Release),
        2 => any::<usize>().prop_map(Op::Drop),
        4 => (0u8..4).prop_map(Op::Get),
        2 => any::<usize>().prop_map(Op::DropHandle),
        2 => (0u8..4).prop_map(Op::ReleaseUser),
        1 => Just(Op::EvictIdle),
        2 => Just(Op::Pause),
    ]
}

/// What the test has seen, to judge every new sandbox against.
#[derive(Default)]
struct Seen {
    /// Every sandbox handed to anyone, with who got it (`None`: a plain
    /// pool lease).
    handed: HashMap<u64, Option<u8>>,
    /// The sandbox each user last got.
    current: HashMap<u8, u64>,
    /// Sandboxes whose user was released or evicted.
    ended: HashSet<u64>,
}

fn run(ops: Vec<Op>, max_size: usize, min_idle: usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async move {
        let config = PoolConfig::default()
            .with_max_size(max_size)
            .with_min_idle(min_idle)
            .with_acquire_timeout(Duration::from_millis(5));
        let pool = Pool::new(Counting::default(), config).unwrap();
        let registry = Registry::new(
            pool.clone(),
            RegistryConfig::default().with_idle_timeout(Duration::ZERO),
        );
        let mut leases: Vec<Lease<Counting>> = Vec::new();
        let mut handles: Vec<(u8, Arc<Lease<Counting>>)> = Vec::new();
        let mut seen = Seen::default();
        for op in ops {
            let users_before: BTreeSet<String> = registry.users().into_iter().collect();
            match op {
                Op::Acquire => {
                    if let Ok(lease) = pool.acquire().await {
                        let id = lease.0;
                        let before = seen.handed.insert(id, None);
                        assert_eq!(before, None, "sandbox {id} handed out twice");
                        leases.push(lease);
                    }
                }
                Op::Release(i) if !leases.is_empty() => {
                    let lease = leases.swap_remove(i % leases.len());
                    let id = lease.0;
                    lease.release().await;
                    assert!(pool.factory().destroyed.lock().unwrap().contains(&id));
                }
                Op::Drop(i) if !leases.is_empty() => {
                    drop(leases.swap_remove(i % leases.len()));
                }
                Op::Get(user) => {
                    if let Ok(handle) = registry.get(&user.to_string()).await {
                        let id = handle.0;
                        match seen.handed.get(&id) {
                            Some(owner) => {
                                assert_eq!(*owner, Some(user), "sandbox {id} given to another");
                                assert!(!seen.ended.contains(&id), "an ended sandbox came back");
                                assert_eq!(seen.current.get(&user), Some(&id));
                            }
                            None => {
                                seen.handed.insert(id, Some(user));
                                seen.current.insert(user, id);
                            }
                        }
                        handles.push((user, handle));
                    }
                }
                Op::DropHandle(i) if !handles.is_empty() => {
                    drop(handles.swap_remove(i % handles.len()));
                }
                Op::ReleaseUser(user) => {
                    registry.release(&user.to_string());
                }
                Op::EvictIdle => {
                    registry.evict_idle();
                }
                Op::Pause => tokio::time::sleep(Duration::from_millis(1)).await,
                _ => {}
            }
            // users that lost their sandbox (release, idle or LRU eviction)
            let users_after: BTreeSet<String> = registry.users().into_iter().collect();
            for gone in users_before.difference(&users_after) {
                let user: u8 = gone.parse().unwrap();
                if let Some(id) = seen.current.get(&user) {
                    seen.ended.insert(*id);
                }
            }
            // nothing in use was destroyed, and the bound holds
            let live = pool.factory().live.lock().unwrap().clone();
            for id in leases
                .iter()
                .map(|l| l.0)
                .chain(handles.iter().map(|h| h.1.0))
            {
                assert!(live.contains(&id), "sandbox {id} destroyed while in use");
            }
            assert!(pool.factory().peak.load(Ordering::SeqCst) <= max_size);
            assert!(pool.status().live <= max_size);
        }
        drop(leases);
        drop(handles);
        registry.shutdown().await;
        let status = pool.status();
        assert!(
            pool.factory().live.lock().unwrap().is_empty(),
            "left alive: {status:?}"
        );
        assert_eq!(status.created, status.destroyed, "{status:?}");
        assert_eq!(status.live, 0, "{status:?}");
    });
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn no_sandbox_is_ever_handed_out_twice(
        ops in proptest::collection::vec(op(), 1..60),
        max_size in 1usize..4,
        min_idle in 0usize..4,
    ) {
        run(ops, max_size, min_idle.min(max_size));
    }
}
