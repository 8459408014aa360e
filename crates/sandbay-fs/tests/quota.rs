//! Disk quotas on real disk. As root with `mkfs.ext4`, every workspace of
//! the provider is a loop-mounted ext4 image: the file API and jailed
//! commands (at the `namespaces` level) are filled to the quota, refused,
//! and write again after a delete; the host's disk grows by at most the
//! quota; images survive a detach and are gone with their session; no
//! mount and no loop device is left behind, even when a test fails (a
//! guard unmounts what is left below its base directory). Without root or
//! `mkfs.ext4` those tests print `skipped: <reason>` (a failure under
//! `CI=true`). The counted quota of a plain backend runs everywhere.
#![cfg(feature = "exec")]

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sandbay_core::{Backend, BackendExt, DiskQuota, ErrorCode, Isolation, VPath};
use sandbay_exec::{Jail, JailConfig};
use sandbay_fs::{FsBackend, FsConfig, FsProvider, Quota};
use sandbay_testkit::Fixture;
use sandbay_testkit::isolation::require;

const MIB: u64 = 1 << 20;

fn p(s: &str) -> VPath {
    VPath::parse(s).unwrap()
}

/// Whether mounted quotas can be tested here (else skipped, or failed in CI).
fn mountable() -> bool {
    let can = if !nix::unistd::geteuid().is_root() {
        Err("mounted quotas need root")
    } else if !sandbay_fs::host_can_mount() {
        Err("mounted quotas need mkfs.ext4 and loop devices")
    } else {
        Jail::host_support()
            .check(Isolation::Namespaces)
            .map_err(|_| "the jail cannot run at the namespaces level")
    };
    require(can)
}

/// Mount points below `dir`, from this process's mount table.
fn mounts_below(dir: &Path) -> Vec<PathBuf> {
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    table
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(PathBuf::from)
        .filter(|m| m.starts_with(&dir))
        .collect()
}

/// `losetup -a` lines of loop devices backed by files below `dir`.
fn loops_below(dir: &Path) -> Vec<String> {
    let out = std::process::Command::new("losetup")
        .arg("-a")
        .output()
        .expect("losetup runs");
    let dir = dir.to_string_lossy().into_owned();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(&dir))
        .map(str::to_owned)
        .collect()
}

/// Waits (bounded) until no loop device is backed by a file below `dir`:
/// a lazily unmounted file system frees its loop device when its last
/// handle closes.
fn assert_no_loops(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !loops_below(dir).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(loops_below(dir), Vec::<String>::new(), "loop devices left");
}

/// A base directory that unmounts whatever is left mounted below it
/// before it is removed, so a failed test leaves no mount or loop device.
struct Base {
    dir: tempfile::TempDir,
}

