//! The file workload on the state and fs backends, next to naive
//! plain-Rust floors and `rg`/`find` on the same tree.
//!
//! 1,000 text files of about 4 KB (100 lines) in 100 nested directories,
//! half of them `.py`: write all, read each (offset 0, default limit),
//! edit each (one unique string), `ls` of the root and of one directory,
//! glob `**/*.py`, grep a literal present in 10% of the files in content
//! mode (line numbers and text, as an agent's grep returns).
//!
//! Every backend operation goes through the public [`Backend`] API and
//! parses its [`VPath`] inside the timed call. The floors do the same work
//! the obvious way, with no safety at all:
//!
//! * `plain memory`: a `BTreeMap<String, String>`;
//! * `plain disk`: blocking `std::fs` calls on a tree of its own
//!   (`create_dir_all` + `fs::write`, `read_to_string`, `read_dir` with one
//!   `metadata` per entry, a recursive `read_dir` walk);
//! * `plain disk, atomic`: the same, but every write goes to a temporary
//!   file that is renamed over the name, as the fs backend does.
//!
//! The phases run subject after subject, one phase at a time, so that a
//! floor and the backend it is compared with meet about the same load of
//! the machine. After the rows, the ratios `floor time / backend time` of
//! the median (p50) times (higher is better, 1.0 means as fast as the
//! floor) are printed and written to `target/bench/files-ratios.md`.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use sandbay_core::{Backend, EditRequest, GlobRequest, GrepMode, GrepRequest, ReadRequest, VPath};

use super::{Report, Stats};

const FILES: usize = 1000;
const NEEDLE: &str = "NEEDLE_7f3a";
const LS_DIR: &str = "/pkg3/mod4";
const GLOB_RUNS: usize = 200;
const GREP_RUNS: usize = 100;
const EXTERNAL_RUNS: usize = 20;

fn file_path(i: usize) -> String {
    let ext = if i.is_multiple_of(2) { "py" } else { "txt" };
    format!("/pkg{}/mod{}/file{i}.{ext}", i % 10, (i / 10) % 10)
}

fn file_content(i: usize) -> String {
    let mut s = String::with_capacity(4200);
    for line in 0..100 {
        match line {
            10 => s.push_str(&format!(
                "    marker = \"UNIQUE_{i}\"  # edited by the benchmark\n"
            )),
            50 if i.is_multiple_of(10) => {
                s.push_str(&format!("    found = \"{NEEDLE}\"  # searched by grep\n"))
            }
            _ => s.push_str(&format!(
                "    value_{line} = compute({line}, {i})  # filler text\n"
            )),
        }
    }
    s
}

fn edit_request(i: usize) -> EditRequest {
    EditRequest {
        old: format!("\"UNIQUE_{i}\""),
        new: format!("\"EDITED_{i}\""),
        replace_all: false,
    }
}

fn parse(path: &str) -> VPath {
    VPath::parse(path).expect("valid bench path")
}

/// Times `op` once per item, returning per-op latencies and the wall time.
async fn timed<F, Fut>(items: usize, mut op: F) -> Stats
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut samples = Vec::with_capacity(items);
    let wall = Instant::now();
    for i in 0..items {
        let start = Instant::now();
        op(i).await;
        samples.push(start.elapsed());
    }
    Stats::from_samples(samples, wall.elapsed())
}

/// The phases of the workload, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Write,
    Read,
    Edit,
    LsRoot,
    LsDir,
    Glob,
    Grep,
}

impl Phase {
    const ALL: [Phase; 7] = [
        Phase::Write,
        Phase::Read,
        Phase::Edit,
        Phase::LsRoot,
        Phase::LsDir,
        Phase::Glob,
        Phase::Grep,
    ];

    fn op(self) -> &'static str {
        match self {
            Phase::Write => "write",
            Phase::Read => "read",
            Phase::Edit => "edit",
            Phase::LsRoot => "ls /",
            Phase::LsDir => "ls dir",
            Phase::Glob => "glob **/*.py",
            Phase::Grep => "grep literal",
        }
    }

    fn note(self) -> &'static str {
        match self {
            Phase::Write => "1,000 files of 4 KB",
            Phase::Read => "offset 0, default limit",
            Phase::Edit => "one unique string",
            Phase::LsRoot | Phase::LsDir => "10 entries",
            Phase::Glob => "500 matches",
            Phase::Grep => "content mode, 100 of 1,000 files match",
        }
    }

    fn count(self) -> usize {
        match self {
            Phase::Write | Phase::Read | Phase::Edit | Phase::LsRoot | Phase::LsDir => FILES,
            Phase::Glob => GLOB_RUNS,
            Phase::Grep => GREP_RUNS,
        }
    }
}

