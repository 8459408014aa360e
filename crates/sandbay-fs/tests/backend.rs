//! Behaviour of the fs backend on a real disk: reads, writes, edits,
//! deletes and listings, with the error codes the contract fixes.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{Ws, p};
use sandbay_core::{Backend, BackendExt, EditRequest, EntryKind, Limits, ReadRequest};
use sandbay_fs::FsConfig;

fn edit(old: &str, new: &str, all: bool) -> EditRequest {
    EditRequest {
        old: old.into(),
        new: new.into(),
        replace_all: all,
    }
}

#[tokio::test]
async fn write_read_round_trip_creates_parents() {
    let ws = Ws::new().await;
    ws.fs
        .write(&p("/a/b/c.txt"), "one\r\ntwo\nthree")
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(ws.host("a/b/c.txt")).unwrap(),
        b"one\r\ntwo\nthree"
    );
    let w = ws
        .fs
        .read(&p("/a/b/c.txt"), ReadRequest::default())
        .await
        .unwrap();
    assert_eq!(w.lines, ["one", "two", "three"]);
    assert_eq!(w.total_lines, 3);
    assert_eq!(w.next_offset, None);
    let w = ws
        .fs
        .read(
            &p("a/b/c.txt"),
            ReadRequest {
                offset: 1,
                limit: 1,
            },
        )
        .await
        .unwrap();
    assert_eq!(w.lines, ["two"]);
    assert_eq!(w.next_offset, Some(2));
    let w = ws
        .fs
        .read(
            &p("/a/b/c.txt"),
            ReadRequest {
                offset: 10,
                limit: 5,
            },
        )
        .await
        .unwrap();
    assert!(w.lines.is_empty());
    assert_eq!(w.total_lines, 3);
    // overwrite
    ws.fs.write(&p("/a/b/c.txt"), "").await.unwrap();
    let w = ws
        .fs
        .read(&p("/a/b/c.txt"), ReadRequest::default())
        .await
        .unwrap();
    assert_eq!(w.total_lines, 0);
    // unicode names and content
    ws.fs.write(&p("/ü/日本.txt"), "héllo\n").await.unwrap();
    assert_eq!(
        ws.fs.read_to_string(&p("/ü/日本.txt")).await.unwrap(),
        "héllo\n"
    );
}

#[tokio::test]
async fn write_errors_match_the_contract() {
    let ws = Ws::new().await;
    ws.fs.write(&p("/f.txt"), "x").await.unwrap();
    ws.fs.write(&p("/d/inner.txt"), "keep").await.unwrap();
    let err = ws.fs.write(&p("/f.txt/x"), "y").await.unwrap_err();
    ws.check(&err, "not_a_directory");
    assert!(err.to_string().starts_with("/f.txt/x:"), "{err}");
    let err = ws.fs.write(&p("/f.txt/x/y/z"), "y").await.unwrap_err();
    ws.check(&err, "not_a_directory");
    ws.check(
        &ws.fs.write(&p("/d"), "y").await.unwrap_err(),
        "is_directory",
    );
    ws.check(
        &ws.fs.write(&p("/"), "y").await.unwrap_err(),
        "permission_denied",
    );
    // nothing was disturbed, nothing left behind
    assert_eq!(
        ws.fs.read_to_string(&p("/d/inner.txt")).await.unwrap(),
        "keep"
    );
    assert_eq!(ws.fs.read_to_string(&p("/f.txt")).await.unwrap(), "x");
    assert_eq!(ws.host_names("/"), ["d", "f.txt"]);
    assert_eq!(ws.host_names("/d"), ["inner.txt"]);
}

