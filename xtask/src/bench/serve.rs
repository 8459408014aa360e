//! `cargo xtask bench serve`: the HTTP service, server and clients in
//! this process on loopback (the client's cost is included, as a caller on
//! this machine would see it): read_file throughput on the embedded
//! default, the first command of a new user's new session on each backend
//! (state, fs, and docker when a daemon and the test image are here),
//! memory per idle session, and ten users' latency while one floods with
//! searches over large files.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Client;
use sandbay_server::{BackendChoice, KeyStore, Server, ServerConfig, ServerLimits};
use serde_json::json;

use super::{Report, Stats};

const USERS: usize = 100;
const CALLS: usize = 100;
/// Requests in progress per user in these runs.
const BENCH_CONCURRENT: usize = 64;

fn percentile(samples: &mut [Duration], q: f64) -> f64 {
    samples.sort_unstable();
    if samples.is_empty() {
        return 0.0;
    }
    let i = ((samples.len() - 1) as f64 * q).round() as usize;
    samples[i].as_secs_f64() * 1e6
}

/// Resident memory of this process in bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

struct Running {
    base: String,
    _dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
    server: Server,
}

async fn start(users: usize) -> Running {
    start_on(users, |_| BackendChoice::State).await
}

/// A server on `backend` (given the data directory) with `users` keys.
async fn start_on(
    users: usize,
    backend: impl FnOnce(&std::path::Path) -> BackendChoice,
) -> Running {
    let dir = tempfile::Builder::new()
        .prefix("sandbay-bench-serve-")
        .tempdir()
        .expect("temp dir");
    let mut keys = KeyStore::default().with_admin_key(Some("bench-admin"));
    for u in 0..users {
        keys.insert(&format!("user{u}"), &format!("sbk_bench-{u}"));
    }
    let mut config = ServerConfig {
        backend: backend(dir.path()),
        data: dir.path().to_path_buf(),
        limits: ServerLimits {
            sessions_total: 100_000,
            concurrent_per_user: BENCH_CONCURRENT,
            ..ServerLimits::default()
        },
        ..ServerConfig::default()
    };
    // the local test image: no registry is needed
    config.docker.image = crate::docker_image::IMAGE.into();
    config.docker.owner = "bench".into();
    let server = Server::open_with_keys(config, keys).await.expect("server");
    let stopper = server.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let task = tokio::spawn(async move {
        let _ = server.serve(listener, std::future::pending()).await;
    });
    Running {
        base,
        _dir: dir,
        task,
        server: stopper,
    }
}

impl Running {
    /// Stops serving and ends every session's compute (containers too).
    async fn stop(self) {
        self.task.abort();
        let _ = self.server.shutdown().await;
    }
}

fn key(u: usize) -> String {
    format!("sbk_bench-{u}")
}

async fn prepare(client: &Client, base: &str, u: usize) {
    let k = key(u);
    client
        .put(format!("{base}/v1/sessions/work"))
        .bearer_auth(&k)
        .send()
        .await
        .expect("session");
    let text: String = (0..100)
        .map(|l| format!("line {l} of user {u}\n"))
        .collect();
    client
        .put(format!("{base}/v1/sessions/work/files/notes.txt"))
        .bearer_auth(&k)
        .body(text)
        .send()
        .await
        .expect("file");
}

/// `n` read_file calls of user `u` on its own keep-alive connection.
async fn reads(base: String, u: usize, n: usize) -> Vec<Duration> {
    let client = Client::new();
    let url = format!("{base}/v1/sessions/work/tools/read_file");
    let k = key(u);
    let body = json!({"file_path": "/notes.txt", "limit": 20});
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        let resp = client
            .post(&url)
            .bearer_auth(&k)
            .json(&body)
            .send()
            .await
            .expect("call");
        assert!(resp.status().is_success(), "{}", resp.status());
        let _ = resp.bytes().await.expect("body");
        samples.push(start.elapsed());
    }
    samples
}

