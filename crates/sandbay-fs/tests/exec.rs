//! [`FsSandbox`] beyond the shared suites: what the provider hands out,
//! who owns what a command makes, and that links a command plants lead
//! nowhere. Commands run in a real jail at the `namespaces` level (skipped
//! with the reason when the host cannot give it, a failure under
//! `CI=true`).
#![cfg(feature = "exec")]

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use sandbay_core::{Backend, BackendExt, ExecRequest, Isolation, ReadRequest, Sandbox, VPath};
use sandbay_exec::{Jail, JailConfig};
use sandbay_fs::FsProvider;
use sandbay_testkit::isolation::require;

fn p(s: &str) -> VPath {
    VPath::parse(s).unwrap()
}

fn available() -> bool {
    require(Jail::host_support().check(Isolation::Namespaces))
}

async fn provider() -> (FsProvider, tempfile::TempDir) {
    let base = tempfile::Builder::new()
        .prefix("sandbay-fs-exec-test-")
        .tempdir()
        .unwrap();
    (FsProvider::open(base.path()).await.unwrap(), base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_sandboxes_have_their_own_jail_and_honest_capabilities() {
    if !available() {
        return;
    }
    let (provider, base) = provider().await;
    let config = JailConfig::new(Isolation::Namespaces);
    let a = provider.sandbox("alice", "s1", &config).await.unwrap();
    let b = provider.sandbox("bob", "s1", &config).await.unwrap();
    let caps = a.capabilities();
    assert!(caps.execute && caps.symlinks && caps.persistent && !caps.snapshot);
    assert_eq!(caps.isolation, Isolation::Namespaces);
    assert_eq!(a.name(), "fs");
    assert_eq!(a.id(), "fs-alice-s1");
    assert_ne!(a.id(), b.id());
    let (ea, eb) = (a.jail().enforcement(), b.jail().enforcement());
    if ea.distinct_uid {
        assert_ne!(ea.host_uid, eb.host_uid, "two users share a host uid");
    }
    // The file side and the command side are the same directory.
    a.write(&p("/note.txt"), "from alice\n").await.unwrap();
    let o = a
        .execute(ExecRequest::new("cat note.txt; pwd"))
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "from alice\n/workspace\n"
    );
    assert!(!b.exists(&p("/note.txt")).await.unwrap());
    // No host path in what a sandbox prints about itself.
    let shown = format!("{a:?}");
    assert!(!shown.contains(&*base.path().to_string_lossy()), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_a_command_makes_belong_to_the_sandbox_uid() {
    if !available() {
        return;
    }
    let (provider, _base) = provider().await;
    let sb = provider
        .sandbox("carol", "s1", &JailConfig::new(Isolation::Namespaces))
        .await
        .unwrap();
    sb.write(&p("/by-api.txt"), "x").await.unwrap();
    let o = sb
        .execute(ExecRequest::new(
            "echo y >> by-api.txt && mkdir -p d && echo z > d/by-cmd.txt",
        ))
        .await
        .unwrap();
    assert_eq!(
        o.exit_code,
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let root = provider.session_path("carol", "s1").unwrap();
    let uid = sb.jail().enforcement().host_uid;
    for rel in ["by-api.txt", "d", "d/by-cmd.txt"] {
        let meta = std::fs::symlink_metadata(root.join(rel)).unwrap();
        assert_eq!(meta.uid(), uid, "{rel}");
    }
    assert_eq!(sb.read_to_string(&p("/by-api.txt")).await.unwrap(), "xy\n");
    assert_eq!(sb.read_to_string(&p("/d/by-cmd.txt")).await.unwrap(), "z\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_a_command_plants_are_refused_by_the_backend() {
    if !available() {
        return;
    }
    let (provider, base) = provider().await;
    let sb = provider
        .sandbox("dave", "s1", &JailConfig::new(Isolation::Namespaces))
        .await
        .unwrap();
    sb.write(&p("/inside.txt"), "inside\n").await.unwrap();
    let o = sb
        .execute(
            ExecRequest::new(
                "ln -s /etc/passwd passwd; ln -s ../../../.. up; ln -s inside.txt ok; \
                 ln /etc/hostname hard 2>/dev/null; echo done",
            )
            .timeout(Duration::from_secs(30)),
        )
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "done\n");
    for (path, what) in [
        ("/passwd", "an absolute link"),
        ("/up/etc/passwd", "a link above the root"),
    ] {
        let err = sb
            .read(&p(path), ReadRequest::default())
            .await
            .expect_err(what);
        assert_eq!(err.code().as_str(), "permission_denied", "{what}: {err}");
        assert!(!err.to_string().contains(&*base.path().to_string_lossy()));
    }
    assert_eq!(sb.read_to_string(&p("/ok")).await.unwrap(), "inside\n");
    assert!(
        !sb.exists(&p("/hard")).await.unwrap(),
        "a host file was hard-linked into the workspace"
    );
}
