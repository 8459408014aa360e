//! Storage that outlives compute: resume latency (an evicted session to
//! its first command), the cost of the fs `fsync` policy, and the cost of
//! state persistence on the W1 file workload.
//!
//! * `resume`: a session with 100 files of 4 KB is evicted (its jail
//!   destroyed, its workspace detached: state unloads it to disk, fs
//!   records it), then taken again and runs `true`; the time from the
//!   registry call to the command's end, 200 times. The jail pool keeps
//!   one fresh jail ready (`min_idle` 1), as a service would. On Docker
//!   (as root, with a daemon and the test image) the same with a warm
//!   container: the workspace is mounted onto its slot, then `true` runs;
//!   40 times.
//! * `W1 writes`: 1,000 files of 4 KB written, edited and read (the W1
//!   file workload's changing half) on in-memory state and durable state
//!   at the default 1 s window and at `EveryWrite`; on fs without and with
//!   `sync_writes`. The note gives the overhead against the baseline.
//! * `10,000 saved sessions`: a store with 10,000 persisted sessions of one
//!   file each is opened (sessions load on first access, so opening reads
//!   no session), then every session is loaded and its file read; the
//!   samples are the per-session first reads, the note gives the open time
//!   and the total.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sandbay_core::{Backend, BackendExt, EditRequest, ExecRequest, ReadRequest, Sandbox, VPath};
use sandbay_exec::{Jail, JailConfig};
use sandbay_pool::{
    FsStorage, JailFactory, Pool, PoolConfig, Registry, RegistryConfig, StateStorage, Storage,
};

use super::{Report, Stats};

const FILES: usize = 1000;
const RESUMES: usize = 200;

fn path(i: usize) -> VPath {
    VPath::parse(&format!("/pkg{}/mod{}/file{i}.py", i % 10, (i / 10) % 10)).expect("valid")
}

fn content(i: usize) -> String {
    (0..100)
        .map(|line| match line {
            10 => format!("    marker = \"UNIQUE_{i}\"  # edited by the benchmark\n"),
            _ => format!("    value_{line} = compute({line}, {i})  # filler text\n"),
        })
        .collect()
}

async fn resume<S>(report: &mut Report, subject: &str, storage: S)
where
    S: Storage<JailFactory>,
    S::Workspace: std::ops::Deref,
    <S::Workspace as std::ops::Deref>::Target: Sandbox,
{
    let pool = Pool::new(
        JailFactory::new(JailConfig::new(Jail::probe())),
        PoolConfig::default().with_max_size(4).with_min_idle(1),
    )
    .expect("pool");
    pool.warm().await.expect("warm jails");
    let registry = Registry::with_storage(pool, storage, RegistryConfig::default());
    {
        let ws = registry.session("bench", "s").await.expect("session");
        for i in 0..100 {
            ws.write(&path(i), &content(i)).await.expect("seed");
        }
    }
    let mut samples = Vec::with_capacity(RESUMES);
    let wall = Instant::now();
    for _ in 0..RESUMES {
        registry.release_session("bench", "s");
        registry.detached().await;
        // a fresh jail is ready again before the clock starts
        while registry.pool().status().idle == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let start = Instant::now();
        let ws = registry.session("bench", "s").await.expect("resume");
        let out = ws.execute(ExecRequest::new("true")).await.expect("command");
        samples.push(start.elapsed());
        assert_eq!(out.exit_code, Some(0));
    }
    report.add(
        "storage",
        subject,
        "resume: evicted -> first command",
        Stats::from_samples(samples, wall.elapsed()),
        "100 files of 4 KB; warm jail pool; registry.session + execute(true)",
    );
    registry.shutdown().await;
}

/// Writes, edits and reads the 1,000 files; returns the wall time.
async fn w1(backend: &dyn Backend) -> Duration {
    let start = Instant::now();
    for i in 0..FILES {
        backend.write(&path(i), &content(i)).await.expect("write");
    }
    for i in 0..FILES {
        backend
            .edit(
                &path(i),
                &EditRequest {
                    old: format!("UNIQUE_{i}\""),
                    new: format!("EDITED_{i}\""),
                    replace_all: false,
                },
            )
            .await
            .expect("edit");
    }
    for i in 0..FILES {
        backend
            .read(&path(i), ReadRequest::default())
            .await
            .expect("read");
    }
    start.elapsed()
}

