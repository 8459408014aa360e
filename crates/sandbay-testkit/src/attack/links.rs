//! Symlinks and hard links: inside ones work, anything leading out is
//! refused, walks never follow.

use std::os::unix::fs::symlink;

use sandbay_core::{
    BackendExt, EditRequest, EntryKind, ErrorCode, GlobRequest, GrepRequest, ReadRequest,
};

use super::{Arena, probe_escape, sweep};
use crate::Fixture;

fn edit(old: &str, new: &str) -> EditRequest {
    EditRequest {
        old: old.into(),
        new: new.into(),
        replace_all: false,
    }
}

/// A relative symlink to a file inside: read, stat and edit follow it,
/// `ls` reports the link itself, `delete` removes only the link.
pub async fn symlink_to_file_inside_is_followed(fx: &Fixture) {
    let a = Arena::new(fx);
    let b = a.backend();
    std::fs::create_dir_all(a.host("real")).unwrap();
    std::fs::write(a.host("real/t.txt"), "inside\n").unwrap();
    symlink("real/t.txt", a.host("link.txt")).unwrap();
    let link = a.path("/link.txt");
    let w = a.expect_ok(b.read(&link, ReadRequest::default()).await, "read link");
    assert_eq!(w.lines, ["inside"]);
    let st = a.expect_ok(b.stat(&link).await, "stat link");
    assert_eq!(
        (st.kind, st.size),
        (EntryKind::File, 7),
        "stat follows the link"
    );
    let ls = a.expect_ok(b.ls(&a.path("/")).await, "ls /");
    let entry = ls
        .iter()
        .find(|e| e.path == link)
        .expect("the link is listed");
    assert_eq!(entry.kind, EntryKind::Symlink);
    a.expect_ok(b.edit(&link, &edit("inside", "edited")).await, "edit link");
    assert_eq!(
        std::fs::read_to_string(a.host("real/t.txt")).unwrap(),
        "edited\n"
    );
    assert!(
        std::fs::symlink_metadata(a.host("link.txt"))
            .unwrap()
            .file_type()
            .is_symlink(),
        "edit keeps the link a link"
    );
    a.expect_ok(b.delete(&link).await, "delete link");
    assert!(std::fs::symlink_metadata(a.host("link.txt")).is_err());
    assert_eq!(
        std::fs::read_to_string(a.host("real/t.txt")).unwrap(),
        "edited\n"
    );
}

/// A relative symlink to a directory inside: paths through it work, but
/// `glob` and `grep` do not walk into it (no duplicates, no loops).
pub async fn symlink_to_dir_inside_is_not_walked(fx: &Fixture) {
    let a = Arena::new(fx);
    let b = a.backend();
    std::fs::create_dir_all(a.host("real/sub")).unwrap();
    std::fs::write(a.host("real/sub/t.txt"), "needle\n").unwrap();
    symlink("real", a.host("dlink")).unwrap();
    symlink("..", a.host("real/sub/up")).unwrap();
    let via = a.path("/dlink/sub/t.txt");
    assert_eq!(
        a.expect_ok(b.read_to_string(&via).await, "read via link"),
        "needle\n"
    );
    let glob = a.expect_ok(b.glob(&GlobRequest::new("**/*.txt")).await, "glob");
    let paths: Vec<&str> = glob.paths.iter().map(|p| p.as_str()).collect();
    assert_eq!(paths, ["/real/sub/t.txt"], "links are not walked");
    let grep = a.expect_ok(b.grep(&GrepRequest::new("needle")).await, "grep");
    assert_eq!(grep.files.len(), 1);
    assert_eq!(grep.files[0].path.as_str(), "/real/sub/t.txt");
}

/// A dangling symlink: reads give `not_found`, it does not exist for
/// `exists`, `ls` still shows it, `delete` removes it.
pub async fn dangling_symlink_is_not_found(fx: &Fixture) {
    let a = Arena::new(fx);
    let b = a.backend();
    symlink("nowhere.txt", a.host("dangling")).unwrap();
    let p = a.path("/dangling");
    a.expect_err(
        b.read(&p, ReadRequest::default()).await,
        ErrorCode::NotFound,
        "read",
    );
    a.expect_err(b.stat(&p).await, ErrorCode::NotFound, "stat");
    a.expect_err(b.read_bytes(&p).await, ErrorCode::NotFound, "download");
    a.expect_err(
        b.edit(&p, &edit("a", "b")).await,
        ErrorCode::NotFound,
        "edit",
    );
    assert!(!a.expect_ok(b.exists(&p).await, "exists"));
    let ls = a.expect_ok(b.ls(&a.path("/")).await, "ls");
    assert_eq!(ls.len(), 1);
    assert_eq!(ls[0].kind, EntryKind::Symlink);
    a.expect_ok(b.delete(&p).await, "delete");
    assert!(a.expect_ok(b.ls(&a.path("/")).await, "ls").is_empty());
}

