//! Shared test support: the Docker gate, unique labels, and guards that
//! remove everything a test created, even when it fails.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use sandbay_docker::{DockerClient, DockerConfig, ReapOptions};

/// The label every object made by these tests carries.
pub const TEST_LABEL: &str = "sandbay.test";
/// The image the tests run: the local test image.
pub const IMAGE: &str = sandbay_testkit::docker::TEST_IMAGE;

/// The daemon address of `DockerClient::connect`.
pub fn local_host() -> String {
    sandbay_testkit::docker::docker_host()
}

use sandbay_testkit::skip::in_ci;

/// `Ok` when the daemon answers and holds the test image, checked when the
/// test runs; otherwise the reason (see [`sandbay_testkit::docker::check`]).
pub fn ready() -> Result<(), String> {
    sandbay_testkit::docker::check(IMAGE)
}

/// A client for the same daemon over loopback TCP (a *remote* daemon for
/// sandbay): the daemon's own listener on 127.0.0.1:2375 that
/// `.ci/docker-setup.sh` starts, or, when it is not there outside CI, a
/// TCP proxy to the unix socket started in this test's runtime.
pub async fn remote() -> DockerClient {
    let tcp = "tcp://127.0.0.1:2375";
    match DockerClient::connect_with_host(tcp, Duration::from_secs(30)).await {
        Ok(c) => c,
        Err(e) => {
            assert!(
                !in_ci(),
                "CI=true but the daemon does not listen on {tcp} ({e}); run .ci/docker-setup.sh"
            );
            eprintln!("note: no daemon on {tcp}; using a TCP proxy to the unix socket");
            let proxy = Proxy::start(Upstream::Unix("/var/run/docker.sock".into())).await;
            let host = format!("tcp://{}", proxy.addr);
            std::mem::forget(proxy); // lives as long as this test's runtime
            DockerClient::connect_with_host(&host, Duration::from_secs(30))
                .await
                .expect("connect through the proxy")
        }
    }
}

/// Where a [`Proxy`] forwards to.
#[derive(Clone, Debug)]
pub enum Upstream {
    Unix(std::path::PathBuf),
}

/// A loopback TCP proxy in front of the daemon. [`Proxy::kill`] drops the
/// listener and every connection at once, like a daemon that vanishes,
/// without touching the real daemon.
pub struct Proxy {
    pub addr: std::net::SocketAddr,
    tasks: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Proxy {
    pub async fn start(upstream: Upstream) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let tasks: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>> =
            Default::default();
        let registry = tasks.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                let upstream = upstream.clone();
                let conn = tokio::spawn(async move {
                    let Upstream::Unix(path) = upstream;
                    let Ok(mut outbound) = tokio::net::UnixStream::connect(path).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                });
                registry.lock().unwrap().push(conn.abort_handle());
            }
        });
        tasks.lock().unwrap().push(accept.abort_handle());
        Proxy { addr, tasks }
    }

    /// Closes the listener and every forwarded connection.
    pub fn kill(&self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The static agent build: `$SANDBAY_AGENT`, else the workspace's
/// `target/x86_64-unknown-linux-gnu/release/sandbay-agent` (what
/// `cargo xtask test` builds first).
pub fn agent_binary() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("SANDBAY_AGENT").filter(|p| !p.is_empty()) {
        return Some(p.into());
    }
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/x86_64-unknown-linux-gnu/release/sandbay-agent");
    p.is_file().then_some(p)
}

/// The static `probe` helper built with the agent (its `examples/probe`).
pub fn probe_binary() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("SANDBAY_PROBE").filter(|p| !p.is_empty()) {
        return Some(p.into());
    }
    let p = agent_binary()?.parent()?.join("examples/probe");
    p.is_file().then_some(p)
}

/// The probe helper, or says why not (skipped locally, fails under CI).
pub fn require_probe() -> Option<std::path::PathBuf> {
    let p = probe_binary();
    if p.is_none() {
        assert!(
            !in_ci(),
            "CI=true but the probe helper is missing; cargo xtask test builds it"
        );
        eprintln!("skipped: no probe helper (build it with cargo xtask agent)");
    }
    p
}

/// Connects to the daemon and checks the test image, or says why not.
///
/// Checked when the test runs: under CI a missing daemon or image fails
/// the test; locally the test prints `skipped: <reason>` and returns early
/// (counted as skipped by `cargo xtask test`).
pub async fn docker() -> Option<DockerClient> {
    if !sandbay_testkit::skip::require(ready()) {
        return None;
    }
    if !sandbay_testkit::skip::require(match agent_binary() {
        Some(_) => Ok(()),
        None => {
            Err("no sandbay-agent build (run `cargo xtask agent` or set SANDBAY_AGENT)".to_owned())
        }
    }) {
        return None;
    }
    Some(
        DockerClient::connect()
            .await
            .expect("the daemon answered a ping: a client connects"),
    )
}

