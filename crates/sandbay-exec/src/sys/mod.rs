//! Every `unsafe` operation of the crate lives in this module: `clone3` with
//! namespace flags, the child side between `clone3` and `execve` (in
//! [`child`]), the new mount API and `pidfd_send_signal`. The rest of the
//! crate calls the safe functions exported here.
//!
//! Why `clone3` and not `fork` + `unshare` in a `pre_exec` hook: `clone3`
//! with `CLONE_NEWPID` makes the child itself PID 1 of the new PID namespace,
//! so no intermediate process (a live copy of the host process's memory) is
//! needed, and `CLONE_PIDFD` hands back a pidfd that names the process
//! race-free for waiting and killing. `exit_signal` is 0, so no `SIGCHLD` is
//! raised and nobody else's `waitpid(-1)` can steal the exit status; we wait
//! with `__WALL`.

mod child;

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use libc::{c_char, c_int, c_long, c_uint};
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sched::{CloneFlags, setns, unshare};

pub(crate) use child::{
    MAX_TREES, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY,
};

/// `struct mount_attr` of `mount_setattr(2)`.
#[repr(C)]
pub(crate) struct MountAttr {
    pub(crate) attr_set: u64,
    pub(crate) attr_clr: u64,
    pub(crate) propagation: u64,
    pub(crate) userns_fd: u64,
}

/// `struct clone_args` of `clone3(2)` (the first, 64-byte version).
#[repr(C, align(8))]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
}

/// `open_tree(2)`.
///
/// # Safety
/// `path` must be a valid NUL-terminated string.
unsafe fn open_tree_raw(dfd: c_int, path: *const c_char, flags: c_int) -> c_long {
    // SAFETY: forwarded to the kernel; the caller guarantees `path`.
    unsafe { libc::syscall(libc::SYS_open_tree, dfd, path, flags as c_uint) }
}

/// `mount_setattr(2)`.
///
/// # Safety
/// `path` must be a valid NUL-terminated string.
unsafe fn mount_setattr_raw(
    dfd: c_int,
    path: *const c_char,
    flags: c_int,
    attr: &MountAttr,
) -> c_long {
    // SAFETY: forwarded to the kernel; `attr` is a valid `struct mount_attr`.
    unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            dfd,
            path,
            flags as c_uint,
            attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    }
}

/// The step at which the child failed, sent to the parent as a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Stage {
    Stdio = 1,
    Sync,
    Signals,
    Session,
    MountPrivate,
    OpenTree,
    SetAttr,
    Groups,
    Gid,
    Uid,
    ParentDeath,
    RootTmpfs,
    RootOp,
    PivotRoot,
    UnmountOld,
    RootReadOnly,
    Hostname,
    Loopback,
    Workdir,
    Rlimit,
    NoNewPrivs,
    Seccomp,
    CloseFds,
    Exec,
}

impl Stage {
    const ALL: [Stage; 24] = [
        Stage::Stdio,
        Stage::Sync,
        Stage::Signals,
        Stage::Session,
        Stage::MountPrivate,
        Stage::OpenTree,
        Stage::SetAttr,
        Stage::Groups,
        Stage::Gid,
        Stage::Uid,
        Stage::ParentDeath,
        Stage::RootTmpfs,
        Stage::RootOp,
        Stage::PivotRoot,
        Stage::UnmountOld,
        Stage::RootReadOnly,
        Stage::Hostname,
        Stage::Loopback,
        Stage::Workdir,
        Stage::Rlimit,
        Stage::NoNewPrivs,
        Stage::Seccomp,
        Stage::CloseFds,
        Stage::Exec,
    ];

    fn from_u32(n: u32) -> Option<Stage> {
        Stage::ALL.iter().copied().find(|s| *s as u32 == n)
    }

    /// What the child was doing, in words that name no host path.
    pub(crate) fn what(self) -> &'static str {
        match self {
            Stage::Stdio => "connecting standard input and output",
            Stage::Sync => "waiting for the parent",
            Stage::Signals => "resetting signals",
            Stage::Session => "starting a new session",
            Stage::MountPrivate => "making mounts private",
            Stage::OpenTree => "cloning a directory for the jail",
            Stage::SetAttr => "setting mount flags",
            Stage::Groups => "clearing supplementary groups",
            Stage::Gid => "switching to the sandbox group",
            Stage::Uid => "switching to the sandbox user",
            Stage::ParentDeath => "binding its life to the host process",
            Stage::RootTmpfs => "mounting the jail root",
            Stage::RootOp => "building the jail root",
            Stage::PivotRoot => "entering the jail root",
            Stage::UnmountOld => "detaching the host root",
            Stage::RootReadOnly => "making the jail root read-only",
            Stage::Hostname => "setting the hostname",
            Stage::Loopback => "bringing up the loopback interface",
            Stage::Workdir => "entering the working directory",
            Stage::Rlimit => "setting resource limits",
            Stage::NoNewPrivs => "forbidding new privileges",
            Stage::Seccomp => "installing the system call filter",
            Stage::CloseFds => "closing inherited descriptors",
            Stage::Exec => "starting the shell",
        }
    }
}

