//! Storage outlives compute: release, idle eviction and LRU eviction end
//! a session's jail and keep its files, on state (a durable store on
//! disk) and fs (a workspace store on disk); `remove` deletes them; fs
//! quota images hold their quota across detach and re-attach.

use std::sync::Arc;
use std::time::Duration;

use sandbay_core::{Backend, BackendExt};
use sandbay_exec::{Jail, JailConfig};
use sandbay_fs::{FsConfig, Quota, WorkspaceStore};
use sandbay_pool::{
    FsStorage, JailFactory, Pool, PoolConfig, Registry, RegistryConfig, StateStorage,
};
use sandbay_state::{Durability, StateConfig, StateStore, WriteBehind};

fn jails(max_size: usize) -> Pool<JailFactory> {
    Pool::new(
        JailFactory::new(JailConfig::new(Jail::probe())),
        PoolConfig::default()
            .with_max_size(max_size)
            .with_acquire_timeout(Duration::from_secs(10)),
    )
    .unwrap()
}

fn state_store(dir: &std::path::Path) -> Arc<StateStore> {
    Arc::new(
        StateStore::open(
            StateConfig::default(),
            Durability::new(dir).write_behind(WriteBehind::EveryWrite),
        )
        .unwrap(),
    )
}

mod common;

use common::{compute_ends_storage_stays, p};

fn config() -> RegistryConfig {
    RegistryConfig::default().with_idle_timeout(Duration::from_millis(50))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_sessions_keep_their_files_when_compute_ends() {
    let dir = tempfile::tempdir().unwrap();
    let store = state_store(dir.path());
    let registry = Registry::with_storage(jails(2), StateStorage::new(store.clone()), config());
    compute_ends_storage_stays(registry, |w| &**w).await;
    // the detach unloaded what nobody holds; bob and carol are on disk
    assert!(store.exists("bob", "s1"));
    drop(store);
    // and a new process finds them
    let store = state_store(dir.path());
    let bob = store.session("bob", "s1");
    assert_eq!(
        bob.read_to_string(&p("/notes.txt")).await.unwrap(),
        "bob's\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_workspaces_keep_their_files_when_compute_ends() {
    let dir = tempfile::tempdir().unwrap();
    let store = WorkspaceStore::open(dir.path(), FsConfig::default())
        .await
        .unwrap();
    let registry = Registry::with_storage(jails(2), FsStorage::new(store), config());
    compute_ends_storage_stays(registry, |w| &**w).await;
    // a new store (as after a restart) lists and finds them
    let store = WorkspaceStore::open(dir.path(), FsConfig::default())
        .await
        .unwrap();
    let listed: Vec<(String, String)> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|i| (i.user, i.session))
        .collect();
    let pairs = [
        ("alice", "s1"),
        ("alice", "s2"),
        ("bob", "s1"),
        ("carol", "s1"),
    ];
    assert_eq!(
        listed,
        pairs.map(|(u, s)| (u.to_owned(), s.to_owned())).to_vec()
    );
    let bob = store.get("bob", "s1").await.unwrap().unwrap();
    assert_eq!((bob.bytes, bob.files), (6, 1), "usage recorded at detach");
    assert!(bob.last_used_ms >= bob.created_ms);
    let ws = store.attach("bob", "s1").await.unwrap();
    assert_eq!(
        ws.backend().read_to_string(&p("/notes.txt")).await.unwrap(),
        "bob's\n"
    );
}

#[tokio::test]
async fn a_second_store_on_one_base_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = WorkspaceStore::open(dir.path(), FsConfig::default())
        .await
        .unwrap();
    let err = WorkspaceStore::open(dir.path(), FsConfig::default())
        .await
        .unwrap_err();
    assert_eq!(err.code().as_str(), "unavailable");
    assert!(!err.to_string().contains(&*dir.path().to_string_lossy()));
    drop(store);
    WorkspaceStore::open(dir.path(), FsConfig::default())
        .await
        .expect("free again once dropped");
}

#[tokio::test]
async fn bad_ids_are_refused_and_odd_ones_kept_apart() {
    let dir = tempfile::tempdir().unwrap();
    let store = WorkspaceStore::open(dir.path(), FsConfig::default())
        .await
        .unwrap();
    let err = store.attach("", "s").await.unwrap_err();
    assert_eq!(err.code().as_str(), "invalid_argument");
    let err = store.remove("nobody", "s").await.unwrap_err();
    assert_eq!(err.code().as_str(), "not_found");
    let odd = store.attach("../x.json", "s.json.1-1.tmp").await.unwrap();
    odd.backend().write(&p("/f"), "odd").await.unwrap();
    let plain = store.attach("x", "s").await.unwrap();
    assert!(!plain.backend().exists(&p("/f")).await.unwrap());
    drop((odd, plain));
    drop(store);
    let store = WorkspaceStore::open(dir.path(), FsConfig::default())
        .await
        .unwrap();
    assert_eq!(store.recovery(), Default::default(), "nothing to clean up");
    let list = store.list_of("../x.json").await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].session, "s.json.1-1.tmp");
    let odd = store.attach("../x.json", "s.json.1-1.tmp").await.unwrap();
    assert_eq!(odd.backend().read_to_string(&p("/f")).await.unwrap(), "odd");
}

