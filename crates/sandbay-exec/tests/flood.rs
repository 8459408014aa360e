//! A flood of output is capped while streaming and the caller's memory
//! stays bounded. Alone in its test binary (and serialised) so the
//! process's resident memory is attributable to the flood.

mod common;

use std::time::Duration;

use common::{err, jail, run, workspace};
use sandbay_core::Isolation;
use tokio::sync::Mutex;

static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

per_level!(output_flood_is_capped);

async fn output_flood_is_capped(level: Isolation) {
    let cap = 64 * 1024;
    let _serial = ONE_AT_A_TIME.lock().await;
    let Some(jail) = jail(level, |c| c.max_output_bytes = cap) else {
        return;
    };
    let ws = workspace();
    let before = common::rss_kib();
    let o = run(
        &jail,
        ws.path(),
        "yes & yes >&2 & wait",
        Duration::from_secs(3),
    )
    .await;
    let after = common::rss_kib();
    assert!(o.timed_out);
    assert!(o.truncated);
    assert_eq!(o.stdout.len(), cap);
    assert_eq!(o.stderr.len(), cap);
    assert!(o.stdout.starts_with(b"y\ny\n"));
    let grown = after.saturating_sub(before);
    eprintln!("caller RSS before {before} KiB, after {after} KiB");
    assert!(
        grown < 32 * 1024,
        "caller memory grew by {grown} KiB during a flood"
    );
    // A flood that ends by itself is cut too, and the command still finishes.
    let o = run(
        &jail,
        ws.path(),
        "head -c 5000000 /dev/zero; echo done >&2",
        Duration::from_secs(30),
    )
    .await;
    assert!(!o.timed_out);
    assert_eq!(o.exit_code, Some(0));
    assert!(o.truncated);
    assert_eq!(o.stdout.len(), cap);
    assert_eq!(err(&o), "done\n");
}