/// Decodes the 8-byte failure report of a child (`stage`, `errno`).
pub(crate) fn decode_failure(bytes: &[u8]) -> Option<(Stage, i32)> {
    if bytes.len() != 8 {
        return None;
    }
    let stage = u32::from_ne_bytes(bytes[..4].try_into().ok()?);
    let errno = i32::from_ne_bytes(bytes[4..].try_into().ok()?);
    Some((Stage::from_u32(stage)?, errno))
}

/// One step of building the jail's root, relative to the new root.
#[derive(Debug)]
pub(crate) enum RootOp {
    /// `mkdir(path, mode)`.
    Mkdir { path: CString, mode: libc::mode_t },
    /// Creates an empty file (a mount point for a file bind).
    Touch { path: CString },
    /// `symlink(target, path)`.
    Symlink { target: CString, path: CString },
    /// Creates a file with these contents.
    Write { path: CString, data: Vec<u8> },
    /// `mount(source, path, fstype, flags, data)` (tmpfs, proc).
    Mount {
        source: CString,
        path: CString,
        fstype: CString,
        flags: libc::c_ulong,
        data: CString,
    },
    /// Moves bind source number `tree` onto `path`.
    Attach { tree: usize, path: CString },
    /// Moves the workspace onto `path`.
    AttachWorkspace { path: CString },
    /// Sets mount attributes on the mount at `path`.
    SetAttr { path: CString, set: u64 },
}

/// A host path cloned with `open_tree` and flagged with `mount_setattr`.
#[derive(Debug)]
pub(crate) struct TreeSource {
    /// Absolute host path.
    pub(crate) path: CString,
    /// `MOUNT_ATTR_*` flags set recursively on the clone.
    pub(crate) attr_set: u64,
}

/// How the child builds its mount namespace.
#[derive(Debug)]
pub(crate) struct NsSpec<'a> {
    /// Bind sources, referred to by index in [`RootOp::Attach`].
    pub(crate) trees: &'a [TreeSource],
    /// The workspace bind source.
    pub(crate) workspace: TreeSource,
    /// An existing host directory the new root is mounted over.
    pub(crate) base: &'a CStr,
    /// Steps that build the root.
    pub(crate) ops: &'a [RootOp],
    /// The hostname inside.
    pub(crate) hostname: &'a [u8],
    /// A network namespace to join (owned by the host's user namespace, its
    /// `lo` already up); `None` creates a new one per run.
    pub(crate) netns: Option<BorrowedFd<'a>>,
}

/// Credentials the child switches to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ids {
    /// Host uid (without namespaces); inside namespaces the child becomes
    /// [`crate::SANDBOX_UID`], which the parent maps to this uid.
    pub(crate) uid: u32,
    /// Host gid, like `uid`.
    pub(crate) gid: u32,
    /// Drop supplementary groups (needs privilege).
    pub(crate) clear_groups: bool,
}

/// One resource limit, soft = hard.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rlimit {
    pub(crate) resource: libc::__rlimit_resource_t,
    pub(crate) value: u64,
}

/// NUL-terminated arrays of C strings for `execve`.
#[derive(Debug)]
pub(crate) struct CStrings {
    _owned: Vec<CString>,
    ptrs: Vec<*const c_char>,
}

