//! The guard that owns a running command: whatever happens to the caller's
//! future (completion, timeout, drop), the whole process tree dies and the
//! run's cgroup is removed.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::OnceLock;
use std::sync::mpsc::{Sender, channel};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
use nix::unistd::Pid;
use tokio::io::unix::AsyncFd;

use std::sync::Arc;

use crate::cgroup::{CgroupPool, RunCgroup};
use crate::sys;

/// How the command's first process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// It exited with this code.
    Code(i32),
    /// A signal killed it.
    Signal(i32),
}

/// Owns the child (its pidfd) and the run's cgroup.
#[derive(Debug)]
pub(crate) struct RunGuard {
    pid: i32,
    pidfd: Option<OwnedFd>,
    cgroup: Option<RunCgroup>,
    /// Where the cgroup goes back once empty.
    pool: Option<Arc<CgroupPool>>,
    /// Write end of the child's start pipe, held open while the run lasts:
    /// the child checks that it is still open to know its parent is alive.
    go: Option<OwnedFd>,
    /// References to the child's mount and IPC namespaces. Holding them
    /// moves their teardown (which waits for RCU grace periods) out of the
    /// child's exit, so the exit is seen sooner; the background thread
    /// drops them after the run.
    namespaces: Vec<OwnedFd>,
}

impl RunGuard {
    /// Takes ownership of a started child.
    pub(crate) fn new(
        pid: i32,
        pidfd: OwnedFd,
        cgroup: Option<RunCgroup>,
        pool: Option<Arc<CgroupPool>>,
        go: OwnedFd,
    ) -> RunGuard {
        RunGuard {
            pid,
            pidfd: Some(pidfd),
            cgroup,
            pool,
            go: Some(go),
            namespaces: Vec::new(),
        }
    }

    /// Keeps namespace references until the run is over (see the field).
    pub(crate) fn hold_namespaces(&mut self, fds: Vec<OwnedFd>) {
        self.namespaces = fds;
    }

    /// Lets the waiting child go on (one byte on its start pipe).
    pub(crate) fn release(&self) -> io::Result<()> {
        let fd = self
            .go
            .as_ref()
            .ok_or_else(|| io::Error::other("start pipe closed"))?;
        let n = nix::sys::socket::send(
            fd.as_raw_fd(),
            &[1],
            nix::sys::socket::MsgFlags::MSG_NOSIGNAL,
        )?;
        if n == 1 {
            Ok(())
        } else {
            Err(io::Error::other("short write on the start pipe"))
        }
    }

    /// The run's cgroup, if any.
    pub(crate) fn cgroup(&self) -> Option<&RunCgroup> {
        self.cgroup.as_ref()
    }

    /// Kills the first process (in a PID namespace: all of them) and its
    /// process group. Only valid while the child is not reaped, which the
    /// guard ensures (the zombie keeps its pid and group id reserved).
    pub(crate) fn kill(&self) {
        if let Some(fd) = &self.pidfd {
            let _ = sys::pidfd_kill(fd.as_fd());
            let _ = killpg(Pid::from_raw(self.pid), Signal::SIGKILL);
        }
    }

