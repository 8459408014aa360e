//! Snapshots: serde round trips (JSON included), binary and invalid
//! UTF-8 preserved, inconsistent snapshots refused.

use sandbay_core::{Backend, BackendExt, EntryKind, VPath};
use sandbay_state::{SNAPSHOT_FORMAT, Snapshot, SnapshotEntry, StateBackend, StateConfig};

fn p(s: &str) -> VPath {
    VPath::parse(s).unwrap()
}

async fn sample() -> StateBackend {
    let b = StateBackend::default();
    b.write(&p("/src/main.py"), "print('hi')\n").await.unwrap();
    b.write(&p("/notes/ünïcødé 日本.md"), "héllo\r\nwörld\n")
        .await
        .unwrap();
    b.write(&p("/empty.txt"), "").await.unwrap();
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    b.write_bytes(&p("/bin/all.bin"), all_bytes).await.unwrap();
    b.write_bytes(&p("/bin/bad-utf8"), vec![b'a', 0xc3, 0x28, 0xff, b'\n'])
        .await
        .unwrap();
    b.write_bytes(&p("/bin/nul.txt"), b"a\0b".to_vec())
        .await
        .unwrap();
    b.write(&p("/gone/x"), "x").await.unwrap();
    b.delete(&p("/gone/x")).await.unwrap(); // leaves the empty directory /gone
    b
}

async fn assert_same(a: &StateBackend, b: &StateBackend) {
    assert_eq!(a.snapshot(), b.snapshot());
    for path in [
        "/src/main.py",
        "/notes/ünïcødé 日本.md",
        "/empty.txt",
        "/bin/all.bin",
        "/bin/bad-utf8",
        "/bin/nul.txt",
    ] {
        assert_eq!(
            a.read_bytes(&p(path)).await.unwrap(),
            b.read_bytes(&p(path)).await.unwrap(),
            "{path}"
        );
    }
    assert_eq!(b.stat(&p("/gone")).await.unwrap().kind, EntryKind::Dir);
    assert_eq!(a.total_bytes(), b.total_bytes());
}

#[tokio::test]
async fn json_round_trip_preserves_every_byte() {
    let a = sample().await;
    let json = serde_json::to_string_pretty(&a.snapshot()).unwrap();
    let back: Snapshot = serde_json::from_str(&json).unwrap();
    let b = StateBackend::restore(back).unwrap();
    assert_same(&a, &b).await;
}

#[tokio::test]
async fn json_shape_is_text_or_base64() {
    let a = sample().await;
    let value = serde_json::to_value(a.snapshot()).unwrap();
    assert_eq!(value["format"], SNAPSHOT_FORMAT);
    let entries = value["entries"].as_array().unwrap();
    let find = |path: &str| entries.iter().find(|e| e["path"] == path).unwrap().clone();
    assert_eq!(find("/src/main.py")["kind"], "text");
    assert_eq!(find("/src/main.py")["text"], "print('hi')\n");
    assert_eq!(find("/bin/bad-utf8")["kind"], "binary");
    assert_eq!(find("/bin/bad-utf8")["base64"], "YcMo/wo=");
    assert_eq!(find("/gone")["kind"], "dir");
    // NUL is valid UTF-8: stored as text, escaped by JSON
    assert_eq!(find("/bin/nul.txt")["text"], "a\u{0}b");
    let paths: Vec<&str> = entries
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(paths, sorted, "entries are sorted by path");
}

#[tokio::test]
async fn load_replaces_content_atomically() {
    let a = sample().await;
    let b = StateBackend::default();
    b.write(&p("/other"), "x").await.unwrap();
    b.load(a.snapshot()).unwrap();
    assert_same(&a, &b).await;
    assert!(!b.exists(&p("/other")).await.unwrap());
    // a bad snapshot changes nothing
    let mut bad = a.snapshot();
    bad.entries.push(SnapshotEntry::Dir {
        path: p("/empty.txt/sub"),
    });
    assert_eq!(b.load(bad).unwrap_err().code().as_str(), "invalid_argument");
    assert_same(&a, &b).await;
}

#[test]
fn inconsistent_snapshots_are_refused() {
    let file = |path: &str| SnapshotEntry::file(p(path), b"x".to_vec());
    let cases = [
        vec![file("/a"), file("/a")],
        vec![file("/a"), file("/a/b")],
        vec![file("/a"), SnapshotEntry::Dir { path: p("/a") }],
        vec![file("/")],
    ];
    for entries in cases {
        let snap = Snapshot {
            format: SNAPSHOT_FORMAT,
            entries: entries.clone(),
        };
        let err = StateBackend::restore(snap).unwrap_err();
        assert_eq!(err.code().as_str(), "invalid_argument", "{entries:?}");
    }
    let future = Snapshot {
        format: 99,
        entries: vec![],
    };
    let err = StateBackend::restore(future).unwrap_err();
    assert!(err.to_string().contains("format 99"), "{err}");
    // invalid paths never get in: VPath validates while deserialising
    let json = r#"{"format":1,"entries":[{"kind":"text","path":"/../etc/passwd","text":"x"}]}"#;
    assert!(serde_json::from_str::<Snapshot>(json).is_err());
    let json = r#"{"format":1,"entries":[{"kind":"binary","path":"/x","base64":"not base64!"}]}"#;
    assert!(serde_json::from_str::<Snapshot>(json).is_err());
}

#[tokio::test]
async fn restore_respects_the_quota() {
    let a = sample().await;
    let config = StateConfig {
        max_total_bytes: Some(10),
        ..Default::default()
    };
    let err = StateBackend::restore_with(config, a.snapshot()).unwrap_err();
    assert_eq!(err.code().as_str(), "quota_exceeded");
    let config = StateConfig {
        max_total_bytes: Some(a.total_bytes()),
        ..Default::default()
    };
    assert!(StateBackend::restore_with(config, a.snapshot()).is_ok());
}

#[tokio::test]
async fn parents_are_created_and_empty_snapshot_is_empty() {
    let snap = Snapshot {
        format: SNAPSHOT_FORMAT,
        entries: vec![SnapshotEntry::file(p("/deep/er/f"), b"1".to_vec())],
    };
    let b = StateBackend::restore(snap).unwrap();
    assert_eq!(b.stat(&p("/deep/er")).await.unwrap().kind, EntryKind::Dir);
    let empty = StateBackend::restore(Snapshot::default()).unwrap();
    assert!(empty.ls(&VPath::root()).await.unwrap().is_empty());
    assert_eq!(empty.snapshot(), Snapshot::default());
}
