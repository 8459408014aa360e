//! The code that runs in the new process between `clone3` and `execve`.
//!
//! The child is a copy of a multi-threaded parent in which only the calling
//! thread survives, so any lock another thread held (the allocator's, stdio's)
//! stays locked forever. This module therefore makes **only async-signal-safe
//! system calls**: no allocation, no formatting, no locks, no glibc wrappers
//! that assume they know the thread list (credential changes use raw
//! syscalls, because glibc's `setresuid` broadcasts to threads that do not
//! exist here). Everything the child reads was prepared by the parent.

use std::ffi::CStr;
use std::os::fd::RawFd;

use libc::{c_int, c_ulong, c_void};

use super::{
    IfreqFlags, MountAttr, RootOp, SIOCGIFFLAGS, SIOCSIFFLAGS, Stage, mount_setattr_raw,
    open_tree_raw,
};

/// The first inside uid and gid (see [`crate::SANDBOX_UID`]).
const INSIDE_ID: libc::c_long = crate::SANDBOX_UID as libc::c_long;

/// Most bind sources one jail may use (the fds live on the child's stack).
pub(crate) const MAX_TREES: usize = 48;

/// `OPEN_TREE_CLONE` from `<linux/mount.h>`.
const OPEN_TREE_CLONE: c_int = 1;
/// `MOVE_MOUNT_F_EMPTY_PATH` from `<linux/mount.h>`.
const MOVE_MOUNT_F_EMPTY_PATH: c_int = 4;
/// `MOUNT_ATTR_RDONLY` from `<linux/mount.h>`.
pub(crate) const MOUNT_ATTR_RDONLY: u64 = 0x1;
/// `MOUNT_ATTR_NOSUID` from `<linux/mount.h>`.
pub(crate) const MOUNT_ATTR_NOSUID: u64 = 0x2;
/// `MOUNT_ATTR_NODEV` from `<linux/mount.h>`.
pub(crate) const MOUNT_ATTR_NODEV: u64 = 0x4;
/// `MOUNT_ATTR_NOEXEC` from `<linux/mount.h>`.
pub(crate) const MOUNT_ATTR_NOEXEC: u64 = 0x8;
/// Everything the child needs, prepared by the parent (see `super::ChildSpec`).
pub(crate) struct Plan<'a> {
    pub(crate) stdio: [RawFd; 3],
    pub(crate) close_first: [RawFd; 2],
    pub(crate) sync_read: RawFd,
    pub(crate) err_write: RawFd,
    pub(crate) spec: &'a super::ChildSpec<'a>,
}

