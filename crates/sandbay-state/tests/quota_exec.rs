//! The workspace quota holds for commands too: a command's changes are
//! saved only while the workspace stays within the quota, the file API
//! refuses the next write with `quota_exceeded`, and after a deletion
//! (through the API or by a command) both write again. Commands run in a
//! real jail at the `namespaces` level (skipped with the reason when the
//! host cannot give it, a failure under `CI=true`).
#![cfg(feature = "exec")]

use std::sync::Arc;
use std::time::Duration;

use sandbay_core::{Backend, BackendExt, ExecOutput, ExecRequest, Isolation, Sandbox, VPath};
use sandbay_exec::{Jail, JailConfig};
use sandbay_state::{StateBackend, StateConfig, StateSandbox};
use sandbay_testkit::isolation::require;

const QUOTA: u64 = 64 * 1024;

fn p(s: &str) -> VPath {
    VPath::parse(s).unwrap()
}

async fn run(sb: &StateSandbox, command: &str) -> ExecOutput {
    sb.execute(ExecRequest::new(command).timeout(Duration::from_secs(30)))
        .await
        .unwrap_or_else(|e| panic!("{command}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fill_refuse_delete_write_again() {
    if !require(Jail::host_support().check(Isolation::Namespaces)) {
        return;
    }
    let scratch = tempfile::Builder::new()
        .prefix("sandbay-state-quota-test-")
        .tempdir()
        .unwrap();
    let config = StateConfig {
        max_total_bytes: Some(QUOTA),
        ..StateConfig::default()
    };
    let jail = Jail::new(JailConfig::new(Isolation::Namespaces)).unwrap();
    let sb = StateSandbox::new("quota-test", Arc::new(StateBackend::new(config)), jail)
        .with_scratch_dir(scratch.path());
    assert_eq!(sb.capabilities().quota.map(|q| q.bytes), Some(QUOTA));

    // The file API fills the workspace to 4 KiB below the quota.
    sb.write_bytes(&p("/fill.bin"), vec![7; (QUOTA - 4096) as usize])
        .await
        .unwrap();
    // A command that writes past it: its output is kept, none of its
    // changes are saved.
    let o = run(&sb, "head -c 8192 /dev/zero > over.bin; echo ran").await;
    assert_eq!(String::from_utf8_lossy(&o.stdout), "ran\n");
    assert!(
        o.notes.len() == 1 && o.notes[0].contains("over the workspace quota of 65536 bytes"),
        "{:?}",
        o.notes
    );
    assert!(!sb.exists(&p("/over.bin")).await.unwrap());
    // The next API write past the quota fails cleanly, nothing is lost.
    let err = sb
        .write_bytes(&p("/more.bin"), vec![1; 8192])
        .await
        .unwrap_err();
    assert_eq!(err.code().as_str(), "quota_exceeded", "{err}");
    assert!(!sb.exists(&p("/more.bin")).await.unwrap());
    assert_eq!(sb.read_bytes(&p("/fill.bin")).await.unwrap().len(), 61_440);

    // A command deletes; both sides write again.
    let o = run(&sb, "rm fill.bin").await;
    assert!(o.notes.is_empty(), "{:?}", o.notes);
    assert_eq!(sb.backend().total_bytes(), 0);
    sb.write_bytes(&p("/more.bin"), vec![1; 8192])
        .await
        .unwrap();
    let o = run(&sb, "head -c 40000 /dev/zero > cmd.bin").await;
    assert!(o.notes.is_empty(), "{:?}", o.notes);
    assert_eq!(sb.read_bytes(&p("/cmd.bin")).await.unwrap().len(), 40_000);
    assert_eq!(sb.backend().total_bytes(), 48_192);
}
