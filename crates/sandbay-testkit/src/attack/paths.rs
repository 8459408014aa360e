//! Hostile path strings: `..`, absolute host paths, NUL, over-long paths.

use sandbay_core::{
    BackendExt, Error, ErrorCode, GlobRequest, GrepRequest, MAX_COMPONENT_BYTES, MAX_PATH_BYTES,
    ReadRequest, VPath,
};

use super::Arena;
use crate::Fixture;

/// `..` can never climb above `/` (refused with `invalid_path` when the
/// path is parsed), and an absolute *host* path is just a virtual path
/// inside the workspace: reading the outside secret by its host path
/// finds nothing, writing there creates a file inside the root.
pub async fn dotdot_and_absolute_paths_stay_inside(fx: &Fixture) {
    let a = Arena::new(fx);
    let b = a.backend();
    let out = a.outside_from_root();
    for input in [
        "..",
        "../x",
        "/../x",
        "a/../../x",
        "/a/b/../../../x",
        "./../x",
        &format!("{out}/secret.txt"),
        &format!("/{out}/secret.txt"),
        "/../../../../../../etc/passwd",
    ] {
        let err: Error = VPath::parse(input).unwrap_err().into();
        assert_eq!(err.code(), ErrorCode::InvalidPath, "{input:?}");
        // (the message may echo the caller's own input, nothing more)
        if !input.contains(&out) {
            a.assert_clean::<()>(&Err(err), input);
        }
    }
    let before = a.outside_state();
    // The outside secret's absolute host path, used as a virtual path.
    let host_secret = a.outside().join("secret.txt");
    let as_virtual = a.path(&host_secret.to_string_lossy());
    // (errors here name the virtual path, which equals the host path by
    // construction: only the codes are checked)
    let err = b
        .read(&as_virtual, ReadRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotFound, "{err}");
    assert!(!err.to_string().contains(a.secret()));
    b.write(&as_virtual, "stays inside\n").await.unwrap();
    assert_eq!(
        b.read_to_string(&as_virtual).await.unwrap(),
        "stays inside\n"
    );
    let inside_copy = a.root().join(as_virtual.relative());
    assert_eq!(
        std::fs::read_to_string(inside_copy).unwrap(),
        "stays inside\n"
    );
    b.delete(&as_virtual).await.unwrap();
    a.assert_outside_unchanged(&before, "absolute host paths");
    // Glob patterns with `..` only ever match virtual paths inside.
    std::fs::write(a.host("in.txt"), "x\n").unwrap();
    for pattern in [
        "../*",
        "/../*",
        "**/../../*",
        "../**/secret.txt",
        "/**/../*",
    ] {
        let r = b.glob(&GlobRequest::new(pattern)).await;
        a.assert_clean(&r, pattern);
        if let Ok(out) = r {
            assert!(
                out.paths.iter().all(|p| p.as_str() == "/in.txt"),
                "{pattern}: {out:?}"
            );
        }
        let mut grep = GrepRequest::new(a.secret());
        grep.glob = Some(pattern.into());
        let r = b.grep(&grep).await;
        a.assert_clean(&r, pattern);
        if let Ok(out) = r {
            assert!(out.files.is_empty(), "{pattern}: {out:?}");
        }
    }
    a.assert_outside_unchanged(&before, "glob patterns with ..");
}

/// NUL bytes, control characters, over-long components and paths are
/// refused at the boundary with `invalid_path` (and a message without
/// the raw bytes); the longest valid names and paths work end to end.
pub async fn nul_and_overlong_paths_are_refused(fx: &Fixture) {
    let a = Arena::new(fx);
    let b = a.backend();
    let too_long_component = "x".repeat(MAX_COMPONENT_BYTES + 1);
    let too_long_path = "/abc".repeat(MAX_PATH_BYTES / 4 + 1);
    for input in [
        "a\0b",
        "/x\0/../../etc",
        "\0",
        "a\nb",
        "a\\..\\b",
        &too_long_component,
        &too_long_path,
    ] {
        let err: Error = VPath::parse(input).unwrap_err().into();
        assert_eq!(err.code(), ErrorCode::InvalidPath, "{input:?}");
        let shown = err.to_string();
        assert!(!shown.contains('\0') && !shown.contains('\n'), "{shown:?}");
        assert!(
            shown.len() < 600,
            "the message is bounded: {} bytes",
            shown.len()
        );
    }
    let err = b.glob(&GlobRequest::new("a\0b")).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument, "{err}");
    // The longest name, and a path close to the longest, work.
    let name = format!("/{}", "n".repeat(MAX_COMPONENT_BYTES));
    let p = a.path(&name);
    a.expect_ok(b.write(&p, "long name\n").await, "write a 255-byte name");
    assert_eq!(
        a.expect_ok(b.read_to_string(&p).await, "read it"),
        "long name\n"
    );
    let segment = "d".repeat(200);
    let mut deep = String::new();
    while deep.len() + segment.len() + 1 < MAX_PATH_BYTES - 16 {
        deep.push('/');
        deep.push_str(&segment);
    }
    deep.push_str("/deep.txt");
    let p = a.path(&deep);
    a.expect_ok(b.write(&p, "deep needle\n").await, "write a deep path");
    assert_eq!(
        a.expect_ok(b.read_to_string(&p).await, "read it"),
        "deep needle\n"
    );
    let glob = a.expect_ok(b.glob(&GlobRequest::new("deep.txt")).await, "glob deep");
    assert_eq!(glob.paths, std::slice::from_ref(&p));
    let grep = a.expect_ok(b.grep(&GrepRequest::new("deep needle")).await, "grep deep");
    assert_eq!(grep.files.len(), 1);
    let top = a.path(&format!("/{segment}"));
    a.expect_ok(b.delete(&top).await, "delete the deep tree");
    assert!(!a.expect_ok(b.exists(&p).await, "exists"));
}
