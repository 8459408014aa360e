//! Images: presence check, pull with progress from a registry on
//! loopback (Debian's `docker-registry`, started by the test), clear
//! errors when an image cannot be had.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sandbay_core::{ErrorCode, ExecRequest, Sandbox};
use sandbay_docker::{DockerSandbox, PullEvent, PullPolicy, ensure_image};

/// A registry on 127.0.0.1 with its storage in a temp dir; killed on drop,
/// with the image tags the test made.
struct Registry {
    child: Child,
    port: u16,
    tags: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Option<Registry> {
        let binary = "/usr/bin/docker-registry";
        if !std::path::Path::new(binary).exists() {
            sandbay_testkit::skip::skip(format!(
                "no {binary} (apt-get install docker-registry; .ci/docker-setup.sh does)"
            ));
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
                 http:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new(binary)
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let registry = Registry {
            child,
            port,
            tags: Vec::new(),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !registry.answers() {
            assert!(Instant::now() < deadline, "the registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(registry)
    }

    fn answers(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.write_all(b"GET /v2/ HTTP/1.0\r\n\r\n");
        let mut head = [0u8; 12];
        s.read_exact(&mut head).is_ok() && &head[9..12] == b"200"
    }

    fn reference(&self, name: &str) -> String {
        format!("127.0.0.1:{}/{name}", self.port)
    }

    /// Pushes the test image under `name`, then removes the local tag.
    fn push_test_image(&mut self, name: &str) -> String {
        let reference = self.reference(name);
        self.tags.push(reference.clone());
        docker(&["tag", common::IMAGE, &reference]);
        docker(&["push", &reference]);
        docker(&["rmi", &reference]);
        reference
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        for tag in &self.tags {
            let _ = Command::new("docker")
                .args(["rmi", "-f", tag])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn docker(args: &[&str]) {
    let out = Command::new("docker").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulls_from_a_loopback_registry_with_progress() {
    let client = require_docker!();
    let Some(mut registry) = tokio::task::spawn_blocking(Registry::start).await.unwrap() else {
        return;
    };
    let unique = uuid::Uuid::new_v4().simple().to_string();
    let name = format!("sandbay/pulltest:{}", &unique[..8]);
    let reference = tokio::task::spawn_blocking(move || {
        let r = registry.push_test_image(&name);
        (registry, r)
    })
    .await
    .unwrap();
    let (mut registry, reference) = reference;

    // never: missing stays missing, with a clear error
    let err = ensure_image(&client, &reference, PullPolicy::Never, |_| {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Unavailable);
    assert!(err.to_string().contains("not present"), "{err}");

    // if missing: pulled, with progress events
    let mut events: Vec<PullEvent> = Vec::new();
    ensure_image(&client, &reference, PullPolicy::IfMissing, |e| {
        events.push(e.clone())
    })
    .await
    .unwrap();
    assert!(!events.is_empty());
    assert!(
        events.iter().any(|e| e.status.contains("Pulling from")
            || e.status.contains("Downloaded")
            || e.status.contains("up to date")),
        "{events:?}"
    );
    // present now: no pull at all
    let mut again = 0;
    ensure_image(&client, &reference, PullPolicy::IfMissing, |_| again += 1)
        .await
        .unwrap();
    assert_eq!(again, 0);

    // an unknown image on the same registry: a clear error
    let missing = registry.reference("sandbay/does-not-exist:nope");
    let err = ensure_image(&client, &missing, PullPolicy::IfMissing, |_| {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Unavailable);
    assert!(err.to_string().contains("cannot pull image"), "{err}");

    // creating a sandbox from a missing image pulls it first
    docker(&["rmi", &reference]);
    let guard = common::Guard::new(&client, "pull");
    let sb = DockerSandbox::create(&client, guard.config().with_image(&reference))
        .await
        .unwrap();
    let out = sb.execute(ExecRequest::new("echo pulled")).await.unwrap();
    assert_eq!(out.stdout, b"pulled\n");
    sb.shutdown().await.unwrap();
    registry.tags.push(reference);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_registry_is_a_clear_error() {
    let client = require_docker!();
    // nothing listens on this port
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let reference = format!("127.0.0.1:{port}/sandbay/nowhere:1");
    let guard = common::Guard::new(&client, "no-registry");
    let err = DockerSandbox::create(&client, guard.config().with_image(&reference))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Unavailable);
    assert!(err.to_string().contains("cannot pull image"), "{err}");
    assert_eq!(common::count_objects(&guard), (0, 0), "nothing left behind");
}