pub(crate) async fn run(report: &mut Report) {
    let s = start(USERS + 1).await;
    let setup = Client::new();
    for u in 0..=USERS {
        prepare(&setup, &s.base, u).await;
    }

    // 100 users x 100 read_file calls, all users at once
    let wall = Instant::now();
    let tasks: Vec<_> = (0..USERS)
        .map(|u| tokio::spawn(reads(s.base.clone(), u, CALLS)))
        .collect();
    let mut samples = Vec::new();
    for t in tasks {
        samples.extend(t.await.expect("task"));
    }
    let wall = wall.elapsed();
    let p99 = percentile(&mut samples, 0.99);
    report.add(
        "serve",
        "state (embedded)",
        "read_file, 100 users x 100",
        Stats::from_samples(samples, wall),
        &format!("keep-alive, client in process; p99 {p99:.0} µs"),
    );

    // time to first command, per backend: a new user's new session (its
    // jail or container made on the way), PUT then exec `echo ok`
    first_command(report, "state (embedded)", 50, |_| BackendChoice::State).await;
    first_command(report, "fs", 50, |dir| {
        BackendChoice::Fs(dir.join("workspaces"))
    })
    .await;
    let docker = sandbay_testkit::docker::check(sandbay_testkit::docker::TEST_IMAGE);
    match docker {
        Ok(()) => first_command(report, "docker", 20, |_| BackendChoice::Docker).await,
        Err(e) => println!("bench serve: docker first command skipped: {e}"),
    }

    // one user floods while 10 others work: their p99 against idle
    let quiet = |base: String| async move {
        let tasks: Vec<_> = (0..10)
            .map(|u| tokio::spawn(reads(base.clone(), u, 100)))
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.expect("task"));
        }
        all
    };
    // the flooder's session: 4 files of 8 MiB, so each grep is real work
    let line = "the quick brown fox jumps over the lazy dog 0123456789 abcdefghij\n";
    let big = line.repeat((8 << 20) / line.len());
    for f in 0..4 {
        setup
            .put(format!("{}/v1/sessions/work/files/big{f}.txt", s.base))
            .bearer_auth(key(USERS))
            .body(big.clone())
            .send()
            .await
            .expect("big file");
    }
    let mut idle = quiet(s.base.clone()).await;
    let idle_p99 = percentile(&mut idle, 0.99);
    let flooding = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flood: Vec<_> = (0..32)
        .map(|_| {
            let base = s.base.clone();
            let on = flooding.clone();
            tokio::spawn(async move {
                let client = Client::new();
                let mut n = 0u64;
                while on.load(std::sync::atomic::Ordering::Relaxed) {
                    let r = client
                        .post(format!("{base}/v1/sessions/work/tools/grep"))
                        .bearer_auth(key(USERS))
                        .json(&json!({"pattern": "fox [0-9]+ z", "output_mode": "count"}))
                        .send()
                        .await;
                    if let Ok(r) = r {
                        let _ = r.bytes().await;
                    }
                    n += 1;
                }
                n
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let wall = Instant::now();
    let mut loaded = quiet(s.base.clone()).await;
    let wall = wall.elapsed();
    flooding.store(false, std::sync::atomic::Ordering::Relaxed);
    let mut flood_calls = 0;
    for f in flood {
        flood_calls += f.await.unwrap_or(0);
    }
    let loaded_p99 = percentile(&mut loaded, 0.99);
    report.add(
        "serve",
        "state (embedded)",
        "10 users' read_file while 1 floods",
        Stats::from_samples(loaded, wall),
        &format!(
            "p99 {loaded_p99:.0} µs vs {idle_p99:.0} µs idle ({:.2}x); the flooder made {flood_calls} grep calls over 32 MiB, 32 connections, {} admitted at once, {} searching at once",
            loaded_p99 / idle_p99.max(1.0),
            32.min(BENCH_CONCURRENT),
            ServerLimits::default().searches_per_user,
        ),
    );
    s.stop().await;

    // memory per idle session of 10 small files
    let m = start(1).await;
    let client = Client::new();
    let k = key(0);
    let before = rss();
    let sessions = 1000;
    for i in 0..sessions {
        client
            .put(format!("{}/v1/sessions/idle{i}", m.base))
            .bearer_auth(&k)
            .send()
            .await
            .expect("session");
        for f in 0..10 {
            client
                .put(format!("{}/v1/sessions/idle{i}/files/f{f}.txt", m.base))
                .bearer_auth(&k)
                .body(format!("small file {f} of session {i}\n"))
                .send()
                .await
                .expect("file");
        }
    }
    let loaded = rss().saturating_sub(before);
    client
        .post(format!("{}/v1/admin/evict", m.base))
        .bearer_auth("bench-admin")
        .send()
        .await
        .expect("evict");
    let evicted = rss().saturating_sub(before);
    let per = Stats {
        count: sessions,
        ops_per_sec: 0.0,
        p50_us: 0.0,
        p95_us: 0.0,
        p99_us: 0.0,
    };
    report.add(
        "serve",
        "state (embedded)",
        "memory per idle session",
        per,
        &format!(
            "10 small files each: {:.1} KiB loaded, {:.1} KiB after evict (RSS growth / {sessions}; freed memory may stay with the allocator)",
            loaded as f64 / 1024.0 / sessions as f64,
            evicted as f64 / 1024.0 / sessions as f64
        ),
    );
    m.stop().await;
}

/// `n` new users each make a session and run `echo ok` in it.
async fn first_command(
    report: &mut Report,
    backend_label: &str,
    n: usize,
    backend: impl FnOnce(&std::path::Path) -> BackendChoice,
) {
    let s = start_on(n + 1, backend).await;
    let client = Client::new();
    let mut first = Vec::new();
    // Docker: one untimed session first connects to the daemon and starts
    // the warm pool; each user then comes after a pause in which the pool
    // refills, as users arriving apart would find it
    let pause = (backend_label == "docker").then_some(Duration::from_millis(800));
    if pause.is_some() {
        let k = key(n);
        let made = client
            .put(format!("{}/v1/sessions/fresh", s.base))
            .bearer_auth(&k)
            .send()
            .await
            .expect("session");
        assert!(made.status().is_success(), "{}", made.status());
        client
            .post(format!("{}/v1/sessions/fresh/exec", s.base))
            .bearer_auth(&k)
            .json(&json!({"command": "true"}))
            .send()
            .await
            .expect("exec");
    }
    let wall = Instant::now();
    for u in 0..n {
        if let Some(pause) = pause {
            tokio::time::sleep(pause).await;
        }
        let k = key(u);
        let start = Instant::now();
        client
            .put(format!("{}/v1/sessions/fresh", s.base))
            .bearer_auth(&k)
            .send()
            .await
            .expect("session");
        let out: serde_json::Value = client
            .post(format!("{}/v1/sessions/fresh/exec", s.base))
            .bearer_auth(&k)
            .json(&json!({"command": "echo ok"}))
            .send()
            .await
            .expect("exec")
            .json()
            .await
            .expect("json");
        first.push(start.elapsed());
        if out["stdout"] != "ok\n" {
            println!(
                "bench serve: no command ran on {backend_label} ({out}); its first-command row is left out"
            );
            first.clear();
            break;
        }
    }
    let wall = wall.elapsed();
    s.stop().await;
    if first.is_empty() {
        return;
    }
    let p99 = percentile(&mut first, 0.99);
    report.add(
        "serve",
        backend_label,
        "new session to first command",
        Stats::from_samples(first, wall),
        &match pause {
            Some(pause) => format!("a new user: PUT session + exec `echo ok` on a warm container (users {} ms apart, the pool refilling); p99 {p99:.0} µs", pause.as_millis()),
            None => format!("a new user: PUT session + exec `echo ok`, its jail made on the way; p99 {p99:.0} µs"),
        },
    );
}
