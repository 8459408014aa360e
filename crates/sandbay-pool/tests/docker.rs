//! Pooled containers against a real Docker daemon: a reset leaves nothing
//! of the previous user (files, processes, `/tmp`), a container that died
//! is replaced, and nothing is left after shutdown.
//!
//! Needs the `docker` feature (on by default). The daemon and the test
//! image are checked when the tests run: without them a test is skipped
//! with the reason, and fails under CI.
#![cfg(feature = "docker")]

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sandbay_core::{Backend, BackendExt, ExecRequest, Sandbox, VPath};
use sandbay_docker::{DockerClient, DockerConfig, ReapOptions, ReapScope};
use sandbay_pool::{DockerFactory, Pool, PoolConfig, Recycled, Registry, RegistryConfig};

const TEST_LABEL: &str = "sandbay.test";

/// The local test image the pooled containers run.
const IMAGE: &str = sandbay_testkit::docker::TEST_IMAGE;

/// The daemon and the test image, checked when the test runs, or `None`
/// after a skip with the reason (a failure under CI).
async fn docker() -> Option<DockerClient> {
    if !sandbay_testkit::skip::require(sandbay_testkit::docker::check(IMAGE)) {
        return None;
    }
    Some(
        DockerClient::connect()
            .await
            .expect("the daemon answered a ping: a client connects"),
    )
}

/// Labels everything one test makes, and removes it when dropped, even
/// when the test fails.
struct Guard {
    value: String,
    base: tempfile::TempDir,
}

impl Guard {
    fn new(test: &str) -> Guard {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        Guard {
            value: format!("pool-{test}-{}-{nanos}", std::process::id()),
            base: tempfile::tempdir().unwrap(),
        }
    }

    fn config(&self) -> DockerConfig {
        DockerConfig::default()
            .with_image(IMAGE)
            .with_label(TEST_LABEL, &self.value)
            .with_workspace_base(self.base.path())
    }

    fn containers(&self) -> Vec<String> {
        let out = Command::new("docker")
            .args(["ps", "-aq", "--no-trunc", "--filter"])
            .arg(format!("label={TEST_LABEL}={}", self.value))
            .output()
            .expect("docker cli");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    async fn wait_for_containers(&self, want: usize) -> usize {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let now = self.containers().len();
            if now == want || Instant::now() > deadline {
                return now;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let options = ReapOptions::default()
            .with_label(TEST_LABEL, &self.value)
            .with_scope(ReapScope::All);
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                if let Ok(client) = DockerClient::connect().await {
                    let _ = sandbay_docker::reap_orphans(&client, &options).await;
                }
            });
        })
        .join();
    }
}

macro_rules! require_docker {
    () => {
        match docker().await {
            Some(client) => client,
            None => return,
        }
    };
}

fn p(s: &str) -> VPath {
    VPath::parse(s).unwrap()
}