fn errno() -> c_int {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Reports `stage` and the current `errno` to the parent and exits.
fn fail(err_fd: RawFd, stage: Stage) -> ! {
    let e = errno();
    let mut buf = [0u8; 8];
    buf[..4].copy_from_slice(&(stage as u32).to_ne_bytes());
    buf[4..].copy_from_slice(&e.to_ne_bytes());
    // SAFETY: `buf` is a valid 8-byte buffer; write(2) and _exit(2) are
    // async-signal-safe.
    unsafe {
        libc::write(err_fd, buf.as_ptr().cast(), buf.len());
        libc::_exit(127)
    }
}

/// Runs the child side; never returns.
///
/// # Safety
/// Must only be called in the child right after `clone3` returned 0, with a
/// plan whose pointers all stay valid (the parent's memory is copied).
pub(crate) unsafe fn child_main(plan: &Plan<'_>) -> ! {
    let err = plan.err_write;
    let spec = plan.spec;
    macro_rules! check {
        ($stage:expr, $ret:expr) => {
            if ($ret as i64) < 0 {
                fail(err, $stage)
            }
        };
    }
    // SAFETY (whole block): only raw system calls on pointers into memory the
    // parent prepared and keeps alive (the child has a copy of it).
    unsafe {
        for fd in plan.close_first {
            libc::close(fd);
        }
        for (target, fd) in plan.stdio.iter().enumerate() {
            // The parent guarantees every fd here is >= 3, so dup2 always
            // creates a new descriptor without FD_CLOEXEC.
            check!(Stage::Stdio, libc::dup2(*fd, target as c_int));
        }

        // Wait until the parent wrote the id maps (first byte); the second
        // byte, awaited right before execve, says the cgroups are joined,
        // so that slow step overlaps the setup below.
        if !wait_byte(plan.sync_read) {
            // The parent gave up: leave quietly.
            libc::_exit(126);
        }

        // An empty signal mask and default dispositions (only ignored
        // signals survive execve, e.g. Rust's SIGPIPE = SIG_IGN).
        let empty: u64 = 0;
        check!(
            Stage::Signals,
            libc::syscall(
                libc::SYS_rt_sigprocmask,
                libc::SIG_SETMASK,
                &empty as *const u64,
                std::ptr::null_mut::<u64>(),
                8usize
            )
        );
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        for sig in 1..32 {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::sigaction(sig, &dfl, std::ptr::null_mut());
            }
        }

        check!(Stage::Session, libc::setsid());

        let mut trees = [-1 as RawFd; MAX_TREES + 1];
        if let Some(ns) = spec.namespaces {
            // Nothing we mount may propagate back to the host.
            check!(
                Stage::MountPrivate,
                libc::mount(
                    std::ptr::null(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null()
                )
            );
            // Clone every bind source while still holding the parent's file
            // access rights (the host uid), before switching to the sandbox uid.
            let sources = ns.trees.iter().chain(std::iter::once(&ns.workspace));
            for (i, tree) in sources.enumerate() {
                let fd = open_tree_raw(
                    libc::AT_FDCWD,
                    tree.path.as_ptr(),
                    OPEN_TREE_CLONE | libc::O_CLOEXEC | libc::AT_RECURSIVE,
                );
                check!(Stage::OpenTree, fd);
                if tree.attr_set != 0 {
                    let attr = MountAttr {
                        attr_set: tree.attr_set,
                        attr_clr: 0,
                        propagation: 0,
                        userns_fd: 0,
                    };
                    check!(
                        Stage::SetAttr,
                        mount_setattr_raw(
                            fd as c_int,
                            c"".as_ptr(),
                            libc::AT_EMPTY_PATH | libc::AT_RECURSIVE,
                            &attr
                        )
                    );
                }
                trees[i] = fd as RawFd;
            }
        }

        if let Some(ids) = spec.ids {
            if ids.clear_groups {
                check!(
                    Stage::Groups,
                    libc::syscall(libc::SYS_setgroups, 0usize, std::ptr::null::<libc::gid_t>())
                );
            }
            let (uid, gid) = if spec.namespaces.is_some() {
                (INSIDE_ID, INSIDE_ID)
            } else {
                (ids.uid as libc::c_long, ids.gid as libc::c_long)
            };
            check!(
                Stage::Gid,
                libc::syscall(libc::SYS_setresgid, gid, gid, gid)
            );
            check!(
                Stage::Uid,
                libc::syscall(libc::SYS_setresuid, uid, uid, uid)
            );
        }

        // Die with the host process (set after the credential change,
        // which clears it). If the parent died before this point, the start
        // pipe's write end is closed: leave.
        check!(
            Stage::ParentDeath,
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as c_ulong, 0, 0, 0)
        );
        let mut pfd = libc::pollfd {
            fd: plan.sync_read,
            events: libc::POLLIN,
            revents: 0,
        };
        if libc::poll(&mut pfd, 1, 0) != 0 && pfd.revents & (libc::POLLHUP | libc::POLLERR) != 0 {
            libc::_exit(126);
        }

        if let Some(ns) = spec.namespaces {
            // A fresh tmpfs becomes the new root; it is mounted over the base
            // directory of this (private) mount namespace.
            check!(
                Stage::RootTmpfs,
                libc::mount(
                    c"tmpfs".as_ptr(),
                    ns.base.as_ptr(),
                    c"tmpfs".as_ptr(),
                    libc::MS_NOSUID | libc::MS_NODEV,
                    c"mode=0755,size=4m".as_ptr().cast()
                )
            );
            check!(Stage::RootTmpfs, libc::chdir(ns.base.as_ptr()));
            let workspace_tree = ns.trees.len();
            for op in ns.ops {
                run_op(err, op, &trees, workspace_tree);
            }
            check!(
                Stage::PivotRoot,
                libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr())
            );
            check!(
                Stage::UnmountOld,
                libc::umount2(c".".as_ptr(), libc::MNT_DETACH)
            );
            check!(Stage::UnmountOld, libc::chdir(c"/".as_ptr()));
            let ro = MountAttr {
                attr_set: MOUNT_ATTR_RDONLY,
                attr_clr: 0,
                propagation: 0,
                userns_fd: 0,
            };
            check!(
                Stage::RootReadOnly,
                mount_setattr_raw(libc::AT_FDCWD, c"/".as_ptr(), 0, &ro)
            );
            check!(
                Stage::Hostname,
                libc::sethostname(ns.hostname.as_ptr().cast(), ns.hostname.len())
            );
            if ns.netns.is_none() {
                loopback_up(err);
            }
            // Best effort hardening: no nested user namespaces (less kernel
            // attack surface). Not part of any level's guarantee.
            let fd = libc::open(
                c"/proc/sys/user/max_user_namespaces".as_ptr(),
                libc::O_WRONLY | libc::O_CLOEXEC,
            );
            if fd >= 0 {
                libc::write(fd, c"0".as_ptr().cast(), 1);
                libc::close(fd);
            }
        }

        check!(Stage::Workdir, libc::chdir(spec.cwd.as_ptr()));
        for limit in spec.rlimits {
            let value = libc::rlimit {
                rlim_cur: limit.value,
                rlim_max: limit.value,
            };
            check!(Stage::Rlimit, libc::setrlimit(limit.resource, &value));
        }
        check!(
            Stage::NoNewPrivs,
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1 as c_ulong, 0, 0, 0)
        );
        if let Some(filter) = spec.seccomp {
            check!(Stage::Seccomp, filter.install_raw());
        }
        libc::umask(0o022);
        // No descriptor of the parent (sockets, files) reaches the command.
        check!(
            Stage::CloseFds,
            libc::syscall(
                libc::SYS_close_range,
                3u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC
            )
        );
        if !wait_byte(plan.sync_read) {
            libc::_exit(126);
        }
        libc::close(plan.sync_read);
        if spec.probe_only {
            libc::_exit(0);
        }
        libc::execve(
            spec.program.as_ptr(),
            spec.argv.ptrs().as_ptr(),
            spec.envp.ptrs().as_ptr(),
        );
        fail(err, Stage::Exec)
    }
}

