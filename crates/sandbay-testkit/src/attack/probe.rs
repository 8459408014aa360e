//! Running every operation against one path and checking each answer.

use sandbay_core::{
    BackendExt, EditRequest, ErrorCode, GlobRequest, GrepRequest, ReadRequest, VPath,
};

use super::Arena;

/// Runs read, stat, download, edit, write, ls, grep and glob on `path`,
/// which leads outside the workspace: each must fail with
/// `permission_denied` and leak nothing, and the outside must be
/// unchanged afterwards. `what` names the scenario in failures.
pub async fn probe_escape(arena: &Arena, path: &str, what: &str) {
    let before = arena.outside_state();
    let p = arena.path(path);
    let b = arena.backend();
    let denied = ErrorCode::PermissionDenied;
    let at = |op: &str| format!("{what}: {op} {path}");
    arena.expect_err(
        b.read(&p, ReadRequest::default()).await,
        denied,
        &at("read"),
    );
    arena.expect_err(b.stat(&p).await, denied, &at("stat"));
    arena.expect_err(b.read_bytes(&p).await, denied, &at("download"));
    let edit = EditRequest {
        old: "tick".into(),
        new: "PWNED".into(),
        replace_all: true,
    };
    arena.expect_err(b.edit(&p, &edit).await, denied, &at("edit"));
    arena.expect_err(b.write(&p, "PWNED\n").await, denied, &at("write"));
    arena.expect_err(
        b.write_bytes(&p, b"PWNED".to_vec()).await,
        denied,
        &at("upload"),
    );
    arena.expect_err(b.ls(&p).await, denied, &at("ls"));
    let mut grep = GrepRequest::new(arena.secret());
    grep.literal = true;
    grep.path = p.clone();
    arena.expect_err(b.grep(&grep).await, denied, &at("grep"));
    let mut glob = GlobRequest::new("**/*");
    glob.path = p.clone();
    arena.expect_err(b.glob(&glob).await, denied, &at("glob"));
    arena.assert_outside_unchanged(&before, &at("after every operation"));
}

/// Searches the whole workspace for the secret (grep, glob, ls of the
/// root): nothing may come back, whatever links lie around.
pub async fn sweep(arena: &Arena, what: &str) {
    let b = arena.backend();
    let mut grep = GrepRequest::new(arena.secret());
    grep.literal = true;
    let out = arena.expect_ok(b.grep(&grep).await, &format!("{what}: grep the root"));
    assert!(
        out.files.is_empty(),
        "{what}: grep found the secret: {out:?}"
    );
    let mut grep = GrepRequest::new("tick|SANDBAY|secret");
    grep.mode = sandbay_core::GrepMode::Content;
    arena.expect_ok(b.grep(&grep).await, &format!("{what}: grep content"));
    let glob = arena.expect_ok(
        b.glob(&GlobRequest::new("**/*")).await,
        &format!("{what}: glob the root"),
    );
    for path in &glob.paths {
        let bytes = b.read_bytes(path).await;
        if let Ok(bytes) = &bytes {
            let checker = arena.checker();
            assert!(
                checker.bytes_problem(bytes).is_none(),
                "{what}: glob led to {path}, which holds the secret"
            );
        }
    }
    arena.expect_ok(b.ls(&VPath::root()).await, &format!("{what}: ls /"));
}