/// What runs the workload: a backend or one of the floors.
enum Subject {
    Backend(Arc<dyn Backend>),
    Memory(RefCell<BTreeMap<String, String>>),
    Disk { root: PathBuf, atomic: bool },
}

/// The inputs every subject shares.
struct Inputs {
    paths: Vec<String>,
    contents: Vec<String>,
    edits: Vec<EditRequest>,
}

impl Subject {
    async fn run(&self, phase: Phase, inputs: &Inputs) -> Stats {
        match self {
            Subject::Backend(b) => backend_phase(b, phase, inputs).await,
            Subject::Memory(map) => {
                timed(phase.count(), |i| {
                    memory_op(map, phase, inputs, i);
                    std::future::ready(())
                })
                .await
            }
            Subject::Disk { root, atomic } => {
                timed(phase.count(), |i| {
                    disk_op(root, *atomic, phase, inputs, i).expect("plain disk op");
                    std::future::ready(())
                })
                .await
            }
        }
    }
}

async fn backend_phase(b: &Arc<dyn Backend>, phase: Phase, inputs: &Inputs) -> Stats {
    match phase {
        Phase::Write => {
            timed(FILES, |i| async move {
                let path = parse(&inputs.paths[i]);
                b.write(&path, &inputs.contents[i]).await.expect("write");
            })
            .await
        }
        Phase::Read => {
            timed(FILES, |i| async move {
                let path = parse(&inputs.paths[i]);
                let w = b.read(&path, ReadRequest::default()).await.expect("read");
                assert_eq!(w.lines.len(), 100);
            })
            .await
        }
        Phase::Edit => {
            timed(FILES, |i| async move {
                let path = parse(&inputs.paths[i]);
                let out = b.edit(&path, &inputs.edits[i]).await.expect("edit");
                assert_eq!(out.replacements, 1);
            })
            .await
        }
        Phase::LsRoot | Phase::LsDir => {
            let dir = if phase == Phase::LsRoot { "/" } else { LS_DIR };
            timed(FILES, |_| async move {
                let path = parse(dir);
                assert_eq!(b.ls(&path).await.expect("ls").len(), 10);
            })
            .await
        }
        Phase::Glob => {
            timed(GLOB_RUNS, |_| async move {
                let out = b.glob(&GlobRequest::new("**/*.py")).await.expect("glob");
                assert_eq!(out.paths.len(), FILES / 2);
            })
            .await
        }
        Phase::Grep => {
            timed(GREP_RUNS, |_| async move {
                let mut grep = GrepRequest::new(NEEDLE);
                grep.literal = true;
                grep.mode = GrepMode::Content;
                let out = b.grep(&grep).await.expect("grep");
                assert_eq!(out.files.len(), FILES / 10);
                assert!(out.files.iter().all(|f| f.lines.len() == 1));
            })
            .await
        }
    }
}

/// The default window of a read, the naive way: one `String` per line.
fn window(text: &str) -> Vec<String> {
    text.lines()
        .take(ReadRequest::default().limit)
        .map(str::to_owned)
        .collect()
}

/// Grep of one text, the naive way: line by line.
fn grep_lines(path: &str, text: &str, out: &mut Vec<(String, usize, String)>) {
    for (n, line) in text.lines().enumerate() {
        if line.contains(NEEDLE) {
            out.push((path.to_owned(), n + 1, line.to_owned()));
        }
    }
}

/// The direct children of `dir` in a flat map of file paths.
fn memory_ls(map: &BTreeMap<String, String>, dir: &str) -> Vec<String> {
    let prefix = if dir == "/" {
        "/".to_owned()
    } else {
        format!("{dir}/")
    };
    let mut names = BTreeSet::new();
    for key in map.range(prefix.clone()..).map(|(k, _)| k) {
        let Some(rest) = key.strip_prefix(&prefix) else {
            break;
        };
        names.insert(rest.split('/').next().unwrap_or(rest).to_owned());
    }
    names.into_iter().collect()
}

fn memory_op(map: &RefCell<BTreeMap<String, String>>, phase: Phase, inputs: &Inputs, i: usize) {
    let mut map = map.borrow_mut();
    match phase {
        Phase::Write => {
            map.insert(inputs.paths[i].clone(), inputs.contents[i].clone());
        }
        Phase::Read => {
            let text = map.get(&inputs.paths[i]).expect("stored");
            assert_eq!(window(text).len(), 100);
        }
        Phase::Edit => {
            let edit = &inputs.edits[i];
            let text = map.get_mut(&inputs.paths[i]).expect("stored");
            assert_eq!(text.matches(edit.old.as_str()).count(), 1);
            *text = text.replacen(edit.old.as_str(), &edit.new, 1);
        }
        Phase::LsRoot => assert_eq!(memory_ls(&map, "/").len(), 10),
        Phase::LsDir => assert_eq!(memory_ls(&map, LS_DIR).len(), 10),
        Phase::Glob => {
            let found: Vec<String> = map.keys().filter(|k| k.ends_with(".py")).cloned().collect();
            assert_eq!(found.len(), FILES / 2);
        }
        Phase::Grep => {
            let mut out = Vec::new();
            for (path, text) in map.iter() {
                grep_lines(path, text, &mut out);
            }
            assert_eq!(out.len(), FILES / 10);
        }
    }
}

