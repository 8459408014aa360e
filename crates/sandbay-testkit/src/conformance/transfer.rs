//! `upload` and `download`: batches, per-item results, binary safety.

use sandbay_core::{EntryKind, ErrorCode, GrepRequest, ReadRequest, VPath};

use crate::Fixture;

fn all_bytes() -> Vec<u8> {
    (0..=255u8).chain((0..=255u8).rev()).collect()
}

/// Uploaded bytes (every byte value, invalid UTF-8) download unchanged.
pub async fn upload_download_binary_round_trip(fx: &Fixture) {
    let files = vec![
        (fx.path("/bin/all.bin"), all_bytes()),
        (
            fx.path("/bin/bad.txt"),
            vec![b'a', 0xc3, 0x28, 0xff, b'\r', b'\n', 0],
        ),
        (fx.path("/bin/empty"), Vec::new()),
        (fx.path("/text.txt"), "héllo\r\n".as_bytes().to_vec()),
    ];
    let results = fx.backend.upload(files.clone()).await;
    assert_eq!(results.len(), files.len());
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let paths: Vec<VPath> = files.iter().map(|(p, _)| p.clone()).collect();
    let back = fx.backend.download(&paths).await;
    for ((path, want), got) in files.iter().zip(back) {
        assert_eq!(&got.expect("download"), want, "{path}");
    }
    let entry = fx
        .backend
        .stat(&fx.path("/bin/all.bin"))
        .await
        .expect("stat");
    assert_eq!(entry.size, 512);
}

/// Each upload item has its own result, in order; failures do not stop the others.
pub async fn upload_results_are_per_item(fx: &Fixture) {
    fx.put("/dir/x", "x").await;
    fx.put("/file", "f").await;
    let results = fx
        .backend
        .upload(vec![
            (fx.path("/up/a"), b"A".to_vec()),
            (fx.path("/dir"), b"onto a directory".to_vec()),
            (fx.path("/up/b"), b"B".to_vec()),
            (fx.path("/file/below"), b"below a file".to_vec()),
            (VPath::root(), b"the root".to_vec()),
        ])
        .await;
    assert_eq!(results.len(), 5);
    assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
    let codes: Vec<Option<ErrorCode>> = results
        .iter()
        .map(|r| r.as_ref().err().map(|e| e.code()))
        .collect();
    assert_eq!(
        codes,
        [
            None,
            Some(ErrorCode::IsDirectory),
            None,
            Some(ErrorCode::NotADirectory),
            Some(ErrorCode::PermissionDenied)
        ]
    );
    for err in results.iter().filter_map(|r| r.as_ref().err()) {
        fx.assert_no_host_path(err);
    }
    assert_eq!(fx.bytes("/up/a").await, b"A");
    assert_eq!(fx.bytes("/up/b").await, b"B");
    assert_eq!(fx.text("/file").await, "f");
    assert_eq!(fx.names("/dir").await, ["x"]);
}

/// Each download item has its own result: missing is `not_found`, a directory `is_directory`.
pub async fn download_results_are_per_item(fx: &Fixture) {
    fx.put("/one", "1").await;
    fx.put("/dir/two", "2").await;
    let paths = ["/one", "/missing", "/dir", "/dir/two", "/one/below"].map(|p| fx.path(p));
    let results = fx.backend.download(&paths).await;
    assert_eq!(results.len(), 5);
    assert_eq!(results[0].as_deref().ok(), Some(&b"1"[..]));
    assert_eq!(results[3].as_deref().ok(), Some(&b"2"[..]));
    let codes: Vec<Option<ErrorCode>> = results
        .iter()
        .map(|r| r.as_ref().err().map(|e| e.code()))
        .collect();
    assert_eq!(
        codes,
        [
            None,
            Some(ErrorCode::NotFound),
            Some(ErrorCode::IsDirectory),
            None,
            Some(ErrorCode::NotADirectory)
        ]
    );
    for err in results.iter().filter_map(|r| r.as_ref().err()) {
        fx.assert_no_host_path(err);
    }
}

/// `upload` creates parents and overwrites existing files.
pub async fn upload_creates_parents_and_overwrites(fx: &Fixture) {
    let results = fx
        .backend
        .upload(vec![(fx.path("/x/y/z.bin"), vec![1, 2, 3])])
        .await;
    assert!(results[0].is_ok(), "{results:?}");
    assert_eq!(
        fx.backend.stat(&fx.path("/x/y")).await.expect("stat").kind,
        EntryKind::Dir
    );
    let results = fx
        .backend
        .upload(vec![(fx.path("/x/y/z.bin"), vec![9])])
        .await;
    assert!(results[0].is_ok(), "{results:?}");
    assert_eq!(fx.bytes("/x/y/z.bin").await, [9]);
}

/// Empty batches give empty results.
pub async fn upload_empty_batch_is_empty(fx: &Fixture) {
    assert!(fx.backend.upload(Vec::new()).await.is_empty());
    assert!(fx.backend.download(&[]).await.is_empty());
    assert!(fx.ls("/").await.is_empty());
}

/// An uploaded binary file is refused by `read`, skipped by `grep`, and still downloads.
pub async fn upload_binary_then_text_ops(fx: &Fixture) {
    fx.put_bytes("/img.png", vec![0x89, b'P', b'N', b'G', 0, 0, b'h', b'i'])
        .await;
    fx.expect_err(
        fx.backend
            .read(&fx.path("/img.png"), ReadRequest::default())
            .await,
        ErrorCode::BinaryFile,
        "read of an uploaded binary",
    );
    let out = fx
        .backend
        .grep(&GrepRequest::new("hi"))
        .await
        .expect("grep");
    assert!(out.files.is_empty(), "{out:?}");
    assert_eq!(fx.bytes("/img.png").await.len(), 8);
}

/// Text written with `write` downloads as its UTF-8 bytes.
pub async fn download_of_written_text_is_utf8(fx: &Fixture) {
    fx.put("/t.txt", "ä\r\n").await;
    assert_eq!(fx.bytes("/t.txt").await, "ä\r\n".as_bytes());
}
