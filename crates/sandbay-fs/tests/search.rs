//! `glob` and `grep` on a real tree: path order, limits, filters, and
//! what the walk skips (symlinks, special files, binary and large files).

mod common;

use common::{Ws, p};
use sandbay_core::{Backend, GlobRequest, GrepMode, GrepRequest, Limits};
use sandbay_fs::FsConfig;

async fn tree() -> Ws {
    let ws = Ws::new().await;
    for (path, text) in [
        ("/a/b.py", "import os\nTODO one\n"),
        ("/a-c.py", "TODO two\n"),
        ("/a/z/deep.py", "x\nTODO three\nTODO four\n"),
        ("/a/z/deep.txt", "TODO five\n"),
        ("/.hidden.py", "TODO hidden\n"),
        ("/b/readme.md", "nothing\n"),
        ("/ab", "TODO ab\n"),
    ] {
        ws.fs.write(&p(path), text).await.unwrap();
    }
    ws
}

fn paths(v: &[sandbay_core::VPath]) -> Vec<&str> {
    v.iter().map(|p| p.as_str()).collect()
}

#[tokio::test]
async fn glob_order_targets_and_limits() {
    let ws = tree().await;
    let out = ws.fs.glob(&GlobRequest::new("*.py")).await.unwrap();
    assert_eq!(
        paths(&out.paths),
        ["/.hidden.py", "/a-c.py", "/a/b.py", "/a/z/deep.py"]
    );
    assert!(!out.truncated);
    let out = ws.fs.glob(&GlobRequest::new("**/*")).await.unwrap();
    assert_eq!(
        paths(&out.paths),
        [
            "/.hidden.py",
            "/a-c.py",
            "/a/b.py",
            "/a/z/deep.py",
            "/a/z/deep.txt",
            "/ab",
            "/b/readme.md"
        ]
    );
    let mut req = GlobRequest::new("*");
    req.limit = 3;
    let out = ws.fs.glob(&req).await.unwrap();
    assert_eq!(paths(&out.paths), ["/.hidden.py", "/a-c.py", "/a/b.py"]);
    assert!(out.truncated);
    req.limit = 7;
    assert!(!ws.fs.glob(&req).await.unwrap().truncated);
    let mut req = GlobRequest::new("z/*.py");
    req.path = p("/a");
    assert_eq!(
        paths(&ws.fs.glob(&req).await.unwrap().paths),
        ["/a/z/deep.py"]
    );
    let mut req = GlobRequest::new("*");
    req.path = p("/ab");
    ws.check(&ws.fs.glob(&req).await.unwrap_err(), "not_a_directory");
    req.path = p("/nope");
    ws.check(&ws.fs.glob(&req).await.unwrap_err(), "not_found");
    ws.check(
        &ws.fs.glob(&GlobRequest::new("a[")).await.unwrap_err(),
        "invalid_argument",
    );
}

#[tokio::test]
async fn walks_never_follow_symlinks() {
    let ws = tree().await;
    std::os::unix::fs::symlink("a", ws.host("link-dir")).unwrap();
    std::os::unix::fs::symlink("a/b.py", ws.host("link.py")).unwrap();
    std::os::unix::fs::symlink(".", ws.host("a/z/loop")).unwrap();
    let out = ws.fs.glob(&GlobRequest::new("**/*.py")).await.unwrap();
    assert_eq!(
        paths(&out.paths),
        ["/.hidden.py", "/a-c.py", "/a/b.py", "/a/z/deep.py"]
    );
    let out = ws.fs.grep(&GrepRequest::new("TODO")).await.unwrap();
    assert!(out.files.iter().all(|f| !f.path.as_str().contains("link")));
    // a link given as the search path is followed (it stays inside)
    let mut req = GrepRequest::new("TODO");
    req.path = p("/link.py");
    assert_eq!(
        ws.fs.grep(&req).await.unwrap().files[0].path.as_str(),
        "/link.py"
    );
}