/// Writes `bytes` to `path`, atomically (temporary file and rename) or not.
fn disk_write(path: &Path, bytes: &[u8], atomic: bool) -> io::Result<()> {
    if !atomic {
        return fs::write(path, bytes);
    }
    let mut temp = path.as_os_str().to_owned();
    temp.push(".tmp");
    fs::write(&temp, bytes)?;
    fs::rename(&temp, path)
}

/// Regular files below `dir`, recursively, never following symlinks.
fn disk_walk(dir: &Path, out: &mut Vec<PathBuf>, keep: &impl Fn(&Path) -> bool) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let path = entry.path();
        if kind.is_dir() {
            disk_walk(&path, out, keep)?;
        } else if kind.is_file() && keep(&path) {
            out.push(path);
        }
    }
    Ok(())
}

fn disk_op(root: &Path, atomic: bool, phase: Phase, inputs: &Inputs, i: usize) -> io::Result<()> {
    let host = |virtual_path: &str| root.join(virtual_path.trim_start_matches('/'));
    match phase {
        Phase::Write => {
            let path = host(&inputs.paths[i]);
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent)?;
            }
            disk_write(&path, inputs.contents[i].as_bytes(), atomic)?;
        }
        Phase::Read => {
            let text = fs::read_to_string(host(&inputs.paths[i]))?;
            assert_eq!(window(&text).len(), 100);
        }
        Phase::Edit => {
            let path = host(&inputs.paths[i]);
            let edit = &inputs.edits[i];
            let text = fs::read_to_string(&path)?;
            assert_eq!(text.matches(edit.old.as_str()).count(), 1);
            let new = text.replacen(edit.old.as_str(), &edit.new, 1);
            disk_write(&path, new.as_bytes(), atomic)?;
        }
        Phase::LsRoot | Phase::LsDir => {
            let dir = if phase == Phase::LsRoot { "/" } else { LS_DIR };
            let mut entries = Vec::new();
            for entry in fs::read_dir(host(dir))? {
                let entry = entry?;
                let meta = entry.metadata()?;
                let name = entry.file_name().to_string_lossy().into_owned();
                entries.push((name, meta.is_dir(), meta.len()));
            }
            entries.sort_unstable();
            assert_eq!(entries.len(), 10);
        }
        Phase::Glob => {
            let mut found = Vec::new();
            disk_walk(root, &mut found, &|p| {
                p.extension().is_some_and(|e| e == "py")
            })?;
            found.sort_unstable();
            assert_eq!(found.len(), FILES / 2);
        }
        Phase::Grep => {
            let mut files = Vec::new();
            disk_walk(root, &mut files, &|_| true)?;
            files.sort_unstable();
            let mut out = Vec::new();
            for path in &files {
                let Ok(text) = fs::read_to_string(path) else {
                    continue;
                };
                grep_lines(&path.to_string_lossy(), &text, &mut out);
            }
            assert_eq!(out.len(), FILES / 10);
        }
    }
    Ok(())
}

/// Wall time of an external command over the same tree, per run.
fn external(
    report: &mut Report,
    subject: &str,
    op: &str,
    mut make: impl FnMut() -> Command,
    note: &str,
) -> Option<Stats> {
    let mut samples = Vec::new();
    let wall = Instant::now();
    for _ in 0..EXTERNAL_RUNS {
        let start = Instant::now();
        let out = make().stdout(Stdio::piped()).stderr(Stdio::null()).output();
        match out {
            Ok(o) if o.status.success() => samples.push(start.elapsed()),
            _ => {
                println!("bench: {subject} not usable here, skipped");
                return None;
            }
        }
    }
    let stats = Stats::from_samples(samples, wall.elapsed());
    report.add("files", subject, op, stats.clone(), note);
    Some(stats)
}

/// The workload on one subject alone (for the durable sessions, which
/// are not compared with a floor).
async fn workload(report: &mut Report, name: &str, subject: &Subject, inputs: &Inputs) {
    for phase in Phase::ALL {
        let stats = subject.run(phase, inputs).await;
        report.add("files", name, phase.op(), stats, phase.note());
    }
}

