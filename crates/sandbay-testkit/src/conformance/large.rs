//! Large files (bounded memory, size limits) and concurrent use.

use std::sync::Arc;

use sandbay_core::{Backend, BackendExt, EditRequest, ErrorCode, GrepRequest, ReadRequest, VPath};

use crate::Fixture;

/// Size of the large file: 20 MiB, or 1 MiB over the text limit if that is larger.
fn large_size(fx: &Fixture) -> usize {
    let over_limit = fx.limits.max_text_file_bytes.saturating_add(1 << 20);
    usize::try_from(over_limit)
        .unwrap_or(usize::MAX)
        .max(20 << 20)
}

/// One numbered line of [`large_text`] (without its newline).
fn large_line(i: usize) -> String {
    format!("{i:010} needle-free filler.")
}

/// A text of numbered lines at least `size` bytes long, and its line count.
fn large_text(size: usize) -> (String, usize) {
    let line_len = large_line(0).len() + 1;
    let lines = size.div_ceil(line_len);
    let mut text = String::with_capacity(lines * line_len);
    for i in 0..lines {
        text.push_str(&large_line(i));
        text.push('\n');
    }
    (text, lines)
}

/// A file larger than the text limit still reads window by window.
pub async fn large_file_read_window_works(fx: &Fixture) {
    let (text, total) = large_text(large_size(fx));
    fx.put("/big.txt", &text).await;
    drop(text);
    let w = fx
        .backend
        .read(
            &fx.path("/big.txt"),
            ReadRequest {
                offset: 0,
                limit: 3,
            },
        )
        .await
        .expect("read the head of a large file");
    assert_eq!(w.lines, [large_line(0), large_line(1), large_line(2)]);
    assert_eq!((w.total_lines, w.next_offset), (total, Some(3)));
    let tail = fx
        .backend
        .read(
            &fx.path("/big.txt"),
            ReadRequest {
                offset: total - 1,
                limit: 10,
            },
        )
        .await
        .expect("read the tail of a large file");
    assert_eq!(tail.lines, [large_line(total - 1)]);
    assert_eq!(tail.next_offset, None);
}

/// Editing a file over the text limit gives `too_large` and changes nothing.
pub async fn large_file_edit_is_too_large(fx: &Fixture) {
    let (text, _) = large_text(large_size(fx));
    fx.put("/big.txt", &text).await;
    let req = EditRequest {
        old: "0000000000".into(),
        new: "X".into(),
        replace_all: false,
    };
    let err = fx.expect_err(
        fx.backend.edit(&fx.path("/big.txt"), &req).await,
        ErrorCode::TooLarge,
        "edit of a large file",
    );
    let message = err.to_string();
    assert!(message.contains("/big.txt"), "names the file: {message}");
    assert!(
        message.contains(&fx.limits.max_text_file_bytes.to_string()),
        "names the limit: {message}"
    );
    let entry = fx.backend.stat(&fx.path("/big.txt")).await.expect("stat");
    assert_eq!(entry.size, text.len() as u64, "the file is unchanged");
    let head = fx
        .backend
        .read(
            &fx.path("/big.txt"),
            ReadRequest {
                offset: 0,
                limit: 1,
            },
        )
        .await
        .expect("read");
    assert_eq!(head.lines, [large_line(0)]);
}

/// `grep` skips files over the text limit and still searches the others.
pub async fn large_file_grep_skips_it(fx: &Fixture) {
    let (mut text, _) = large_text(large_size(fx));
    text.push_str("the needle is here\n");
    fx.put("/big.txt", &text).await;
    fx.put("/small.txt", "a needle here\n").await;
    let out = fx
        .backend
        .grep(&GrepRequest::new("needle "))
        .await
        .expect("grep");
    let paths: Vec<&str> = out.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["/small.txt"]);
    let mut direct = GrepRequest::new("needle is");
    direct.path = fx.path("/big.txt");
    let out = fx.backend.grep(&direct).await.expect("grep one large file");
    assert!(out.files.is_empty(), "skipped also when named directly");
}

/// A large binary file uploads and downloads byte for byte.
pub async fn large_binary_round_trip(fx: &Fixture) {
    // xorshift bytes: incompressible, every value occurs
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let bytes: Vec<u8> = (0..(8 << 20))
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    fx.put_bytes("/blob.bin", bytes.clone()).await;
    assert!(
        fx.bytes("/blob.bin").await == bytes,
        "8 MiB of binary must round trip"
    );
}

/// Many parallel writes to different paths (sharing new parents) all land.
pub async fn concurrent_writes_all_land(fx: &Fixture) {
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let backend: Arc<dyn Backend> = fx.backend.clone();
            tokio::spawn(async move {
                let shared = VPath::parse(&format!("/c/shared/f{i:02}.txt")).expect("path");
                backend.write(&shared, &format!("shared {i}")).await?;
                let own = VPath::parse(&format!("/c/own{i:02}/deep/g.txt")).expect("path");
                backend.write(&own, &format!("own {i}")).await
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task").expect("parallel write");
    }
    let shared = fx.names("/c/shared").await;
    assert_eq!(shared.len(), 64, "{shared:?}");
    for i in 0..64 {
        assert_eq!(
            fx.text(&format!("/c/shared/f{i:02}.txt")).await,
            format!("shared {i}")
        );
        assert_eq!(
            fx.text(&format!("/c/own{i:02}/deep/g.txt")).await,
            format!("own {i}")
        );
    }
}

/// Readers racing a writer see a whole old or whole new file, never a mix.
pub async fn concurrent_reads_see_whole_files(fx: &Fixture) {
    const SIZE: usize = 64 * 1024;
    fx.put("/race.txt", &"A".repeat(SIZE)).await;
    let writer = {
        let backend = fx.backend.clone();
        tokio::spawn(async move {
            let path = VPath::parse("/race.txt").expect("path");
            for round in 0..100 {
                let fill = if round % 2 == 0 { "B" } else { "A" };
                backend.write(&path, &fill.repeat(SIZE)).await?;
            }
            Ok::<(), sandbay_core::Error>(())
        })
    };
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let backend = fx.backend.clone();
            tokio::spawn(async move {
                let path = VPath::parse("/race.txt").expect("path");
                for _ in 0..100 {
                    let bytes = backend.read_bytes(&path).await.expect("read during writes");
                    assert_eq!(bytes.len(), SIZE, "a reader saw a partial file");
                    assert!(
                        bytes.iter().all(|&b| b == bytes[0]),
                        "a reader saw a mix of two writes"
                    );
                }
            })
        })
        .collect();
    writer.await.expect("writer task").expect("writes");
    for reader in readers {
        reader.await.expect("reader task");
    }
}