/// Returns early from a test when Docker is not available (see [`docker`]).
#[macro_export]
macro_rules! require_docker {
    () => {
        match common::docker().await {
            Some(client) => client,
            None => return,
        }
    };
}

/// A unique label value for one test; its [`Drop`] removes every
/// container and volume carrying it.
pub struct Guard {
    pub value: String,
    host: String,
}

impl Guard {
    /// A guard for one test. It reaps through the local daemon address
    /// (`DOCKER_HOST` or the unix socket), whatever client the test uses.
    pub fn new(_client: &DockerClient, test: &str) -> Guard {
        let id = uuid::Uuid::new_v4().simple().to_string();
        Guard {
            value: format!("{test}-{}", &id[..8]),
            host: local_host(),
        }
    }

    /// The default config with this test's label and the agent build.
    pub fn config(&self) -> DockerConfig {
        let c = DockerConfig::default()
            .with_image(IMAGE)
            .with_label(TEST_LABEL, &self.value)
            .with_owner(format!("test-{}", self.value));
        match agent_binary() {
            Some(a) => c.with_agent(a),
            None => c,
        }
    }

    /// Reap options matching only this test's objects, whoever owns them.
    pub fn reap_options(&self) -> ReapOptions {
        ReapOptions::default()
            .with_label(TEST_LABEL, &self.value)
            .with_scope(sandbay_docker::ReapScope::All)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let host = self.host.clone();
        let options = self.reap_options();
        // A thread with its own runtime: works inside or outside async code.
        let t = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let Ok(client) =
                    DockerClient::connect_with_host(&host, Duration::from_secs(30)).await
                else {
                    return;
                };
                // twice: volumes of containers that were still being removed
                for _ in 0..2 {
                    let _ = sandbay_docker::reap_orphans(&client, &options).await;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            });
        });
        let _ = t.join();
    }
}

/// Counts containers and volumes carrying this test's label.
pub fn count_objects(guard: &Guard) -> (usize, usize) {
    let out = std::process::Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label={TEST_LABEL}={}", guard.value),
        ])
        .output()
        .expect("docker cli");
    let containers = String::from_utf8_lossy(&out.stdout).lines().count();
    let out = std::process::Command::new("docker")
        .args([
            "volume",
            "ls",
            "-q",
            "--filter",
            &format!("label={TEST_LABEL}={}", guard.value),
        ])
        .output()
        .expect("docker cli");
    let volumes = String::from_utf8_lossy(&out.stdout).lines().count();
    (containers, volumes)
}

/// What a conformance fixture keeps alive: the test label's guard (which
/// reaps the container) and the temporary base of bind-mounted workspaces.
pub struct FixtureGuard {
    _guard: Guard,
    _base: tempfile::TempDir,
}

/// A fresh sandbox for one conformance or attack case.
///
/// `served_root`: the fixture's host root is the very directory the
/// container bind-mounts (the attack suite needs that); otherwise it is
/// the per-test base directory above it.
pub async fn fixture(
    mode: sandbay_docker::FileMode,
    served_root: bool,
) -> sandbay_testkit::Fixture {
    use sandbay_core::Sandbox;
    // the suites check `ready()` before they build a fixture
    let client = docker()
        .await
        .expect("these tests need a Docker daemon and the test image (cargo xtask docker-image)");
    let guard = Guard::new(&client, "conformance");
    let base = tempfile::tempdir().expect("temp dir");
    let mut config = guard
        .config()
        .with_file_mode(mode)
        .with_workspace_base(base.path());
    if served_root {
        // The attack suite plants its scene as this process; with the
        // sandbox user being the same uid, file permissions stay out of
        // the way and every check is about the host-side capability jail
        // (no command runs in these cases).
        // `container_planted_links_are_refused` covers the default user.
        config = config.with_user(format!(
            "{}:{}",
            nix::unistd::geteuid(),
            nix::unistd::getegid()
        ));
    }
    let owner = config.owner.clone();
    // the in-container mode talks to the daemon over TCP, as with a remote daemon
    let client = if mode == sandbay_docker::FileMode::Container {
        remote().await
    } else {
        client
    };
    let sandbox = sandbay_docker::DockerSandbox::create(&client, config)
        .await
        .expect("create a sandbox");
    assert_eq!(sandbox.file_mode(), mode);
    let root = if served_root {
        base.path()
            .join(sandbay_fs::FsProvider::dir_name(&owner).unwrap())
            .join(sandbay_fs::FsProvider::dir_name(sandbox.id()).unwrap())
    } else {
        base.path().to_path_buf()
    };
    let fx = sandbay_testkit::Fixture::with_sandbox(sandbox).guard(FixtureGuard {
        _guard: guard,
        _base: base,
    });
    if mode == sandbay_docker::FileMode::Bind {
        fx.host_root(root)
    } else {
        fx
    }
}
