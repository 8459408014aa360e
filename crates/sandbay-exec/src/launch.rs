//! Starting one jailed process: descriptors, id maps, cgroup, the go signal.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::stat::Mode;
use sandbay_core::{Error, Result};

use std::sync::Arc;

use crate::cgroup::{CgroupPool, RunCgroup};
use crate::guard::RunGuard;
use crate::plan::{NsPlan, SANDBOX_UID, WORKSPACE_ATTRS};
use crate::sys::{self, CStrings, ChildSpec, Ids, NsSpec, Rlimit, Stage, TreeSource};

/// Largest accepted `stdin` of a request, in bytes (it is written into the
/// pipe before the command starts).
pub const MAX_STDIN: usize = 1024 * 1024;

/// The host identity commands run as.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HostIds {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    /// The host process is root: it switches uid, clears groups, and may
    /// map any uid.
    pub(crate) privileged: bool,
}

/// What one start needs.
pub(crate) struct Launch {
    pub(crate) ns: Option<Arc<NsPlan>>,
    /// The jail's own network namespace (root hosts), else one per run.
    pub(crate) netns: Option<Arc<OwnedFd>>,
    /// Canonical host path of the workspace.
    pub(crate) workspace: CString,
    pub(crate) ids: HostIds,
    pub(crate) cwd: CString,
    pub(crate) rlimits: Vec<Rlimit>,
    pub(crate) argv: Vec<CString>,
    pub(crate) envp: Vec<CString>,
    pub(crate) stdin: OwnedFd,
    pub(crate) stdout: OwnedFd,
    pub(crate) stderr: OwnedFd,
    pub(crate) probe_only: bool,
}

/// A started child.
#[derive(Debug)]
pub(crate) struct Launched {
    /// Kills the tree if dropped.
    pub(crate) guard: RunGuard,
    /// The failure pipe: EOF once `execve` succeeded, or a report.
    pub(crate) failures: OwnedFd,
    /// The child could not join its cgroups (it was killed); reported
    /// unless the failure pipe has a more precise report.
    pub(crate) attach_error: Option<sandbay_core::Error>,
}

/// Starts the child and lets it run.
///
/// Call it on the spawner thread (see `crate::spawner`): the child's
/// parent-death signal is bound to the calling thread.
pub(crate) fn launch(
    l: Launch,
    cgroup: Option<RunCgroup>,
    pool: Option<Arc<CgroupPool>>,
) -> Result<Launched> {
    let ns_spec = l.ns.as_deref().map(|plan| NsSpec {
        trees: &plan.trees,
        workspace: TreeSource {
            path: l.workspace.clone(),
            attr_set: WORKSPACE_ATTRS,
        },
        base: &plan.base,
        ops: &plan.ops,
        hostname: &plan.hostname,
        netns: l.netns.as_deref().map(|fd| fd.as_fd()),
    });
    let switch = l.ids.privileged;
    let argv = CStrings::new(l.argv);
    let envp = CStrings::new(l.envp);
    let spec = ChildSpec {
        stdin: l.stdin.as_fd(),
        stdout: l.stdout.as_fd(),
        stderr: l.stderr.as_fd(),
        namespaces: ns_spec.as_ref(),
        // Inside a user namespace the child always becomes SANDBOX_UID (a
        // no-op when unprivileged, where that is its own mapped uid).
        ids: (switch || l.ns.is_some()).then_some(Ids {
            uid: l.ids.uid,
            gid: l.ids.gid,
            clear_groups: switch,
        }),
        cwd: &l.cwd,
        rlimits: &l.rlimits,
        program: c"/bin/sh",
        argv: &argv,
        envp: &envp,
        probe_only: l.probe_only,
        seccomp: crate::seccomp::Filter::get(),
    };
    let started = match sys::start(&spec) {
        Ok(started) => started,
        Err(e) => {
            if let Some(cg) = cgroup {
                match &pool {
                    Some(pool) => pool.give_back(cg),
                    None => crate::guard::reap_later(None, Some(cg), Vec::new()),
                }
            }
            return Err(unavailable("creating the process", &e));
        }
    };
    let mut guard = RunGuard::new(started.pid, started.pidfd, cgroup, pool, started.go);
    if l.ns.is_some() {
        write_id_maps(started.pid, l.ids)
            .map_err(|e| unavailable("mapping the sandbox user", &e))?;
        guard.hold_namespaces(namespace_refs(started.pid));
    }
    // First go: the child builds its jail while the parent moves it into
    // its cgroups (which can wait for an RCU grace period); second go: it
    // may exec. A failed send means the child is gone; its failure report
    // (read by the caller) says why.
    let _ = guard.release();
    let attach_error = guard.cgroup().and_then(|cg| {
        cg.attach(started.pid)
            .err()
            .map(|e| unavailable("joining the run's cgroup", &e))
    });
    if attach_error.is_some() {
        // Never let it run outside its cgroups.
        guard.kill();
    } else {
        let _ = guard.release();
    }
    Ok(Launched {
        guard,
        failures: started.failures,
        attach_error,
    })
}