#[tokio::test]
async fn grep_modes_order_and_limit() {
    let ws = tree().await;
    // files mode stops at the first match of each file
    let out = ws.fs.grep(&GrepRequest::new("TODO")).await.unwrap();
    let files: Vec<(&str, usize)> = out
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.matches))
        .collect();
    assert_eq!(
        files,
        [
            ("/.hidden.py", 1),
            ("/a-c.py", 1),
            ("/a/b.py", 1),
            ("/a/z/deep.py", 1),
            ("/a/z/deep.txt", 1),
            ("/ab", 1)
        ]
    );
    let mut req = GrepRequest::new("TODO");
    req.max_matches = 4;
    req.mode = GrepMode::Content;
    req.before = 1;
    let out = ws.fs.grep(&req).await.unwrap();
    assert!(out.truncated);
    assert_eq!(out.files.iter().map(|f| f.matches).sum::<usize>(), 4);
    let deep = out.files.last().unwrap();
    assert_eq!(deep.path.as_str(), "/a/z/deep.py");
    assert_eq!(deep.lines[0].text, "x");
    assert!(!deep.lines[0].is_match);
    let mut req = GrepRequest::new("todo");
    req.case_insensitive = true;
    req.glob = Some("*.txt".into());
    let out = ws.fs.grep(&req).await.unwrap();
    assert_eq!(out.files.len(), 1);
    assert_eq!(out.files[0].path.as_str(), "/a/z/deep.txt");
    let mut req = GrepRequest::new("TODO");
    req.path = p("/a/z");
    req.mode = GrepMode::Count;
    let out = ws.fs.grep(&req).await.unwrap();
    assert_eq!(out.files.len(), 2);
    assert!(out.files[0].lines.is_empty());
    ws.check(
        &ws.fs.grep(&GrepRequest::new("(")).await.unwrap_err(),
        "invalid_argument",
    );
    let mut req = GrepRequest::new("x");
    req.path = p("/nope");
    ws.check(&ws.fs.grep(&req).await.unwrap_err(), "not_found");
    req.path = p("/ab/x");
    ws.check(&ws.fs.grep(&req).await.unwrap_err(), "not_a_directory");
}

#[tokio::test]
async fn grep_skips_binary_large_and_special_files() {
    let config = FsConfig::default().with_limits(Limits {
        max_text_file_bytes: 100,
        ..Limits::default()
    });
    let ws = Ws::with_config(config).await;
    ws.fs.write(&p("/small.txt"), "needle\n").await.unwrap();
    ws.fs
        .write(&p("/large.txt"), &format!("needle\n{}", "x".repeat(200)))
        .await
        .unwrap();
    ws.fs
        .upload(vec![(p("/bin.dat"), b"needle\0".to_vec())])
        .await;
    nix::unistd::mkfifo(&ws.host("pipe"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        ws.fs.grep(&GrepRequest::new("needle")),
    )
    .await
    .expect("grep must not block on a FIFO")
    .unwrap();
    assert_eq!(out.files.len(), 1);
    assert_eq!(out.files[0].path.as_str(), "/small.txt");
}

#[tokio::test]
async fn walk_order_equals_sorted_paths_on_tricky_names() {
    let ws = Ws::new().await;
    let names = [
        "/a/b", "/a-b", "/a.b", "/a0", "/a/a", "/a/b-c/d", "/a/b.c", "/a/b/c", "/A", "/é", "/z",
        "/a/ b", "/a/!",
    ];
    for n in names {
        // "/a/b" is both a file and a parent in this list: keep the directory
        if n == "/a/b" {
            continue;
        }
        ws.fs.write(&p(n), "hit\n").await.unwrap();
    }
    let out = ws.fs.glob(&GlobRequest::new("**/*")).await.unwrap();
    let mut sorted = out.paths.clone();
    sorted.sort();
    assert_eq!(out.paths, sorted);
    let grep = ws.fs.grep(&GrepRequest::new("hit")).await.unwrap();
    let got: Vec<_> = grep.files.iter().map(|f| f.path.clone()).collect();
    assert_eq!(got, sorted, "grep feeds files in full path order");
    assert_eq!(got.len(), names.len() - 1);
}
