//! The file workload on the state and fs backends, and `rg`/`find` on the
//! same tree for comparison.
//!
//! 1,000 text files of about 4 KB (100 lines) in 100 nested directories,
//! half of them `.py`: write all, read each (offset 0, default limit),
//! edit each (one unique string), `ls` of the root and of one directory,
//! glob `**/*.py`, grep a literal present in 10% of the files.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use sandbay_core::{Backend, EditRequest, GlobRequest, GrepRequest, ReadRequest, VPath};

use super::{Report, Stats};

const FILES: usize = 1000;
const NEEDLE: &str = "NEEDLE_7f3a";

fn file_path(i: usize) -> VPath {
    let ext = if i.is_multiple_of(2) { "py" } else { "txt" };
    VPath::parse(&format!(
        "/pkg{}/mod{}/file{i}.{ext}",
        i % 10,
        (i / 10) % 10
    ))
    .expect("valid bench path")
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

async fn workload(report: &mut Report, name: &str, backend: Arc<dyn Backend>) {
    let contents: Vec<String> = (0..FILES).map(file_content).collect();
    let paths: Vec<VPath> = (0..FILES).map(file_path).collect();
    let b = &backend;
    let stats = timed(FILES, |i| {
        let (p, c) = (&paths[i], &contents[i]);
        async move { b.write(p, c).await.expect("write") }
    })
    .await;
    report.add("files", name, "write", stats, "1,000 files of 4 KB");
    let stats = timed(FILES, |i| {
        let p = &paths[i];
        async move {
            let w = b.read(p, ReadRequest::default()).await.expect("read");
            assert_eq!(w.lines.len(), 100);
        }
    })
    .await;
    report.add("files", name, "read", stats, "offset 0, default limit");
    let stats = timed(FILES, |i| {
        let p = &paths[i];
        let req = EditRequest {
            old: format!("\"UNIQUE_{i}\""),
            new: format!("\"EDITED_{i}\""),
            replace_all: false,
        };
        async move {
            let out = b.edit(p, &req).await.expect("edit");
            assert_eq!(out.replacements, 1);
        }
    })
    .await;
    report.add("files", name, "edit", stats, "one unique string");
    let root = VPath::root();
    let stats = timed(1000, |_| {
        let root = &root;
        async move {
            assert_eq!(b.ls(root).await.expect("ls").len(), 10);
        }
    })
    .await;
    report.add("files", name, "ls /", stats, "10 entries");
    let dir = VPath::parse("/pkg3/mod4").expect("valid");
    let stats = timed(1000, |_| {
        let dir = &dir;
        async move {
            assert_eq!(b.ls(dir).await.expect("ls").len(), 10);
        }
    })
    .await;
    report.add("files", name, "ls dir", stats, "10 entries");
    let glob = GlobRequest::new("**/*.py");
    let stats = timed(200, |_| {
        let glob = &glob;
        async move {
            let out = b.glob(glob).await.expect("glob");
            assert_eq!(out.paths.len(), FILES / 2);
        }
    })
    .await;
    report.add("files", name, "glob **/*.py", stats, "500 matches");
    let mut grep = GrepRequest::new(NEEDLE);
    grep.literal = true;
    let stats = timed(100, |_| {
        let grep = &grep;
        async move {
            let out = b.grep(grep).await.expect("grep");
            assert_eq!(out.files.len(), FILES / 10);
        }
    })
    .await;
    report.add(
        "files",
        name,
        "grep literal",
        stats,
        "100 of 1,000 files match",
    );
}

/// Wall time of an external command over the same tree, per run.
fn external(
    report: &mut Report,
    subject: &str,
    op: &str,
    mut make: impl FnMut() -> Command,
    note: &str,
) {
    let mut samples = Vec::new();
    let wall = Instant::now();
    for _ in 0..20 {
        let start = Instant::now();
        let out = make().stdout(Stdio::piped()).stderr(Stdio::null()).output();
        match out {
            Ok(o) if o.status.success() => samples.push(start.elapsed()),
            _ => {
                println!("bench: {subject} not usable here, skipped");
                return;
            }
        }
    }
    report.add(
        "files",
        subject,
        op,
        Stats::from_samples(samples, wall.elapsed()),
        note,
    );
}

pub(crate) async fn run(report: &mut Report) {
    let state: Arc<dyn Backend> = Arc::new(sandbay_state::StateBackend::default());
    workload(report, "state", state).await;

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
        workload(report, name, session).await;
        drop(store);
    }

    let tmp = tempfile::Builder::new()
        .prefix("sandbay-bench-")
        .tempdir()
        .expect("temp dir");
    let root = sandbay_fs::open_root(tmp.path()).await.expect("open root");
    let fs: Arc<dyn Backend> = Arc::new(sandbay_fs::FsBackend::new(root));
    workload(report, "fs", fs).await;

    let tree: &Path = tmp.path();
    external(
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
    external(
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
    // keep the tree until the external tools ran
    drop(tmp);
}
