//! Scratch directories left by a process that died without cleaning up
//! are removed; nothing else is touched.
#![cfg(feature = "exec")]

use std::fs;
use std::os::unix::fs::symlink;

#[test]
fn only_directories_of_dead_processes_are_removed() {
    let parent = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("keep.txt"), "outside").unwrap();
    // a pid that existed and is gone now
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let live = std::process::id();

    let p = |name: String| parent.path().join(name);
    let orphan = p(format!("sandbay-state-exec-{dead}-abc123"));
    fs::create_dir_all(orphan.join("deep/er")).unwrap();
    fs::write(orphan.join("deep/er/file"), "left behind").unwrap();
    symlink(outside.path(), orphan.join("deep/link-out")).unwrap();
    let mine = p(format!("sandbay-state-exec-{live}-def456"));
    fs::create_dir(&mine).unwrap();
    let planted = p(format!("sandbay-state-exec-{dead}-link"));
    symlink(outside.path(), &planted).unwrap();
    let a_file = p(format!("sandbay-state-exec-{dead}-file"));
    fs::write(&a_file, "x").unwrap();
    let unrelated = p(format!("other-{dead}-dir"));
    fs::create_dir(&unrelated).unwrap();

    assert_eq!(
        sandbay_state::sweep_orphaned_scratch(parent.path()).unwrap(),
        1
    );
    assert!(!orphan.exists(), "the dead process's directory is gone");
    assert!(mine.is_dir(), "a live process's directory stays");
    assert!(
        planted.symlink_metadata().is_ok(),
        "a symlink is not a scratch directory"
    );
    assert!(a_file.is_file());
    assert!(unrelated.is_dir());
    assert_eq!(
        fs::read_to_string(outside.path().join("keep.txt")).unwrap(),
        "outside",
        "nothing behind a symlink was followed"
    );
    // again: nothing left to do
    assert_eq!(
        sandbay_state::sweep_orphaned_scratch(parent.path()).unwrap(),
        0
    );
}