#[tokio::test]
async fn quota_images_hold_across_detach_and_reattach_and_orphans_are_recovered() {
    if !sandbay_fs::host_can_mount() {
        sandbay_testkit::skip::skip("quota images need root, loop devices and mkfs.ext4");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = FsConfig::default().with_quota(Quota::new(4 << 20, 256));
    let store = WorkspaceStore::open(dir.path(), config).await.unwrap();
    let ws = store.attach("alice", "s1").await.unwrap();
    assert!(ws.info().imaged);
    let chunk = "x".repeat(256 << 10);
    let mut written = 0;
    let mut refused = None;
    for i in 0..64 {
        match ws.backend().write(&p(&format!("/f{i}")), &chunk).await {
            Ok(_) => written += 1,
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let refused = refused.expect("a 4 MiB quota refuses 16 MiB");
    assert_eq!(refused.code().as_str(), "quota_exceeded");
    assert!(
        written >= 8,
        "most of the quota is usable ({written} chunks)"
    );
    let host_dir = ws.host_dir().to_path_buf();
    drop(ws);
    let info = store.detach("alice", "s1").await.unwrap();
    assert_eq!(info.bytes, written * (256 << 10), "{info:?}");
    assert!(
        !host_dir.exists(),
        "detached: the image is unmounted, the mount point empty"
    );

    let ws = store.attach("alice", "s1").await.unwrap();
    for i in 0..written {
        assert_eq!(
            ws.backend()
                .download(&[p(&format!("/f{i}"))])
                .await
                .pop()
                .unwrap()
                .unwrap()
                .len(),
            256 << 10
        );
    }
    let again = ws
        .backend()
        .write(&p("/more"), &chunk)
        .await
        .expect_err("still full after re-attach");
    assert_eq!(again.code().as_str(), "quota_exceeded");
    ws.backend().delete(&p("/f0")).await.unwrap();
    ws.backend()
        .write(&p("/more"), &chunk)
        .await
        .expect("room again after a delete");

    // a crash: the process forgets the handle (its image stays mounted)
    // and leaves a half-written metadata temporary behind
    std::mem::forget(ws);
    drop(store);
    let user_dir = dir.path().join("alice");
    std::fs::write(user_dir.join("s1.json.1-1.tmp"), "{").unwrap();
    let store = WorkspaceStore::open(dir.path(), config).await.unwrap();
    let recovery = store.recovery();
    assert_eq!(
        (recovery.unmounted, recovery.temporaries),
        (1, 1),
        "{recovery:?}"
    );
    assert!(!user_dir.join("s1.json.1-1.tmp").exists());
    let ws = store.attach("alice", "s1").await.unwrap();
    assert!(ws.backend().exists(&p("/more")).await.unwrap());
    drop(ws);
    store.remove("alice", "s1").await.unwrap();
    assert!(store.list().await.unwrap().is_empty());
    assert!(!user_dir.join("s1.img").exists(), "the image is deleted");
}

#[tokio::test]
async fn an_interrupted_first_attach_is_removed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = WorkspaceStore::open(dir.path(), FsConfig::default())
            .await
            .unwrap();
        let ws = store.attach("alice", "s1").await.unwrap();
        ws.backend().write(&p("/kept"), "k").await.unwrap();
    }
    // what a process killed between writing the marker and finishing the
    // workspace leaves: metadata that is not ready, a half-made directory
    let user_dir = dir.path().join("bob");
    std::fs::create_dir_all(user_dir.join("s1")).unwrap();
    std::fs::write(
        user_dir.join("s1.json"),
        r#"{"user":"bob","session":"s1","created_ms":1,"last_used_ms":1,"bytes":0,"files":0,"imaged":false,"ready":false}"#,
    )
    .unwrap();
    let store = WorkspaceStore::open(dir.path(), FsConfig::default())
        .await
        .unwrap();
    assert_eq!(store.recovery().unfinished, 1);
    assert!(!user_dir.join("s1").exists());
    assert!(!user_dir.join("s1.json").exists());
    let listed = store.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].user, "alice");
}
