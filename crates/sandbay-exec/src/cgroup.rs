//! One parent cgroup (v1) per jail, one child per run: process and memory
//! caps and a CPU quota for the sandbox as a whole, and a complete list of
//! each run's processes for killing them all.
//!
//! A jail's parent is `/sys/fs/cgroup/<controller>/sandbay/<pid>-<n>` for
//! each controller, made on its first run and carrying the caps; a run
//! goes into a child `<pid>-<n>/run-<m>` without caps of its own, so the
//! kernel charges every run of the jail against the parent's caps
//! (hierarchically), however many run at once. When a run is over and
//! every process in it is dead, the emptied child goes back to the jail
//! for its next run; the parent and its children are removed when the jail
//! is dropped and its last run has ended. Creating and removing the
//! directories of three controllers costs about half a millisecond, which
//! reuse takes off every run. Directories left by a crashed process (its
//! pid no longer exists) are swept, with everything below them, once per
//! process.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::config::ResourceLimits;

/// Where cgroup v1 controllers are mounted.
const ROOT: &str = "/sys/fs/cgroup";
/// Our directory below each controller.
const OURS: &str = "sandbay";

/// The cgroup controllers this host lets us use.
#[derive(Debug, Default)]
pub(crate) struct Cgroups {
    pids: Option<PathBuf>,
    memory: Option<PathBuf>,
    memsw: bool,
    cpu: Option<PathBuf>,
}

impl Cgroups {
    /// Whether the `pids` controller is usable.
    pub(crate) fn pids(&self) -> bool {
        self.pids.is_some()
    }

    /// Whether the `memory` controller is usable.
    pub(crate) fn memory(&self) -> bool {
        self.memory.is_some()
    }

    /// Whether the `cpu` controller is usable.
    pub(crate) fn cpu(&self) -> bool {
        self.cpu.is_some()
    }
}

/// The host's controllers, detected (and stale runs swept) once.
pub(crate) fn host() -> &'static Cgroups {
    static HOST: OnceLock<Cgroups> = OnceLock::new();
    HOST.get_or_init(|| {
        let usable = |controller: &str, limit_file: &str| -> Option<PathBuf> {
            let base = Path::new(ROOT).join(controller);
            if !base.join("cgroup.procs").exists() {
                return None;
            }
            let ours = base.join(OURS);
            match fs::create_dir(&ours) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(_) => return None,
            }
            if !ours.join(limit_file).exists() {
                return None;
            }
            sweep_stale(&ours);
            Some(ours)
        };
        let memory = usable("memory", "memory.limit_in_bytes");
        let memsw = memory
            .as_ref()
            .is_some_and(|m| m.join("memory.memsw.limit_in_bytes").exists());
        let found = Cgroups {
            pids: usable("pids", "pids.max"),
            memory,
            memsw,
            cpu: usable("cpu", "cpu.cfs_quota_us"),
        };
        tracing::debug!(
            pids = found.pids(),
            memory = found.memory(),
            cpu = found.cpu(),
            "cgroup v1 controllers"
        );
        found
    })
}

