//! Pooled containers against a real Docker daemon: every user gets a
//! container nobody used before, so nothing of the previous user
//! (processes, files with any name, `/tmp`, `/dev/shm`, message queues,
//! per-uid budgets) reaches them; a container that died is removed; and
//! nothing is left after shutdown.
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
use sandbay_pool::{DockerFactory, Pool, PoolConfig, Registry, RegistryConfig};
use sandbay_testkit::skip::in_ci;

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

    /// Whether container `id` is gone within 20 s (a `docker rm -f` can
    /// race the daemon's own auto-remove, which then finishes the removal).
    async fn gone(&self, id: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if !self.containers().iter().any(|c| c.starts_with(id)) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
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

/// What user A leaves behind: processes that left their command's
/// process group (`setsid`), one that ignores hang-ups (`nohup`'s
/// effect; busybox has no `nohup`), one stopped; files whose names are
/// not valid paths of the file API (newline, byte 0xFF, backslash,
/// control character) in the workspace and `/tmp`, a `chmod 000`
/// directory; `/dev/shm` filled to its size; POSIX message queues up to
/// the uid's `RLIMIT_MSGQUEUE`. Prints the message queues it made and the
/// KiB it wrote to `/dev/shm`.
const LEAVE_EVERYTHING: &str = r#"
set -e
cd /workspace
for d in /workspace /tmp; do
  touch "$d/$(printf 'a\nb')" "$d/$(printf 'x\377y')" "$d/back\\slash" "$d/-rf" "$d/ lead" "$d/.hidden"
  mkdir -p "$d/$(printf 'dir\001')" && echo "A's secret" > "$d/$(printf 'dir\001')/secret"
done
mkdir -p locked/inner && echo A > locked/inner/f && chmod 000 locked
set +e
setsid sleep 601 &
setsid sh -c 'trap "" HUP; exec sleep 602' &
setsid sh -c 'kill -STOP $$; exec sleep 603' &
i=0
until ps -o args | grep -q '^sleep 601' && ps -o args | grep -q '^sleep 602' \
      && ps -o stat,args | grep -q '^T *sh -c kill'; do
  i=$((i + 1)); [ $i -gt 200 ] && { echo 'the leftovers did not start' >&2; exit 1; }
  sleep 0.05
done
q=0
while [ $q -lt 64 ] && touch /dev/mqueue/a-queue-$q 2>/dev/null; do q=$((q + 1)); done
echo "queues=$q"
dd if=/dev/zero of=/dev/shm/a-fill bs=64k 2>/dev/null
echo A > /dev/shm/a-note
echo "shm_kib=$(du -k /dev/shm/a-fill | cut -f1)"
"#;

/// The `key=value` lines of a command's output.
fn field(out: &str, key: &str) -> u64 {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key}= in {out:?}"))
}

/// A freestanding x86-64 program (raw syscalls, no libc, so it runs in
/// any image): opens inotify instances until the kernel refuses, prints
/// how many, and holds them until killed. Busybox has no inotify tool.
const INOTIFY_HOLDER_C: &str = r#"
static long sys3(long n, long a, long b, long c) {
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return r;
}
void _start(void) {
    long n = 0;
    while (n < 100000 && sys3(294, 0, 0, 0) >= 0) n++; /* inotify_init1(0) */
    char buf[24];
    int i = 23;
    buf[i] = '\n';
    long v = n;
    do { buf[--i] = (char)('0' + v % 10); v /= 10; } while (v);
    sys3(1, 1, (long)(buf + i), 24 - i); /* write(1, ...) */
    for (;;) sys3(34, 0, 0, 0); /* pause() */
}
"#;

/// [`INOTIFY_HOLDER_C`] built with the host's C compiler (`cc`, the
/// linker Rust uses here), or `None` (skipped, failing under CI) when it
/// cannot be built or this is not x86-64.
fn inotify_holder(dir: &std::path::Path) -> Option<Vec<u8>> {
    if !cfg!(target_arch = "x86_64") {
        assert!(!in_ci(), "CI=true: the inotify holder is x86-64 only");
        eprintln!("skipped: the inotify part (the holder is x86-64 only)");
        return None;
    }
    let src = dir.join("inotify-holder.c");
    let bin = dir.join("inotify-holder");
    std::fs::write(&src, INOTIFY_HOLDER_C).unwrap();
    let built = Command::new("cc")
        .args(["-static", "-nostdlib", "-O2", "-fno-stack-protector", "-o"])
        .arg(&bin)
        .arg(&src)
        .output();
    match built {
        Ok(out) if out.status.success() => Some(std::fs::read(&bin).unwrap()),
        other => {
            assert!(
                !in_ci(),
                "CI=true but the inotify holder does not build: {other:?}"
            );
            eprintln!("skipped: the inotify part (no C compiler: {other:?})");
            None
        }
    }
}

