//! The per-user, per-session store: identity, isolation, removal, and
//! single creation under concurrency.

use std::sync::Arc;

use sandbay_core::{Backend, BackendExt, GrepRequest, VPath};
use sandbay_state::{StateBackend, StateConfig, StateStore};

fn p(s: &str) -> VPath {
    VPath::parse(s).unwrap()
}

#[tokio::test]
async fn sessions_are_isolated() {
    let store = StateStore::default();
    let file = p("/file.txt");
    let cases = [
        ("A", "1", "A1 content"),
        ("A", "2", "A2 content"),
        ("B", "1", "B1 content"),
    ];
    for (user, session, content) in cases {
        store
            .session(user, session)
            .write(&file, content)
            .await
            .unwrap();
    }
    for (user, session, content) in cases {
        let ws = store.session(user, session);
        assert_eq!(ws.read_to_string(&file).await.unwrap(), content);
        assert_eq!(ws.ls(&VPath::root()).await.unwrap().len(), 1);
        let hits = ws.grep(&GrepRequest::new("content")).await.unwrap();
        assert_eq!(
            hits.files.len(),
            1,
            "{user}/{session} sees only its own file"
        );
    }
    store.session("A", "2").delete(&file).await.unwrap();
    assert!(store.session("A", "1").exists(&file).await.unwrap());
    assert_eq!((store.user_count(), store.session_count()), (2, 3));
    assert_eq!(store.sessions("A"), ["1", "2"]);
}

#[tokio::test]
async fn same_ids_same_backend_and_removal() {
    let store = StateStore::new(StateConfig {
        max_total_bytes: Some(4),
        ..Default::default()
    });
    let a = store.session("u", "s");
    assert!(Arc::ptr_eq(&a, &store.session("u", "s")));
    assert_eq!(
        a.config().max_total_bytes,
        Some(4),
        "sessions get the store config"
    );
    assert!(store.get("u", "missing").is_none());
    assert_eq!(store.session_count(), 1, "get never creates");
    a.write(&p("/x"), "1234").await.unwrap();
    let removed = store.remove_session("u", "s").unwrap();
    assert!(Arc::ptr_eq(&a, &removed));
    assert_eq!((store.user_count(), store.session_count()), (0, 0));
    let fresh = store.session("u", "s");
    assert!(
        !fresh.exists(&p("/x")).await.unwrap(),
        "a new session starts empty"
    );
    assert!(
        a.exists(&p("/x")).await.unwrap(),
        "a held handle keeps working"
    );
    store.session("u", "t");
    store.session("v", "t");
    assert_eq!(store.remove_user("u"), 2);
    assert_eq!(store.remove_user("u"), 0);
    assert!(store.remove_session("u", "s").is_none());
    assert_eq!((store.user_count(), store.session_count()), (1, 1));
}

#[tokio::test]
async fn insert_replaces_a_session() {
    let store = StateStore::default();
    let src = StateBackend::default();
    src.write(&p("/restored"), "yes").await.unwrap();
    let restored = StateBackend::restore(src.snapshot()).unwrap();
    assert!(store.insert("u", "s", restored).is_none());
    let ws = store.session("u", "s");
    assert_eq!(ws.read_to_string(&p("/restored")).await.unwrap(), "yes");
    assert!(store.insert("u", "s", StateBackend::default()).is_some());
}

#[test]
fn concurrent_first_use_creates_one_backend() {
    let store = Arc::new(StateStore::default());
    let handles: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            std::thread::spawn(move || {
                let user = format!("user-{}", i % 4);
                (0..200)
                    .map(|s| Arc::as_ptr(&store.session(&user, &format!("s{}", s % 10))) as usize)
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut seen = std::collections::HashMap::new();
    for (i, h) in handles.into_iter().enumerate() {
        for (s, ptr) in h.join().unwrap().into_iter().enumerate() {
            let key = (i % 4, s % 10);
            assert_eq!(
                *seen.entry(key).or_insert(ptr),
                ptr,
                "one backend per key {key:?}"
            );
        }
    }
    assert_eq!(store.user_count(), 4);
    assert_eq!(store.session_count(), 40);
}