    /// Waits until the first process has exited, without reaping it.
    pub(crate) async fn exited(&mut self) -> io::Result<Exit> {
        let fd = self
            .pidfd
            .take()
            .ok_or_else(|| io::Error::other("child already reaped"))?;
        let async_fd = sys::async_pidfd(fd)?;
        // Put the fd back whatever happens below (also if this future is
        // dropped), so `Drop` can still kill and reap.
        struct Restore<'a> {
            slot: &'a mut Option<OwnedFd>,
            fd: Option<AsyncFd<OwnedFd>>,
        }
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                if let Some(fd) = self.fd.take() {
                    *self.slot = Some(fd.into_inner());
                }
            }
        }
        let restore = Restore {
            slot: &mut self.pidfd,
            fd: Some(async_fd),
        };
        loop {
            let Some(afd) = restore.fd.as_ref() else {
                return Err(io::Error::other("pidfd lost"));
            };
            let mut ready = afd.readable().await?;
            if let Some(exit) = peek(afd.get_ref())? {
                return Ok(exit);
            }
            ready.clear_ready();
        }
    }

    /// Waits for the first process and reaps it, blocking the thread (for
    /// probes, where it is known to end at once).
    pub(crate) fn wait_blocking(&mut self) -> io::Result<Exit> {
        let fd = self
            .pidfd
            .take()
            .ok_or_else(|| io::Error::other("child already reaped"))?;
        match waitid(
            Id::PIDFd(fd.as_fd()),
            WaitPidFlag::WEXITED | WaitPidFlag::__WALL,
        )? {
            WaitStatus::Exited(_, code) => Ok(Exit::Code(code)),
            WaitStatus::Signaled(_, sig, _) => Ok(Exit::Signal(sig as i32)),
            other => Err(io::Error::other(format!(
                "unexpected wait status {other:?}"
            ))),
        }
    }

    /// Kills what is left of the tree, reaps the child and empties the
    /// cgroup (returned to the jail, or removed in the background). Call
    /// after [`RunGuard::exited`].
    pub(crate) async fn finish(&mut self) {
        self.kill();
        if let Some(fd) = self.pidfd.take() {
            let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::__WALL;
            if let Ok(WaitStatus::StillAlive) = waitid(Id::PIDFd(fd.as_fd()), flags) {
                // Killed but not gone yet (e.g. stuck in the kernel).
                reap_later(
                    Some(fd),
                    self.cgroup.take(),
                    std::mem::take(&mut self.namespaces),
                );
                return;
            }
        }
        if !self.namespaces.is_empty() {
            reap_later(None, None, std::mem::take(&mut self.namespaces));
        }
        if let Some(cgroup) = self.cgroup.take() {
            let empty = cgroup.empty(Duration::from_secs(2)).await;
            match &self.pool {
                Some(pool) if empty => pool.give_back(cgroup),
                _ => reap_later(None, Some(cgroup), Vec::new()),
            }
        }
    }
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        if self.pidfd.is_some() {
            self.kill();
        }
        if self.pidfd.is_some() || self.cgroup.is_some() || !self.namespaces.is_empty() {
            reap_later(
                self.pidfd.take(),
                self.cgroup.take(),
                std::mem::take(&mut self.namespaces),
            );
        }
    }
}

/// Checks whether the child has exited, leaving it a zombie (`WNOWAIT`).
fn peek(fd: &OwnedFd) -> io::Result<Option<Exit>> {
    let flags =
        WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT | WaitPidFlag::__WALL;
    match waitid(Id::PIDFd(fd.as_fd()), flags)? {
        WaitStatus::Exited(_, code) => Ok(Some(Exit::Code(code))),
        WaitStatus::Signaled(_, sig, _) => Ok(Some(Exit::Signal(sig as i32))),
        _ => Ok(None),
    }
}

/// Reaping and cgroup removal handed to a background thread, for drops.
struct Job {
    pidfd: Option<OwnedFd>,
    cgroup: Option<RunCgroup>,
    namespaces: Vec<OwnedFd>,
}

fn run_job(job: Job) {
    if let Some(fd) = job.pidfd {
        // Already killed: this returns as soon as the tree is gone.
        let _ = waitid(
            Id::PIDFd(fd.as_fd()),
            WaitPidFlag::WEXITED | WaitPidFlag::__WALL,
        );
    }
    // Closing the last references tears the namespaces down here.
    drop(job.namespaces);
    if let Some(cgroup) = job.cgroup {
        cgroup.cleanup_blocking(Duration::from_secs(10));
    }
}

/// Reaps a killed child, drops namespace references and removes a cgroup
/// in the background.
pub(crate) fn reap_later(
    pidfd: Option<OwnedFd>,
    cgroup: Option<RunCgroup>,
    namespaces: Vec<OwnedFd>,
) {
    static REAPER: OnceLock<Option<Sender<Job>>> = OnceLock::new();
    let sender = REAPER.get_or_init(|| {
        let (tx, rx) = channel::<Job>();
        std::thread::Builder::new()
            .name("sandbay-exec-reaper".into())
            .spawn(move || {
                for job in rx {
                    run_job(job);
                }
            })
            .ok()
            .map(|_| tx)
    });
    let job = Job {
        pidfd,
        cgroup,
        namespaces,
    };
    match sender {
        Some(tx) => {
            if let Err(failed) = tx.send(job) {
                run_job(failed.0);
            }
        }
        None => run_job(job),
    }
}