impl CStrings {
    /// Wraps the strings and builds the pointer array.
    pub(crate) fn new(owned: Vec<CString>) -> CStrings {
        let mut ptrs: Vec<*const c_char> = owned.iter().map(|s| s.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        CStrings {
            _owned: owned,
            ptrs,
        }
    }

    /// The NULL-terminated pointer array.
    pub(crate) fn ptrs(&self) -> &[*const c_char] {
        &self.ptrs
    }
}

/// Everything the child needs, borrowed from the parent for one `start`.
#[derive(Debug)]
pub(crate) struct ChildSpec<'a> {
    pub(crate) stdin: BorrowedFd<'a>,
    pub(crate) stdout: BorrowedFd<'a>,
    pub(crate) stderr: BorrowedFd<'a>,
    pub(crate) namespaces: Option<&'a NsSpec<'a>>,
    pub(crate) ids: Option<Ids>,
    pub(crate) cwd: &'a CStr,
    pub(crate) rlimits: &'a [Rlimit],
    pub(crate) program: &'a CStr,
    pub(crate) argv: &'a CStrings,
    pub(crate) envp: &'a CStrings,
    /// Stop right before `execve` with exit code 0 (capability probes).
    pub(crate) probe_only: bool,
    /// The system call filter to install before `execve`.
    pub(crate) seccomp: Option<&'a crate::seccomp::Filter>,
}

/// A child that exists and waits for the parent's go.
#[derive(Debug)]
pub(crate) struct Started {
    /// Host pid (also the process group and session id once it runs).
    pub(crate) pid: i32,
    /// pidfd naming the child.
    pub(crate) pidfd: OwnedFd,
    /// Send one byte (with `MSG_NOSIGNAL`) to let the child continue; a
    /// stream socket.
    pub(crate) go: OwnedFd,
    /// Read end of the failure pipe: EOF means `execve` succeeded.
    pub(crate) failures: OwnedFd,
}

/// A pipe whose ends are close-on-exec and numbered 3 or more, so that the
/// child's `dup2` onto 0..=2 always yields a fresh, inheritable descriptor.
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    Ok((high_fd(r)?, high_fd(w)?))
}

/// Moves a descriptor to number 3 or more (close-on-exec).
pub(crate) fn high_fd(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() >= 3 {
        return Ok(fd);
    }
    let raw = fcntl(&fd, FcntlArg::F_DUPFD_CLOEXEC(3))?;
    // SAFETY: `raw` is a fresh descriptor returned by fcntl and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// The namespaces a jail's child gets.
const NS_FLAGS: u64 = (libc::CLONE_NEWUSER
    | libc::CLONE_NEWNS
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS) as u64;

/// Creates the child; it blocks until the parent writes to [`Started::go`].
pub(crate) fn start(spec: &ChildSpec<'_>) -> io::Result<Started> {
    let stdio = [
        spec.stdin.as_raw_fd(),
        spec.stdout.as_raw_fd(),
        spec.stderr.as_raw_fd(),
    ];
    if stdio.iter().any(|fd| *fd < 3) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "stdio descriptor below 3",
        ));
    }
    if let Some(ns) = spec.namespaces
        && ns.trees.len() > MAX_TREES
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "too many bind mounts",
        ));
    }
    // A socket, not a pipe, so the parent's sends can use MSG_NOSIGNAL: a
    // child that died early must not raise SIGPIPE in the host process.
    let (sync_r, sync_w) = nix::sys::socket::socketpair(
        nix::sys::socket::AddressFamily::Unix,
        nix::sys::socket::SockType::Stream,
        None,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
    )?;
    let (sync_r, sync_w) = (high_fd(sync_r)?, high_fd(sync_w)?);
    let (err_r, err_w) = pipe()?;
    let plan = child::Plan {
        stdio,
        close_first: [sync_w.as_raw_fd(), err_r.as_raw_fd()],
        sync_read: sync_r.as_raw_fd(),
        err_write: err_w.as_raw_fd(),
        spec,
    };
    let mut pidfd: c_int = -1;
    let mut flags = libc::CLONE_PIDFD as u64;
    let mut restore_netns = None;
    if let Some(ns) = spec.namespaces {
        flags |= NS_FLAGS;
        if let Some(netns) = ns.netns {
            // The child inherits this thread's network namespace: enter the
            // jail's for the clone only, then come back.
            flags &= !(libc::CLONE_NEWNET as u64);
            let own = nix::fcntl::open(
                c"/proc/thread-self/ns/net",
                OFlag::O_RDONLY | OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )?;
            setns(netns, CloneFlags::CLONE_NEWNET)?;
            restore_netns = Some(own);
        }
    }
    let args = CloneArgs {
        flags,
        pidfd: &mut pidfd as *mut c_int as u64,
        exit_signal: 0,
        ..CloneArgs::default()
    };
    // SAFETY: clone3 without CLONE_VM behaves like fork: the child gets a
    // copy of this thread's stack and of all memory, so `plan` stays valid
    // in it. The child runs only `child_main`, which makes async-signal-safe
    // system calls and ends in execve or _exit; it never returns here.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if ret == 0 {
        // SAFETY: we are the child, right after clone3 (see above).
        unsafe { child::child_main(&plan) }
    }
    let clone_error = io::Error::last_os_error();
    if let Some(own) = restore_netns
        && setns(&own, CloneFlags::CLONE_NEWNET).is_err()
    {
        // This thread would stay in a jail's network namespace and every
        // later socket it opens would be cut off: not recoverable.
        eprintln!("sandbay-exec: cannot return to the host network namespace; aborting");
        std::process::abort();
    }
    if ret < 0 {
        return Err(clone_error);
    }
    // SAFETY: with CLONE_PIDFD the kernel stored a new, owned pidfd here.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    drop(sync_r);
    drop(err_w);
    Ok(Started {
        pid: ret as i32,
        pidfd,
        go: sync_w,
        failures: err_r,
    })
}

