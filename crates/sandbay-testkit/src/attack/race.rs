//! The rename-swap race: a directory inside the root is swapped, again
//! and again, with a symlink to the outside while operations run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};
use sandbay_core::{
    Backend, EditRequest, GlobRequest, GrepMode, GrepRequest, ReadRequest, Result, VPath,
};

use super::{Arena, Checker};
use crate::Fixture;

/// How long the operations run against the swapping thread.
pub const RACE_DURATION: Duration = Duration::from_secs(3);

/// Concurrent workers issuing operations.
const WORKERS: usize = 6;

/// What the race saw.
#[derive(Debug, Default)]
struct Tally {
    ops: u64,
    codes: BTreeMap<&'static str, u64>,
    violations: Vec<String>,
    /// A few `io` errors, to show which operations met which kinds.
    samples: Vec<String>,
}

impl Tally {
    fn record<T: std::fmt::Debug>(&mut self, checker: &Checker, what: &str, r: &Result<T>) {
        self.ops += 1;
        let code = match r {
            Ok(_) => "ok",
            Err(e) => e.code().as_str(),
        };
        *self.codes.entry(code).or_default() += 1;
        if let Err(e) = r
            && code == "io"
            && self.samples.len() < 5
        {
            self.samples.push(format!("{what}: {e:?}"));
        }
        if let Some(problem) = checker.problem(r)
            && self.violations.len() < 20
        {
            self.violations.push(format!("{what}: {problem}"));
        }
    }

    fn merge(&mut self, other: Tally) {
        self.ops += other.ops;
        for (code, n) in other.codes {
            *self.codes.entry(code).or_default() += n;
        }
        self.violations.extend(other.violations);
        self.samples.extend(other.samples);
        self.samples.truncate(5);
    }
}

/// One pair the swapper exchanges: an in-root entry and a symlink
/// (whose target is kept to plant it again).
#[derive(Debug, Clone)]
struct Swap {
    entry: PathBuf,
    link: PathBuf,
    target: PathBuf,
}

/// Swaps each pair with `RENAME_EXCHANGE` until stopped. A write through
/// the backend may replace the symlink with a regular file (a rename over
/// the name, which is allowed); the link is then planted again, so the
/// race keeps its teeth.
fn swapper(pairs: Vec<Swap>, stop: Arc<AtomicBool>, swaps: Arc<AtomicU64>) {
    let exchange =
        |a: &Path, b: &Path| renameat2(AT_FDCWD, a, AT_FDCWD, b, RenameFlags::RENAME_EXCHANGE);
    let is_link = |p: &Path| std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink());
    // The first exchange must work: the test means nothing otherwise.
    for s in &pairs {
        exchange(&s.entry, &s.link).expect("renameat2(RENAME_EXCHANGE) works on this filesystem");
        exchange(&s.entry, &s.link).expect("renameat2(RENAME_EXCHANGE) works on this filesystem");
        swaps.fetch_add(2, Ordering::Relaxed);
    }
    let mut round = 0u64;
    while !stop.load(Ordering::Relaxed) {
        round += 1;
        for s in &pairs {
            if exchange(&s.entry, &s.link).is_ok() {
                swaps.fetch_add(1, Ordering::Relaxed);
            }
            if round.is_multiple_of(64) && !is_link(&s.entry) && !is_link(&s.link) {
                let _ = std::fs::remove_file(&s.link);
                let _ = std::os::unix::fs::symlink(&s.target, &s.link);
            }
        }
    }
}

