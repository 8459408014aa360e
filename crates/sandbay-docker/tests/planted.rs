//! Links and special files a *command in the container* plants in a
//! bind-mounted workspace must never lead the host-side file operations
//! out of it (they run as the sandbox user, through the capability).

mod common;

use sandbay_core::{
    Backend, BackendExt, EditRequest, ErrorCode, ExecRequest, GlobRequest, GrepRequest,
    ReadRequest, Sandbox, VPath,
};
use sandbay_docker::{DockerSandbox, FileMode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_planted_links_are_refused() {
    let client = require_docker!();
    let guard = common::Guard::new(&client, "planted");
    let base = tempfile::tempdir().unwrap();
    // a host file next to the workspaces, holding a secret
    let secret = format!("host-secret-{}", guard.value);
    std::fs::write(base.path().join("host-secret.txt"), &secret).unwrap();
    let sb = DockerSandbox::create(
        &client,
        guard
            .config()
            .with_file_mode(FileMode::Bind)
            .with_workspace_base(base.path()),
    )
    .await
    .unwrap();
    assert_eq!(sb.file_mode(), FileMode::Bind);
    let plant = "ln -s /etc/passwd pw && ln -s /etc etc && \
                 ln -s ../../../host-secret.txt up && ln -s ../../.. upd && \
                 mkdir d && ln -s /etc/shadow d/sh && mkfifo fifo && \
                 echo inside > in.txt && ln -s in.txt ok && echo planted";
    let out = sb.execute(ExecRequest::new(plant)).await.unwrap();
    assert_eq!(out.stdout, b"planted\n", "{out:?}");

    let p = |s: &str| VPath::parse(s).unwrap();
    // a relative link that stays inside works
    assert_eq!(sb.read_to_string(&p("/ok")).await.unwrap(), "inside\n");
    for escape in [
        "/pw",
        "/etc/passwd",
        "/etc/hostname",
        "/up",
        "/upd/host-secret.txt",
        "/d/sh",
    ] {
        let path = p(escape);
        let read = sb.read(&path, ReadRequest::default()).await;
        let err = read.expect_err(escape);
        assert_eq!(
            err.code(),
            ErrorCode::PermissionDenied,
            "read {escape}: {err}"
        );
        let err = sb.read_bytes(&path).await.expect_err(escape);
        assert_eq!(
            err.code(),
            ErrorCode::PermissionDenied,
            "download {escape}: {err}"
        );
        let edit = EditRequest {
            old: "root".into(),
            new: "owned".into(),
            replace_all: true,
        };
        let err = sb.edit(&path, &edit).await.expect_err(escape);
        assert_eq!(
            err.code(),
            ErrorCode::PermissionDenied,
            "edit {escape}: {err}"
        );
        let err = sb.write(&path, "owned").await.expect_err(escape);
        assert_eq!(
            err.code(),
            ErrorCode::PermissionDenied,
            "write {escape}: {err}"
        );
        let shown = format!("{err} {err:?}");
        assert!(
            !shown.contains(&base.path().display().to_string()),
            "{shown}"
        );
    }
    // listing through a link out is refused; walks never follow links
    let err = sb.ls(&p("/etc")).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::PermissionDenied);
    let found = sb
        .grep(&GrepRequest::new("root|host-secret"))
        .await
        .unwrap();
    assert!(found.files.is_empty(), "{found:?}");
    let found = sb.glob(&GlobRequest::new("**/*")).await.unwrap();
    let names: Vec<&str> = found.paths.iter().map(VPath::as_str).collect();
    assert_eq!(names, ["/in.txt"], "only the regular file");
    // the FIFO never blocks
    let err = sb
        .read(&p("/fifo"), ReadRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::PermissionDenied);
    // nothing changed on the host
    assert_eq!(
        std::fs::read_to_string(base.path().join("host-secret.txt")).unwrap(),
        secret
    );
    assert!(
        !std::fs::read_to_string("/etc/passwd")
            .unwrap()
            .contains("owned")
    );
    // files the host side writes belong to the sandbox user: a command can change them
    sb.write(&p("/made/by-host.txt"), "host side\n")
        .await
        .unwrap();
    let out = sb
        .execute(ExecRequest::new(
            "echo more >> made/by-host.txt && touch made/new && stat -c %u made made/by-host.txt",
        ))
        .await
        .unwrap();
    assert_eq!(
        out.stdout,
        format!("{0}\n{0}\n", sb.uid()).as_bytes(),
        "{out:?}"
    );
    sb.shutdown().await.unwrap();
    // the workspace directory went with the sandbox; the base stays
    let left: Vec<_> = walk(base.path());
    assert_eq!(left, vec!["host-secret.txt".to_string()], "{left:?}");
}

/// Every file below `dir` (relative paths), directories excluded.
fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path().strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}