/// Sends `SIGKILL` through a pidfd (immune to pid reuse).
pub(crate) fn pidfd_kill(pidfd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: pidfd_send_signal with a valid pidfd, no siginfo, no flags.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0u32,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Registers a pidfd with the tokio reactor (it polls readable on exit).
pub(crate) fn async_pidfd(fd: OwnedFd) -> io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    // SAFETY: `OwnedFd` owns a valid, open descriptor, and the `AsyncFd`
    // keeps it (never replaced or closed) until `into_inner` or drop.
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
        .map_err(|e| e.into_parts().1)
}

/// A minimal `struct ifreq` for the interface flag ioctls (40 bytes on
/// 64-bit Linux).
#[repr(C)]
pub(crate) struct IfreqFlags {
    pub(crate) name: [u8; 16],
    pub(crate) flags: libc::c_short,
    pub(crate) _pad: [u8; 22],
}

/// `SIOCGIFFLAGS` from `<linux/sockios.h>`.
pub(crate) const SIOCGIFFLAGS: libc::c_ulong = 0x8913;
/// `SIOCSIFFLAGS` from `<linux/sockios.h>`.
pub(crate) const SIOCSIFFLAGS: libc::c_ulong = 0x8914;

/// A new network namespace holding only `lo` (up), as an fd that keeps it
/// alive. Made on a short-lived thread so no other thread changes namespace.
pub(crate) fn new_netns() -> io::Result<OwnedFd> {
    std::thread::Builder::new()
        .name("sandbay-exec-netns".into())
        .spawn(|| -> io::Result<OwnedFd> {
            unshare(CloneFlags::CLONE_NEWNET)?;
            let sock = nix::sys::socket::socket(
                nix::sys::socket::AddressFamily::Inet,
                nix::sys::socket::SockType::Datagram,
                nix::sys::socket::SockFlag::SOCK_CLOEXEC,
                None,
            )?;
            let mut req = IfreqFlags {
                name: [0; 16],
                flags: 0,
                _pad: [0; 22],
            };
            req.name[..2].copy_from_slice(b"lo");
            // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write a `struct
            // ifreq`, which `IfreqFlags` matches in size and layout.
            unsafe {
                if libc::ioctl(sock.as_raw_fd(), SIOCGIFFLAGS, &mut req as *mut IfreqFlags) < 0 {
                    return Err(io::Error::last_os_error());
                }
                req.flags |= libc::IFF_UP as libc::c_short;
                if libc::ioctl(sock.as_raw_fd(), SIOCSIFFLAGS, &mut req as *mut IfreqFlags) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(nix::fcntl::open(
                c"/proc/thread-self/ns/net",
                OFlag::O_RDONLY | OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )?)
        })?
        .join()
        .map_err(|_| io::Error::other("network namespace thread panicked"))?
}

/// Whether the file open at `fd` is the root of a mount, from `statx`'s
/// `STATX_ATTR_MOUNT_ROOT` (Linux 5.8+, bind mounts included); `None` when
/// the kernel does not tell.
pub(crate) fn is_mount_root(fd: BorrowedFd<'_>) -> Option<bool> {
    // SAFETY: `statx` is all zeroes-valid plain data.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: a valid descriptor, an empty C string with AT_EMPTY_PATH (the
    // descriptor itself), and a buffer we own of the size the call writes.
    let rc = unsafe {
        libc::statx(
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            0,
            &mut stx,
        )
    };
    if rc != 0 {
        return None;
    }
    let bit = libc::STATX_ATTR_MOUNT_ROOT as u64;
    (stx.stx_attributes_mask & bit != 0).then_some(stx.stx_attributes & bit != 0)
}