/// Starts the inotify holder in `sandbox` (from the workspace: `/tmp` is
/// mounted `noexec`) as a process that outlives its command, and returns
/// how many instances it got.
async fn hold_inotify(sandbox: &impl Sandbox, holder: &[u8]) -> u64 {
    sandbox
        .write_bytes(&p("/.holder"), holder.to_vec())
        .await
        .unwrap();
    let out = sh(
        sandbox,
        "chmod 755 /workspace/.holder && \
         setsid /workspace/.holder > /tmp/inotify-count 2>&1 & \
         i=0; until [ -s /tmp/inotify-count ]; do \
           i=$((i + 1)); [ $i -gt 200 ] && exit 1; sleep 0.05; done; echo inotify=$(cat /tmp/inotify-count)",
    )
    .await;
    field(&out, "inotify")
}

/// The issue's scenario: two users through a pool of one place. B gets a
/// container nobody used, sees none of A's leftovers, and gets the same
/// budgets A had (the uid's inotify instances and message queues,
/// `/dev/shm`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_users_through_one_place_share_nothing() {
    let client = require_docker!();
    let guard = Guard::new("two-users");
    let holder = inotify_holder(guard.base.path());
    let pool = Pool::new(
        DockerFactory::new(client, guard.config()),
        PoolConfig::default().with_max_size(1).with_min_idle(1),
    )
    .unwrap();
    pool.warm().await.unwrap();
    assert_eq!(guard.containers().len(), 1, "warmed ahead of need");

    let a = pool.acquire().await.unwrap();
    assert_eq!(pool.status().warm_acquires, 1, "served warm");
    let a_id = a.container_id().to_owned();
    a.write(&p("/secret.txt"), "A's secret").await.unwrap();
    let left = sh(&*a, LEAVE_EVERYTHING).await;
    let (a_queues, a_shm) = (field(&left, "queues"), field(&left, "shm_kib"));
    assert!(a_queues > 0, "A made no message queue: {left}");
    assert!(a_shm > 0, "A wrote nothing to /dev/shm: {left}");
    // A holds every inotify instance the uid has left
    let a_inotify = match &holder {
        Some(holder) => {
            let got = hold_inotify(&*a, holder).await;
            assert!(got > 0, "A got no inotify instance");
            Some(got)
        }
        None => None,
    };
    // the script waited until its setsid, hang-up-immune and stopped
    // escapees ran; the agent kills them when the command ends
    let ps = sh(&*a, "ps -o stat,args").await;
    for leftover in ["sleep 601", "sleep 602", "kill -STOP"] {
        assert!(
            !ps.contains(leftover),
            "A's escapee outlived its command: {ps}"
        );
    }
    a.release().await;
    assert!(
        guard.gone(&a_id).await,
        "A's container is removed when the lease ends"
    );

    let b = pool.acquire().await.unwrap();
    assert_ne!(b.container_id(), a_id, "B gets a fresh container");
    assert_eq!(guard.containers().len(), 1, "max_size 1 holds");
    assert!(b.ls(&VPath::root()).await.unwrap().is_empty(), "no files");
    assert!(!b.exists(&p("/secret.txt")).await.unwrap());
    let ps = sh(&*b, "ps -o stat,args").await;
    for leftover in ["sleep 60", "kill -STOP", "\nT "] {
        assert!(!ps.contains(leftover), "A's processes reached B: {ps}");
    }
    // names the file API cannot express are checked with the shell
    for dir in ["/workspace", "/tmp", "/dev/shm", "/dev/mqueue"] {
        let seen = sh(&*b, &format!("find {dir} -mindepth 1 | wc -l")).await;
        assert_eq!(seen.trim(), "0", "{dir} is not empty for B");
    }
    let budgets = sh(
        &*b,
        "q=0; while [ $q -lt 64 ] && touch /dev/mqueue/b-queue-$q 2>/dev/null; do q=$((q + 1)); done; \
         echo queues=$q; dd if=/dev/zero of=/dev/shm/b-fill bs=64k 2>/dev/null; \
         echo shm_kib=$(du -k /dev/shm/b-fill | cut -f1)",
    )
    .await;
    eprintln!("A: {a_queues} message queues, {a_shm} KiB of /dev/shm; B: {budgets:?}");
    assert!(
        field(&budgets, "queues") >= a_queues,
        "B's message-queue budget is smaller than A's ({a_queues}): {budgets}"
    );
    assert_eq!(
        field(&budgets, "shm_kib"),
        a_shm,
        "B's /dev/shm is not A's full size: {budgets}"
    );
    if let (Some(holder), Some(a_inotify)) = (&holder, a_inotify) {
        let b_inotify = hold_inotify(&*b, holder).await;
        eprintln!("inotify instances: A {a_inotify}, B {b_inotify}");
        assert!(
            b_inotify >= a_inotify,
            "B got {b_inotify} inotify instances, A had {a_inotify}: A's are not all gone"
        );
    }
    drop(b);
    pool.shutdown().await;
    assert_eq!(guard.wait_for_containers(0).await, 0, "nothing left");
    let status = pool.status();
    assert_eq!((status.created, status.destroyed), (2, 2), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_that_died_is_removed_and_a_fresh_one_served() {
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
    a.release().await;
    // the daemon may already be removing it (auto-remove on exit): the
    // removal then finishes on the daemon's side
    assert_eq!(
        guard.wait_for_containers(0).await,
        0,
        "the dead one is removed"
    );

    let b = pool.acquire().await.unwrap();
    assert_ne!(b.container_id(), id);
    assert_eq!(sh(&*b, "echo alive").await, "alive\n");
    drop(b);
    pool.shutdown().await;
    assert_eq!(guard.wait_for_containers(0).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_keep_their_own_containers_and_nothing_leaks() {
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
        registry.pool().status().warm_acquires,
        2,
        "both came from the warm pool"
    );

    // alice leaves: her container is removed, carol gets a fresh one
    let alice_id = alice.container_id().to_owned();
    registry.release("alice");
    drop((alice, again));
    let carol = registry.get("carol").await.unwrap();
    assert_ne!(carol.container_id(), alice_id);
    assert!(!carol.exists(&p("/notes.txt")).await.unwrap());
    assert!(guard.gone(&alice_id).await, "alice's container is gone");
    // and alice, back, gets a fresh one too (carol and bob hold both places)
    drop(carol);
    registry.release("carol");
    let back = registry.get("alice").await.unwrap();
    assert_ne!(back.container_id(), alice_id);
    assert!(!back.exists(&p("/notes.txt")).await.unwrap());

    drop((bob, back));
    registry.shutdown().await;
    drop(registry);
    assert_eq!(guard.wait_for_containers(0).await, 0, "nothing left");
}

mod common;

/// Slots and workspaces of one test under a temporary base: unmounts
/// whatever is mounted below it (deepest first) when dropped, even when
/// the test fails, then the directory goes.
struct Mounts(tempfile::TempDir);

impl Mounts {
    fn new() -> Mounts {
        Mounts(
            tempfile::Builder::new()
                .prefix("sandbay-pool-storage-test-")
                .tempdir()
                .unwrap(),
        )
    }

    fn path(&self) -> &std::path::Path {
        self.0.path()
    }
}

impl Drop for Mounts {
    fn drop(&mut self) {
        sandbay_testkit::mounts::unmount_below(self.path());
    }
}

/// Runs the storage story (release, idle and LRU eviction keep files,
/// fresh containers each time, `remove` deletes) on containers with
/// `mode`; returns the store's base for further checks.
async fn docker_storage_story(
    client: DockerClient,
    guard: &Guard,
    mode: sandbay_docker::AttachMode,
) {
    use sandbay_docker::WorkspaceSlots;
    use sandbay_pool::{DockerStorage, WarmDockerFactory};
    let mounts = Mounts::new();
    let slots = match mode {
        sandbay_docker::AttachMode::Mount => {
            let (slots, _) = WorkspaceSlots::prepare(&client, &mounts.path().join("slots"))
                .await
                .unwrap();
            slots
        }
        sandbay_docker::AttachMode::Cold => {
            WorkspaceSlots::without_mounts(&mounts.path().join("slots")).unwrap()
        }
    };
    assert_eq!(slots.mode(), mode);
    let store = sandbay_fs::WorkspaceStore::open(
        mounts.path().join("workspaces"),
        sandbay_fs::FsConfig::default(),
    )
    .await
    .unwrap();
    let factory = WarmDockerFactory::new(client, guard.config(), slots);
    let pool = Pool::new(
        factory,
        PoolConfig::default()
            .with_max_size(2)
            .with_acquire_timeout(Duration::from_secs(60)),
    )
    .unwrap();
    let registry = Registry::with_storage(
        pool,
        DockerStorage::new(store.clone()),
        RegistryConfig::default().with_idle_timeout(Duration::from_millis(50)),
    );
    common::compute_ends_storage_stays(registry, |w| &***w).await;
    assert_eq!(
        guard.wait_for_containers(0).await,
        0,
        "every container is gone after shutdown"
    );
    // the files stay on the host, listed by a store opened afresh
    drop(store);
    let store = sandbay_fs::WorkspaceStore::open(
        mounts.path().join("workspaces"),
        sandbay_fs::FsConfig::default(),
    )
    .await
    .unwrap();
    let bob = store.attach("bob", "s1").await.unwrap();
    assert_eq!(
        bob.backend()
            .read_to_string(&p("/notes.txt"))
            .await
            .unwrap(),
        "bob's\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_containers_attach_workspaces_that_outlive_them() {
    let client = require_docker!();
    if !sandbay_testkit::skip::require(if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err("attaching workspaces by mount needs root".to_string())
    }) {
        return;
    }
    let guard = Guard::new("storage-mount");
    docker_storage_story(client, &guard, sandbay_docker::AttachMode::Mount).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_containers_keep_workspaces_that_outlive_them() {
    let client = require_docker!();
    let guard = Guard::new("storage-cold");
    docker_storage_story(client, &guard, sandbay_docker::AttachMode::Cold).await;
}

/// A Docker workspace's quota (an image mounted onto the slot) holds for
/// commands and file operations, shows in `df`, and holds again in the
/// next container; deleting makes room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_workspace_quotas_hold_in_every_container() {
    use sandbay_docker::WorkspaceSlots;
    use sandbay_pool::{DockerStorage, WarmDockerFactory};
    let client = require_docker!();
    if !sandbay_testkit::skip::require(if sandbay_fs::host_can_mount() {
        Ok(())
    } else {
        Err("quota images need root, loop devices and mkfs.ext4")
    }) {
        return;
    }
    let guard = Guard::new("storage-quota");
    let mounts = Mounts::new();
    let (slots, _) = WorkspaceSlots::prepare(&client, &mounts.path().join("slots"))
        .await
        .unwrap();
    let quota = sandbay_fs::Quota::new(8 << 20, 256);
    let store = sandbay_fs::WorkspaceStore::open(
        mounts.path().join("workspaces"),
        sandbay_fs::FsConfig::default().with_quota(quota),
    )
    .await
    .unwrap();
    let pool = Pool::new(
        WarmDockerFactory::new(client, guard.config(), slots),
        PoolConfig::default().with_max_size(1),
    )
    .unwrap();
    let registry =
        Registry::with_storage(pool, DockerStorage::new(store), RegistryConfig::default());
    for round in 0..2 {
        let ws = registry.session("alice", "s1").await.unwrap();
        let out = ws
            .execute(ExecRequest::new(
                "dd if=/dev/zero of=big bs=1M count=32 2>&1; echo; df -k . | tail -n 1",
            ))
            .await
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(said.contains("No space left"), "round {round}: {said}");
        let size_kib: u64 = said
            .lines()
            .last()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(u64::MAX);
        assert!(
            size_kib <= 8 << 10,
            "round {round}: df shows {size_kib} KiB: {said}"
        );
        let err = ws
            .write(&p("/api.txt"), &"x".repeat(1 << 20))
            .await
            .unwrap_err();
        assert_eq!(
            err.code().as_str(),
            "quota_exceeded",
            "round {round}: {err}"
        );
        let out = ws.execute(ExecRequest::new("rm big")).await.unwrap();
        assert_eq!(out.exit_code, Some(0), "{out:?}");
        ws.write(&p("/small.txt"), "fits\n").await.unwrap();
        drop(ws);
        assert!(registry.release_session("alice", "s1"));
        registry.detached().await;
    }
    registry.shutdown().await;
}