/// One worker: cycles through every operation on the swapped
/// directories until the deadline.
async fn worker(
    backend: Arc<dyn Backend>,
    checker: Checker,
    id: usize,
    deadline: Instant,
) -> Tally {
    let mut tally = Tally::default();
    let p = |s: &str| VPath::parse(s).expect("valid test path");
    let mut round = 0usize;
    while Instant::now() < deadline {
        round += 1;
        let dir = if (round + id).is_multiple_of(2) {
            "/d"
        } else {
            "/e"
        };
        let f = p(&format!("{dir}/f.txt"));
        let g = p(&format!("{dir}/sub/g.txt"));
        let victim = p(&format!("{dir}/victim.txt"));
        let new = p(&format!("{dir}/new-{id}-{}.txt", round % 8));
        let new_sub = p(&format!("{dir}/sub/new-{id}-{}.txt", round % 8));
        match (round + id) % 10 {
            0 => {
                let r = backend.read(&f, ReadRequest::default()).await;
                tally.record(&checker, "read f", &r);
                let r = backend.read(&g, ReadRequest::default()).await;
                tally.record(&checker, "read sub/g", &r);
            }
            1 => {
                let out = backend
                    .download(&[f.clone(), g.clone(), victim.clone()])
                    .await;
                for r in out {
                    if let Ok(bytes) = &r
                        && let Some(problem) = checker.bytes_problem(bytes)
                    {
                        tally.violations.push(format!("download: {problem}"));
                    }
                    tally.record(&checker, "download", &r.map(|b| b.len()));
                }
            }
            2 => {
                let r = backend.write(&new, "written inside\n").await;
                tally.record(&checker, "write new", &r);
                let r = backend
                    .upload(vec![(new_sub.clone(), b"uploaded\n".to_vec())])
                    .await;
                for r in r {
                    tally.record(&checker, "upload new", &r);
                }
            }
            3 => {
                for (old, new) in [("tick", "tock"), ("tock", "tick")] {
                    let edit = EditRequest {
                        old: old.into(),
                        new: new.into(),
                        replace_all: true,
                    };
                    let r = backend.edit(&f, &edit).await;
                    tally.record(&checker, "edit f", &r);
                }
            }
            4 => {
                let mut grep = GrepRequest::new("SANDBAY-SECRET");
                grep.literal = true;
                grep.mode = GrepMode::Content;
                let r = backend.grep(&grep).await;
                tally.record(&checker, "grep /", &r);
                grep.path = p(dir);
                let r = backend.grep(&grep).await;
                tally.record(&checker, "grep dir", &r);
            }
            5 => {
                let mut grep = GrepRequest::new("tick|tock|victim|g");
                grep.mode = GrepMode::Content;
                grep.path = p(dir);
                let r = backend.grep(&grep).await;
                tally.record(&checker, "grep content", &r);
            }
            6 => {
                let r = backend.glob(&GlobRequest::new("**/*")).await;
                tally.record(&checker, "glob /", &r);
                let mut glob = GlobRequest::new("*.txt");
                glob.path = p(dir);
                let r = backend.glob(&glob).await;
                tally.record(&checker, "glob dir", &r);
            }
            7 => {
                let r = backend.ls(&p(dir)).await;
                tally.record(&checker, "ls dir", &r);
                let r = backend.ls(&p(&format!("{dir}/sub"))).await;
                tally.record(&checker, "ls sub", &r);
                let r = backend.stat(&f).await;
                tally.record(&checker, "stat f", &r);
            }
            8 => {
                // a file swapped with a symlink to an outside file
                let x = p("/x.txt");
                let r = backend.read(&x, ReadRequest::default()).await;
                tally.record(&checker, "read x", &r);
                let out = backend.download(std::slice::from_ref(&x)).await;
                for r in out {
                    if let Ok(bytes) = &r
                        && let Some(problem) = checker.bytes_problem(bytes)
                    {
                        tally.violations.push(format!("download x: {problem}"));
                    }
                    tally.record(&checker, "download x", &r.map(|b| b.len()));
                }
                let edit = EditRequest {
                    old: "tick".into(),
                    new: "tick".into(),
                    replace_all: true,
                };
                let r = backend.edit(&x, &edit).await;
                tally.record(&checker, "edit x", &r);
                let r = backend.write(&x, "inside tick\n").await;
                tally.record(&checker, "write x", &r);
                let r = backend.stat(&x).await;
                tally.record(&checker, "stat x", &r);
            }
            _ => {
                let r = backend.write(&victim, "inside victim\n").await;
                tally.record(&checker, "write victim", &r);
                let r = backend.delete(&victim).await;
                tally.record(&checker, "delete victim", &r);
            }
        }
    }
    tally
}

