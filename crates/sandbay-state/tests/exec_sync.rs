//! How a [`StateSandbox`] brings a command's files back: what is kept,
//! what is skipped with a note, what is refused whole, how it meets
//! changes made through the API during the run, and that its scratch
//! directories never outlive the call. Commands run in a real jail at the
//! `namespaces` level (skipped with the reason when the host cannot give
//! it, a failure under `CI=true`).
#![cfg(feature = "exec")]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sandbay_core::{Backend, BackendExt, ExecOutput, ExecRequest, Isolation, Sandbox, VPath};
use sandbay_exec::{Jail, JailConfig};
use sandbay_state::{StateBackend, StateConfig, StateSandbox};
use sandbay_testkit::isolation::{procs_with, require, sleep_marker, wait_gone, wait_until};

/// A sandbox over a fresh workspace whose scratch directories go to a
/// private temporary directory (returned, to look into).
fn sandbox(config: StateConfig) -> Option<(StateSandbox, tempfile::TempDir)> {
    if !require(Jail::host_support().check(Isolation::Namespaces)) {
        return None;
    }
    let scratch = tempfile::Builder::new()
        .prefix("sandbay-state-scratch-test-")
        .tempdir()
        .unwrap();
    let jail = Jail::new(JailConfig::new(Isolation::Namespaces)).unwrap();
    let sb = StateSandbox::new("sync-test", Arc::new(StateBackend::new(config)), jail)
        .with_scratch_dir(scratch.path());
    Some((sb, scratch))
}

fn p(s: &str) -> VPath {
    VPath::parse(s).unwrap()
}

async fn run(sb: &StateSandbox, command: &str) -> ExecOutput {
    sb.execute(ExecRequest::new(command).timeout(Duration::from_secs(30)))
        .await
        .unwrap_or_else(|e| panic!("{command}: {e}"))
}

