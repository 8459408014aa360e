//! FIFOs, sockets and device nodes: never opened in a way that blocks,
//! always a typed error.

use std::path::PathBuf;
use std::time::Duration;

use nix::sys::stat::{Mode, SFlag, makedev, mknod};
use sandbay_core::{
    BackendExt, EditRequest, EntryKind, ErrorCode, GlobRequest, GrepRequest, ReadRequest,
};

use super::{Arena, sweep};
use crate::Fixture;

/// How long one operation on a special file may take.
const QUICK: Duration = Duration::from_secs(3);

/// Opens the write end of FIFOs on drop, so a reader stuck in `open`
/// (a backend that got it wrong) is released and the test can end.
struct UnblockFifos(Vec<PathBuf>);

impl Drop for UnblockFifos {
    fn drop(&mut self) {
        use std::os::unix::fs::OpenOptionsExt;
        for fifo in &self.0 {
            let _ = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(nix::libc::O_NONBLOCK)
                .open(fifo);
        }
    }
}

/// Runs one operation with a deadline; a hang is a failure, not a stuck test.
async fn quick<T>(what: &str, op: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(QUICK, op).await {
        Ok(out) => out,
        Err(_) => panic!("{what} blocked for more than {QUICK:?}"),
    }
}

/// Every file operation on a FIFO returns `permission_denied` at once
/// (a plain `open` for reading would block until a writer comes); walks
/// skip it; `ls` and `stat` report it as `other`.
pub async fn fifo_never_blocks(fx: &Fixture) {
    let a = Arena::new(fx);
    std::fs::create_dir(a.host("d")).unwrap();
    let fifos = vec![a.host("pipe"), a.host("d/pipe.txt")];
    for fifo in &fifos {
        nix::unistd::mkfifo(fifo.as_path(), Mode::S_IRUSR | Mode::S_IWUSR).unwrap();
    }
    let _release = UnblockFifos(fifos);
    special_file_is_refused(&a, "/pipe", "a FIFO", EntryKind::Other).await;
    special_file_is_refused(&a, "/d/pipe.txt", "a FIFO", EntryKind::Other).await;
    // a link to a FIFO is no way around it
    std::os::unix::fs::symlink("pipe", a.host("to-pipe")).unwrap();
    special_file_is_refused(&a, "/to-pipe", "a link to a FIFO", EntryKind::Symlink).await;
}

/// A Unix socket and a device node behave like the FIFO: typed refusal,
/// never read. Making the device node needs `CAP_MKNOD`: without it the
/// device part is skipped locally and fails in CI (`CI=true`).
pub async fn socket_and_device_are_refused(fx: &Fixture) {
    let a = Arena::new(fx);
    let _listener = std::os::unix::net::UnixListener::bind(a.host("sock")).unwrap();
    special_file_is_refused(&a, "/sock", "a socket", EntryKind::Other).await;
    // /dev/null's numbers: reading it would "succeed" with nothing
    match mknod(
        a.host("null").as_path(),
        SFlag::S_IFCHR,
        Mode::S_IRUSR | Mode::S_IWUSR,
        makedev(1, 3),
    ) {
        Ok(()) => special_file_is_refused(&a, "/null", "a device node", EntryKind::Other).await,
        Err(e) => crate::skip::skip(format!("the device node case needs mknod (it failed: {e})")),
    }
}

/// Checks every operation on one special file; `listed` is what `ls`
/// must call it (`other`, or `symlink` for a link to one).
async fn special_file_is_refused(a: &Arena, path: &str, what: &str, listed: EntryKind) {
    let b = a.backend();
    let p = a.path(path);
    let denied = ErrorCode::PermissionDenied;
    let at = |op: &str| format!("{op} {what} at {path}");
    let r = quick(&at("read"), b.read(&p, ReadRequest::default())).await;
    let err = a.expect_err(r, denied, &at("read"));
    assert!(
        err.to_string().contains("not a regular file"),
        "{}: the reason says what is wrong: {err}",
        at("read")
    );
    let r = quick(&at("download"), b.read_bytes(&p)).await;
    a.expect_err(r, denied, &at("download"));
    let edit = EditRequest {
        old: "a".into(),
        new: "b".into(),
        replace_all: false,
    };
    let r = quick(&at("edit"), b.edit(&p, &edit)).await;
    a.expect_err(r, denied, &at("edit"));
    let mut grep = GrepRequest::new("x");
    grep.path = p.clone();
    let r = quick(&at("grep"), b.grep(&grep)).await;
    a.expect_err(r, denied, &at("grep"));
    let st = quick(&at("stat"), b.stat(&p)).await;
    assert_eq!(a.expect_ok(st, &at("stat")).kind, EntryKind::Other);
    let parent = p.parent().unwrap();
    let ls = a.expect_ok(quick(&at("ls"), b.ls(&parent)).await, &at("ls"));
    let entry = ls.iter().find(|e| e.path == p).expect("ls lists it");
    assert_eq!(entry.kind, listed, "{}", at("ls"));
    quick(&at("sweep"), sweep(a, what)).await;
    let glob = quick(&at("glob"), b.glob(&GlobRequest::new("**/*"))).await;
    let glob = a.expect_ok(glob, &at("glob"));
    assert!(
        !glob.paths.contains(&p),
        "{}: special files are not regular files",
        at("glob")
    );
}
