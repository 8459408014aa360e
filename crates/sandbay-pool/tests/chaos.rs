//! Chaos: several users run write -> evict -> resume cycles in a child
//! process that holds the registry (this test binary, run again as
//! `chaos_child`); the parent `kill -9`s it at random points and starts
//! it again. On every resume in the child, and after every kill in the
//! parent (a fresh store, as a restarted service opens it), a checksum
//! manifest of the acknowledged writes is verified: nothing lost on fs;
//! on state nothing older than the write-behind window (nothing at all
//! with `EveryWrite`). On Docker (warm containers, workspaces mounted
//! onto their slots; root, a daemon and the test image) as on fs: each
//! child starts by removing the containers and slot mounts a killed one
//! left, as a restarted service does.
//!
//! About 20 s per backend; `SANDBAY_CHAOS_SECS=<n>` runs each for `n`
//! seconds instead.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sandbay_core::{Backend, ExecRequest, Sandbox, VPath};
use sandbay_exec::{Jail, JailConfig};
use sandbay_fs::{FsConfig, WorkspaceStore};
use sandbay_pool::{
    FsStorage, JailFactory, Pool, PoolConfig, Registry, RegistryConfig, StateStorage, Storage,
};
use sandbay_state::{Durability, StateConfig, StateStore, WriteBehind};
use sha2::{Digest, Sha256};

const USERS: u64 = 4;
/// The state window under test, when not `EveryWrite`.
const WINDOW_MS: u64 = 200;
/// Scheduling slack on a loaded machine before a write older than the
/// window must be on disk.
const MARGIN_MS: u64 = 1500;

fn p(s: &str) -> VPath {
    VPath::parse(s).unwrap()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn sha(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// xorshift64*: enough randomness for a test, seeded for replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Fs,
    State { window_ms: u64 },
    Docker,
}

impl Kind {
    fn arg(self) -> String {
        match self {
            Kind::Fs => "fs".into(),
            Kind::Docker => "docker".into(),
            Kind::State { window_ms } => format!("state:{window_ms}"),
        }
    }
    fn parse(s: &str) -> Kind {
        match s.split_once(':') {
            Some(("state", ms)) => Kind::State {
                window_ms: ms.parse().unwrap(),
            },
            _ if s == "docker" => Kind::Docker,
            _ => Kind::Fs,
        }
    }
}

/// Workspaces are quota images where the host can mount them (root), so
/// kills leave mounted images for the next open to recover.
fn fs_config() -> FsConfig {
    if sandbay_fs::host_can_mount() {
        FsConfig::default().with_quota(sandbay_fs::Quota::new(32 << 20, 4096))
    } else {
        FsConfig::default()
    }
}

/// Unmounts whatever a test left mounted below `dir` (a killed child's
/// images, the parent's last verification), so the temporary directory
/// can go, also when the test fails.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let Ok(users) = std::fs::read_dir(&self.0) else {
            return;
        };
        for user in users.flatten() {
            let Ok(entries) = std::fs::read_dir(user.path()) else {
                continue;
            };
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().ends_with(".mnt") {
                    let _ = Command::new("umount")
                        .arg("-l")
                        .arg(entry.path())
                        .stderr(Stdio::null())
                        .status();
                }
            }
        }
    }
}

fn jails(max_size: usize) -> Pool<JailFactory> {
    Pool::new(
        JailFactory::new(JailConfig::new(Jail::probe())),
        PoolConfig::default()
            .with_max_size(max_size)
            .with_acquire_timeout(Duration::from_secs(30)),
    )
    .unwrap()
}

fn open_state(dir: &Path, window_ms: u64) -> StateStore {
    let policy = if window_ms == 0 {
        WriteBehind::EveryWrite
    } else {
        WriteBehind::Within(Duration::from_millis(window_ms))
    };
    StateStore::open(
        StateConfig::default(),
        Durability::new(dir).write_behind(policy),
    )
    .unwrap()
}

