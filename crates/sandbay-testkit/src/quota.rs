//! The disk quota of a workspace, filled for real.
//!
//! [`disk_quota_holds`] takes a fixture whose backend declares a quota
//! ([`sandbay_core::Capabilities::quota`]) and fills it through the file
//! API and, where the quota holds for commands, through commands; each
//! time the next write must fail cleanly (`quota_exceeded` from the API,
//! "no space" inside a command), nothing stored may be lost, and after a
//! deletion writing must work again. A quota that holds for commands
//! must also be what `df` shows inside, and what the host's file system
//! under the workspace can hold at most.

use std::time::Duration;

use sandbay_core::{BackendExt, DiskQuota, ErrorCode, ExecOutput, ExecRequest, Sandbox};

use crate::Fixture;

/// How long one filling command may take.
const COMMAND_TIME: Duration = Duration::from_secs(120);

async fn run(sandbox: &dyn Sandbox, command: &str) -> ExecOutput {
    let out = sandbox
        .execute(ExecRequest::new(command).timeout(COMMAND_TIME))
        .await
        .unwrap_or_else(|e| panic!("{command}: {e}"));
    assert!(!out.timed_out, "{command}: timed out");
    out
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Uploads `chunk`-byte files under `/fill` until the quota refuses one;
/// returns the names that were stored. The refusal must be
/// `quota_exceeded`, leave no file behind, and lose nothing stored.
async fn fill_through_api(fx: &Fixture, quota: &DiskQuota, chunk: usize) -> Vec<String> {
    let most = (quota.bytes as usize / chunk) + 2;
    let mut stored = Vec::new();
    for i in 0..most {
        let name = format!("/fill/{i}.bin");
        let path = fx.path(&name);
        match fx.backend.write_bytes(&path, vec![b'q'; chunk]).await {
            Ok(()) => stored.push(name),
            Err(e) => {
                assert_eq!(e.code(), ErrorCode::QuotaExceeded, "{name}: {e}");
                fx.assert_no_host_path(&e);
                assert!(
                    !fx.exists(&name).await,
                    "{name}: a refused write left a file"
                );
                for kept in &stored {
                    assert_eq!(
                        fx.bytes(kept).await.len(),
                        chunk,
                        "{kept}: lost when the quota was reached"
                    );
                }
                return stored;
            }
        }
    }
    panic!(
        "{most} files of {chunk} bytes were stored under a quota of {} bytes",
        quota.bytes
    );
}

/// The file API fills the workspace to its quota, the next write fails
/// with `quota_exceeded` and loses nothing, deleting makes room again.
/// With commands held to the quota: `df` inside shows it, a command
/// cannot write past it (and the API refuses afterwards), a command's
/// deletion makes room, a file count quota stops `touch` too, and the
/// host file system holding the workspace is no larger than the quota.
///
/// # Panics
/// If the backend declares no quota, or any step above fails.
pub async fn disk_quota_holds(fx: &Fixture) {
    let quota = fx
        .backend
        .capabilities()
        .quota
        .expect("the fixture's backend declares a disk quota");
    let chunk = (quota.bytes / 8) as usize;

    // 1. The file API fills it; deleting through the API makes room.
    let stored = fill_through_api(fx, &quota, chunk).await;
    assert!(
        stored.len() >= 4,
        "only {} files of {chunk} bytes fit in a quota of {} bytes",
        stored.len(),
        quota.bytes
    );
    fx.backend.delete(&fx.path(&stored[0])).await.unwrap();
    fx.backend
        .write_bytes(&fx.path("/after-delete.bin"), vec![b'a'; chunk / 2])
        .await
        .expect("writing after a delete");
    assert_eq!(fx.bytes("/after-delete.bin").await.len(), chunk / 2);

    let (true, Some(sandbox)) = (quota.commands, fx.sandbox.as_deref()) else {
        fx.backend.clear().await.unwrap();
        return;
    };

    // 2. `df` inside shows the quota, not the host's disk.
    let out = run(sandbox, "df -k . | tail -n 1").await;
    let size_kib: u64 = text(&out.stdout)
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("df printed {:?}", text(&out.stdout)));
    assert!(
        size_kib * 1024 <= quota.bytes && size_kib * 1024 >= quota.bytes / 2,
        "df shows {size_kib} KiB for a quota of {} bytes",
        quota.bytes
    );
    if let Some(root) = &fx.host_root {
        let fs = nix::sys::statvfs::statvfs(root).expect("statvfs of the host root");
        let host_bytes = fs.blocks() * fs.fragment_size();
        assert!(
            host_bytes <= quota.bytes,
            "the host file system under the workspace holds {host_bytes} bytes, the quota is {}",
            quota.bytes
        );
    }

    // 3. A command cannot write past it; the API refuses afterwards; a
    // command's delete (of its own file and two of the API's) makes room
    // for both.
    let out = run(
        sandbox,
        &format!(
            "head -c {} /dev/zero > huge.bin; echo status=$?",
            quota.bytes * 2
        ),
    )
    .await;
    assert!(
        !text(&out.stdout).contains("status=0"),
        "a command wrote twice the quota: {} {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let err = fx
        .backend
        .write_bytes(&fx.path("/more.bin"), vec![b'm'; chunk])
        .await
        .expect_err("the API writes after a command filled the quota");
    assert_eq!(err.code(), ErrorCode::QuotaExceeded, "{err}");
    fx.assert_no_host_path(&err);
    for kept in &stored[1..] {
        assert_eq!(fx.bytes(kept).await.len(), chunk, "{kept}: lost");
    }
    let out = run(
        sandbox,
        &format!(
            "rm huge.bin .{} .{} && head -c {chunk} /dev/zero > cmd.bin && echo written",
            stored[1], stored[2]
        ),
    )
    .await;
    assert_eq!(text(&out.stdout), "written\n", "{}", text(&out.stderr));
    fx.backend
        .write_bytes(&fx.path("/more.bin"), vec![b'm'; chunk])
        .await
        .expect("the API writes after a command deleted");

    // 4. A file count quota stops a command making files, and the API.
    if let Some(files) = quota.files {
        let most = files + 200;
        let out = run(
            sandbox,
            &format!(
                "mkdir many && i=0; while [ $i -lt {most} ] && true 2>/dev/null > many/f$i; do i=$((i+1)); done; echo $i"
            ),
        )
        .await;
        let made: u64 = text(&out.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{:?} {:?}", text(&out.stdout), text(&out.stderr)));
        assert!(
            made < most && made + 100 >= files.saturating_sub(stored.len() as u64 + 8),
            "a command made {made} files under a quota of {files} files"
        );
        let err = fx
            .backend
            .write(&fx.path("/one-more.txt"), "x")
            .await
            .expect_err("the API makes a file past the file quota");
        assert_eq!(err.code(), ErrorCode::QuotaExceeded, "{err}");
        fx.backend.delete(&fx.path("/many")).await.unwrap();
        fx.backend
            .write(&fx.path("/one-more.txt"), "x")
            .await
            .expect("making a file after deleting many");
    }
    fx.backend.clear().await.unwrap();
}