fn err(o: &ExecOutput) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn notes(o: &ExecOutput) -> Vec<String> {
    o.notes.clone()
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symlinks_made_by_a_command_are_skipped_never_followed() {
    let Some((sb, _scratch)) = sandbox(StateConfig::default()) else {
        return;
    };
    sb.write(&p("/was-file"), "old").await.unwrap();
    sb.write(&p("/inside.txt"), "inside").await.unwrap();
    let o = run(
        &sb,
        "ln -s /etc/passwd passwd-link; ln -s inside.txt in-link; ln -s / root-link; \
         rm was-file && ln -s inside.txt was-file; echo made > real.txt",
    )
    .await;
    assert_eq!(o.exit_code, Some(0), "{}", err(&o));
    let names: Vec<String> = sb
        .ls(&VPath::root())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.path.to_string())
        .collect();
    assert_eq!(names, ["/inside.txt", "/real.txt"]);
    let notes = notes(&o);
    assert_eq!(notes.len(), 4, "{notes:?}");
    for link in ["/passwd-link", "/in-link", "/root-link", "/was-file"] {
        assert!(
            notes
                .iter()
                .any(|n| n
                    == &format!("{link}: symbolic links are not kept by this workspace; skipped")),
            "{link}: {notes:?}"
        );
    }
    assert_eq!(sb.read_to_string(&p("/real.txt")).await.unwrap(), "made\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn special_files_and_unusable_names_are_skipped_with_a_note() {
    let Some((sb, _scratch)) = sandbox(StateConfig::default()) else {
        return;
    };
    let o = run(
        &sb,
        "mkfifo pipe; touch 'back\\slash' \"$(printf 'bad\\377name')\"; echo ok > ok.txt",
    )
    .await;
    assert_eq!(o.exit_code, Some(0), "{}", err(&o));
    let names: Vec<String> = sb
        .ls(&VPath::root())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.path.to_string())
        .collect();
    assert_eq!(names, ["/ok.txt"]);
    let notes = notes(&o);
    assert!(
        notes.contains(&"/pipe: not a regular file or directory; skipped".to_string()),
        "{notes:?}"
    );
    assert_eq!(
        notes
            .iter()
            .filter(|n| n.ends_with("the name cannot be a workspace path; skipped"))
            .count(),
        2,
        "{notes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_notes_are_summarised() {
    let Some((sb, _scratch)) = sandbox(StateConfig::default()) else {
        return;
    };
    let o = run(
        &sb,
        "for i in 1 2 3 4 5 6 7 8 9 10 11 12 13; do ln -s x l$i; done",
    )
    .await;
    let notes = notes(&o);
    assert_eq!(notes.len(), 11, "{notes:?}");
    assert_eq!(notes[10], "and 3 more like these");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_quota_nothing_is_saved_but_the_output_is_kept() {
    let config = StateConfig {
        max_total_bytes: Some(64 * 1024),
        ..StateConfig::default()
    };
    let Some((sb, _scratch)) = sandbox(config) else {
        return;
    };
    sb.write(&p("/keep.txt"), "before").await.unwrap();
    let o = run(
        &sb,
        "echo small > small.txt; rm keep.txt; head -c 100000 /dev/zero > big.bin; echo printed",
    )
    .await;
    assert_eq!(o.exit_code, Some(0));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "printed\n");
    let notes = notes(&o);
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0].contains("over the workspace quota of 65536 bytes")
            && notes[0].ends_with("none of its file changes were saved"),
        "{notes:?}"
    );
    // All or nothing: neither the small file nor the deletion landed.
    assert!(!sb.exists(&p("/small.txt")).await.unwrap());
    assert_eq!(sb.read_to_string(&p("/keep.txt")).await.unwrap(), "before");
    assert_eq!(sb.backend().total_bytes(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sync_limit_bounds_a_workspace_without_quota() {
    let Some((sb, _scratch)) = sandbox(StateConfig::default()) else {
        return;
    };
    let sb = sb.with_max_sync_bytes(1 << 20);
    let o = run(&sb, "head -c 2000000 /dev/zero > big.bin; echo done").await;
    assert_eq!(String::from_utf8_lossy(&o.stdout), "done\n");
    let notes = notes(&o);
    assert!(
        notes.len() == 1 && notes[0].contains("over the workspace sync limit of 1048576 bytes"),
        "{notes:?}"
    );
    assert!(!sb.exists(&p("/big.bin")).await.unwrap());
    // Under the limit it lands.
    let o = run(&sb, "head -c 500000 /dev/zero > ok.bin").await;
    assert!(notes_empty(&o), "{}", err(&o));
    assert_eq!(sb.read_bytes(&p("/ok.bin")).await.unwrap().len(), 500_000);
}

fn notes_empty(o: &ExecOutput) -> bool {
    notes(o).is_empty()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_changes_during_a_run_meet_the_commands_changes() {
    let Some((sb, _scratch)) = sandbox(StateConfig::default()) else {
        return;
    };
    for (path, text) in [
        ("/shared.txt", "start"),
        ("/both.txt", "start"),
        ("/gone.txt", "start"),
        ("/dir/old.txt", "start"),
    ] {
        sb.write(&p(path), text).await.unwrap();
    }
    let m = sleep_marker(1);
    let command =
        format!("sleep {m}; echo cmd > cmd.txt; echo cmd > both.txt; rm gone.txt; rm -r dir");
    let job = {
        let sb = sb.clone();
        tokio::spawn(async move { run(&sb, &command).await })
    };
    assert!(
        wait_until(Duration::from_secs(10), || procs_with(&m).len() == 1).await,
        "the command never started"
    );
    // Through the API while the command runs.
    sb.write(&p("/api.txt"), "api").await.unwrap();
    sb.write(&p("/shared.txt"), "api").await.unwrap();
    sb.write(&p("/both.txt"), "api").await.unwrap();
    sb.write(&p("/dir/new.txt"), "api").await.unwrap();
    assert!(!procs_with(&m).is_empty(), "the API writes came too late");
    let o = job.await.unwrap();
    assert_eq!(o.exit_code, Some(0), "{}", err(&o));
    let text = |path: &'static str| {
        let sb = sb.clone();
        async move { sb.read_to_string(&p(path)).await.ok() }
    };
    // Paths only the API changed keep the API's version.
    assert_eq!(text("/api.txt").await.as_deref(), Some("api"));
    assert_eq!(text("/shared.txt").await.as_deref(), Some("api"));
    // Paths the command changed take the command's version.
    assert_eq!(text("/cmd.txt").await.as_deref(), Some("cmd\n"));
    assert_eq!(text("/both.txt").await.as_deref(), Some("cmd\n"));
    assert_eq!(text("/gone.txt").await, None);
    assert_eq!(text("/dir/old.txt").await, None);
    // The directory the command removed keeps the file the API put in it.
    assert_eq!(text("/dir/new.txt").await.as_deref(), Some("api"));
    assert_eq!(
        notes(&o),
        [
            "/dir: entries were added to it through the workspace while the command ran; the directory was kept"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scratch_directories_are_private_and_never_outlive_the_call() {
    let Some((sb, scratch)) = sandbox(StateConfig::default()) else {
        return;
    };
    sb.write(&p("/f.txt"), "x").await.unwrap();
    // While a command runs there is exactly one, mode 0700.
    let m = sleep_marker(3600);
    let job = {
        let sb = sb.clone();
        let command = format!("sleep {m}");
        tokio::spawn(async move {
            sb.execute(ExecRequest::new(command).timeout(Duration::from_secs(60)))
                .await
        })
    };
    assert!(wait_until(Duration::from_secs(10), || procs_with(&m).len() == 1).await);
    let names = entries(scratch.path());
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(names[0].starts_with("sandbay-state-exec-"), "{names:?}");
    let meta = std::fs::metadata(scratch.path().join(&names[0])).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o700);
    // A dropped future removes it.
    job.abort();
    let _ = job.await;
    assert!(wait_gone(Duration::from_secs(10), &m).await.is_empty());
    assert!(
        wait_until(Duration::from_secs(10), || entries(scratch.path())
            .is_empty())
        .await,
        "left behind after a dropped future: {:?}",
        entries(scratch.path())
    );
    // So do success, timeout, a failing command and a refused request.
    run(&sb, "echo ok > ok.txt").await;
    let o = sb
        .execute(ExecRequest::new("sleep 30").timeout(Duration::from_millis(300)))
        .await
        .unwrap();
    assert!(o.timed_out);
    run(&sb, "chmod 000 . ; exit 9").await;
    let mut missing = ExecRequest::new("true");
    missing.workdir = Some(p("/no/such"));
    let e = sb.execute(missing).await.unwrap_err();
    assert_eq!(e.code().as_str(), "not_found");
    assert!(
        !e.to_string().contains(&*scratch.path().to_string_lossy()),
        "a host path in {e}"
    );
    assert!(
        entries(scratch.path()).is_empty(),
        "{:?}",
        entries(scratch.path())
    );
    assert_eq!(sb.read_to_string(&p("/ok.txt")).await.unwrap(), "ok\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_workspace_is_left_alone() {
    let Some((sb, _scratch)) = sandbox(StateConfig::default()) else {
        return;
    };
    let binary: Vec<u8> = (0..=255u8).collect();
    sb.write_bytes(&p("/bin.dat"), binary.clone())
        .await
        .unwrap();
    sb.write(&p("/dir/empty-next/.keep"), "").await.unwrap();
    sb.delete(&p("/dir/empty-next/.keep")).await.unwrap();
    let before = sb.backend().snapshot();
    let o = run(&sb, "cat bin.dat > /dev/null; ls -R > /dev/null").await;
    assert_eq!(o.exit_code, Some(0), "{}", err(&o));
    assert!(notes_empty(&o), "{}", err(&o));
    assert_eq!(
        sb.backend().snapshot(),
        before,
        "the empty directory and the bytes stay"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_run_keeps_its_changes_a_dropped_one_does_not() {
    let Some((sb, _scratch)) = sandbox(StateConfig::default()) else {
        return;
    };
    let o = sb
        .execute(
            ExecRequest::new("echo t > timed.txt; sleep 30").timeout(Duration::from_millis(500)),
        )
        .await
        .unwrap();
    assert!(o.timed_out);
    assert_eq!(sb.read_to_string(&p("/timed.txt")).await.unwrap(), "t\n");
    let m = sleep_marker(3600);
    let job = {
        let sb = sb.clone();
        let command = format!("echo d > dropped.txt; rm timed.txt; sleep {m}");
        tokio::spawn(async move {
            sb.execute(ExecRequest::new(command).timeout(Duration::from_secs(60)))
                .await
        })
    };
    assert!(wait_until(Duration::from_secs(10), || procs_with(&m).len() == 1).await);
    job.abort();
    let _ = job.await;
    assert!(wait_gone(Duration::from_secs(10), &m).await.is_empty());
    assert!(!sb.exists(&p("/dropped.txt")).await.unwrap());
    assert!(sb.exists(&p("/timed.txt")).await.unwrap());
}

/// A call beyond the jail's `max_concurrent` waits for a place before its
/// scratch copy is made, and one that waits too long fails with
/// `unavailable` having made none and changed nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_call_holds_no_scratch_copy() {
    if !require(Jail::host_support().check(Isolation::Namespaces)) {
        return;
    }
    let scratch = tempfile::Builder::new()
        .prefix("sandbay-state-scratch-test-")
        .tempdir()
        .unwrap();
    let mut config = JailConfig::new(Isolation::Namespaces);
    config.max_concurrent = 1;
    config.queue_timeout = Duration::from_millis(300);
    let jail = Jail::new(config).unwrap();
    let sb = StateSandbox::new("places-test", Arc::new(StateBackend::default()), jail)
        .with_scratch_dir(scratch.path());
    sb.write(&p("/in.txt"), "x\n").await.unwrap();
    let busy = {
        let sb = sb.clone();
        tokio::spawn(async move { run(&sb, "touch started; sleep 2; echo one > one.txt").await })
    };
    assert!(
        wait_until(Duration::from_secs(10), || entries(scratch.path())
            .iter()
            .any(|d| scratch.path().join(d).join("started").exists()))
        .await,
        "the first call did not start"
    );
    let waiting = {
        let sb = sb.clone();
        tokio::spawn(async move { sb.execute(ExecRequest::new("echo two > two.txt")).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        entries(scratch.path()).len(),
        1,
        "a waiting call made a scratch copy"
    );
    let e = waiting.await.unwrap().expect_err("no place within 300 ms");
    assert_eq!(e.code(), sandbay_core::ErrorCode::Unavailable, "{e}");
    assert_eq!(busy.await.unwrap().exit_code, Some(0));
    assert!(sb.exists(&p("/one.txt")).await.unwrap());
    assert!(
        !sb.exists(&p("/two.txt")).await.unwrap(),
        "the refused command ran"
    );
    assert!(
        entries(scratch.path()).is_empty(),
        "scratch directories left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commands_files_are_on_disk_when_it_returns_with_every_write() {
    if !require(Jail::host_support().check(Isolation::Namespaces)) {
        return;
    }
    use sandbay_state::{Durability, StateStore, WriteBehind};
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        StateStore::open(
            StateConfig::default(),
            Durability::new(dir.path()).write_behind(WriteBehind::EveryWrite),
        )
        .unwrap()
    };
    let store = open();
    let sb = store
        .sandbox("alice", "s1", &JailConfig::new(Isolation::Namespaces))
        .unwrap();
    for i in 0..20 {
        let out = run(&sb, &format!("echo {i} > f{i}.txt")).await;
        assert_eq!(out.exit_code, Some(0), "{}", err(&out));
        // what another process opening the directory now finds
        let reader = open();
        let text = reader
            .session("alice", "s1")
            .read_to_string(&p(&format!("/f{i}.txt")))
            .await
            .unwrap_or_else(|e| panic!("command {i}'s file is not on disk: {e}"));
        assert_eq!(text, format!("{i}\n"));
        std::mem::forget(reader); // a reader writes nothing back
    }
}