/// The child: cycles until killed. Prints `ack <user> <path> <sha> <ms>`
/// after each acknowledged write, `resume <verified> <lost>` after each
/// resume's check of its own acknowledged writes, `cycle` after each
/// eviction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the chaos test's child process, run by it"]
async fn chaos_child() {
    let dir = PathBuf::from(std::env::var("SANDBAY_CHAOS_DIR").expect("run by the chaos test"));
    let kind = Kind::parse(&std::env::var("SANDBAY_CHAOS_KIND").unwrap());
    let seed: u64 = std::env::var("SANDBAY_CHAOS_SEED")
        .unwrap()
        .parse()
        .unwrap();
    match kind {
        Kind::Fs => {
            let store = WorkspaceStore::open(&dir, fs_config()).await.unwrap();
            child_loop(
                jails(USERS as usize / 2),
                FsStorage::new(store),
                seed,
                |w| &**w,
            )
            .await;
        }
        Kind::State { window_ms } => {
            let store = Arc::new(open_state(&dir, window_ms));
            child_loop(
                jails(USERS as usize / 2),
                StateStorage::new(store),
                seed,
                |w| &**w,
            )
            .await;
        }
        Kind::Docker => {
            use sandbay_docker::{DockerClient, ReapOptions, ReapScope, WorkspaceSlots};
            let client = DockerClient::connect().await.unwrap();
            // what a killed predecessor left: its containers, its slot mounts
            sandbay_docker::reap_orphans(
                &client,
                &ReapOptions::default()
                    .with_label(CHAOS_LABEL, docker_label(&dir))
                    .with_scope(ReapScope::All),
            )
            .await
            .unwrap();
            let (slots, _) = WorkspaceSlots::prepare(&client, &slots_dir(&dir))
                .await
                .unwrap();
            let store = WorkspaceStore::open(&dir, fs_config()).await.unwrap();
            let config = sandbay_docker::DockerConfig::default()
                .with_image(sandbay_testkit::docker::TEST_IMAGE)
                .with_label(CHAOS_LABEL, docker_label(&dir));
            let pool = Pool::new(
                sandbay_pool::WarmDockerFactory::new(client, config, slots),
                PoolConfig::default()
                    .with_max_size(USERS as usize / 2)
                    .with_acquire_timeout(Duration::from_secs(60)),
            )
            .unwrap();
            child_loop(pool, sandbay_pool::DockerStorage::new(store), seed, |w| {
                &***w
            })
            .await;
        }
    }
}

/// Removes the containers and slot mounts of the chaos run at `dir`.
async fn docker_cleanup(dir: &Path) {
    use sandbay_docker::{DockerClient, ReapOptions, ReapScope, WorkspaceSlots};
    if let Ok(client) = DockerClient::connect().await {
        let _ = sandbay_docker::reap_orphans(
            &client,
            &ReapOptions::default()
                .with_label(CHAOS_LABEL, docker_label(dir))
                .with_scope(ReapScope::All),
        )
        .await;
    }
    let _ = WorkspaceSlots::reap_orphans(&slots_dir(dir));
}

/// Removes the Docker chaos run's containers and every mount below its
/// slot base when dropped, also when the test fails.
struct DockerGuard(PathBuf);

impl Drop for DockerGuard {
    fn drop(&mut self) {
        let dir = self.0.clone();
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(docker_cleanup(&dir));
            }
            sandbay_testkit::mounts::unmount_below(&slots_dir(&dir));
        })
        .join();
    }
}

/// The label the Docker chaos test puts on its containers.
const CHAOS_LABEL: &str = "sandbay.test.chaos";

/// The label value of one chaos run (its directory).
fn docker_label(dir: &Path) -> String {
    sha(dir.to_string_lossy().as_bytes())[..16].to_owned()
}

/// Where the Docker chaos run's slots live (beside its store).
fn slots_dir(dir: &Path) -> PathBuf {
    dir.with_extension("slots")
}

async fn child_loop<F, S, X>(pool: Pool<F>, storage: S, seed: u64, sandbox: fn(&S::Workspace) -> &X)
where
    F: sandbay_pool::SandboxFactory,
    S: Storage<F>,
    X: Sandbox + ?Sized,
{
    // fewer places than users: LRU eviction happens on its own
    let registry = Registry::with_storage(
        pool,
        storage,
        RegistryConfig::default().with_idle_timeout(Duration::from_millis(30)),
    );
    let mut rng = Rng(seed | 1);
    let mut mine: BTreeMap<(String, String), String> = BTreeMap::new();
    for n in 0u64.. {
        let user = format!("user-{}", rng.below(USERS));
        let held = registry.session(&user, "s").await.unwrap();
        let ws = sandbox(&held);
        // resume: every write this process acknowledged for the user
        let (mut verified, mut lost) = (0, 0);
        for ((u, path), want) in mine.range((user.clone(), String::new())..) {
            if *u != user {
                break;
            }
            match ws.download(&[p(path)]).await.pop().unwrap() {
                Ok(bytes) if sha(&bytes) == *want => verified += 1,
                _ => {
                    println!("lost {u} {path}");
                    lost += 1;
                }
            }
        }
        println!("resume {verified} {lost}");
        // write: through the file API, and one through a command
        for i in 0..=rng.below(4) {
            let path = format!("/c/{seed}-{n}-{i}.txt");
            let content =
                format!("{user} {n} {i} {}\n", rng.next()).repeat(1 + rng.below(64) as usize);
            if i == 0 {
                let out = ws
                    .execute(ExecRequest::new(format!(
                        "mkdir -p c && printf %s '{}' > '.{path}'",
                        content
                    )))
                    .await
                    .unwrap();
                assert_eq!(out.exit_code, Some(0), "{out:?}");
            } else {
                ws.write(&p(&path), &content).await.unwrap();
            }
            let digest = sha(content.as_bytes());
            println!("ack {user} {path} {digest} {}", now_ms());
            mine.insert((user.clone(), path), digest);
        }
        drop(held);
        // evict: release, idle eviction, or leave it to LRU
        match rng.below(3) {
            0 => {
                registry.release_session(&user, "s");
            }
            1 => {
                tokio::time::sleep(Duration::from_millis(35)).await;
                registry.evict_idle();
            }
            _ => {}
        }
        registry.detached().await;
        println!("cycle");
    }
}

