//! The provider: per-user, per-session roots under one base directory.

mod common;

use sandbay_core::{Backend, BackendExt, VPath};
use sandbay_fs::FsProvider;

fn p(s: &str) -> VPath {
    VPath::parse(s).unwrap()
}

#[tokio::test]
async fn users_and_sessions_are_isolated() {
    let base = tempfile::Builder::new()
        .prefix("sandbay-fs-provider-")
        .tempdir()
        .unwrap();
    let provider = FsProvider::open(base.path().join("nested/base"))
        .await
        .unwrap();
    let ids = [("A", "1"), ("A", "2"), ("B", "1"), ("a", "1")];
    for (user, session) in ids {
        let fs = provider.session(user, session).await.unwrap();
        fs.write(&p("/file.txt"), &format!("{user}{session}"))
            .await
            .unwrap();
    }
    for (user, session) in ids {
        let fs = provider.session(user, session).await.unwrap();
        assert_eq!(
            fs.read_to_string(&p("/file.txt")).await.unwrap(),
            format!("{user}{session}")
        );
        let host = provider.session_path(user, session).unwrap();
        assert!(host.starts_with(base.path()));
        assert_eq!(
            std::fs::read_to_string(host.join("file.txt")).unwrap(),
            format!("{user}{session}")
        );
    }
    provider.remove_session("A", "1").await.unwrap();
    assert!(!provider.session_path("A", "1").unwrap().exists());
    assert!(provider.session_path("A", "2").unwrap().exists());
    provider.remove_user("A").await.unwrap();
    assert!(!provider.session_path("A", "2").unwrap().exists());
    assert_eq!(
        provider.remove_user("A").await.unwrap_err().code().as_str(),
        "not_found"
    );
    // a fresh session of a removed user starts empty
    let fs = provider.session("A", "1").await.unwrap();
    assert!(fs.ls(&VPath::root()).await.unwrap().is_empty());
}

#[tokio::test]
async fn hostile_ids_stay_below_the_base() {
    let parent = tempfile::Builder::new()
        .prefix("sandbay-fs-provider-")
        .tempdir()
        .unwrap();
    let base = parent.path().join("base");
    let provider = FsProvider::open(&base).await.unwrap();
    let long = "x".repeat(10_000);
    let hostile = [
        "..",
        "../..",
        "/",
        "/etc",
        ".",
        "a/../../b",
        "a\0b",
        "日本語",
        &long,
        "~",
        "_2e_2e",
    ];
    for id in hostile {
        let fs = provider.session(id, id).await.unwrap();
        fs.write(&p("/marker"), id).await.unwrap();
    }
    // nothing escaped: the parent holds only the base
    let names: Vec<_> = std::fs::read_dir(parent.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["base"]);
    // one directory per distinct id, each with its own marker
    assert_eq!(std::fs::read_dir(&base).unwrap().count(), hostile.len());
    for id in hostile {
        let fs = provider.session(id, id).await.unwrap();
        assert_eq!(fs.read_to_string(&p("/marker")).await.unwrap(), id);
    }
    assert_eq!(
        provider.session("", "s").await.unwrap_err().code().as_str(),
        "invalid_argument"
    );
}

#[tokio::test]
async fn a_planted_symlink_is_not_followed() {
    let parent = tempfile::Builder::new()
        .prefix("sandbay-fs-provider-")
        .tempdir()
        .unwrap();
    let base = parent.path().join("base");
    let outside = parent.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let provider = FsProvider::open(&base).await.unwrap();
    let user_dir = base.join(FsProvider::dir_name("mallory").unwrap());
    std::os::unix::fs::symlink(&outside, &user_dir).unwrap();
    let err = provider.session("mallory", "s").await.unwrap_err();
    assert_eq!(err.code().as_str(), "permission_denied", "{err}");
    assert!(!err.to_string().contains(parent.path().to_str().unwrap()));
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
}

#[tokio::test]
async fn open_errors_name_no_host_path() {
    let parent = tempfile::Builder::new()
        .prefix("sandbay-fs-provider-")
        .tempdir()
        .unwrap();
    let file = parent.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let err = FsProvider::open(file.join("base")).await.unwrap_err();
    assert_eq!(err.code().as_str(), "unavailable");
    assert!(
        !err.to_string().contains(parent.path().to_str().unwrap()),
        "{err}"
    );
    let err = sandbay_fs::open_root(parent.path().join("missing"))
        .await
        .unwrap_err();
    assert_eq!(err.code().as_str(), "unavailable");
    assert!(!err.to_string().contains("missing"), "{err}");
}

#[tokio::test]
async fn a_users_directory_goes_with_the_last_session() {
    let base = tempfile::tempdir().unwrap();
    let provider = FsProvider::open(base.path()).await.unwrap();
    provider.session("alice", "one").await.unwrap();
    provider.session("alice", "two").await.unwrap();
    let alice = base.path().join("alice");
    provider.remove_session("alice", "one").await.unwrap();
    assert!(alice.is_dir(), "session two still lives there");
    provider.remove_session("alice", "two").await.unwrap();
    assert!(!alice.exists(), "no empty user directory is left behind");
    // and it comes back on demand
    provider.session("alice", "three").await.unwrap();
    assert!(alice.join("three").is_dir());
}

/// Sessions of one user made while others are removed: the removal of
/// the (momentarily empty) user directory never makes a creation fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creating_and_removing_sessions_of_one_user_concurrently() {
    let base = tempfile::tempdir().unwrap();
    let provider = FsProvider::open(base.path()).await.unwrap();
    let mut tasks = Vec::new();
    for worker in 0..4 {
        let provider = provider.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..300 {
                let session = format!("w{worker}-{i}");
                provider
                    .session("bob", &session)
                    .await
                    .unwrap_or_else(|e| panic!("create {session}: {e}"));
                provider
                    .remove_session("bob", &session)
                    .await
                    .unwrap_or_else(|e| panic!("remove {session}: {e}"));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(!base.path().join("bob").exists());
}

/// A session removed while writes to it are still under way: the removal
/// finishes (a write that lands a file after the tree was emptied makes it
/// start over), each write either succeeded or found no workspace, and
/// nothing of the session is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_session_while_writes_land_in_it() {
    let base = tempfile::tempdir().unwrap();
    let provider = FsProvider::open(base.path()).await.unwrap();
    for round in 0..40u64 {
        let session = format!("s{round}");
        let fs = provider.session("carol", &session).await.unwrap();
        let writers: Vec<_> = (0..6)
            .map(|i| {
                let fs = fs.clone();
                tokio::spawn(async move {
                    fs.write_bytes(&p(&format!("/f{i}")), vec![b'x'; 256 * 1024])
                        .await
                })
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(round % 4)).await;
        provider
            .remove_session("carol", &session)
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        for w in writers {
            match w.await.unwrap() {
                Ok(_) => {}
                Err(e) => assert_eq!(e.code().as_str(), "not_found", "round {round}: {e}"),
            }
        }
        assert!(
            !provider.session_path("carol", &session).unwrap().exists(),
            "round {round}: the session's directory is gone"
        );
    }
}
