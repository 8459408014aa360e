//! `sandbay demo` end to end: the binary runs the multi-user scenario on
//! every backend it finds, and every cell of its table is a verdict only
//! with evidence. With faults injected (no network probe tool, a level
//! without namespaces) the cells must say `not proven` or show the
//! weakness, never the good answer.

use std::collections::HashMap;
use std::process::Command;

use sandbay_core::Isolation;
use sandbay_exec::Jail;
use sandbay_testkit::skip::{in_ci, require};

/// The rendered table as `row label -> column name -> cell`.
fn parse(table: &str) -> (Vec<String>, HashMap<String, HashMap<String, String>>) {
    let mut lines = table.lines().filter(|l| l.starts_with('|'));
    let split = |line: &str| -> Vec<String> {
        line.trim_matches('|')
            .split(" | ")
            .map(|c| c.trim().to_string())
            .collect()
    };
    let header = split(lines.next().expect("a header line"));
    let columns: Vec<String> = header[1..].to_vec();
    let mut rows = HashMap::new();
    for line in lines.skip(1) {
        let cells = split(line);
        let row: HashMap<String, String> = columns
            .iter()
            .cloned()
            .zip(cells[1..].iter().cloned())
            .collect();
        rows.insert(cells[0].clone(), row);
    }
    (columns, rows)
}

/// One demo at a time: each runs a fork bomb and a memory hog, and two at
/// once would measure each other.
/// The row proving that files outlive compute and a restart of the store.
const RESTART_ROW: &str = "files after eviction and restart";

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `sandbay demo` with `env`; the output and the parsed table.
fn demo(
    env: &[(&str, &str)],
) -> (
    String,
    Vec<String>,
    HashMap<String, HashMap<String, String>>,
) {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let out = Command::new(env!("CARGO_BIN_EXE_sandbay"))
        .arg("demo")
        .envs(env.iter().copied())
        .output()
        .expect("run sandbay demo");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    let (columns, rows) = parse(&stdout);
    assert!(
        columns.starts_with(&["state".into(), "fs".into()]),
        "{columns:?}"
    );
    (format!("{stdout}\n{stderr}"), columns, rows)
}

/// The cells of `label` in every column of `columns`.
fn cells<'a>(
    rows: &'a HashMap<String, HashMap<String, String>>,
    columns: &'a [String],
    label: &str,
) -> Vec<(&'a str, &'a str)> {
    let row = rows
        .get(label)
        .unwrap_or_else(|| panic!("no row {label:?}"));
    columns
        .iter()
        .map(|c| (c.as_str(), row[c].as_str()))
        .collect()
}

#[test]
fn the_demo_proves_every_verdict_on_every_backend() {
    if !require(
        Jail::host_support()
            .check(Isolation::Namespaces)
            .map_err(|e| format!("the demo's verdicts need the namespaces level: {e}")),
    ) {
        return;
    }
    let (text, columns, rows) = demo(&[]);
    if in_ci() {
        assert!(
            columns.iter().any(|c| c == "docker"),
            "under CI there must be a Docker column:\n{text}"
        );
    }
    for (label, row) in &rows {
        for (column, cell) in row {
            assert!(
                !cell.contains("error") && !cell.contains("not proven"),
                "{label} / {column}: {cell}\n{text}"
            );
        }
    }
    let expect = |label: &str, starts: &str| {
        for (column, cell) in cells(&rows, &columns, label) {
            assert!(
                cell.starts_with(starts),
                "{label} / {column}: {cell:?} should start with {starts:?}\n{text}"
            );
        }
    };
    expect("files: users A and B", "isolated");
    expect("files: sessions 1 and 2", "isolated");
    expect("ls and grep", "scoped");
    expect("path escapes", "`..` refused; symlink refused");
    expect("commands", "yes");
    // every backend holds the file API to the quota; as root the fs and
    // Docker workspaces are images that commands meet too
    expect(
        "disk quota",
        "16 MiB: API write over it refused (quota_exceeded)",
    );
    for (column, cell) in cells(&rows, &columns, "disk quota") {
        if column != "state" && nix::unistd::geteuid().is_root() {
            assert!(cell.contains("dd stopped at"), "{column}: {cell}\n{text}");
        }
    }
    expect("processes (ps in A)", "hidden: B's process ran");
    expect("/tmp (rm in A)", "private");
    expect("fork bomb in A", "capped: forks refused");
    expect("memory hog in A (1 GiB)", "stopped");
    expect("network (host 127.0.0.1)", "blocked");
    expect("host files outside", "hidden");
    expect("workspace start-up", "new: ");
    if let Some(docker) = rows["workspace start-up"].get("docker") {
        assert!(
            docker.contains("fresh, never used, from a warm pool"),
            "{docker}"
        );
    }
    // files outlive compute and the store: evicted, store reopened, read back
    for (column, cell) in cells(&rows, &columns, RESTART_ROW) {
        assert!(
            cell.starts_with("21 of 21 files byte-identical after eviction and a store restart"),
            "{column}: {cell}\n{text}"
        );
    }
    // the footer is read from the jails and the container
    for column in ["state", "fs"] {
        let line = format!("{column}: enforced by the local jail: level `namespaces`");
        assert!(text.contains(&line), "no {line:?} in\n{text}");
    }
    if columns.iter().any(|c| c == "docker") {
        assert!(
            text.contains("docker: enforced in the container: uid "),
            "{text}"
        );
    }
}

#[test]
fn without_a_probe_tool_the_network_cell_is_not_proven() {
    if !require(
        Jail::host_support()
            .check(Isolation::Namespaces)
            .map_err(|e| format!("the network probe runs at the namespaces level: {e}")),
    ) {
        return;
    }
    let empty = tempfile::tempdir().expect("an empty directory");
    let path = empty.path().to_str().expect("a UTF-8 path");
    let (text, columns, rows) = demo(&[
        ("SANDBAY_DEMO_PROBE_PATH", path),
        ("SANDBAY_DEMO_DOCKER", "0"),
    ]);
    for (column, cell) in cells(&rows, &columns, "network (host 127.0.0.1)") {
        assert!(
            cell.starts_with("not proven: no probe tool"),
            "network / {column}: {cell:?}\n{text}"
        );
    }
}

#[test]
fn a_level_without_namespaces_proves_no_isolation() {
    if !require(
        Jail::host_support()
            .check(Isolation::Limits)
            .map_err(|e| format!("the `limits` level: {e}")),
    ) {
        return;
    }
    let (text, columns, rows) = demo(&[
        ("SANDBAY_DEMO_LEVEL", "limits"),
        ("SANDBAY_DEMO_DOCKER", "0"),
    ]);
    // a good answer here would be a claim the level does not make
    for (label, good) in [
        ("processes (ps in A)", "hidden"),
        ("/tmp (rm in A)", "private"),
        ("network (host 127.0.0.1)", "blocked"),
        ("host files outside", "hidden"),
    ] {
        for (column, cell) in cells(&rows, &columns, label) {
            assert!(
                !cell.starts_with(good),
                "{label} / {column}: {cell:?} at `limits`\n{text}"
            );
        }
    }
    // /tmp is the host's at `limits`: A's rm is refused by permissions only
    for (column, cell) in cells(&rows, &columns, "/tmp (rm in A)") {
        assert!(
            cell.starts_with("not proven: A sees the host's /tmp"),
            "/tmp / {column}: {cell:?}\n{text}"
        );
    }
    for column in ["state", "fs"] {
        let line = format!("{column}: enforced by the local jail: level `limits`, no namespaces");
        assert!(text.contains(&line), "no {line:?} in\n{text}");
    }
}