/// One acknowledged write as the parent knows it.
struct Ack {
    user: String,
    path: String,
    sha: String,
    at_ms: u64,
}

#[derive(Default, Debug)]
struct Counts {
    cycles: u64,
    kills: u64,
    acknowledged: u64,
    verified: u64,
    lost: u64,
    in_window: u64,
    /// Quota images a killed child left mounted, unmounted by the next open.
    unmounted: u64,
}

/// Opens the store as a restarted service would and checks every
/// acknowledged write; drops from `acks` those lost within the window.
async fn verify_after_kill(
    kind: Kind,
    dir: &Path,
    acks: &mut Vec<Ack>,
    killed_ms: u64,
    counts: &mut Counts,
) {
    let mut keep = Vec::with_capacity(acks.len());
    let window_ms = match kind {
        Kind::Fs | Kind::Docker => 0,
        Kind::State { window_ms } => window_ms,
    };
    let fs = match kind {
        Kind::Fs | Kind::Docker => {
            let store = WorkspaceStore::open(dir, fs_config()).await.unwrap();
            counts.unmounted += store.recovery().unmounted as u64;
            Some(store)
        }
        Kind::State { .. } => None,
    };
    let state = match kind {
        Kind::State { window_ms } => Some(open_state(dir, window_ms)),
        Kind::Fs | Kind::Docker => None,
    };
    let mut by_user: BTreeMap<String, Vec<Ack>> = BTreeMap::new();
    for ack in acks.drain(..) {
        by_user.entry(ack.user.clone()).or_default().push(ack);
    }
    for (user, list) in by_user {
        let backend: Box<dyn Backend> = match (&fs, &state) {
            (Some(fs), _) => Box::new(fs.attach(&user, "s").await.unwrap().backend().clone()),
            (_, Some(state)) => Box::new(state.try_session(&user, "s").expect("loads")),
            _ => unreachable!(),
        };
        for ack in list {
            let got = backend.download(&[p(&ack.path)]).await.pop().unwrap();
            let ok = got.as_ref().is_ok_and(|b| sha(b) == ack.sha);
            if ok {
                counts.verified += 1;
                keep.push(ack);
            } else if window_ms > 0
                && ack.at_ms + window_ms + MARGIN_MS >= killed_ms
                && got.is_err()
            {
                // acknowledged within the window before the kill: may be lost
                counts.in_window += 1;
            } else {
                println!(
                    "lost after kill: {} {} ({:?})",
                    ack.user,
                    ack.path,
                    got.map(|b| sha(&b))
                );
                counts.lost += 1;
            }
        }
    }
    *acks = keep;
}