/// `floor / backend` of the median times as text, or a dash when a side
/// is missing. Medians, not means: on a machine shared with other work a
/// few preempted operations would otherwise decide the ratio.
fn ratio(floor: Option<&Stats>, backend: Option<&Stats>) -> String {
    match (floor, backend) {
        (Some(f), Some(b)) => format!("{:.2}x", f.p50_us / b.p50_us.max(1e-3)),
        _ => "-".into(),
    }
}

pub(crate) async fn run(report: &mut Report) {
    let inputs = Inputs {
        paths: (0..FILES).map(file_path).collect(),
        contents: (0..FILES).map(file_content).collect(),
        edits: (0..FILES).map(edit_request).collect(),
    };

    let tmp = tempfile::Builder::new()
        .prefix("sandbay-bench-")
        .tempdir()
        .expect("temp dir");
    let fs_dir = tmp.path().join("fs");
    let plain_dir = tmp.path().join("plain");
    let atomic_dir = tmp.path().join("plain-atomic");
    for dir in [&fs_dir, &plain_dir, &atomic_dir] {
        fs::create_dir(dir).expect("bench dir");
    }
    let root = sandbay_fs::open_root(&fs_dir).await.expect("open root");

    // name, subject: compared in one run, phase by phase
    let subjects: Vec<(&str, Subject)> = vec![
        (
            "state",
            Subject::Backend(Arc::new(sandbay_state::StateBackend::default())),
        ),
        ("plain memory", Subject::Memory(RefCell::default())),
        (
            "fs",
            Subject::Backend(Arc::new(sandbay_fs::FsBackend::new(root))),
        ),
        (
            "plain disk",
            Subject::Disk {
                root: plain_dir,
                atomic: false,
            },
        ),
        (
            "plain disk, atomic",
            Subject::Disk {
                root: atomic_dir,
                atomic: true,
            },
        ),
    ];
    // (subject, phase) -> stats
    let mut measured: Vec<(&str, Phase, Stats)> = Vec::new();
    for phase in Phase::ALL {
        for (name, subject) in &subjects {
            let stats = subject.run(phase, &inputs).await;
            measured.push((name, phase, stats));
        }
    }
    for (name, _) in &subjects {
        for (_, phase, stats) in measured.iter().filter(|(n, _, _)| n == name) {
            report.add("files", name, phase.op(), stats.clone(), phase.note());
        }
    }

    let tree: &Path = &fs_dir;
    let rg = external(
        report,
        "rg (spawned)",
        "grep literal",
        || {
            let mut c = Command::new("rg");
            c.args(["-nF", NEEDLE]).arg(tree);
            c
        },
        "rg -nF on the fs tree",
    );
    let find = external(
        report,
        "find (spawned)",
        "glob **/*.py",
        || {
            let mut c = Command::new("find");
            c.arg(tree).args(["-name", "*.py"]);
            c
        },
        "find -name '*.py' on the fs tree",
    );

    let get = |name: &str, phase: Phase| {
        measured
            .iter()
            .find(|(n, p, _)| *n == name && *p == phase)
            .map(|(_, _, s)| s)
    };
    let mut table = String::from(
        "| op | state / plain memory | fs / plain disk | fs / plain disk, atomic | fs / spawned tool |\n|---|---:|---:|---:|---:|\n",
    );
    for phase in Phase::ALL {
        let fs = get("fs", phase);
        let tool = match phase {
            Phase::Glob => format!("{} (find)", ratio(find.as_ref(), fs)),
            Phase::Grep => format!("{} (rg -nF)", ratio(rg.as_ref(), fs)),
            _ => String::new(),
        };
        table.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            phase.op(),
            ratio(get("plain memory", phase), get("state", phase)),
            ratio(get("plain disk", phase), fs),
            ratio(get("plain disk, atomic", phase), fs),
            tool,
        ));
    }
    println!("files: floor time / backend time, p50 (higher is better)\n{table}");
    let dir = crate::testrun::workspace_root().join("target/bench");
    if fs::create_dir_all(&dir).is_ok() {
        let _ = fs::write(dir.join("files-ratios.md"), &table);
    }
    drop(subjects);
    drop(tmp);

    // The same workload on durable sessions: the cost of writing behind.
    for (name, policy) in [
        (
            "state, durable (1 s window)",
            sandbay_state::WriteBehind::default(),
        ),
        (
            "state, durable (every write)",
            sandbay_state::WriteBehind::EveryWrite,
        ),
    ] {
        let dir = tempfile::Builder::new()
            .prefix("sandbay-bench-durable-")
            .tempdir()
            .expect("temp dir");
        let store = sandbay_state::StateStore::open(
            Default::default(),
            sandbay_state::Durability::new(dir.path()).write_behind(policy),
        )
        .expect("open a durable store");
        let session: Arc<dyn Backend> = store.session("bench", "w1");
        workload(report, name, &Subject::Backend(session), &inputs).await;
        drop(store);
    }
}
