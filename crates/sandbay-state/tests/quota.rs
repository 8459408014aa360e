//! The workspace quota: over-quota writes, edits and uploads fail with
//! `quota_exceeded` and change nothing; shrinking is always allowed.

use sandbay_core::{Backend, BackendExt, DiskQuota, EditRequest, VPath};
use sandbay_state::{StateBackend, StateConfig};

fn p(s: &str) -> VPath {
    VPath::parse(s).unwrap()
}

fn backend(limit: u64) -> StateBackend {
    StateBackend::new(StateConfig {
        max_total_bytes: Some(limit),
        ..Default::default()
    })
}

#[tokio::test]
async fn over_quota_write_writes_nothing() {
    let b = backend(10);
    b.write(&p("/a"), "12345").await.unwrap();
    let err = b.write(&p("/dir/b"), "123456").await.unwrap_err();
    assert_eq!(err.code().as_str(), "quota_exceeded");
    assert_eq!(
        err.to_string(),
        "/dir/b: the workspace is over its disk quota of 10 bytes; delete files to make room"
    );
    assert!(
        !b.exists(&p("/dir")).await.unwrap(),
        "no parent directory left behind"
    );
    assert_eq!(b.total_bytes(), 5);
    // exactly at the limit is fine; overwriting counts the difference
    b.write(&p("/b"), "12345").await.unwrap();
    b.write(&p("/a"), "54321").await.unwrap();
    assert_eq!(b.total_bytes(), 10);
}

#[tokio::test]
async fn over_quota_edit_and_upload_change_nothing() {
    let b = backend(8);
    b.write(&p("/a"), "abc").await.unwrap();
    let grow = EditRequest {
        old: "b".into(),
        new: "bbbbbbbb".into(),
        replace_all: false,
    };
    assert_eq!(
        b.edit(&p("/a"), &grow).await.unwrap_err().code().as_str(),
        "quota_exceeded"
    );
    assert_eq!(b.read_to_string(&p("/a")).await.unwrap(), "abc");
    let results = b
        .upload(vec![(p("/u1"), vec![1; 5]), (p("/u2"), vec![2; 5])])
        .await;
    assert!(results[0].is_ok());
    assert_eq!(
        results[1].as_ref().unwrap_err().code().as_str(),
        "quota_exceeded"
    );
    assert!(!b.exists(&p("/u2")).await.unwrap());
    // shrinking and deleting always work, even at the limit
    let shrink = EditRequest {
        old: "abc".into(),
        new: "a".into(),
        replace_all: false,
    };
    assert_eq!(b.edit(&p("/a"), &shrink).await.unwrap().replacements, 1);
    b.delete(&p("/u1")).await.unwrap();
    assert_eq!(b.total_bytes(), 1);
}

#[tokio::test]
async fn the_quota_is_declared() {
    let caps = backend(10).capabilities();
    assert_eq!(
        caps.quota,
        Some(DiskQuota {
            bytes: 10,
            files: None,
            commands: false,
        })
    );
    assert_eq!(StateBackend::default().capabilities().quota, None);
}