/// Opens the child's mount and IPC namespaces (best effort: without them
/// the teardown merely happens in the child's exit).
fn namespace_refs(pid: i32) -> Vec<OwnedFd> {
    ["mnt", "ipc"]
        .iter()
        .filter_map(|ns| {
            nix::fcntl::open(
                format!("/proc/{pid}/ns/{ns}").as_str(),
                OFlag::O_RDONLY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .ok()
        })
        .collect()
}

/// Writes the child's uid and gid maps: SANDBOX_UID inside = the host ids.
fn write_id_maps(pid: i32, ids: HostIds) -> io::Result<()> {
    let proc = format!("/proc/{pid}");
    let write = |file: &str, data: &str| -> io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(format!("{proc}/{file}"))?;
        f.write_all(data.as_bytes())
    };
    if !ids.privileged {
        // An unprivileged gid map requires setgroups to be denied.
        write("setgroups", "deny")?;
    }
    write("uid_map", &format!("{SANDBOX_UID} {} 1\n", ids.uid))?;
    write("gid_map", &format!("{SANDBOX_UID} {} 1\n", ids.gid))
}

/// The `unavailable` error for a failed start step; names no host path.
pub(crate) fn unavailable(step: &str, e: &io::Error) -> Error {
    let what = match e.raw_os_error() {
        Some(n) => Errno::from_raw(n).desc().to_string(),
        None => format!("{:?}", e.kind()),
    };
    Error::Unavailable {
        message: format!("the jail could not start: {step}: {what}"),
    }
}

/// Turns the child's failure report into an error.
pub(crate) fn child_failure(stage: Stage, errno: i32, workdir: &sandbay_core::VPath) -> Error {
    if stage == Stage::Workdir {
        match Errno::from_raw(errno) {
            Errno::ENOENT => {
                return Error::NotFound {
                    path: workdir.clone(),
                };
            }
            Errno::ENOTDIR => {
                return Error::NotADirectory {
                    path: workdir.clone(),
                };
            }
            Errno::EACCES => {
                return Error::PermissionDenied {
                    path: workdir.clone(),
                    reason: "the sandbox user cannot enter this directory".into(),
                };
            }
            _ => {}
        }
    }
    Error::Unavailable {
        message: format!(
            "the jail could not start: {}: {}",
            stage.what(),
            Errno::from_raw(errno).desc()
        ),
    }
}

/// Standard input for the child: `/dev/null`, or a pipe already holding
/// all of `data` (so no writer task and no `SIGPIPE` risk).
pub(crate) fn stdin_fd(data: &[u8]) -> Result<OwnedFd> {
    let io_err = |e: io::Error| unavailable("preparing standard input", &e);
    if data.is_empty() {
        let fd = nix::fcntl::open(
            c"/dev/null",
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io_err(e.into()))?;
        return sys::high_fd(fd).map_err(io_err);
    }
    let too_large = || Error::TooLarge {
        what: "stdin".into(),
        size: data.len() as u64,
        limit: MAX_STDIN as u64,
    };
    if data.len() > MAX_STDIN {
        return Err(too_large());
    }
    let (r, w) = sys::pipe().map_err(io_err)?;
    if data.len() > 64 * 1024 {
        let size = fcntl(&w, FcntlArg::F_SETPIPE_SZ(data.len() as libc::c_int))
            .map_err(|_| too_large())?;
        if (size as usize) < data.len() {
            return Err(too_large());
        }
    }
    // Never block: the child does not exist yet to read.
    fcntl(&w, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).map_err(|e| io_err(e.into()))?;
    let mut file = File::from(w);
    file.write_all(data).map_err(|e| {
        if e.kind() == io::ErrorKind::WouldBlock {
            too_large()
        } else {
            io_err(e)
        }
    })?;
    Ok(r)
}
