//! `probe`: a tiny static helper the isolation tests run inside a sandbox
//! (busybox has no tools for these), built like the agent:
//! `cargo build --release --target x86_64-unknown-linux-gnu -p sandbay-agent --example probe`.
//!
//! * `probe ptrace PID`: tries `PTRACE_ATTACH`, `PTRACE_SEIZE` and
//!   `process_vm_readv` on PID; prints one `NAME ok|refused (errno)` line each.
//! * `probe aio`: tries `io_setup` and `io_uring_setup`; prints one
//!   `NAME ok|refused (errno)` line each.
//! * `probe inotify|mqueue|nproc [HOLD_SECS [FILE]]`: takes as many
//!   inotify instances / message queues / processes as the kernel gives,
//!   prints the count (and writes it to FILE), holds them for HOLD_SECS,
//!   then lets go.

use std::time::Duration;

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn verdict(name: &str, ok: bool) {
    if ok {
        println!("{name} ok");
    } else {
        println!("{name} refused ({})", errno());
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let what = args.get(1).map(String::as_str).unwrap_or("");
    let hold = args.get(2).and_then(|a| a.parse::<u64>().ok()).unwrap_or(0);
    let file = args.get(3);
    let count = match what {
        "ptrace" => {
            let pid: i32 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1);
            ptrace(pid);
            return;
        }
        "aio" => {
            let mut ctx: libc::c_ulong = 0;
            // SAFETY: plain syscalls with valid out-pointers.
            let r = unsafe { libc::syscall(libc::SYS_io_setup, 1 as libc::c_long, &mut ctx) };
            verdict("io_setup", r == 0);
            let mut params = [0u8; 120];
            let r = unsafe {
                libc::syscall(
                    libc::SYS_io_uring_setup,
                    1 as libc::c_long,
                    params.as_mut_ptr(),
                )
            };
            verdict("io_uring_setup", r >= 0);
            return;
        }
        "inotify" => take(|| {
            // SAFETY: a plain syscall; the fd is kept until exit.
            unsafe { libc::inotify_init1(libc::IN_CLOEXEC) >= 0 }
        }),
        "mqueue" => {
            let mut n = 0;
            take(|| {
                n += 1;
                let name = std::ffi::CString::new(format!("/probe-{}-{n}", std::process::id()))
                    .expect("no NUL");
                let mut attr: libc::mq_attr = unsafe { std::mem::zeroed() };
                attr.mq_maxmsg = 10;
                attr.mq_msgsize = 1024;
                // SAFETY: a valid name and attribute block.
                let q = unsafe {
                    libc::mq_open(
                        name.as_ptr(),
                        libc::O_CREAT | libc::O_EXCL | libc::O_RDWR,
                        0o600,
                        &attr as *const libc::mq_attr,
                    )
                };
                q >= 0
            })
        }
        "nproc" => take(|| {
            // SAFETY: the child only sleeps and exits.
            match unsafe { libc::fork() } {
                0 => unsafe {
                    libc::sleep(600);
                    libc::_exit(0)
                },
                p => p > 0,
            }
        }),
        _ => {
            eprintln!(
                "usage: probe ptrace PID | probe aio | probe inotify|mqueue|nproc [HOLD_SECS [FILE]]"
            );
            std::process::exit(2);
        }
    };
    println!("{what} {count}");
    if let Some(f) = file {
        let _ = std::fs::write(f, format!("{count}\n"));
    }
    std::thread::sleep(Duration::from_secs(hold));
    if what == "nproc" {
        // SAFETY: kill the own process group's sleepers.
        unsafe { libc::kill(0, libc::SIGKILL) };
    }
}

/// Calls `one` until it fails (at most 100,000 times); the count.
fn take(mut one: impl FnMut() -> bool) -> u64 {
    let mut n = 0;
    while n < 100_000 && one() {
        n += 1;
    }
    n
}

fn ptrace(pid: i32) {
    // SAFETY: ptrace requests on another process; refused or detached.
    unsafe {
        let r = libc::ptrace(libc::PTRACE_ATTACH, pid, 0, 0);
        verdict("attach", r == 0);
        if r == 0 {
            libc::ptrace(libc::PTRACE_DETACH, pid, 0, 0);
        }
        let r = libc::ptrace(libc::PTRACE_SEIZE, pid, 0, 0);
        verdict("seize", r == 0);
        if r == 0 {
            libc::ptrace(libc::PTRACE_DETACH, pid, 0, 0);
        }
        let mut buf = [0u8; 64];
        let local = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // any mapped address: the start of the stack region is unknown,
        // but a refusal comes before the address is looked at
        let remote = libc::iovec {
            iov_base: 0x400000 as *mut libc::c_void,
            iov_len: buf.len(),
        };
        let r = libc::process_vm_readv(pid, &local, 1, &remote, 1, 0);
        verdict("vm_readv", r >= 0 || errno() == libc::EFAULT);
    }
}
