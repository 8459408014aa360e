//! `clear` against names `ls` cannot show, planted from the host side.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use nix::sys::stat::Mode;

use super::Arena;
use crate::Fixture;

/// The raw names below the workspace root on the host.
fn host_entries(a: &Arena) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(a.root())
        .expect("the workspace root is readable")
        .map(|e| PathBuf::from(e.unwrap().file_name()))
        .collect();
    out.sort();
    out
}

/// A workspace with entries whose names are no valid virtual path (a
/// newline, invalid UTF-8, a backslash, a control character, at the top
/// and deeper down), a hidden file, a FIFO and links to the outside:
/// `clear` removes every one of them, reports how many top-level entries
/// it removed, checks emptiness on the raw names, and changes nothing
/// outside (links are removed, never followed).
pub async fn clear_removes_every_name(fx: &Fixture) {
    let a = Arena::new(fx);
    let raw = |bytes: &[u8]| a.root().join(OsStr::from_bytes(bytes));
    std::fs::write(raw(b"a\nb"), "previous user's a\\nb\n").unwrap();
    std::fs::write(raw(b"x\xffy"), "previous user's x\\377y\n").unwrap();
    std::fs::write(raw(b"back\\slash"), "previous user's backslash\n").unwrap();
    std::fs::create_dir(raw(b"dir\x01")).unwrap();
    std::fs::write(raw(b"dir\x01/secret"), "previous user's secret\n").unwrap();
    std::fs::create_dir(raw(b"plain")).unwrap();
    std::fs::write(raw(b"plain/inner\nname"), "deep\n").unwrap();
    std::fs::write(raw(b"plain/z\xfe"), "deep\n").unwrap();
    std::fs::write(raw(b".hidden"), "hidden\n").unwrap();
    std::fs::write(raw(b"notes.txt"), "notes\n").unwrap();
    nix::unistd::mkfifo(&raw(b"pipe"), Mode::S_IRUSR | Mode::S_IWUSR).unwrap();
    std::os::unix::fs::symlink(a.outside(), raw(b"to-outside")).unwrap();
    std::os::unix::fs::symlink(a.outside().join("secret.txt"), raw(b"to-secret\n")).unwrap();
    std::os::unix::fs::symlink(a.outside_from_root(), raw(b"plain/up")).unwrap();
    let planted = host_entries(&a).len();
    assert_eq!(planted, 10, "the planted names: {:?}", host_entries(&a));
    let before = a.outside_state();

    let removed = a.expect_ok(a.backend().clear().await, "clear");
    assert_eq!(removed, planted, "clear counts every top-level entry");
    assert_eq!(
        host_entries(&a),
        Vec::<PathBuf>::new(),
        "clear left entries behind"
    );
    a.assert_outside_unchanged(&before, "clear");
    assert!(a.backend().ls(&a.path("/")).await.unwrap().is_empty());
    // An empty workspace clears to nothing, and stays usable.
    assert_eq!(a.expect_ok(a.backend().clear().await, "clear again"), 0);
    a.backend()
        .write(&a.path("/after.txt"), "next user\n")
        .await
        .unwrap();
    assert_eq!(host_entries(&a), vec![PathBuf::from("after.txt")]);
}
