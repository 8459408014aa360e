//! The seccomp filter every sandboxed command runs under: it refuses the
//! system calls that draw on budgets the kernel keeps for the whole host
//! rather than per uid or cgroup, so that one sandbox cannot use them up
//! for everyone.
//!
//! * `io_setup`: asynchronous I/O contexts count against `fs.aio-max-nr`,
//!   one number for the host (65,536 by default); a command that takes
//!   them all makes every other user's (and the host's) `io_setup` fail.
//! * `io_uring_setup`: the same budget for io_uring's rings, and a large
//!   kernel surface besides.
//!
//! Refused calls fail with `ENOSYS`, as on a kernel without them, which
//! programs already handle (they fall back to plain reads and writes).
//! Everything else is allowed (Docker's own profile still applies inside
//! containers; filters stack). A call made with another architecture's
//! convention (32-bit `int 0x80` on x86-64) ends the process, so the
//! filter cannot be stepped around.
//!
//! The filter is compiled once per process with `seccompiler` (the
//! rust-vmm compiler Firecracker uses) and installed in the child right
//! before `execve`, with a single async-signal-safe `prctl`.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};

/// The system calls refused, by name and number on this architecture.
pub const DENIED: &[(&str, libc::c_long)] = &[
    ("io_setup", libc::SYS_io_setup),
    ("io_uring_setup", libc::SYS_io_uring_setup),
];

static FILTER: OnceLock<Option<Filter>> = OnceLock::new();

/// A compiled filter, ready to install in a child.
#[derive(Debug)]
pub struct Filter {
    program: BpfProgram,
}

fn target() -> Option<TargetArch> {
    if cfg!(target_arch = "x86_64") {
        Some(TargetArch::x86_64)
    } else if cfg!(target_arch = "aarch64") {
        Some(TargetArch::aarch64)
    } else if cfg!(target_arch = "riscv64") {
        Some(TargetArch::riscv64)
    } else {
        None
    }
}

impl Filter {
    /// The filter of this process, compiled on first use; `None` on an
    /// architecture `seccompiler` does not know (commands then run
    /// without it, and [`Filter::get`] logs why once).
    pub fn get() -> Option<&'static Filter> {
        FILTER
            .get_or_init(|| match Filter::compile() {
                Ok(f) => Some(f),
                Err(e) => {
                    tracing::warn!(error = %e, "commands run without the seccomp filter");
                    None
                }
            })
            .as_ref()
    }

    /// The filter if [`Filter::get`] compiled it already, without
    /// compiling: for a child of `fork`, which must not allocate.
    pub fn compiled() -> Option<&'static Filter> {
        FILTER.get().and_then(Option::as_ref)
    }

    fn compile() -> Result<Filter, String> {
        let arch = target().ok_or("no seccomp target for this architecture")?;
        #[allow(clippy::useless_conversion)] // `c_long` is `i32` on 32-bit targets
        let rules: BTreeMap<i64, Vec<seccompiler::SeccompRule>> = DENIED
            .iter()
            .map(|&(_, nr)| (i64::from(nr), Vec::new()))
            .collect();
        let filter = SeccompFilter::new(
            rules,
            SeccompAction::Allow,
            SeccompAction::Errno(libc::ENOSYS as u32),
            arch,
        )
        .map_err(|e| e.to_string())?;
        let program: BpfProgram = filter
            .try_into()
            .map_err(|e: seccompiler::BackendError| e.to_string())?;
        Ok(Filter { program })
    }

    /// Installs the filter on the calling thread. `no_new_privs` must be
    /// set already (or the caller be privileged). Returns the raw result
    /// of `prctl` (`-1` and `errno` on failure).
    ///
    /// # Safety
    /// Async-signal-safe (one `prctl`, no allocation): meant for a child
    /// between `fork`/`clone` and `execve`. The filter then holds for the
    /// rest of the thread's life and every process it starts.
    pub unsafe fn install_raw(&self) -> libc::c_int {
        let prog = libc::sock_fprog {
            len: self.program.len() as libc::c_ushort,
            // same layout: `seccompiler::sock_filter` mirrors the kernel's
            filter: self.program.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: `prog` points at a valid program that outlives the call
        // (the kernel copies it).
        unsafe {
            libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER as libc::c_ulong,
                &prog as *const libc::sock_fprog as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_on_this_machine() {
        let f = Filter::get().expect("a filter for this architecture");
        assert!(f.program.len() > DENIED.len());
    }

    /// In a forked child: installs the filter and tries the refused calls
    /// and an allowed one; the child's exit code says what happened.
    #[test]
    fn refused_calls_fail_with_enosys_and_others_work() {
        let f = Filter::get().expect("a filter");
        // SAFETY: the child only makes raw system calls and exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            unsafe {
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || f.install_raw() != 0 {
                    libc::_exit(10);
                }
                let mut ctx: libc::c_ulong = 0;
                let r = libc::syscall(libc::SYS_io_setup, 8 as libc::c_long, &mut ctx as *mut _);
                if r != -1 || *libc::__errno_location() != libc::ENOSYS {
                    libc::_exit(11);
                }
                let mut params = [0u8; 120];
                let r = libc::syscall(
                    libc::SYS_io_uring_setup,
                    4 as libc::c_long,
                    params.as_mut_ptr(),
                );
                if r != -1 || *libc::__errno_location() != libc::ENOSYS {
                    libc::_exit(12);
                }
                if libc::getpid() <= 0 {
                    libc::_exit(13);
                }
                libc::_exit(0);
            }
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status), "the child died: {status:#x}");
        assert_eq!(
            libc::WEXITSTATUS(status),
            0,
            "see the exit codes in the test"
        );
    }
}
