//! Workspaces side by side: one jail cannot read another's workspace, a
//! dropped jail gives its workspace back, and a directory a jail must not
//! take over is refused before anything is changed.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use common::{jail, out, run, skip};
use sandbay_core::{ErrorCode, ExecRequest, Isolation};

const T: Duration = Duration::from_secs(20);

per_level!(
    a_jail_cannot_read_a_neighbours_workspace,
    a_dropped_jail_gives_its_workspace_back,
    wrong_workspace_roots_are_refused,
);

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().mode() & 0o7777
}

/// A parent with mode `parent_mode` holding two fresh workspaces (made as
/// `mkdir` makes them, `0755`), removed on drop.
fn side_by_side(parent_mode: u32) -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let parent = tempfile::Builder::new()
        .prefix("sandbay-exec-test-shared-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(parent.path(), PermissionsExt::from_mode(parent_mode)).unwrap();
    let (a, b) = (parent.path().join("a"), parent.path().join("b"));
    for ws in [&a, &b] {
        std::fs::create_dir(ws).unwrap();
        std::fs::set_permissions(ws, PermissionsExt::from_mode(0o755)).unwrap();
    }
    (parent, a, b)
}

async fn a_jail_cannot_read_a_neighbours_workspace(level: Isolation) {
    if !nix::unistd::geteuid().is_root() {
        skip("jails with uids of their own need root");
        return;
    }
    for parent_mode in [0o711, 0o755] {
        let (Some(jail_a), Some(jail_b)) = (jail(level, |_| {}), jail(level, |_| {})) else {
            return;
        };
        let (_parent, a, b) = side_by_side(parent_mode);
        let secret = b.join("secret.txt");
        std::fs::write(&secret, "secret of b\n").unwrap();
        std::fs::set_permissions(&secret, PermissionsExt::from_mode(0o644)).unwrap();
        // b's own command reads it (and b's workspace is handed over)
        let o = run(&jail_b, &b, "cat secret.txt", T).await;
        assert_eq!(out(&o), "secret of b\n");
        let meta = std::fs::metadata(&b).unwrap();
        assert_eq!(meta.uid(), jail_b.enforcement().host_uid);
        assert_eq!(mode(&b), 0o700, "only b's uid enters b's workspace");
        // a knows the host path (at `Limits` it sees the host's files)
        let o = run(
            &jail_a,
            &a,
            &format!("cat {0}/secret.txt; ls {0}", b.display()),
            T,
        )
        .await;
        assert!(
            !out(&o).contains("secret of b") && !out(&o).contains("secret.txt"),
            "parent {parent_mode:o}: a read b's workspace: {}",
            out(&o)
        );
        assert_ne!(o.exit_code, Some(0));
        // and its own workspace works as before
        let o = run(&jail_a, &a, "echo mine > f && cat f", T).await;
        assert_eq!(out(&o), "mine\n");
    }
}

async fn a_dropped_jail_gives_its_workspace_back(level: Isolation) {
    if !nix::unistd::geteuid().is_root() {
        skip("jails with uids of their own need root");
        return;
    }
    let Some(jail) = jail(level, |_| {}) else {
        return;
    };
    let (_parent, ws, _) = side_by_side(0o711);
    let o = run(&jail, &ws, "echo made > made", T).await;
    assert_eq!(o.exit_code, Some(0));
    let uid = jail.enforcement().host_uid;
    assert_eq!(std::fs::metadata(&ws).unwrap().uid(), uid);
    let clone = jail.clone();
    drop(jail);
    assert_eq!(
        std::fs::metadata(&ws).unwrap().uid(),
        uid,
        "a clone still holds the jail"
    );
    drop(clone);
    // the uid lease is returned: a later jail with that uid must not own it
    let meta = std::fs::metadata(&ws).unwrap();
    assert_eq!((meta.uid(), meta.gid(), mode(&ws)), (0, 0, 0o700));
    // the next jail takes the whole tree over again
    let Some(next) = common::jail(level, |_| {}) else {
        return;
    };
    let o = run(&next, &ws, "cat made && echo again >> made", T).await;
    assert_eq!(out(&o), "made\n");
    assert_eq!(o.exit_code, Some(0));
    assert_eq!(
        std::fs::metadata(ws.join("made")).unwrap().uid(),
        next.enforcement().host_uid
    );
}