impl Base {
    fn new() -> Base {
        Base {
            dir: tempfile::Builder::new()
                .prefix("sandbay-fs-quota-test-")
                .tempdir()
                .unwrap(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Base {
    fn drop(&mut self) {
        let mut left = mounts_below(self.dir.path());
        left.sort();
        for mount in left.iter().rev() {
            let _ = nix::mount::umount2(mount, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

async fn provider(base: &Base, quota: Quota) -> FsProvider {
    FsProvider::open(base.path())
        .await
        .unwrap()
        .with_config(FsConfig::default().with_quota(quota))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mounted_quota_holds_for_the_api_and_commands() {
    if !mountable() {
        return;
    }
    let base = Base::new();
    let quota = Quota::new(8 * MIB, 400);
    let provider = provider(&base, quota).await;
    let jail = JailConfig::new(Isolation::Namespaces);
    let sandbox = provider.sandbox("alice", "s1", &jail).await.unwrap();
    assert_eq!(
        sandbox.capabilities().quota,
        Some(DiskQuota {
            bytes: 8 * MIB,
            files: Some(400),
            commands: true,
        })
    );
    let host_root = provider.session_path("alice", "s1").unwrap();
    assert!(
        host_root.ends_with("alice/s1.mnt/workspace"),
        "{host_root:?}"
    );
    let image = base.path().join("alice/s1.img");
    let fx = Fixture::with_sandbox(sandbox).host_root(&host_root);
    sandbay_testkit::quota::disk_quota_holds(&fx).await;

    // The host's disk holds at most the quota for this workspace, after
    // it was filled several times over.
    let meta = std::fs::metadata(&image).unwrap();
    assert_eq!(meta.len(), 8 * MIB, "the image is as large as the quota");
    assert!(
        meta.blocks() * 512 <= 8 * MIB,
        "the image takes {} bytes of the host's disk",
        meta.blocks() * 512
    );
    drop(fx);
    provider.remove_session("alice", "s1").await.unwrap();
    assert_eq!(mounts_below(base.path()), Vec::<PathBuf>::new());
    assert_no_loops(base.path());
    assert!(!image.exists() && !base.path().join("alice").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_keeps_its_files_across_a_detach() {
    if !mountable() {
        return;
    }
    let base = Base::new();
    let provider = provider(&base, Quota::new(4 * MIB, 100)).await;
    let fs = provider.session("bob", "s1").await.unwrap();
    fs.write(&p("/kept.txt"), "still here\n").await.unwrap();
    // a second open of a mounted session uses the same mount
    let again = provider.session("bob", "s1").await.unwrap();
    assert_eq!(
        again.read_to_string(&p("/kept.txt")).await.unwrap(),
        "still here\n"
    );
    assert_eq!(mounts_below(base.path()).len(), 1, "mounted twice");
    drop((fs, again));

    provider.detach_session("bob", "s1").await.unwrap();
    assert_eq!(mounts_below(base.path()), Vec::<PathBuf>::new());
    assert_no_loops(base.path());
    assert!(base.path().join("bob/s1.img").exists(), "the image stays");

    let fs = provider.session("bob", "s1").await.unwrap();
    assert_eq!(
        fs.read_to_string(&p("/kept.txt")).await.unwrap(),
        "still here\n"
    );
    let other = provider.session("bob", "s2").await.unwrap();
    other.write(&p("/b.txt"), "b").await.unwrap();
    assert_eq!(mounts_below(base.path()).len(), 2);
    drop((fs, other));
    provider.remove_user("bob").await.unwrap();
    assert_eq!(mounts_below(base.path()), Vec::<PathBuf>::new());
    assert_no_loops(base.path());
    assert!(!base.path().join("bob").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impossible_quotas_are_refused() {
    if !mountable() {
        return;
    }
    let base = Base::new();
    for quota in [
        Quota::new(MIB - 1, 100),
        Quota::new(8 * MIB, 1),
        Quota::new(8 * MIB, 1_000_000),
    ] {
        let err = provider(&base, quota)
            .await
            .session("carol", "s1")
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidArgument, "{quota:?}: {err}");
    }
    assert_eq!(mounts_below(base.path()), Vec::<PathBuf>::new());
    assert_no_loops(base.path());
}

/// A backend made without the provider counts bytes in its file API:
/// declared as such (no file count, commands not capped), and it holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counted_quota_holds_for_the_file_api() {
    let dir = tempfile::Builder::new()
        .prefix("sandbay-fs-quota-test-")
        .tempdir()
        .unwrap();
    let root = sandbay_fs::open_root(dir.path()).await.unwrap();
    let fs = FsBackend::with_config(root, FsConfig::default().with_quota(Quota::new(MIB, 16)));
    assert_eq!(
        fs.capabilities().quota,
        Some(DiskQuota {
            bytes: MIB,
            files: None,
            commands: false,
        })
    );
    // an edit that grows past the quota changes nothing
    fs.write_bytes(&p("/big.txt"), vec![b'x'; (MIB - 10) as usize])
        .await
        .unwrap();
    fs.write(&p("/small.txt"), "abc").await.unwrap();
    let grow = sandbay_core::EditRequest {
        old: "b".into(),
        new: "b".repeat(100),
        replace_all: false,
    };
    let err = fs.edit(&p("/small.txt"), &grow).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::QuotaExceeded, "{err}");
    assert_eq!(
        err.to_string(),
        "/small.txt: the workspace is over its disk quota of 1048576 bytes; delete files to make room"
    );
    assert_eq!(fs.read_to_string(&p("/small.txt")).await.unwrap(), "abc");
    fs.clear().await.unwrap();
    let fx = Fixture::new(fs).host_root(dir.path()).guard(dir);
    sandbay_testkit::quota::disk_quota_holds(&fx).await;
}
