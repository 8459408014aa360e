//! A host process that is not root: `limits` is refused (no distinct uid
//! can be had), `namespaces` works with the process's own uid mapped into
//! the jail, and the files stay the host user's.
//!
//! When the tests run as root, this test re-runs its own binary as the
//! unprivileged user `nobody` (65534) to exercise that path for real.

mod common;

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use sandbay_core::{ErrorCode, ExecRequest, Isolation};
use sandbay_exec::{Jail, JailConfig};

const HELPER_ENV: &str = "SANDBAY_EXEC_TEST_UNPRIVILEGED";
const NOBODY: u32 = 65534;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unprivileged_host_gets_namespaces_but_not_limits() {
    let root = nix_euid() == 0;
    if root && std::env::var_os(HELPER_ENV).is_none() {
        // Re-run this very test as nobody, from a copy of the binary that
        // nobody can reach (the build directory may be private to root).
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new()
            .prefix("sandbay-exec-test-bin-")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let exe = dir.path().join("unprivileged-test");
        std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let out = Command::new(&exe)
            .current_dir(dir.path())
            .args([
                "--exact",
                "unprivileged_host_gets_namespaces_but_not_limits",
                "--nocapture",
            ])
            .env(HELPER_ENV, "1")
            .env_remove("CARGO_TARGET_DIR")
            .uid(NOBODY)
            .gid(NOBODY)
            .output()
            .unwrap();
        let text = format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "as nobody:\n{text}");
        // the run as nobody was skipped: so is this test
        for reason in text.lines().filter_map(|l| l.split_once("skipped: ")) {
            common::skip(&format!("as nobody: {}", reason.1));
        }
        assert!(text.contains("1 passed"), "{text}");
        return;
    }
    assert_ne!(nix_euid(), 0);
    let support = Jail::host_support();
    let limits = Jail::new(JailConfig::new(Isolation::Limits)).unwrap_err();
    assert_eq!(limits.code(), ErrorCode::Unavailable);
    assert!(limits.to_string().contains("needs root"), "{limits}");
    assert!(support.limits.is_some());
    if let Some(why) = &support.namespaces {
        common::skip(&format!("unprivileged user namespaces: {why}"));
        return;
    }
    assert!(
        !support.cgroup_pids && !support.cgroup_memory,
        "no cgroups without root"
    );
    let jail = Jail::new(JailConfig::new(Isolation::Namespaces)).unwrap();
    let e = jail.enforcement();
    assert!(!e.distinct_uid);
    assert_eq!(e.host_uid, nix_euid());
    let ws = tempfile::Builder::new()
        .prefix("sandbay-exec-test-unpriv-")
        .tempdir()
        .unwrap();
    std::fs::write(ws.path().join("from-host"), "host\n").unwrap();
    let m = common::sleep_marker();
    let out = jail
        .run(
            ws.path(),
            ExecRequest::new(format!(
                "id -u; cat from-host; echo cmd > made; ps -e | wc -l; ip -o link | wc -l; \
                 sleep {m} & sleep 0.1"
            ))
            .timeout(Duration::from_secs(20)),
        )
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        out.exit_code,
        Some(0),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(lines[0], sandbay_exec::SANDBOX_UID.to_string());
    assert_eq!(lines[1], "host");
    assert!(
        lines[2].trim().parse::<u32>().unwrap() <= 5,
        "sees only its own processes: {text}"
    );
    assert_eq!(lines[3].trim(), "1", "only lo: {text}");
    let made = ws.path().join("made");
    assert_eq!(std::fs::read_to_string(&made).unwrap(), "cmd\n");
    assert_eq!(std::fs::metadata(&made).unwrap().uid(), nix_euid());
    assert!(
        common::wait_empty(Duration::from_secs(5), || common::procs_with(&m))
            .await
            .is_empty()
    );
}

fn nix_euid() -> u32 {
    std::fs::metadata("/proc/self").unwrap().uid()
}