/// A fresh directory with something mounted on it (`mount` arguments
/// before the directory), unmounted on drop.
struct Mounted(tempfile::TempDir);

impl Mounted {
    fn new(args: &[&str]) -> Option<Mounted> {
        let dir = tempfile::Builder::new()
            .prefix("sandbay-exec-test-mnt-")
            .tempdir()
            .unwrap();
        let ok = std::process::Command::new("mount")
            .args(args)
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Mounted(dir))
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.0.path())
            .status();
    }
}

async fn wrong_workspace_roots_are_refused(level: Isolation) {
    let Some(jail) = jail(level, |_| {}) else {
        return;
    };
    let refused = |path: &Path, reason: &str| {
        let jail = jail.clone();
        let path = path.to_path_buf();
        let reason = reason.to_owned();
        async move {
            let e = jail
                .run(&path, ExecRequest::new("true").timeout(T))
                .await
                .unwrap_err();
            assert_eq!(
                e.code(),
                ErrorCode::PermissionDenied,
                "{}: {e}",
                path.display()
            );
            assert_eq!(e.to_string(), format!("/: permission denied: {reason}"));
        }
    };
    let shallow = "a workspace must be a directory at least two levels below the host root";
    let system = "a workspace may not be in a system directory";
    let tmp_before = std::fs::metadata("/tmp").unwrap();
    for path in ["/", "/tmp", "/tmp/..", "/home"] {
        if Path::new(path).exists() {
            refused(Path::new(path), shallow).await;
        }
    }
    for path in [
        "/usr/share",
        "/etc/ssl",
        "/proc/self",
        "/dev/pts",
        "/sys/fs/cgroup",
    ] {
        if Path::new(path).exists() {
            refused(Path::new(path), system).await;
        }
    }
    // `/dev/shm` is a mount point, but workspaces may be below it
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        refused(shm, "a workspace may not be a mount point").await;
        let ws = tempfile::Builder::new()
            .prefix("sandbay-exec-test-ws-")
            .tempdir_in(shm)
            .unwrap();
        let o = run(&jail, ws.path(), "echo in shm", T).await;
        assert_eq!(out(&o), "in shm\n");
    }
    let tmp_after = std::fs::metadata("/tmp").unwrap();
    assert_eq!(
        (tmp_after.uid(), tmp_after.mode()),
        (tmp_before.uid(), tmp_before.mode()),
        "nothing was handed over"
    );
    // someone else's directory
    if nix::unistd::geteuid().is_root() {
        let theirs = common::workspace();
        std::fs::write(theirs.path().join("f"), "x").unwrap();
        std::os::unix::fs::chown(theirs.path(), Some(12345), Some(12345)).unwrap();
        refused(
            theirs.path(),
            "the workspace directory belongs to another user",
        )
        .await;
        assert_eq!(std::fs::metadata(theirs.path()).unwrap().uid(), 12345);
        assert_eq!(std::fs::metadata(theirs.path().join("f")).unwrap().uid(), 0);
        // a workspace another jail left (its process crashed, say) is taken over
        let left = common::workspace();
        let other = sandbay_exec::UID_RANGE.end - 3;
        std::os::unix::fs::chown(left.path(), Some(other), Some(other)).unwrap();
        let o = run(&jail, left.path(), "echo taken", T).await;
        assert_eq!(out(&o), "taken\n");
        assert_eq!(
            std::fs::metadata(left.path()).unwrap().uid(),
            jail.enforcement().host_uid
        );
        // a mount point: a file system of its own, or a bind mount of the
        // same one (same device as its parent)
        let source = common::workspace();
        let bind = ["--bind", source.path().to_str().unwrap()];
        for args in [
            &["-t", "tmpfs", "-o", "size=1m", "sandbay-exec-test"][..],
            &bind[..],
        ] {
            match Mounted::new(args) {
                Some(mounted) => {
                    refused(mounted.0.path(), "a workspace may not be a mount point").await;
                    assert_eq!(std::fs::metadata(mounted.0.path()).unwrap().uid(), 0);
                }
                None => skip(&format!("mount {args:?} failed")),
            }
        }
    }
    // a workspace below those is fine
    let ws = common::workspace();
    let o = run(&jail, ws.path(), "echo ok", T).await;
    assert_eq!(out(&o), "ok\n");
}
