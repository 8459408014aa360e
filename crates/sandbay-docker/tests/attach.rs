//! Workspaces attached to warm containers: a host bind mount onto a
//! running container's slot, against the real daemon. Needs root (mounts)
//! besides Docker: without it the test prints `skipped: <reason>` (a
//! failure under `CI=true`). Every container, mount and directory made
//! here is removed, also when a test fails.

mod common;

use std::path::{Path, PathBuf};

use sandbay_core::{Backend, BackendExt, ExecRequest, Sandbox, VPath};
use sandbay_docker::{AttachMode, DockerSandbox, WorkspaceSlots};

/// A temporary base for slots and workspaces; unmounts everything below
/// it (deepest first), the base's own shared bind mount last, then
/// removes it.
struct Base(tempfile::TempDir);

impl Base {
    fn new() -> Base {
        Base(
            tempfile::Builder::new()
                .prefix("sandbay-attach-test-")
                .tempdir()
                .unwrap(),
        )
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    fn mounts_below(&self) -> Vec<PathBuf> {
        let base = std::fs::canonicalize(self.path()).unwrap();
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .map(PathBuf::from)
            .filter(|m| m.starts_with(&base))
            .collect()
    }
}

impl Drop for Base {
    fn drop(&mut self) {
        for m in self.mounts_below().into_iter().rev() {
            let _ = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

fn can_mount() -> Result<(), String> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err("attaching workspaces by mount needs root".into())
    }
}

fn p(s: &str) -> VPath {
    VPath::parse(s).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_attaches_detaches_and_comes_back() {
    let client = require_docker!();
    if !sandbay_testkit::skip::require(can_mount()) {
        return;
    }
    let guard = common::Guard::new(&client, "attach");
    let base = Base::new();
    let (slots, _) = WorkspaceSlots::prepare(&client, &base.path().join("slots"))
        .await
        .unwrap();
    assert_eq!(slots.mode(), AttachMode::Mount);
    let alice = base.path().join("ws/alice");
    let bob = base.path().join("ws/bob");
    std::fs::create_dir_all(&alice).unwrap();
    std::fs::create_dir_all(&bob).unwrap();
    std::fs::write(alice.join("seed.txt"), "from the host\n").unwrap();

    // a warm container: running, nothing attached
    let warm = DockerSandbox::create_warm(&client, guard.config(), &slots)
        .await
        .unwrap();
    assert_eq!(warm.attach_mode(), Some(AttachMode::Mount));
    let err = warm.read_to_string(&p("/seed.txt")).await.unwrap_err();
    assert_eq!(err.code().as_str(), "unavailable", "{err}");
    let out = warm.execute(ExecRequest::new("ls -A")).await.unwrap();
    assert_eq!(out.stdout, b"", "an empty slot");
    // nothing can be written into the empty slot (it would stay on the
    // host, outside every quota, after the container is gone)
    let out = warm
        .execute(ExecRequest::new("echo x > in-slot; mkdir d-slot"))
        .await
        .unwrap();
    assert_ne!(out.exit_code, Some(0), "{out:?}");
    let slot_files: Vec<_> = walk_files(base.path().join("slots").as_path());
    assert!(slot_files.is_empty(), "written into a slot: {slot_files:?}");

    // attached: the running container sees the workspace at once
    warm.attach_workspace(&alice).await.unwrap();
    let out = warm
        .execute(ExecRequest::new(
            "cat seed.txt; echo made > made.txt; mkdir -p d; echo deep > d/x; id -u",
        ))
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("from the host\n{}\n", warm.uid())
    );
    assert_eq!(
        std::fs::read_to_string(alice.join("made.txt")).unwrap(),
        "made\n",
        "a command's file lands in the host workspace"
    );
    assert_eq!(warm.read_to_string(&p("/d/x")).await.unwrap(), "deep\n");
    warm.write(&p("/api.txt"), "via the api\n").await.unwrap();
    let meta = std::fs::metadata(alice.join("api.txt")).unwrap();
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&meta),
        warm.uid(),
        "host-side writes belong to the sandbox user"
    );
    let again = warm.attach_workspace(&bob).await.unwrap_err();
    assert_eq!(again.code().as_str(), "invalid_argument");

    // detached: the container no longer sees it, the files stay
    let out = warm
        .execute(ExecRequest::new(
            "echo alice > /tmp/note; echo shm > /dev/shm/s",
        ))
        .await
        .unwrap();
    assert_eq!(out.exit_code, Some(0), "{out:?}");
    warm.detach_workspace().await.unwrap();
    let out = warm.execute(ExecRequest::new("ls -A")).await.unwrap();
    assert_eq!(out.stdout, b"", "the slot is empty again");
    // and it never serves another workspace: its /tmp and /dev/shm are
    // alice's
    let err = warm.attach_workspace(&bob).await.unwrap_err();
    assert_eq!(err.code().as_str(), "invalid_argument", "{err}");
    assert!(
        warm.read_to_string(&p("/seed.txt")).await.is_err(),
        "no workspace after the refusal"
    );
    warm.shutdown().await.unwrap();
    for f in ["seed.txt", "made.txt", "d/x", "api.txt"] {
        assert!(alice.join(f).is_file(), "{f} kept after detach and removal");
    }