/// Symlink loops fail fast with `permission_denied` and walks finish.
pub async fn symlink_loop_is_refused(fx: &Fixture) {
    let a = Arena::new(fx);
    let b = a.backend();
    symlink("loop-b", a.host("loop-a")).unwrap();
    symlink("loop-a", a.host("loop-b")).unwrap();
    symlink("self", a.host("self")).unwrap();
    std::fs::create_dir(a.host("dir")).unwrap();
    symlink("../dir", a.host("dir/back")).unwrap();
    let denied = ErrorCode::PermissionDenied;
    for path in ["/loop-a", "/self", "/loop-a/x"] {
        let p = a.path(path);
        let what = |op: &str| format!("{op} {path}");
        a.expect_err(
            b.read(&p, ReadRequest::default()).await,
            denied,
            &what("read"),
        );
        a.expect_err(b.stat(&p).await, denied, &what("stat"));
        a.expect_err(b.edit(&p, &edit("a", "b")).await, denied, &what("edit"));
        a.expect_err(b.write(&p, "x").await, denied, &what("write"));
        a.expect_err(b.ls(&p).await, denied, &what("ls"));
    }
    sweep(&a, "loops").await;
    let glob = a.expect_ok(b.glob(&GlobRequest::new("**/*")).await, "glob");
    assert!(glob.paths.is_empty(), "links are not files: {glob:?}");
    a.expect_ok(b.delete(&a.path("/self")).await, "delete a looping link");
}

/// An absolute symlink is refused even when it points inside the root
/// (the kernel cannot resolve it below the root), and the refusal does
/// not repeat the host path stored in the link.
pub async fn absolute_symlink_inside_is_refused(fx: &Fixture) {
    let a = Arena::new(fx);
    std::fs::write(a.host("target.txt"), "inside\n").unwrap();
    std::fs::create_dir(a.host("tdir")).unwrap();
    std::fs::write(a.host("tdir/x.txt"), "x\n").unwrap();
    symlink(a.host("target.txt"), a.host("abs-file")).unwrap();
    symlink(a.host("tdir"), a.host("abs-dir")).unwrap();
    probe_escape(&a, "/abs-file", "absolute link to an inside file").await;
    probe_escape(&a, "/abs-dir", "absolute link to an inside directory").await;
    probe_escape(&a, "/abs-dir/x.txt", "path through an absolute link").await;
    // the targets are untouched
    assert_eq!(
        std::fs::read_to_string(a.host("target.txt")).unwrap(),
        "inside\n"
    );
    assert_eq!(
        std::fs::read_to_string(a.host("tdir/x.txt")).unwrap(),
        "x\n"
    );
}

/// Absolute symlinks to a file and a directory outside: every operation
/// is refused, nothing is read or changed outside, `delete` removes the
/// link only.
pub async fn absolute_symlink_outside_is_refused(fx: &Fixture) {
    let a = Arena::new(fx);
    let b = a.backend();
    symlink(a.outside().join("secret.txt"), a.host("evil-file")).unwrap();
    symlink(a.outside(), a.host("evil-dir")).unwrap();
    probe_escape(&a, "/evil-file", "absolute link to an outside file").await;
    probe_escape(&a, "/evil-dir", "absolute link to the outside directory").await;
    sweep(&a, "absolute links outside").await;
    let before = a.outside_state();
    a.expect_ok(
        b.delete(&a.path("/evil-file")).await,
        "delete the file link",
    );
    a.expect_ok(b.delete(&a.path("/evil-dir")).await, "delete the dir link");
    a.assert_outside_unchanged(&before, "delete removes links, not targets");
}

