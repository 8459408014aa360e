//! Shared by the storage suites: the story every storage must tell.
#![allow(dead_code)]

use std::time::Duration;

use sandbay_core::{BackendExt, ExecRequest, Sandbox, VPath};
use sandbay_pool::{Registry, SandboxFactory, Storage};

pub(crate) fn p(s: &str) -> VPath {
    VPath::parse(s).unwrap()
}

pub(crate) async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..500 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting: {what}");
}

/// Runs the same story on any storage: three ways to lose compute, files
/// kept each time, fresh compute each time, then `remove`. `sandbox`
/// reaches the sandbox inside a storage's workspace.
pub(crate) async fn compute_ends_storage_stays<F, S, X>(
    registry: Registry<F, S>,
    sandbox: fn(&S::Workspace) -> &X,
) where
    F: SandboxFactory,
    S: Storage<F>,
    X: Sandbox + ?Sized,
{
    let notes = p("/notes.txt");

    // release
    let first = registry.session("alice", "s1").await.unwrap();
    let first_sb = sandbox(&first);
    first_sb.write(&notes, "one\n").await.unwrap();
    let out = first_sb
        .execute(ExecRequest::new("echo two >> notes.txt"))
        .await
        .unwrap();
    assert_eq!(out.exit_code, Some(0), "{out:?}");
    drop(first);
    assert!(registry.release_session("alice", "s1"));
    registry.detached().await;
    eventually("her compute is destroyed", || {
        registry.pool().status().destroyed == 1
    })
    .await;
    let back = registry.session("alice", "s1").await.unwrap();
    let back_sb = sandbox(&back);
    assert_eq!(
        back_sb.read_to_string(&notes).await.unwrap(),
        "one\ntwo\n",
        "files kept across a release"
    );
    assert_eq!(registry.pool().status().created, 2, "fresh compute");
    drop(back);

    // idle eviction
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(registry.evict_idle(), 1);
    assert!(registry.is_empty());
    registry.detached().await;
    let back = registry.session("alice", "s1").await.unwrap();
    let back_sb = sandbox(&back);
    let out = back_sb
        .execute(ExecRequest::new("cat notes.txt"))
        .await
        .unwrap();
    assert_eq!(out.stdout, b"one\ntwo\n", "commands see the kept files");
    back_sb.write(&p("/more.txt"), "3").await.unwrap();
    drop(back);

    // LRU eviction: the pool has two places; bob and carol push alice out
    tokio::time::sleep(Duration::from_millis(5)).await;
    let bob = registry.session("bob", "s1").await.unwrap();
    let bob_sb = sandbox(&bob);
    bob_sb.write(&notes, "bob's\n").await.unwrap();
    let carol = registry.session("carol", "s1").await.unwrap();
    let carol_sb = sandbox(&carol);
    assert_eq!(
        registry.users(),
        ["bob", "carol"],
        "alice lost her compute to carol"
    );
    assert!(
        !carol_sb.exists(&notes).await.unwrap(),
        "carol sees nothing of alice"
    );
    drop((bob, carol));
    registry.detached().await;
    let back = registry.session("alice", "s1").await.unwrap();
    let back_sb = sandbox(&back);
    assert_eq!(back_sb.read_to_string(&notes).await.unwrap(), "one\ntwo\n");
    assert_eq!(back_sb.read_to_string(&p("/more.txt")).await.unwrap(), "3");
    let other = registry.session("alice", "s2").await.unwrap();
    assert!(
        !sandbox(&other).exists(&notes).await.unwrap(),
        "another session is another workspace"
    );
    drop(other);
    drop(back);

    // remove deletes the workspace
    registry.remove("alice", "s1").await.unwrap();
    let err = registry.remove("alice", "s1").await.unwrap_err();
    assert_eq!(err.code().as_str(), "not_found");
    let fresh = registry.session("alice", "s1").await.unwrap();
    let fresh_sb = sandbox(&fresh);
    assert!(
        !fresh_sb.exists(&notes).await.unwrap(),
        "a removed workspace starts empty"
    );
    drop(fresh);
    registry.shutdown().await;
    let status = registry.pool().status();
    assert_eq!(status.created, status.destroyed, "{status:?}");
}