/// Reads one byte from the parent's start pipe; `false` on EOF or error.
///
/// # Safety
/// Child-only; see [`child_main`].
unsafe fn wait_byte(fd: RawFd) -> bool {
    let mut byte = 0u8;
    loop {
        // SAFETY: read(2) into a one-byte stack buffer.
        let r = unsafe { libc::read(fd, (&mut byte as *mut u8).cast::<c_void>(), 1) };
        if r == 1 {
            return true;
        }
        if r < 0 && errno() == libc::EINTR {
            continue;
        }
        return false;
    }
}

/// Applies one step of building the new root (cwd is the new root).
///
/// # Safety
/// Child-only; see [`child_main`].
unsafe fn run_op(err: RawFd, op: &RootOp, trees: &[RawFd], workspace_tree: usize) {
    macro_rules! check {
        ($ret:expr) => {
            if ($ret as i64) < 0 {
                fail(err, Stage::RootOp)
            }
        };
    }
    // SAFETY: raw system calls on NUL-terminated strings owned by the plan.
    unsafe {
        match op {
            RootOp::Mkdir { path, mode } => check!(libc::mkdir(path.as_ptr(), *mode)),
            RootOp::Touch { path } => {
                let fd = libc::open(
                    path.as_ptr(),
                    libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC,
                    0o644,
                );
                check!(fd);
                libc::close(fd);
            }
            RootOp::Symlink { target, path } => {
                check!(libc::symlink(target.as_ptr(), path.as_ptr()))
            }
            RootOp::Write { path, data } => {
                let fd = libc::open(
                    path.as_ptr(),
                    libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC,
                    0o644,
                );
                check!(fd);
                let mut done = 0usize;
                while done < data.len() {
                    let n = libc::write(fd, data[done..].as_ptr().cast(), data.len() - done);
                    if n < 0 && errno() == libc::EINTR {
                        continue;
                    }
                    check!(n);
                    done += n as usize;
                }
                libc::close(fd);
            }
            RootOp::Mount {
                source,
                path,
                fstype,
                flags,
                data,
            } => check!(libc::mount(
                source.as_ptr(),
                path.as_ptr(),
                fstype.as_ptr(),
                *flags,
                data.as_ptr().cast()
            )),
            RootOp::Attach { tree, path } => {
                check!(attach(trees[*tree], path));
            }
            RootOp::AttachWorkspace { path } => {
                check!(attach(trees[workspace_tree], path));
            }
            RootOp::SetAttr { path, set } => {
                let attr = MountAttr {
                    attr_set: *set,
                    attr_clr: 0,
                    propagation: 0,
                    userns_fd: 0,
                };
                check!(mount_setattr_raw(libc::AT_FDCWD, path.as_ptr(), 0, &attr));
            }
        }
    }
}

/// Moves a detached tree (from `open_tree`) onto `path`.
///
/// # Safety
/// Child-only; `path` is NUL-terminated.
unsafe fn attach(tree: RawFd, path: &CStr) -> libc::c_long {
    // SAFETY: move_mount(2) with a valid fd and NUL-terminated strings.
    unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree,
            c"".as_ptr(),
            libc::AT_FDCWD,
            path.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    }
}

/// Brings `lo` up in the new network namespace (it starts down).
///
/// # Safety
/// Child-only.
unsafe fn loopback_up(err: RawFd) {
    // SAFETY: socket/ioctl/close on a stack-allocated, correctly sized ifreq.
    unsafe {
        let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if sock < 0 {
            fail(err, Stage::Loopback)
        }
        let mut req = IfreqFlags {
            name: [0; 16],
            flags: 0,
            _pad: [0; 22],
        };
        req.name[..2].copy_from_slice(b"lo");
        if libc::ioctl(sock, SIOCGIFFLAGS, &mut req as *mut IfreqFlags) < 0 {
            fail(err, Stage::Loopback)
        }
        req.flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock, SIOCSIFFLAGS, &mut req as *mut IfreqFlags) < 0 {
            fail(err, Stage::Loopback)
        }
        libc::close(sock);
    }
}