/// A symlink in the middle of a path leading outside (absolute or
/// relative): reading, writing, listing and deleting through it are
/// refused; nothing is created outside.
pub async fn mid_path_symlink_outside_is_refused(fx: &Fixture) {
    let a = Arena::new(fx);
    let b = a.backend();
    std::fs::create_dir(a.host("inner")).unwrap();
    symlink(a.outside(), a.host("mid-abs")).unwrap();
    symlink(
        format!("../{}", a.outside_from_root()),
        a.host("inner/mid-rel"),
    )
    .unwrap();
    for base in ["/mid-abs", "/inner/mid-rel"] {
        for rest in [
            "secret.txt",
            "sub/g.txt",
            "new.txt",
            "newdir/new.txt",
            "sub",
        ] {
            let path = format!("{base}/{rest}");
            probe_escape(&a, &path, "a path through a link leading out").await;
        }
        let before = a.outside_state();
        a.expect_err(
            b.delete(&a.path(&format!("{base}/secret.txt"))).await,
            ErrorCode::PermissionDenied,
            "delete through a link leading out",
        );
        a.expect_err(
            b.delete(&a.path(&format!("{base}/sub"))).await,
            ErrorCode::PermissionDenied,
            "delete a directory through a link leading out",
        );
        a.assert_outside_unchanged(&before, "deletes through a link leading out");
    }
    sweep(&a, "mid-path links").await;
}

/// Relative symlinks that climb out with `../..`, at several depths,
/// and one that climbs out and back in: all refused.
pub async fn relative_symlink_outside_is_refused(fx: &Fixture) {
    let a = Arena::new(fx);
    let out = a.outside_from_root();
    std::fs::create_dir_all(a.host("d1/d2")).unwrap();
    symlink(format!("{out}/secret.txt"), a.host("rel-file")).unwrap();
    symlink(&out, a.host("rel-dir")).unwrap();
    symlink(format!("../../{out}/secret.txt"), a.host("d1/d2/deep")).unwrap();
    symlink(
        "../../../../../../../../../../etc/passwd",
        a.host("d1/many-ups"),
    )
    .unwrap();
    // out of the root and back in through its own name is still out
    let root_name = a.root().file_name().unwrap().to_string_lossy().into_owned();
    std::fs::write(a.host("back-in.txt"), "inside\n").unwrap();
    symlink(format!("../{root_name}/back-in.txt"), a.host("out-and-in")).unwrap();
    for path in [
        "/rel-file",
        "/rel-dir",
        "/rel-dir/sub/g.txt",
        "/d1/d2/deep",
        "/d1/many-ups",
        "/out-and-in",
    ] {
        probe_escape(&a, path, "a relative link climbing out").await;
    }
    assert_eq!(
        std::fs::read_to_string(a.host("back-in.txt")).unwrap(),
        "inside\n"
    );
    sweep(&a, "relative links").await;
}

/// A hard link inside the root to a file outside (planted from the
/// host): reading and editing it are refused, grep skips it, and
/// writing or deleting the name never changes the outside file.
pub async fn hard_link_outside_is_refused(fx: &Fixture) {
    let a = Arena::new(fx);
    let b = a.backend();
    std::fs::hard_link(a.outside().join("secret.txt"), a.host("hard.txt")).unwrap();
    std::fs::create_dir(a.host("d")).unwrap();
    std::fs::hard_link(a.outside().join("f.txt"), a.host("d/hard2.txt")).unwrap();
    let before = a.outside_state();
    let denied = ErrorCode::PermissionDenied;
    for path in ["/hard.txt", "/d/hard2.txt"] {
        let p = a.path(path);
        a.expect_err(
            b.read(&p, ReadRequest::default()).await,
            denied,
            "read a hard link",
        );
        a.expect_err(b.read_bytes(&p).await, denied, "download a hard link");
        a.expect_err(
            b.edit(&p, &edit("tick", "PWNED")).await,
            denied,
            "edit a hard link",
        );
    }
    sweep(&a, "hard links").await;
    a.assert_outside_unchanged(&before, "reads of hard links");
    a.expect_ok(
        b.write(&a.path("/hard.txt"), "replaced\n").await,
        "write a hard-linked name",
    );
    a.expect_ok(
        b.delete(&a.path("/d/hard2.txt")).await,
        "delete a hard-linked name",
    );
    a.assert_outside_unchanged(&before, "write and delete of hard-linked names");
    assert_eq!(
        a.expect_ok(
            b.read_to_string(&a.path("/hard.txt")).await,
            "read the replaced name"
        ),
        "replaced\n"
    );
}