/// Removes jail directories whose creating process no longer exists, with
/// every run directory below them.
fn sweep_stale(ours: &Path) {
    let Ok(entries) = fs::read_dir(ours) else {
        return;
    };
    let me = std::process::id();
    for entry in entries.flatten() {
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let name = entry.file_name();
        let Some(owner) = name
            .to_str()
            .and_then(|n| n.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if owner == me || Path::new("/proc").join(owner.to_string()).exists() {
            continue;
        }
        let stale = RunCgroup {
            dirs: vec![entry.path()],
            parent: None,
        };
        if !stale.cleanup_blocking(Duration::from_secs(1)) {
            tracing::warn!("could not remove a stale sandbay cgroup");
        }
    }
}

/// One pass over a cgroup directory and everything below it: kills every
/// listed process, removes the directories bottom up. Returns `true` once
/// `dir` is gone.
fn sweep_tree(dir: &Path) -> bool {
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            // Sub-cgroups are the only directories of a cgroup directory.
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                sweep_tree(&entry.path());
            }
        }
    }
    if let Ok(text) = fs::read_to_string(dir.join("cgroup.procs")) {
        for pid in text.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            if pid > 0 {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
    match fs::remove_dir(dir) {
        Ok(()) => true,
        Err(e) => e.kind() == io::ErrorKind::NotFound,
    }
}

/// A set of cgroup directories, one per usable controller (the first lists
/// the processes): either a jail's parent, which carries the caps, or one
/// run's child below it.
#[derive(Debug)]
pub(crate) struct RunCgroup {
    /// One directory per controller.
    dirs: Vec<PathBuf>,
    /// The jail's parent cgroup (for a run's child), removed when the last
    /// run and the jail let go of it.
    parent: Option<Arc<RunCgroup>>,
}

impl RunCgroup {
    /// Creates the parent cgroups of a jail with `limits`: every run of
    /// the jail goes into a child of them, so the caps hold for all runs
    /// together. `None` when the host has no usable controller.
    pub(crate) fn create_parent(
        cg: &Cgroups,
        limits: &ResourceLimits,
    ) -> io::Result<Option<RunCgroup>> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let mut set = RunCgroup {
            dirs: Vec::new(),
            parent: None,
        };
        let result = (|| -> io::Result<()> {
            if let Some(pids) = &cg.pids {
                let dir = pids.join(&name);
                fs::create_dir(&dir)?;
                set.dirs.push(dir.clone());
                fs::write(dir.join("pids.max"), limits.processes.to_string())?;
            }
            if let Some(memory) = &cg.memory {
                let dir = memory.join(&name);
                fs::create_dir(&dir)?;
                set.dirs.push(dir.clone());
                let bytes = limits.memory_bytes.to_string();
                fs::write(dir.join("memory.limit_in_bytes"), &bytes)?;
                if cg.memsw {
                    fs::write(dir.join("memory.memsw.limit_in_bytes"), &bytes)?;
                }
            }
            if let (Some(cpu), Some(cores)) = (&cg.cpu, limits.cpu_cores) {
                let dir = cpu.join(&name);
                fs::create_dir(&dir)?;
                set.dirs.push(dir.clone());
                let period: u64 = 100_000;
                let quota = ((cores * period as f64) as u64).max(1000);
                fs::write(dir.join("cpu.cfs_period_us"), period.to_string())?;
                fs::write(dir.join("cpu.cfs_quota_us"), quota.to_string())?;
            }
            Ok(())
        })();
        match result {
            Ok(()) if set.dirs.is_empty() => Ok(None),
            Ok(()) => Ok(Some(set)),
            Err(e) => {
                set.cleanup_blocking(Duration::from_millis(100));
                Err(e)
            }
        }
    }

    /// Creates a run's child below `parent` (no caps of its own: the
    /// parent's hold for it, hierarchically).
    fn create_child(parent: &Arc<RunCgroup>) -> io::Result<RunCgroup> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let name = format!("run-{}", SEQ.fetch_add(1, Ordering::Relaxed));
        let mut run = RunCgroup {
            dirs: Vec::with_capacity(parent.dirs.len()),
            parent: Some(Arc::clone(parent)),
        };
        for base in &parent.dirs {
            let dir = base.join(&name);
            if let Err(e) = fs::create_dir(&dir) {
                run.cleanup_blocking(Duration::from_millis(100));
                return Err(e);
            }
            run.dirs.push(dir);
        }
        Ok(run)
    }

    /// Moves process `pid` into every cgroup of the run.
    pub(crate) fn attach(&self, pid: i32) -> io::Result<()> {
        let pid = pid.to_string();
        for dir in &self.dirs {
            fs::write(dir.join("cgroup.procs"), &pid)?;
        }
        Ok(())
    }

    /// The processes still in the run.
    pub(crate) fn procs(&self) -> Vec<i32> {
        let mut all = Vec::new();
        for dir in &self.dirs {
            if let Ok(text) = fs::read_to_string(dir.join("cgroup.procs")) {
                all.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
            }
        }
        all.sort_unstable();
        all.dedup();
        all
    }

    /// One pass: kills every listed process (also in cgroups below), then
    /// tries to remove the directories. Returns `true` once all are
    /// removed.
    pub(crate) fn sweep(&mut self) -> bool {
        self.dirs.retain(|dir| !sweep_tree(dir));
        self.dirs.is_empty()
    }

    /// Sweeps until removed or `budget` has passed (blocking the thread).
    /// The parent, if any, is let go of afterwards (and removed if this
    /// was its last run).
    pub(crate) fn cleanup_blocking(mut self, budget: Duration) -> bool {
        let start = Instant::now();
        loop {
            if self.sweep() {
                return true;
            }
            if start.elapsed() > budget {
                tracing::warn!(
                    left = self.dirs.len(),
                    "cgroup of a run could not be removed; a later process sweeps it"
                );
                // Give up for good (no `Drop` retry).
                self.dirs.clear();
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Kills every process in the run until none is left or `budget` has
    /// passed (async). Returns whether it is empty.
    pub(crate) async fn empty(&self, budget: Duration) -> bool {
        let start = Instant::now();
        loop {
            let procs = self.procs();
            if procs.is_empty() {
                return true;
            }
            if start.elapsed() > budget {
                return false;
            }
            for pid in procs {
                if pid > 0 {
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                }
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

impl Drop for RunCgroup {
    /// A cgroup dropped on an unexpected path (or a parent whose last run
    /// has ended) is emptied and removed: at once when that takes one
    /// pass, else in the background.
    fn drop(&mut self) {
        if self.dirs.is_empty() || self.sweep() {
            return;
        }
        let dirs = std::mem::take(&mut self.dirs);
        let parent = self.parent.take();
        crate::guard::reap_later(None, Some(RunCgroup { dirs, parent }), Vec::new());
    }
}

/// The cgroups of one jail: its parent cgroup, which carries the caps for
/// every run of the jail together, and the idle, empty run children below
/// it, reused by its next runs.
#[derive(Debug)]
pub(crate) struct CgroupPool {
    host: &'static Cgroups,
    limits: ResourceLimits,
    /// Made on the jail's first run (many jails never run a command).
    parent: Mutex<Option<Arc<RunCgroup>>>,
    idle: Mutex<Vec<RunCgroup>>,
}

/// Idle cgroups a jail keeps at most; more are removed.
const MAX_IDLE: usize = 8;

impl CgroupPool {
    /// A pool making cgroups with `limits`.
    pub(crate) fn new(host: &'static Cgroups, limits: ResourceLimits) -> CgroupPool {
        CgroupPool {
            host,
            limits,
            parent: Mutex::new(None),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// The host's controllers.
    pub(crate) fn host(&self) -> &'static Cgroups {
        self.host
    }

    /// The jail's parent cgroup, made on first use; `None` when the host
    /// has no usable controller.
    fn parent(&self) -> io::Result<Option<Arc<RunCgroup>>> {
        let mut slot = self.parent.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(parent) = slot.as_ref() {
            return Ok(Some(Arc::clone(parent)));
        }
        let made = RunCgroup::create_parent(self.host, &self.limits)?.map(Arc::new);
        slot.clone_from(&made);
        Ok(made)
    }

    /// An empty cgroup for a run: an idle one, or a new child of the
    /// jail's parent.
    pub(crate) fn take(&self) -> io::Result<Option<RunCgroup>> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        match idle {
            Some(cg) => Ok(Some(cg)),
            None => match self.parent()? {
                Some(parent) => RunCgroup::create_child(&parent).map(Some),
                None => Ok(None),
            },
        }
    }

    /// Takes back a cgroup whose processes are all gone.
    pub(crate) fn give_back(&self, cg: RunCgroup) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE {
            idle.push(cg);
        } else {
            drop(idle);
            crate::guard::reap_later(None, Some(cg), Vec::new());
        }
    }
}

impl Drop for CgroupPool {
    /// Removes the idle runs, then lets go of the parent: it is removed
    /// now, or by the last run still holding it.
    fn drop(&mut self) {
        let idle = std::mem::take(self.idle.get_mut().unwrap_or_else(PoisonError::into_inner));
        drop(idle);
        drop(
            self.parent
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
    }
}