/// Median of five runs of W1 on fresh backends from `make`.
async fn median_w1<F, Fut>(mut make: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = (Arc<dyn Backend>, Box<dyn std::any::Any>)>,
{
    let mut runs = Vec::new();
    for _ in 0..5 {
        let (backend, keep) = make().await;
        runs.push(w1(backend.as_ref()).await);
        drop(backend);
        drop(keep);
    }
    runs.sort();
    runs[2]
}

fn add_w1(report: &mut Report, subject: &str, took: Duration, base: Duration, what: &str) {
    let ops = FILES * 3;
    let overhead = (took.as_secs_f64() / base.as_secs_f64() - 1.0) * 100.0;
    report.add(
        "storage",
        subject,
        "W1 writes (write+edit+read 1,000 files)",
        Stats {
            count: ops,
            ops_per_sec: ops as f64 / took.as_secs_f64(),
            p50_us: took.as_secs_f64() * 1e6 / ops as f64,
            p95_us: 0.0,
            p99_us: 0.0,
        },
        &format!("median of 5; p50 = mean per op; {overhead:+.1}% against {what}"),
    );
}

pub(crate) async fn run(report: &mut Report) {
    // resume latency
    let dir = tempfile::Builder::new()
        .prefix("sandbay-bench-storage-")
        .tempdir()
        .expect("temp dir");
    let store = sandbay_state::StateStore::open(
        Default::default(),
        sandbay_state::Durability::new(dir.path().join("state")),
    )
    .expect("state store");
    resume(
        report,
        "state (durable, 1 s window)",
        StateStorage::new(Arc::new(store)),
    )
    .await;
    let store = sandbay_fs::WorkspaceStore::open(dir.path().join("fs"), Default::default())
        .await
        .expect("workspace store");
    resume(report, "fs", FsStorage::new(store)).await;
    resume_docker(report, dir.path()).await;

    saved_sessions(report).await;

    // state persistence overhead
    let memory = median_w1(|| async {
        let b: Arc<dyn Backend> = Arc::new(sandbay_state::StateBackend::default());
        (b, Box::new(()) as Box<dyn std::any::Any>)
    })
    .await;
    add_w1(report, "state (in memory)", memory, memory, "itself");
    for (subject, policy) in [
        (
            "state (durable, 1 s window)",
            sandbay_state::WriteBehind::default(),
        ),
        (
            "state (durable, every write)",
            sandbay_state::WriteBehind::EveryWrite,
        ),
    ] {
        let took = median_w1(|| async move {
            let dir = tempfile::Builder::new()
                .prefix("sandbay-bench-w1-")
                .tempdir()
                .expect("temp dir");
            let store = sandbay_state::StateStore::open(
                Default::default(),
                sandbay_state::Durability::new(dir.path()).write_behind(policy),
            )
            .expect("store");
            let b: Arc<dyn Backend> = store.session("bench", "w1");
            (b, Box::new((store, dir)) as Box<dyn std::any::Any>)
        })
        .await;
        add_w1(report, subject, took, memory, "state in memory");
    }

    // the fs fsync policy
    let fs = |sync: bool| async move {
        let dir = tempfile::Builder::new()
            .prefix("sandbay-bench-w1-")
            .tempdir()
            .expect("temp dir");
        let root = sandbay_fs::open_root(dir.path()).await.expect("root");
        let config = sandbay_fs::FsConfig::default().with_sync_writes(sync);
        let b: Arc<dyn Backend> = Arc::new(sandbay_fs::FsBackend::with_config(root, config));
        (b, Box::new(dir) as Box<dyn std::any::Any>)
    };
    let plain = median_w1(|| fs(false)).await;
    add_w1(report, "fs (default: no fsync)", plain, plain, "itself");
    let synced = median_w1(|| fs(true)).await;
    add_w1(
        report,
        "fs (sync_writes)",
        synced,
        plain,
        "fs without fsync",
    );
}

/// 10,000 persisted state sessions: the store's start-up, then the first
/// read of each session (which loads it from disk).
async fn saved_sessions(report: &mut Report) {
    const SESSIONS: usize = 10_000;
    let dir = tempfile::Builder::new()
        .prefix("sandbay-bench-saved-")
        .tempdir()
        .expect("temp dir");
    let durability = |policy| sandbay_state::Durability::new(dir.path()).write_behind(policy);
    let file = VPath::parse("/notes.txt").expect("valid");
    {
        let store = sandbay_state::StateStore::open(
            Default::default(),
            durability(sandbay_state::WriteBehind::Within(Duration::from_secs(
                3600,
            ))),
        )
        .expect("store");
        for i in 0..SESSIONS {
            store
                .session(&format!("user{}", i % 1000), &format!("s{i}"))
                .write(&file, &format!("session {i}\n"))
                .await
                .expect("seed");
        }
        store.flush().await.expect("flush");
    }
    let wall = Instant::now();
    let store = sandbay_state::StateStore::open(
        Default::default(),
        durability(sandbay_state::WriteBehind::default()),
    )
    .expect("store");
    let opened = wall.elapsed();
    let mut samples = Vec::with_capacity(SESSIONS);
    for i in 0..SESSIONS {
        let start = Instant::now();
        let session = store.session(&format!("user{}", i % 1000), &format!("s{i}"));
        let text = session.read_to_string(&file).await.expect("read back");
        samples.push(start.elapsed());
        assert_eq!(text, format!("session {i}\n"), "session {i} read back");
    }
    let wall = wall.elapsed();
    report.add(
        "storage",
        "state (durable)",
        "10,000 saved sessions: first read of each",
        Stats::from_samples(samples, wall),
        &format!(
            "store opened in {:.1} ms; all 10,000 loaded and read {:.0} ms after the open began",
            opened.as_secs_f64() * 1e3,
            wall.as_secs_f64() * 1e3
        ),
    );
}

/// The Docker row of `resume`: a warm pool of containers with slots, a
/// [`DockerStorage`](sandbay_pool::DockerStorage) over a workspace store.
async fn resume_docker(report: &mut Report, base: &std::path::Path) {
    use sandbay_docker::{AttachMode, DockerClient, DockerConfig, PullPolicy, WorkspaceSlots};
    use sandbay_pool::{DockerStorage, WarmDockerFactory};
    let skip = |why: &str| eprintln!("bench storage: docker resume skipped: {why}");
    let client = match DockerClient::connect().await {
        Ok(c) if c.ping().await.is_ok() => c,
        _ => return skip("no Docker daemon"),
    };
    let slots_dir = base.join("slots");
    let slots = match WorkspaceSlots::prepare(&client, &slots_dir).await {
        Ok((s, _)) if s.mode() == AttachMode::Mount => s,
        _ => return skip("workspaces cannot be mounted here (root and a local daemon needed)"),
    };
    let store = sandbay_fs::WorkspaceStore::open(base.join("docker"), Default::default())
        .await
        .expect("workspace store");
    let config = DockerConfig::default()
        .with_image(crate::docker_image::IMAGE)
        .with_owner("bench")
        .with_pull(PullPolicy::Never);
    let pool = Pool::new(
        WarmDockerFactory::new(client, config, slots),
        PoolConfig::default().with_max_size(4).with_min_idle(1),
    )
    .expect("pool");
    if let Err(e) = pool.warm().await {
        return skip(&format!("no warm container: {e}"));
    }
    let registry =
        Registry::with_storage(pool, DockerStorage::new(store), RegistryConfig::default());
    {
        let ws = registry.session("bench", "s").await.expect("session");
        for i in 0..100 {
            ws.write(&path(i), &content(i)).await.expect("seed");
        }
    }
    let runs = 40;
    let mut samples = Vec::with_capacity(runs);
    let wall = Instant::now();
    for _ in 0..runs {
        registry.release_session("bench", "s");
        registry.detached().await;
        while registry.pool().status().idle == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let start = Instant::now();
        let ws = registry.session("bench", "s").await.expect("resume");
        let out = ws.execute(ExecRequest::new("true")).await.expect("command");
        samples.push(start.elapsed());
        assert_eq!(out.exit_code, Some(0));
    }
    report.add(
        "storage",
        "docker (warm container, mount)",
        "resume: evicted -> first command",
        Stats::from_samples(samples, wall.elapsed()),
        "100 files of 4 KB; warm container pool; workspace mounted onto its slot; execute(true)",
    );
    registry.shutdown().await;
    registry.detached().await;
    let _ = std::process::Command::new("umount")
        .arg("-l")
        .arg(&slots_dir)
        .status();
}