#[tokio::test]
async fn writes_leave_no_temporary_files_and_keep_the_mode() {
    let ws = Ws::new().await;
    for i in 0..20 {
        ws.fs
            .write(&p("/dir/f.sh"), &format!("echo {i}\n"))
            .await
            .unwrap();
    }
    assert_eq!(ws.host_names("/dir"), ["f.sh"]);
    std::fs::set_permissions(ws.host("dir/f.sh"), std::fs::Permissions::from_mode(0o750)).unwrap();
    ws.fs.write(&p("/dir/f.sh"), "echo hi\n").await.unwrap();
    ws.fs
        .edit(&p("/dir/f.sh"), &edit("hi", "ho", false))
        .await
        .unwrap();
    let mode = std::fs::metadata(ws.host("dir/f.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o750);
    assert_eq!(
        std::fs::read_to_string(ws.host("dir/f.sh")).unwrap(),
        "echo ho\n"
    );
    assert_eq!(ws.host_names("/dir"), ["f.sh"]);
}

#[tokio::test]
async fn read_errors() {
    let ws = Ws::new().await;
    ws.fs.write(&p("/f.txt"), "x").await.unwrap();
    ws.fs
        .upload(vec![
            (p("/bin"), vec![0, 1, 2]),
            (p("/bad"), vec![0xff, 0xfe]),
        ])
        .await;
    let r = ReadRequest::default();
    ws.check(
        &ws.fs.read(&p("/missing"), r).await.unwrap_err(),
        "not_found",
    );
    ws.check(&ws.fs.read(&p("/"), r).await.unwrap_err(), "is_directory");
    ws.check(
        &ws.fs.read(&p("/f.txt/x"), r).await.unwrap_err(),
        "not_a_directory",
    );
    ws.check(&ws.fs.read(&p("/bin"), r).await.unwrap_err(), "binary_file");
    ws.check(&ws.fs.read(&p("/bad"), r).await.unwrap_err(), "binary_file");
    ws.check(
        &ws.fs.stat(&p("/f.txt/x")).await.unwrap_err(),
        "not_a_directory",
    );
    let out = ws.fs.download(&[p("/"), p("/missing"), p("/bin")]).await;
    ws.check(out[0].as_ref().unwrap_err(), "is_directory");
    ws.check(out[1].as_ref().unwrap_err(), "not_found");
    assert_eq!(out[2].as_ref().unwrap(), &[0, 1, 2]);
}

#[tokio::test]
async fn read_window_is_bounded_on_a_large_file() {
    let config = FsConfig::default().with_limits(Limits {
        max_text_file_bytes: 1024,
        max_window_bytes: 68,
    });
    let ws = Ws::with_config(config).await;
    // 8 MiB file: the window stays within its budget
    let line = "0123456789abcdef\n".repeat(8 * 1024 * 1024 / 17);
    std::fs::write(ws.host("big.txt"), &line).unwrap();
    let w = ws
        .fs
        .read(&p("/big.txt"), ReadRequest::default())
        .await
        .unwrap();
    assert_eq!(
        w.lines.len(),
        4,
        "a 68-byte budget holds four 16-byte lines and their separators"
    );
    assert_eq!(w.total_lines, 8 * 1024 * 1024 / 17);
    assert_eq!(w.next_offset, Some(4));
    // edit refuses it before loading, grep skips it
    let err = ws
        .fs
        .edit(&p("/big.txt"), &edit("0", "1", false))
        .await
        .unwrap_err();
    ws.check(&err, "too_large");
    let out = ws
        .fs
        .grep(&sandbay_core::GrepRequest::new("abc"))
        .await
        .unwrap();
    assert!(out.files.is_empty());
}

#[tokio::test]
async fn edit_rules() {
    let ws = Ws::new().await;
    let f = p("/e.txt");
    ws.fs.write(&f, "a\r\nb\r\nb\r\n").await.unwrap();
    ws.check(
        &ws.fs.edit(&f, &edit("b", "c", false)).await.unwrap_err(),
        "ambiguous_match",
    );
    ws.check(
        &ws.fs.edit(&f, &edit("zz", "c", false)).await.unwrap_err(),
        "no_match",
    );
    ws.check(
        &ws.fs.edit(&f, &edit("", "c", false)).await.unwrap_err(),
        "invalid_argument",
    );
    // the same order of checks as every backend: the file first
    ws.check(
        &ws.fs
            .edit(&p("/nope"), &edit("", "c", false))
            .await
            .unwrap_err(),
        "not_found",
    );
    ws.check(
        &ws.fs
            .edit(&p("/"), &edit("a", "c", false))
            .await
            .unwrap_err(),
        "is_directory",
    );
    let out = ws.fs.edit(&f, &edit("a\nb", "x\ny", false)).await.unwrap();
    assert_eq!(out.replacements, 1);
    assert_eq!(ws.fs.read_to_string(&f).await.unwrap(), "x\r\ny\r\nb\r\n");
    let out = ws.fs.edit(&f, &edit("\r\n", "\n", true)).await.unwrap();
    assert_eq!(out.replacements, 3);
    ws.fs.upload(vec![(p("/bin"), b"a\0b".to_vec())]).await;
    ws.check(
        &ws.fs
            .edit(&p("/bin"), &edit("a", "c", false))
            .await
            .unwrap_err(),
        "binary_file",
    );
    // failed edits change nothing
    assert_eq!(ws.fs.read_bytes(&p("/bin")).await.unwrap(), b"a\0b");
    assert_eq!(ws.host_names("/"), ["bin", "e.txt"]);
}

#[tokio::test]
async fn ls_and_stat() {
    let ws = Ws::new().await;
    ws.fs.write(&p("/b.txt"), "12345").await.unwrap();
    ws.fs.write(&p("/a-c"), "").await.unwrap();
    ws.fs.write(&p("/a/x"), "").await.unwrap();
    ws.fs.write(&p("/.hidden"), "h").await.unwrap();
    std::os::unix::fs::symlink("b.txt", ws.host("link")).unwrap();
    nix::unistd::mkfifo(&ws.host("pipe"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    // names no virtual path can express are not listed
    std::fs::write(ws.host("back\\slash"), "x").unwrap();
    std::fs::write(ws.host("new\nline"), "x").unwrap();
    let entries = ws.fs.ls(&p("/")).await.unwrap();
    let got: Vec<(&str, EntryKind, u64)> = entries
        .iter()
        .map(|e| (e.path.as_str(), e.kind, e.size))
        .collect();
    assert_eq!(
        got,
        [
            ("/.hidden", EntryKind::File, 1),
            ("/a", EntryKind::Dir, 0),
            ("/a-c", EntryKind::File, 0),
            ("/b.txt", EntryKind::File, 5),
            ("/link", EntryKind::Symlink, 5),
            ("/pipe", EntryKind::Other, 0),
        ]
    );
    ws.check(
        &ws.fs.ls(&p("/b.txt")).await.unwrap_err(),
        "not_a_directory",
    );
    ws.check(&ws.fs.ls(&p("/nope")).await.unwrap_err(), "not_found");
    let st = ws.fs.stat(&p("/link")).await.unwrap();
    assert_eq!(
        (st.path.as_str(), st.kind, st.size),
        ("/link", EntryKind::File, 5)
    );
    let st = ws.fs.stat(&p("/")).await.unwrap();
    assert_eq!((st.kind, st.size), (EntryKind::Dir, 0));
    assert_eq!(
        ws.fs.stat(&p("/pipe")).await.unwrap().kind,
        EntryKind::Other
    );
    assert!(!ws.fs.exists(&p("/nope")).await.unwrap());
}

#[tokio::test]
async fn delete_files_trees_and_links() {
    let ws = Ws::new().await;
    ws.fs.write(&p("/d/sub/f.txt"), "x").await.unwrap();
    ws.fs.write(&p("/keep/k.txt"), "k").await.unwrap();
    std::os::unix::fs::symlink("keep", ws.host("d/sub/to-keep")).unwrap();
    std::os::unix::fs::symlink("keep", ws.host("lnk")).unwrap();
    // a link is removed itself, never its target
    ws.fs.delete(&p("/lnk")).await.unwrap();
    assert_eq!(ws.fs.read_to_string(&p("/keep/k.txt")).await.unwrap(), "k");
    // a tree with a link inside: the link's target survives
    ws.fs.delete(&p("/d")).await.unwrap();
    assert_eq!(ws.fs.read_to_string(&p("/keep/k.txt")).await.unwrap(), "k");
    assert_eq!(ws.host_names("/"), ["keep"]);
    ws.check(&ws.fs.delete(&p("/d")).await.unwrap_err(), "not_found");
    ws.check(
        &ws.fs.delete(&p("/")).await.unwrap_err(),
        "permission_denied",
    );
    ws.check(
        &ws.fs.delete(&p("/keep/k.txt/x")).await.unwrap_err(),
        "not_a_directory",
    );
    ws.fs.delete(&p("/keep/k.txt")).await.unwrap();
    // the directory stays, like on any filesystem
    assert!(ws.fs.ls(&p("/keep")).await.unwrap().is_empty());
}

#[tokio::test]
async fn upload_download_binary_per_item() {
    let ws = Ws::new().await;
    let all: Vec<u8> = (0..=255).collect();
    ws.fs.write(&p("/f"), "x").await.unwrap();
    let results = ws
        .fs
        .upload(vec![
            (p("/bin/all"), all.clone()),
            (p("/f/x"), vec![1]),
            (p("/e"), vec![]),
        ])
        .await;
    assert!(results[0].is_ok());
    ws.check(results[1].as_ref().unwrap_err(), "not_a_directory");
    assert!(results[2].is_ok());
    let out = ws.fs.download(&[p("/bin/all"), p("/e"), p("/zz")]).await;
    assert_eq!(out[0].as_ref().unwrap(), &all);
    assert!(out[1].as_ref().unwrap().is_empty());
    ws.check(out[2].as_ref().unwrap_err(), "not_found");
}

#[tokio::test]
async fn symlinks_inside_are_followed_by_file_operations() {
    let ws = Ws::new().await;
    ws.fs.write(&p("/real/t.txt"), "old\n").await.unwrap();
    std::os::unix::fs::symlink("real/t.txt", ws.host("file-link")).unwrap();
    std::os::unix::fs::symlink("real", ws.host("dir-link")).unwrap();
    std::os::unix::fs::symlink("../real/t.txt", ws.host("real/../up-link")).unwrap();
    assert_eq!(
        ws.fs.read_to_string(&p("/file-link")).await.unwrap(),
        "old\n"
    );
    assert_eq!(
        ws.fs.read_to_string(&p("/dir-link/t.txt")).await.unwrap(),
        "old\n"
    );
    // edit and write change the target and keep the link
    ws.fs
        .edit(&p("/file-link"), &edit("old", "new", false))
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(ws.host("real/t.txt")).unwrap(),
        "new\n"
    );
    ws.fs.write(&p("/file-link"), "written\n").await.unwrap();
    assert!(
        std::fs::symlink_metadata(ws.host("file-link"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        std::fs::read_to_string(ws.host("real/t.txt")).unwrap(),
        "written\n"
    );
    // a chain of links, and `..` resolved where the link lives
    std::fs::create_dir(ws.host("deep")).unwrap();
    std::os::unix::fs::symlink("../file-link", ws.host("deep/chain")).unwrap();
    ws.fs.write(&p("/deep/chain"), "chained\n").await.unwrap();
    assert_eq!(
        std::fs::read_to_string(ws.host("real/t.txt")).unwrap(),
        "chained\n"
    );
    // a dangling link inside: writing creates the target
    std::os::unix::fs::symlink("real/new.txt", ws.host("dangling")).unwrap();
    ws.check(
        &ws.fs
            .read(&p("/dangling"), ReadRequest::default())
            .await
            .unwrap_err(),
        "not_found",
    );
    ws.fs.write(&p("/dangling"), "made\n").await.unwrap();
    assert_eq!(
        std::fs::read_to_string(ws.host("real/new.txt")).unwrap(),
        "made\n"
    );
    // a link to a directory is a directory for write
    ws.check(
        &ws.fs.write(&p("/dir-link"), "x").await.unwrap_err(),
        "is_directory",
    );
    std::os::unix::fs::symlink(".", ws.host("dot")).unwrap();
    ws.check(
        &ws.fs.write(&p("/dot"), "x").await.unwrap_err(),
        "is_directory",
    );
    // ls through a symlinked directory
    let names: Vec<String> = ws
        .fs
        .ls(&p("/dir-link"))
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.path.to_string())
        .collect();
    assert_eq!(names, ["/dir-link/new.txt", "/dir-link/t.txt"]);
}

#[tokio::test]
async fn hard_links_are_refused_by_default_and_never_written_through() {
    let ws = Ws::new().await;
    ws.fs.write(&p("/a.txt"), "shared\n").await.unwrap();
    std::fs::hard_link(ws.host("a.txt"), ws.host("b.txt")).unwrap();
    let err = ws
        .fs
        .read(&p("/b.txt"), ReadRequest::default())
        .await
        .unwrap_err();
    ws.check(&err, "permission_denied");
    assert!(err.to_string().contains("hard links"), "{err}");
    ws.check(
        &ws.fs
            .edit(&p("/b.txt"), &edit("s", "S", false))
            .await
            .unwrap_err(),
        "permission_denied",
    );
    ws.check(
        ws.fs.download(&[p("/a.txt")]).await[0]
            .as_ref()
            .unwrap_err(),
        "permission_denied",
    );
    assert!(
        ws.fs
            .grep(&sandbay_core::GrepRequest::new("shared"))
            .await
            .unwrap()
            .files
            .is_empty()
    );
    // a write replaces the name only; the other name keeps its content
    ws.fs.write(&p("/b.txt"), "mine\n").await.unwrap();
    assert_eq!(
        std::fs::read_to_string(ws.host("a.txt")).unwrap(),
        "shared\n"
    );
    assert_eq!(ws.fs.read_to_string(&p("/b.txt")).await.unwrap(), "mine\n");

    let allow =
        Ws::with_config(FsConfig::default().with_hard_links(sandbay_fs::HardLinkPolicy::Allow))
            .await;
    allow.fs.write(&p("/a.txt"), "shared\n").await.unwrap();
    std::fs::hard_link(allow.host("a.txt"), allow.host("b.txt")).unwrap();
    assert_eq!(
        allow.fs.read_to_string(&p("/b.txt")).await.unwrap(),
        "shared\n"
    );
    allow
        .fs
        .edit(&p("/b.txt"), &edit("shared", "edited", false))
        .await
        .unwrap();
    // edit replaces by rename too: the other name is untouched
    assert_eq!(
        std::fs::read_to_string(allow.host("a.txt")).unwrap(),
        "shared\n"
    );
}

#[tokio::test]
async fn special_files_are_refused_without_blocking() {
    let ws = Ws::new().await;
    nix::unistd::mkfifo(&ws.host("pipe"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    let _sock = std::os::unix::net::UnixListener::bind(ws.host("sock")).unwrap();
    for name in ["/pipe", "/sock"] {
        let within = std::time::Duration::from_secs(5);
        let read = tokio::time::timeout(within, ws.fs.read(&p(name), ReadRequest::default()))
            .await
            .expect("read must not block");
        let err = read.unwrap_err();
        ws.check(&err, "permission_denied");
        assert!(err.to_string().contains("not a regular file"), "{err}");
        let e = tokio::time::timeout(within, ws.fs.edit(&p(name), &edit("a", "b", false)))
            .await
            .expect("edit must not block");
        ws.check(&e.unwrap_err(), "permission_denied");
        let d = tokio::time::timeout(within, ws.fs.download(&[p(name)]))
            .await
            .unwrap();
        ws.check(d[0].as_ref().unwrap_err(), "permission_denied");
        let mut req = sandbay_core::GrepRequest::new("x");
        req.path = p(name);
        let g = tokio::time::timeout(within, ws.fs.grep(&req))
            .await
            .unwrap();
        ws.check(&g.unwrap_err(), "permission_denied");
    }
    let g = ws
        .fs
        .grep(&sandbay_core::GrepRequest::new("x"))
        .await
        .unwrap();
    assert!(g.files.is_empty());
    let found = ws
        .fs
        .glob(&sandbay_core::GlobRequest::new("*"))
        .await
        .unwrap();
    assert!(
        found.paths.is_empty(),
        "special files are not regular files"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_edits_of_one_file_lose_nothing() {
    let ws = Ws::new().await;
    let f = p("/counters.txt");
    let names = ["a", "b", "c", "d"];
    let initial: String = names.iter().map(|n| format!("{n}=0;\n")).collect();
    ws.fs.write(&f, &initial).await.unwrap();
    const ROUNDS: usize = 40;
    let tasks: Vec<_> = names
        .into_iter()
        .map(|name| {
            let (fs, f) = (ws.fs.clone(), f.clone());
            tokio::spawn(async move {
                for i in 0..ROUNDS {
                    let req = edit(
                        &format!("{name}={i};"),
                        &format!("{name}={};", i + 1),
                        false,
                    );
                    fs.edit(&f, &req)
                        .await
                        .unwrap_or_else(|e| panic!("{name} round {i}: {e}"));
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let want: String = names.iter().map(|n| format!("{n}={ROUNDS};\n")).collect();
    assert_eq!(ws.fs.read_to_string(&f).await.unwrap(), want);
}

#[tokio::test]
async fn streamed_and_whole_file_reads_agree() {
    // Small files are read whole, large ones streamed: both give what the
    // shared rules give over the same bytes, at every offset and budget.
    let config = FsConfig::default().with_limits(Limits {
        max_window_bytes: 4096,
        ..Limits::default()
    });
    let ws = Ws::with_config(config).await;
    let mut text = String::new();
    let mut i = 0;
    while text.len() < 400 * 1024 {
        match i % 4 {
            0 => text.push_str(&format!("line {i} héllo\r\n")),
            1 => text.push_str(&format!("{}\n", "日本".repeat(i % 50))),
            2 => text.push('\n'),
            _ => text.push_str(&format!("x{i}\ry\n")),
        }
        i += 1;
    }
    text.push_str("no newline at the end");
    for (name, len) in [("/small.txt", 100 * 1024), ("/large.txt", text.len())] {
        let bytes = &text.as_bytes()[..len];
        let bytes = &bytes[..bytes.iter().rposition(|&b| b == b'\n').unwrap_or(0)];
        std::fs::write(ws.host(name), bytes).unwrap();
        for (offset, limit) in [
            (0, 2000),
            (7, 3),
            (1000, 500),
            (30_000, 10),
            (usize::MAX, 1),
        ] {
            let req = ReadRequest { offset, limit };
            let got = ws.fs.read(&p(name), req).await.unwrap();
            let want = sandbay_core::text::window_slice(&p(name), bytes, req, 4096).unwrap();
            assert_eq!(got, want, "{name} offset {offset} limit {limit}");
        }
    }
}

/// A workspace removed under a live backend (a session deleted while a
/// call was on its way) answers `not_found`, never `permission_denied`:
/// the kernel refuses a temporary file in a removed directory with EPERM.
#[tokio::test]
async fn a_removed_workspace_answers_not_found() {
    let ws = Ws::new().await;
    ws.fs.write(&p("/f.txt"), "old tick").await.unwrap();
    std::fs::remove_dir_all(ws.root()).unwrap();
    ws.check(
        &ws.fs.write(&p("/new.txt"), "x").await.unwrap_err(),
        "not_found",
    );
    ws.check(
        &ws.fs.write(&p("/d/new.txt"), "x").await.unwrap_err(),
        "not_found",
    );
    ws.check(
        &ws.fs
            .upload(vec![(p("/up.txt"), b"x".to_vec())])
            .await
            .remove(0)
            .unwrap_err(),
        "not_found",
    );
    assert!(!ws.root().exists(), "nothing was made again");
}