    // the user comes back to another warm container; another user's
    // container next to it sees only its own workspace
    let second = DockerSandbox::create_warm(&client, guard.config(), &slots)
        .await
        .unwrap();
    let other = DockerSandbox::create_warm(&client, guard.config(), &slots)
        .await
        .unwrap();
    second.attach_workspace(&alice).await.unwrap();
    other.attach_workspace(&bob).await.unwrap();
    let out = second
        .execute(ExecRequest::new(
            "cat made.txt d/x api.txt; echo more >> made.txt",
        ))
        .await
        .unwrap();
    assert_eq!(out.stdout, b"made\ndeep\nvia the api\n", "{out:?}");
    let out = other
        .execute(ExecRequest::new(
            "ls -A; cat made.txt 2>&1; echo bob > b.txt",
        ))
        .await
        .unwrap();
    let seen = String::from_utf8_lossy(&out.stdout);
    assert!(
        !seen.contains("seed.txt") && !seen.contains("made\n"),
        "{seen}"
    );
    assert!(!other.exists(&p("/made.txt")).await.unwrap());
    assert_eq!(
        second.read_to_string(&p("/made.txt")).await.unwrap(),
        "made\nmore\n"
    );
    assert!(
        !alice.join("b.txt").exists(),
        "bob's file stays in bob's workspace"
    );
    assert!(bob.join("b.txt").is_file());
    assert!(second.uid() != other.uid());

    second.shutdown().await.unwrap();
    other.shutdown().await.unwrap();
    // no slot mount is left, only the shared base itself
    let slots_dir = std::fs::canonicalize(base.path().join("slots")).unwrap();
    assert_eq!(base.mounts_below(), vec![slots_dir]);
    assert!(alice.join("made.txt").is_file() && bob.join("b.txt").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_slot_mounts_of_a_killed_process_are_reaped() {
    let client = require_docker!();
    if !sandbay_testkit::skip::require(can_mount()) {
        return;
    }
    let base = Base::new();
    let slots_dir = base.path().join("slots");
    let ws = base.path().join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::write(ws.join("keep.txt"), "kept").unwrap();
    // what a killed process left: its slot directory with a workspace
    // still mounted on a slot (a pid that cannot be running)
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    let dead = slots_dir.join(format!("{}:4294967294:5", boot.trim()));
    let slot = dead.join("abc123");
    std::fs::create_dir_all(&slot).unwrap();
    nix::mount::mount(
        Some(&ws),
        &slot,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .unwrap();
    assert!(slot.join("keep.txt").is_file());
    let (slots, reaped) = WorkspaceSlots::prepare(&client, &slots_dir).await.unwrap();
    assert_eq!(slots.mode(), AttachMode::Mount);
    assert_eq!((reaped.mounts, reaped.dirs), (1, 1), "{reaped:?}");
    assert!(!dead.exists());
    assert_eq!(
        std::fs::read_to_string(ws.join("keep.txt")).unwrap(),
        "kept",
        "the workspace under the mount is untouched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_mounts_a_workspace_gets_a_container_of_its_own() {
    let client = require_docker!();
    let guard = common::Guard::new(&client, "attach-cold");
    let base = Base::new();
    let slots = WorkspaceSlots::without_mounts(&base.path().join("slots")).unwrap();
    assert_eq!(slots.mode(), AttachMode::Cold);
    let ws = base.path().join("ws/carol");
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::write(ws.join("seed.txt"), "cold\n").unwrap();
    let config = if nix::unistd::geteuid().is_root() {
        guard.config()
    } else {
        guard.config().with_user(format!(
            "{}:{}",
            nix::unistd::geteuid(),
            nix::unistd::getegid()
        ))
    };
    let sb = DockerSandbox::create_for_workspace(&client, config, &slots, &ws)
        .await
        .unwrap();
    assert_eq!(sb.attach_mode(), Some(AttachMode::Cold));
    let out = sb
        .execute(ExecRequest::new("cat seed.txt; echo new > new.txt"))
        .await
        .unwrap();
    assert_eq!(out.stdout, b"cold\n");
    assert_eq!(sb.read_to_string(&p("/new.txt")).await.unwrap(), "new\n");
    let err = sb.attach_workspace(&ws).await.unwrap_err();
    assert_eq!(err.code().as_str(), "unsupported");
    sb.shutdown().await.unwrap();
    assert_eq!(
        std::fs::read_to_string(ws.join("new.txt")).unwrap(),
        "new\n"
    );
    assert!(base.mounts_below().is_empty(), "cold mode mounts nothing");
}

/// Every non-directory below `dir` (not following links), as paths.
fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let path = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => {
                // a directory made by the sandbox counts too
                if std::fs::metadata(&path)
                    .is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) != 0)
                {
                    out.push(path.clone());
                }
                out.extend(walk_files(&path));
            }
            _ => out.push(path),
        }
    }
    out
}