async fn chaos(kind: Kind, seed: u64) -> Counts {
    let secs: u64 = std::env::var("SANDBAY_CHAOS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let child_err = tmp.path().join("child.err");
    let _unmount = Unmount(dir.clone());
    let _docker = (kind == Kind::Docker).then(|| DockerGuard(dir.clone()));
    let mut rng = Rng(seed);
    let mut acks: Vec<Ack> = Vec::new();
    let mut counts = Counts::default();
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "chaos_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("SANDBAY_CHAOS_DIR", &dir)
            .env("SANDBAY_CHAOS_KIND", kind.arg())
            .env("SANDBAY_CHAOS_SEED", rng.next().to_string())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&child_err).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // let it run a random while, at least until its first cycle
        let run_for = Duration::from_millis(300 + rng.below(1500));
        let started = Instant::now();
        let mut cycled = false;
        let handle = |line: String, counts: &mut Counts, acks: &mut Vec<Ack>| {
            let mut words = line.split(' ');
            match words.next() {
                Some("ack") => {
                    let v: Vec<&str> = words.collect();
                    acks.push(Ack {
                        user: v[0].into(),
                        path: v[1].into(),
                        sha: v[2].into(),
                        at_ms: v[3].parse().unwrap(),
                    });
                    counts.acknowledged += 1;
                }
                Some("resume") => {
                    let v: Vec<u64> = words.map(|w| w.parse().unwrap()).collect();
                    counts.verified += v[0];
                    counts.lost += v[1];
                }
                Some("cycle") => counts.cycles += 1,
                Some("lost") => println!("child: {line}"),
                _ => {}
            }
        };
        while started.elapsed() < run_for || !cycled {
            match rx.recv_timeout(Duration::from_millis(20)) {
                Ok(line) => {
                    cycled |= line == "cycle";
                    handle(line, &mut counts, &mut acks);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            if started.elapsed() > Duration::from_secs(120) {
                break;
            }
        }
        let _ = child.kill(); // SIGKILL: no drop, no flush
        let killed_ms = now_ms();
        let status = child.wait().unwrap();
        reader.join().unwrap();
        // lines printed before the kill are acknowledged writes too
        for line in rx.try_iter() {
            handle(line, &mut counts, &mut acks);
        }
        assert_eq!(
            status.signal(),
            Some(9),
            "the child ended by itself ({status:?}): {}",
            std::fs::read_to_string(&child_err).unwrap_or_default()
        );
        counts.kills += 1;
        if kind == Kind::Docker {
            // as a restarted service: the killed process's containers and
            // slots go before its workspaces are opened again
            docker_cleanup(&dir).await;
        }
        verify_after_kill(kind, &dir, &mut acks, killed_ms, &mut counts).await;
    }
    counts
}

fn report(name: &str, counts: &Counts) {
    println!(
        "chaos {name}: cycles {}, kills {}, writes acknowledged {}, verified {}, lost {}, lost within the write-behind window {}, orphan images unmounted {}",
        counts.cycles,
        counts.kills,
        counts.acknowledged,
        counts.verified,
        counts.lost,
        counts.in_window,
        counts.unmounted
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_fs_loses_no_acknowledged_write() {
    let counts = chaos(Kind::Fs, 0x005e_edf5).await;
    let imaged = sandbay_fs::host_can_mount();
    report(if imaged { "fs (quota images)" } else { "fs" }, &counts);
    if imaged {
        assert!(
            counts.unmounted > 0,
            "kills left images to recover: {counts:?}"
        );
    }
    assert!(counts.kills >= 2 && counts.acknowledged > 0, "{counts:?}");
    assert_eq!(counts.lost, 0, "{counts:?}");
    assert_eq!(counts.in_window, 0, "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_state_every_write_loses_nothing() {
    let counts = chaos(Kind::State { window_ms: 0 }, 0x005e_ede0).await;
    report("state EveryWrite", &counts);
    assert!(counts.kills >= 2 && counts.acknowledged > 0, "{counts:?}");
    assert_eq!(counts.lost, 0, "{counts:?}");
    assert_eq!(counts.in_window, 0, "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_state_loses_nothing_older_than_the_window() {
    let counts = chaos(
        Kind::State {
            window_ms: WINDOW_MS,
        },
        0x005e_ed57,
    )
    .await;
    report(&format!("state Within({WINDOW_MS} ms)"), &counts);
    assert!(counts.kills >= 2 && counts.acknowledged > 0, "{counts:?}");
    assert_eq!(counts.lost, 0, "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_docker_loses_no_acknowledged_write() {
    if !sandbay_testkit::skip::require(sandbay_testkit::docker::check(
        sandbay_testkit::docker::TEST_IMAGE,
    )) {
        return;
    }
    if !sandbay_testkit::skip::require(if sandbay_fs::host_can_mount() {
        Ok(())
    } else {
        Err("workspaces attach to warm containers by mount: root needed")
    }) {
        return;
    }
    let counts = chaos(Kind::Docker, 0x005e_edd0).await;
    report("docker (warm containers, quota images)", &counts);
    assert!(counts.kills >= 2 && counts.acknowledged > 0, "{counts:?}");
    assert_eq!(counts.lost, 0, "{counts:?}");
    assert_eq!(counts.in_window, 0, "{counts:?}");
}