/// A thread swaps two in-root directories with symlinks to the outside
/// directory (one absolute, one relative `../`), and a file with a
/// symlink to an outside file, using
/// `renameat2(RENAME_EXCHANGE)`, as fast as it can, while reads,
/// downloads, writes, uploads, edits, deletes, greps, globs, `ls` and
/// `stat` run on paths through those directories for
/// [`RACE_DURATION`]. Zero bytes of the outside secret may come back,
/// no error may name a host path, and nothing outside may be created,
/// changed or removed.
pub async fn rename_swap_race_leaks_nothing(fx: &Fixture) {
    let a = Arena::new(fx);
    for dir in ["d", "e"] {
        std::fs::create_dir_all(a.host(&format!("{dir}/sub"))).unwrap();
        std::fs::write(a.host(&format!("{dir}/f.txt")), "inside tick\n").unwrap();
        std::fs::write(a.host(&format!("{dir}/sub/g.txt")), "inside g\n").unwrap();
        std::fs::write(a.host(&format!("{dir}/victim.txt")), "inside victim\n").unwrap();
    }
    std::os::unix::fs::symlink(a.outside(), a.host("swap-abs")).unwrap();
    std::os::unix::fs::symlink(a.outside_from_root(), a.host("swap-rel")).unwrap();
    std::fs::write(a.host("x.txt"), "inside tick\n").unwrap();
    std::os::unix::fs::symlink(a.outside().join("f.txt"), a.host("x-link")).unwrap();
    let swap = |entry: &str, link: &str| Swap {
        entry: a.host(entry),
        link: a.host(link),
        target: std::fs::read_link(a.host(link)).unwrap(),
    };
    let pairs = vec![
        swap("d", "swap-abs"),
        swap("e", "swap-rel"),
        swap("x.txt", "x-link"),
    ];
    let before = a.outside_state();

    let stop = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(AtomicU64::new(0));
    let thread = {
        let (pairs, stop, swaps) = (pairs.clone(), stop.clone(), swaps.clone());
        std::thread::Builder::new()
            .name("sandbay-attack-swapper".into())
            .spawn(move || swapper(pairs, stop, swaps))
            .expect("a swapper thread")
    };
    let deadline = Instant::now() + RACE_DURATION;
    let tasks: Vec<_> = (0..WORKERS)
        .map(|id| tokio::spawn(worker(a.backend().clone(), a.checker(), id, deadline)))
        .collect();
    let mut tally = Tally::default();
    let mut panics = Vec::new();
    for task in tasks {
        match task.await {
            Ok(t) => tally.merge(t),
            Err(e) => panics.push(e.to_string()),
        }
    }
    stop.store(true, Ordering::Relaxed);
    let swapper_result = thread.join();
    // Put the directories back where they belong (an odd number of swaps
    // leaves the symlink under the directory's name).
    for s in &pairs {
        if std::fs::symlink_metadata(&s.entry).is_ok_and(|m| m.file_type().is_symlink()) {
            renameat2(
                AT_FDCWD,
                s.entry.as_path(),
                AT_FDCWD,
                s.link.as_path(),
                RenameFlags::RENAME_EXCHANGE,
            )
            .expect("swap back");
        }
    }
    let swaps = swaps.load(Ordering::Relaxed);
    eprintln!(
        "rename-swap race: {} operations, {swaps} swaps in {RACE_DURATION:?}; results: {:?}; io samples: {:?}",
        tally.ops, tally.codes, tally.samples
    );
    assert!(swapper_result.is_ok(), "the swapper thread panicked");
    assert!(panics.is_empty(), "workers panicked: {panics:?}");
    assert!(
        tally.violations.is_empty(),
        "leaks: {:#?}",
        tally.violations
    );
    a.assert_outside_unchanged(&before, "the rename-swap race");
    // The race really ran: many swaps, many operations, and some of them
    // met the symlink and were refused.
    assert!(swaps > 100, "only {swaps} swaps happened");
    assert!(tally.ops > 100, "only {} operations ran", tally.ops);
    assert!(
        tally.codes.get("permission_denied").copied().unwrap_or(0) > 0,
        "no operation ever met the swapped-in symlink: {:?}",
        tally.codes
    );
    assert!(
        tally.codes.get("ok").copied().unwrap_or(0) > 0,
        "no operation ever succeeded: {:?}",
        tally.codes
    );
}