async fn sh(sandbox: &impl Sandbox, command: &str) -> String {
    let out = sandbox
        .execute(ExecRequest::new(command).timeout(Duration::from_secs(20)))
        .await
        .expect("execute");
    assert_eq!(
        out.exit_code,
        Some(0),
        "{command}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_container_keeps_nothing_of_the_previous_user() {
    let client = require_docker!();
    let guard = Guard::new("reset");
    let pool = Pool::new(
        DockerFactory::new(client, guard.config()),
        PoolConfig::default().with_max_size(1).with_min_idle(1),
    )
    .unwrap();
    pool.warm().await.unwrap();
    assert_eq!(guard.containers().len(), 1, "warmed ahead of need");

    let a = pool.acquire().await.unwrap();
    assert_eq!(pool.status().reused, 1, "served warm");
    let id = a.container_id().to_owned();
    a.write(&p("/secret.txt"), "A's secret").await.unwrap();
    a.write(&p("/src/main.py"), "print('A')").await.unwrap();
    // two processes that leave the command's process group (which is
    // swept when the command ends), so they outlive it; the command waits
    // until both have called setsid (their program runs only after it)
    sh(
        &*a,
        "mkdir -p /workspace/locked/inner && touch /workspace/locked/inner/f && chmod 000 /workspace/locked; \
         echo tmp > /tmp/a-was-here; mkdir /tmp/.hidden; \
         setsid sleep 601 & setsid sh -c 'while :; do sleep 1; done' & \
         i=0; until ps -o args | grep -q '^sleep 601' && ps -o args | grep -q '^sh -c while'; do \
           i=$((i + 1)); [ $i -gt 200 ] && exit 1; sleep 0.05; done",
    )
    .await;
    let ps = sh(&*a, "ps -o pid,args").await;
    assert!(ps.contains("sleep 601"), "the escapees run: {ps}");
    assert_eq!(a.release().await, Recycled::Returned);

    let b = pool.acquire().await.unwrap();
    assert_eq!(b.container_id(), id, "the same container, reset");
    assert!(
        b.ls(&VPath::root()).await.unwrap().is_empty(),
        "no files left"
    );
    assert!(!b.exists(&p("/secret.txt")).await.unwrap());
    let ps = sh(&*b, "ps -o pid,args").await;
    assert!(!ps.contains("sleep 60"), "A's processes survived: {ps}");
    assert!(!ps.contains("while"), "A's processes survived: {ps}");
    assert_eq!(sh(&*b, "ls -A /tmp").await, "", "/tmp is empty");
    drop(b);
    pool.shutdown().await;
    assert_eq!(guard.wait_for_containers(0).await, 0, "nothing left");
    let status = pool.status();
    assert_eq!((status.created, status.destroyed), (1, 1), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_that_died_is_replaced_not_handed_out() {
    let client = require_docker!();
    let guard = Guard::new("died");
    let pool = Pool::new(
        DockerFactory::new(client, guard.config()),
        PoolConfig::default().with_max_size(1),
    )
    .unwrap();
    let a = pool.acquire().await.unwrap();
    let id = a.container_id().to_owned();
    let killed = Command::new("docker").args(["kill", &id]).output().unwrap();
    assert!(killed.status.success(), "docker kill: {killed:?}");
    assert_eq!(a.release().await, Recycled::Destroyed);
    assert_eq!(pool.status().reset_failures, 1);

    let b = pool.acquire().await.unwrap();
    assert_ne!(b.container_id(), id);
    assert_eq!(sh(&*b, "echo alive").await, "alive\n");
    drop(b);
    pool.shutdown().await;
    assert_eq!(
        guard.wait_for_containers(0).await,
        0,
        "the dead one is removed too"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_get_their_own_containers_and_nothing_leaks() {
    let client = require_docker!();
    let guard = Guard::new("registry");
    let pool = Pool::new(
        DockerFactory::new(client, guard.config()),
        PoolConfig::default().with_max_size(2).with_min_idle(2),
    )
    .unwrap();
    pool.warm().await.unwrap();
    let registry = Arc::new(Registry::new(pool, RegistryConfig::default()));

    let alice = registry.get("alice").await.unwrap();
    let bob = registry.get("bob").await.unwrap();
    assert_ne!(alice.container_id(), bob.container_id());
    alice.write(&p("/notes.txt"), "alice").await.unwrap();
    assert!(!bob.exists(&p("/notes.txt")).await.unwrap());
    let again = registry.get("alice").await.unwrap();
    assert_eq!(again.container_id(), alice.container_id(), "sticky");
    assert_eq!(
        registry.pool().status().created,
        2,
        "both came from the warm pool"
    );

    // alice leaves; carol gets her container, reset
    let alice_id = alice.container_id().to_owned();
    registry.release("alice");
    drop((alice, again));
    let carol = {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if registry.pool().status().idle == 1 || Instant::now() > deadline {
                break registry.get("carol").await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    assert_eq!(carol.container_id(), alice_id);
    assert!(!carol.exists(&p("/notes.txt")).await.unwrap());

    // dropped without shutdown: the pool's and the sandboxes' own clean-up
    drop((bob, carol));
    registry.shutdown().await;
    drop(registry);
    assert_eq!(guard.wait_for_containers(0).await, 0, "nothing left");
}

/// Without the runner, the reset runs as a fresh `docker exec`: it must
/// still spare the container's main process (or the container would
/// stop) while killing everything the user left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_through_a_fresh_exec_keeps_the_container() {
    let client = require_docker!();
    let guard = Guard::new("exec-reset");
    let pool = Pool::new(
        DockerFactory::new(client, guard.config().with_runner(false)),
        PoolConfig::default().with_max_size(1),
    )
    .unwrap();
    let a = pool.acquire().await.unwrap();
    let id = a.container_id().to_owned();
    sh(
        &*a,
        "setsid sleep 602 & \
         i=0; until ps -o args | grep -q '^sleep 602'; do \
           i=$((i + 1)); [ $i -gt 200 ] && exit 1; sleep 0.05; done",
    )
    .await;
    assert_eq!(a.release().await, Recycled::Returned);
    let b = pool.acquire().await.unwrap();
    assert_eq!(b.container_id(), id, "the container survived its reset");
    let ps = sh(&*b, "ps -o args").await;
    assert!(!ps.contains("sleep 602"), "A's process survived: {ps}");
    drop(b);
    pool.shutdown().await;
    assert_eq!(guard.wait_for_containers(0).await, 0);
}
