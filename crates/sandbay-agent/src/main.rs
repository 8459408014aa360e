//! `sandbay-agent`: the in-sandbox process manager.
//!
//! Runs as the container's main process, as root holding only `SETUID`,
//! `SETGID`, `KILL` (and `CHOWN` for the workspace root at start), and
//! non-dumpable, so nothing running as the sandbox user can open its
//! `/proc` entries, ptrace it or signal it. Each command is forked into
//! its own session, gets fresh pipes for stdin/stdout/stderr, closes
//! every other descriptor, drops to the sandbox uid/gid (every capability
//! goes with it) and execs `sh -c`. Requests come as frames on stdin,
//! events go as frames on stdout (see the library part).
//!
//! When a command ends (exit, time limit, cancel), every process of the
//! sandbox uid outside the sessions of the commands still running is
//! stopped and killed, round after round until none is left: `setsid`,
//! double-fork and `nohup` escapees die with their command without
//! needing a cgroup.
//!
//! File operations on `/workspace` ([`sandbay_agent::file`]) are served
//! by the agent itself on threads acting as the sandbox user (`serve`).
//!
//! Usage: `sandbay-agent --uid UID --gid GID [--nproc N] [--chown DIR]`;
//! `sandbay-agent --clear UID GID DIR...` is the helper that empties
//! directories as the sandbox user (started by the agent itself).

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::io::Write;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sandbay_agent::{CHUNK, Decoder, End, Event, Message, Request, RunSpec, VERSION};

mod serve;

/// The identity commands run as.
#[derive(Debug, Clone, Copy)]
struct Ident {
    uid: u32,
    gid: u32,
    nproc: Option<u64>,
}

static IDENT: Mutex<Option<Ident>> = Mutex::new(None);

fn ident() -> Ident {
    IDENT
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .expect("set at start")
}

/// One running command as the rest of the agent sees it.
struct Running {
    /// The leader's pid (also its session and group id); 0 until forked.
    pid: i32,
    /// Set by cancel and kill-all: the end is reported as cancelled.
    cancelled: Arc<AtomicBool>,
    /// Where stdin frames go.
    stdin: Option<mpsc::Sender<Option<Vec<u8>>>>,
}

#[derive(Default)]
struct State {
    commands: HashMap<u32, Running>,
    /// Children whose exit status someone waits for, and a pipe to poke
    /// when it comes (-1: none).
    waiters: HashMap<i32, (mpsc::Sender<i32>, RawFd)>,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);
static FORKED: Condvar = Condvar::new();
static OUT: Mutex<()> = Mutex::new(());

fn with_state<T>(f: impl FnOnce(&mut State) -> T) -> T {
    let mut g = STATE.lock().unwrap_or_else(PoisonError::into_inner);
    f(g.get_or_insert_with(State::default))
}

/// Writes one event to the host. A broken channel ends the agent: with
/// nobody listening, nothing may keep running.
fn send(ev: &Event) {
    let bytes = ev.encode();
    let _g = OUT.lock().unwrap_or_else(PoisonError::into_inner);
    let mut off = 0;
    while off < bytes.len() {
        // SAFETY: writing initialised bytes to fd 1.
        let n = unsafe { libc::write(1, bytes[off..].as_ptr().cast(), bytes.len() - off) };
        if n < 0 {
            if errno() == libc::EINTR {
                continue;
            }
            host_gone();
        }
        off += n as usize;
    }
}

fn host_gone() -> ! {
    let id = ident();
    sweep(id.uid, &[]);
    std::process::exit(0);
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn note(id: u32, text: impl Into<String>) {
    send(&Event::Note {
        id,
        text: text.into(),
    });
}

fn main() {
    // compiled now, before any fork: children only install it
    let _ = sandbay_exec::seccomp::Filter::get();
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--clear") {
        std::process::exit(clear_main(&args[2..]));
    }
    let mut uid = None;
    let mut gid = None;
    let mut nproc = None;
    let mut chown = None;
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let v = it.next();
        match (a.as_str(), v) {
            ("--uid", Some(v)) => uid = v.parse::<u32>().ok(),
            ("--gid", Some(v)) => gid = v.parse::<u32>().ok(),
            ("--nproc", Some(v)) => nproc = v.parse::<u64>().ok(),
            ("--chown", Some(v)) => chown = Some(v.clone()),
            _ => fail(&format!("unknown argument {a:?}")),
        }
    }
    let (Some(uid), Some(gid)) = (uid, gid) else {
        fail("--uid and --gid are required");
    };
    if uid == 0 {
        let _ = writeln!(
            std::io::stderr(),
            "sandbay-agent: commands run as root: they can reach the agent"
        );
    }
    // SAFETY: plain syscalls on this process.
    unsafe {
        if libc::geteuid() != 0 {
            fail("the agent must start as root to run commands as another user");
        }
        // no /proc/<agent>/{fd,mem,environ}, no ptrace, no core dump
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        // escapees reparent to the agent (when it is not PID 1 itself)
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        for fd in 0..3 {
            libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        }
    }
    *IDENT.lock().unwrap_or_else(PoisonError::into_inner) = Some(Ident { uid, gid, nproc });
    if let Some(dir) = chown
        && let Ok(c) = CString::new(dir)
    {
        // SAFETY: a valid C string; lchown does not follow a link.
        unsafe { libc::lchown(c.as_ptr(), uid, gid) };
    }
    std::thread::spawn(reaper);
    let mut decoder = Decoder::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        // SAFETY: reading into an owned buffer.
        let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            if errno() == libc::EINTR {
                continue;
            }
            host_gone();
        }
        if n == 0 {
            host_gone();
        }
        decoder.push(&buf[..n as usize]);
        loop {
            match decoder.next_message::<Request>() {
                Ok(Some(r)) => handle(r),
                Ok(None) => break,
                Err(e) => {
                    note(0, format!("protocol error: {e}; the agent stops"));
                    host_gone();
                }
            }
        }
    }
}

fn fail(message: &str) -> ! {
    let _ = writeln!(std::io::stderr(), "sandbay-agent: {message}");
    std::process::exit(2);
}

fn handle(request: Request) {
    match request {
        Request::Ping => send(&Event::Hello {
            version: VERSION,
            pid: std::process::id(),
        }),
        Request::Run { id, spec } => {
            let cancelled = Arc::new(AtomicBool::new(false));
            let (stdin_tx, stdin_rx) = if spec.stdin {
                let (tx, rx) = mpsc::channel();
                (Some(tx), Some(rx))
            } else {
                (None, None)
            };
            let dup = with_state(|s| {
                if s.commands.contains_key(&id) {
                    return true;
                }
                s.commands.insert(
                    id,
                    Running {
                        pid: 0,
                        cancelled: cancelled.clone(),
                        stdin: stdin_tx,
                    },
                );
                false
            });
            if dup {
                note(id, "a command with this id is running; request ignored");
                return;
            }
            let spawned = std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || command(id, spec, stdin_rx, cancelled));
            if spawned.is_err() {
                with_state(|s| s.commands.remove(&id));
                send(&Event::Exit {
                    id,
                    end: End::NoFork,
                    truncated: false,
                });
            }
        }
        Request::Stdin { id, data } => with_state(|s| {
            if let Some(tx) = s.commands.get(&id).and_then(|c| c.stdin.as_ref()) {
                let _ = tx.send(Some(data));
            }
        }),
        Request::StdinEnd { id } => with_state(|s| {
            if let Some(c) = s.commands.get_mut(&id)
                && let Some(tx) = c.stdin.take()
            {
                let _ = tx.send(None);
            }
        }),
        Request::Signal { id, signal } => {
            if (1..=64).contains(&signal) {
                with_state(|s| {
                    if let Some(c) = s.commands.get(&id).filter(|c| c.pid > 0) {
                        // SAFETY: signalling the command's own group.
                        unsafe { libc::kill(-c.pid, signal) };
                    }
                });
            }
        }
        Request::Cancel { id } => with_state(|s| {
            if let Some(c) = s.commands.get(&id) {
                c.cancelled.store(true, Ordering::Release);
                if c.pid > 0 {
                    // SAFETY: killing the command's own group.
                    unsafe { libc::kill(-c.pid, libc::SIGKILL) };
                }
            }
        }),
        Request::KillAll { id } => {
            kill_all();
            send(&Event::Done { id, error: None });
        }
        Request::File { id, body, last } => {
            let who = ident();
            serve::piece(id, body, last, who.uid, who.gid);
        }
        Request::Clear { id, dirs } => {
            let _ = std::thread::Builder::new().spawn(move || {
                kill_all();
                let error = clear(&dirs).err();
                send(&Event::Done { id, error });
            });
        }
    }
}

/// Kills every process of the sandbox user, running commands included
/// (they end as cancelled).
fn kill_all() {
    let uid = ident().uid;
    with_state(|s| {
        for c in s.commands.values() {
            c.cancelled.store(true, Ordering::Release);
        }
    });
    sweep(uid, &[]);
}

/// Collects exit statuses: of commands and helpers someone waits for, and
/// of orphans the agent adopted as a subreaper (dropped).
fn reaper() {
    loop {
        let mut status = 0;
        // SAFETY: waitpid with a valid out pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
        if pid > 0 {
            with_state(|s| {
                if let Some((tx, wake)) = s.waiters.remove(&pid) {
                    if wake >= 0 {
                        // SAFETY: one byte to the waiter's pipe (it closes
                        // the pipe only after it has the status).
                        unsafe { libc::write(wake, [1u8].as_ptr().cast(), 1) };
                    }
                    let _ = tx.send(status);
                }
            });
            continue;
        }
        if errno() == libc::ECHILD {
            let g = STATE.lock().unwrap_or_else(PoisonError::into_inner);
            let _ = FORKED.wait_timeout(g, Duration::from_millis(100));
        }
    }
}

/// Reads `/proc/<pid>/stat` and `/proc/<pid>/status`: the session id, the
/// state letter, and whether any uid of the process is `uid`.
fn proc_info(pid: i32, uid: u32) -> Option<(i32, u8, bool)> {
    let stat = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    let close = stat.iter().rposition(|&b| b == b')')?;
    let fields: Vec<&[u8]> = stat[close + 2..].split(|&b| b == b' ').collect();
    // state ppid pgrp session
    let state = *fields.first()?.first()?;
    let sid: i32 = std::str::from_utf8(fields.get(3)?).ok()?.parse().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    let mine = line
        .split_whitespace()
        .skip(1)
        .any(|u| u.parse::<u32>() == Ok(uid));
    Some((sid, state, mine))
}

/// Stops then kills every live process of `uid` whose session is not in
/// `spare`, round after round until none is left.
fn sweep(uid: u32, spare: &[i32]) {
    for round in 0..500 {
        let mut victims = Vec::new();
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for e in dir.flatten() {
                let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
                    continue;
                };
                if let Some((sid, state, true)) = proc_info(pid, uid)
                    && state != b'Z'
                    && state != b'X'
                    && !spare.contains(&sid)
                {
                    victims.push(pid);
                }
            }
        }
        if victims.is_empty() {
            return;
        }
        // SAFETY: signals to processes of the sandbox user.
        unsafe {
            for &v in &victims {
                libc::kill(v, libc::SIGSTOP);
            }
            for &v in &victims {
                libc::kill(v, libc::SIGKILL);
            }
        }
        if round > 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Kills what an ended command left: its own group, then every process of
/// the sandbox user outside the sessions of the commands still running.
fn sweep_after(id: u32, pid: i32) {
    let uid = ident().uid;
    // the state lock is held for the whole sweep: no command is started
    // (and so none can be mistaken for an escapee) meanwhile
    let mut g = STATE.lock().unwrap_or_else(PoisonError::into_inner);
    let s = g.get_or_insert_with(State::default);
    s.commands.remove(&id);
    if pid > 0 {
        // SAFETY: the command's own group.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
    }
    let spare: Vec<i32> = s
        .commands
        .values()
        .map(|c| c.pid)
        .filter(|&p| p > 0)
        .collect();
    sweep(uid, &spare);
}

/// Everything the child needs, made before `fork` (the child allocates
/// nothing).
struct Plan {
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
    workdir: CString,
    stdin: RawFd,
    stdout: RawFd,
    stderr: RawFd,
    report: RawFd,
    ident: Ident,
}

fn pipe() -> Option<(RawFd, RawFd)> {
    let mut fds = [0; 2];
    // SAFETY: a valid array of two.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return None;
    }
    Some((fds[0], fds[1]))
}

fn close(fd: RawFd) {
    // SAFETY: closing a descriptor this code owns.
    unsafe { libc::close(fd) };
}

/// Child side after `fork`: only async-signal-safe calls.
///
/// # Safety
/// Call only in the child of `fork`.
unsafe fn child(p: &Plan) -> ! {
    unsafe {
        let report = |tag: u8| -> ! {
            let e = *libc::__errno_location();
            let mut msg = [tag, 0, 0, 0, 0];
            msg[1..].copy_from_slice(&e.to_be_bytes());
            libc::write(3, msg.as_ptr().cast(), msg.len());
            libc::_exit(127);
        };
        libc::setsid();
        if libc::dup2(p.stdin, 0) < 0 || libc::dup2(p.stdout, 1) < 0 || libc::dup2(p.stderr, 2) < 0
        {
            libc::_exit(127);
        }
        if p.report != 3 && libc::dup2(p.report, 3) < 0 {
            libc::_exit(127);
        }
        libc::fcntl(3, libc::F_SETFD, libc::FD_CLOEXEC);
        // every other descriptor goes: the channel to the host above all
        if libc::syscall(libc::SYS_close_range, 4u32, u32::MAX, 0u32) != 0 {
            for fd in 4..65536 {
                libc::close(fd);
            }
        }
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        if let Some(n) = p.ident.nproc {
            let lim = libc::rlimit {
                rlim_cur: n,
                rlim_max: n,
            };
            libc::setrlimit(libc::RLIMIT_NPROC, &lim);
        }
        if libc::setgroups(0, std::ptr::null()) != 0
            || libc::setgid(p.ident.gid) != 0
            || libc::setuid(p.ident.uid) != 0
        {
            report(b'U');
        }
        if p.ident.uid != 0 && (libc::getuid() == 0 || libc::geteuid() == 0) {
            libc::_exit(127);
        }
        if libc::chdir(p.workdir.as_ptr()) != 0 {
            report(b'D');
        }
        // the filter of `sandbay_exec::seccomp`, compiled before the fork
        if let Some(filter) = sandbay_exec::seccomp::Filter::compiled()
            && (libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || filter.install_raw() != 0)
        {
            report(b'S');
        }
        libc::execve(c"/bin/sh".as_ptr(), p.argv.as_ptr(), p.envp.as_ptr());
        report(b'E');
    }
}

/// Forks a child that runs `plan`, registered for its exit status under
/// the state lock. Returns the pid and where its status comes.
fn spawn(id: Option<u32>, plan: &Plan, wake: RawFd) -> Result<(i32, mpsc::Receiver<i32>), i32> {
    let (tx, rx) = mpsc::channel();
    let mut g = STATE.lock().unwrap_or_else(PoisonError::into_inner);
    let s = g.get_or_insert_with(State::default);
    // SAFETY: the child only runs async-signal-safe calls (`child`).
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: in the child.
        unsafe { child(plan) };
    }
    if pid < 0 {
        return Err(errno());
    }
    s.waiters.insert(pid, (tx, wake));
    if let Some(id) = id
        && let Some(c) = s.commands.get_mut(&id)
    {
        c.pid = pid;
    }
    FORKED.notify_all();
    Ok((pid, rx))
}

fn finish(id: u32, end: End, truncated: bool) {
    send(&Event::Exit { id, end, truncated });
}

/// Reads what a child wrote on its report pipe: nothing when it reached
/// `exec`.
fn read_report(fd: RawFd) -> Option<(u8, i32)> {
    let mut b = [0u8; 5];
    let mut got = 0;
    while got < b.len() {
        // SAFETY: reading into a local buffer.
        let n = unsafe { libc::read(fd, b[got..].as_mut_ptr().cast(), b.len() - got) };
        if n < 0 && errno() == libc::EINTR {
            continue;
        }
        if n <= 0 {
            break;
        }
        got += n as usize;
    }
    close(fd);
    (got == 5).then(|| (b[0], i32::from_be_bytes([b[1], b[2], b[3], b[4]])))
}

fn cstrings(list: &[Vec<u8>]) -> Option<Vec<CString>> {
    list.iter().map(|e| CString::new(e.clone()).ok()).collect()
}

/// Runs one command from start to its exit event.
fn command(
    id: u32,
    spec: RunSpec,
    stdin: Option<mpsc::Receiver<Option<Vec<u8>>>>,
    cancelled: Arc<AtomicBool>,
) {
    let fail = |end: End| {
        with_state(|s| s.commands.remove(&id));
        finish(id, end, false);
    };
    let Some(env) = cstrings(&spec.env) else {
        return fail(End::Failed(libc::EINVAL));
    };
    let (Ok(script), Ok(workdir)) = (CString::new(spec.command), CString::new(spec.workdir)) else {
        return fail(End::Failed(libc::EINVAL));
    };
    let argv0 = c"sh";
    let dash_c = c"-c";
    let argv = vec![
        argv0.as_ptr(),
        dash_c.as_ptr(),
        script.as_ptr(),
        std::ptr::null(),
    ];
    let mut envp: Vec<_> = env.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    let (Some((out_r, out_w)), Some((err_r, err_w)), Some((rep_r, rep_w)), Some((wake_r, wake_w))) =
        (pipe(), pipe(), pipe(), pipe())
    else {
        return fail(End::Failed(libc::EMFILE));
    };
    let (in_r, in_w) = if stdin.is_some() {
        match pipe() {
            Some(p) => (p.0, Some(p.1)),
            None => return fail(End::Failed(libc::EMFILE)),
        }
    } else {
        // SAFETY: a constant path.
        let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        (fd, None)
    };
    // the command's own pipes belong to its user: `/dev/stdout` and
    // `/dev/stderr` (a reopen through /proc) work as on any system
    for fd in [out_w, err_w].into_iter().chain(in_w.map(|_| in_r)) {
        // SAFETY: fchown of a pipe this code made.
        unsafe { libc::fchown(fd, ident().uid, ident().gid) };
    }
    let plan = Plan {
        argv,
        envp,
        workdir,
        stdin: in_r,
        stdout: out_w,
        stderr: err_w,
        report: rep_w,
        ident: ident(),
    };
    let spawned = spawn(Some(id), &plan, wake_w);
    for fd in [in_r, out_w, err_w, rep_w] {
        close(fd);
    }
    let (pid, status_rx) = match spawned {
        Ok(p) => p,
        Err(e) => {
            for fd in [out_r, err_r, rep_r, wake_r, wake_w]
                .into_iter()
                .chain(in_w)
            {
                close(fd);
            }
            return fail(if e == libc::EAGAIN {
                End::NoFork
            } else {
                End::Failed(e)
            });
        }
    };
    if let Some((tag, e)) = read_report(rep_r) {
        let _ = status_rx.recv();
        for fd in [out_r, err_r, wake_r, wake_w].into_iter().chain(in_w) {
            close(fd);
        }
        sweep_after(id, pid);
        let end = match (tag, e) {
            (b'D', _) => End::NoDir,
            (_, libc::EAGAIN) => End::NoFork,
            (_, e) => End::Failed(e),
        };
        return finish(id, end, false);
    }
    if let (Some(fd), Some(rx)) = (in_w, stdin) {
        let _ = std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(move || feed(fd, rx));
    }
    let deadline =
        (spec.timeout_ms > 0).then(|| Instant::now() + Duration::from_millis(spec.timeout_ms));
    let mut io = Io {
        id,
        wake: wake_r,
        fds: [out_r, err_r],
        open: [true, true],
        sent: [0, 0],
        limit: spec.output_limit,
        truncated: false,
    };
    let mut status = None;
    let mut timed_out = false;
    // until the leader has exited and its output is drained
    loop {
        if status.is_none()
            && let Ok(s) = status_rx.try_recv()
        {
            status = Some(s);
            io.wake = -1; // poll skips it from now on
        }
        if !io.any_open() && status.is_some() {
            break;
        }
        let stop =
            cancelled.load(Ordering::Acquire) || deadline.is_some_and(|d| Instant::now() >= d);
        if stop || (status.is_some() && io.any_open()) {
            // the leader is gone (or must go): kill the tree, then take
            // what is left in the pipes
            if !cancelled.load(Ordering::Acquire) && status.is_none() {
                timed_out = true;
            }
            sweep_after(id, pid);
            io.drain(Duration::from_secs(2));
            if status.is_none() {
                status = status_rx.recv_timeout(Duration::from_secs(10)).ok();
            }
            break;
        }
        let slice = if !io.any_open() {
            // output closed, leader running: wait for it (or the limit)
            let wait = deadline.map_or(Duration::from_millis(50), |d| {
                d.saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(50))
            });
            if let Ok(s) = status_rx.recv_timeout(wait) {
                status = Some(s);
            }
            continue;
        } else {
            deadline.map_or(50, |d| {
                d.saturating_duration_since(Instant::now())
                    .as_millis()
                    .min(50) as i32
            })
        };
        io.poll(slice);
    }
    io.close_all();
    // no status may poke the pipe once it is closed (its number could be
    // reused)
    with_state(|s| s.waiters.remove(&pid));
    close(wake_r);
    close(wake_w);
    sweep_after(id, pid);
    let truncated = io.truncated;
    let end = if cancelled.load(Ordering::Acquire) {
        End::Cancelled
    } else if timed_out {
        End::TimedOut
    } else {
        match status {
            Some(s) if libc::WIFEXITED(s) => End::Code(libc::WEXITSTATUS(s)),
            Some(s) if libc::WIFSIGNALED(s) => End::Signal(libc::WTERMSIG(s)),
            _ => End::Failed(libc::ECHILD),
        }
    };
    finish(id, end, truncated);
}

/// Writes stdin frames to the command until the end or a closed pipe.
fn feed(fd: RawFd, rx: mpsc::Receiver<Option<Vec<u8>>>) {
    let mut broken = false;
    while let Ok(Some(data)) = rx.recv() {
        let mut off = 0;
        while !broken && off < data.len() {
            // SAFETY: writing owned bytes to the command's stdin pipe.
            let n = unsafe { libc::write(fd, data[off..].as_ptr().cast(), data.len() - off) };
            if n < 0 && errno() == libc::EINTR {
                continue;
            }
            if n <= 0 {
                broken = true; // the command closed stdin: drop the rest
                break;
            }
            off += n as usize;
        }
    }
    close(fd);
}

/// The output side of one command.
struct Io {
    id: u32,
    /// Readable when the leader's status has come.
    wake: RawFd,
    fds: [RawFd; 2],
    open: [bool; 2],
    sent: [u64; 2],
    limit: u64,
    truncated: bool,
}

impl Io {
    fn any_open(&self) -> bool {
        self.open[0] || self.open[1]
    }

    /// Waits up to `ms` for output and forwards what came.
    fn poll(&mut self, ms: i32) {
        let mut pfd: Vec<libc::pollfd> = (0..2)
            .filter(|&i| self.open[i])
            .map(|i| self.fds[i])
            .chain([self.wake])
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: a valid array of pollfd.
        let n = unsafe { libc::poll(pfd.as_mut_ptr(), pfd.len() as libc::nfds_t, ms.max(0)) };
        if n <= 0 {
            return;
        }
        for p in &mut pfd {
            if p.revents != 0 && p.fd != self.wake {
                let i = if p.fd == self.fds[0] { 0 } else { 1 };
                self.read_one(i);
            }
        }
    }

    /// Reads one chunk of stream `i`; closes it at end of file.
    fn read_one(&mut self, i: usize) {
        let mut buf = vec![0u8; CHUNK];
        // SAFETY: reading into an owned buffer.
        let n = unsafe { libc::read(self.fds[i], buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 && errno() == libc::EINTR {
            return;
        }
        if n <= 0 {
            close(self.fds[i]);
            self.open[i] = false;
            return;
        }
        buf.truncate(n as usize);
        let room = self.limit.saturating_sub(self.sent[i]) as usize;
        if buf.len() > room {
            self.truncated = true;
            buf.truncate(room);
        }
        if buf.is_empty() {
            return;
        }
        self.sent[i] += buf.len() as u64;
        let id = self.id;
        send(&if i == 0 {
            Event::Stdout { id, data: buf }
        } else {
            Event::Stderr { id, data: buf }
        });
    }

    /// Takes what is left after the tree was killed, for at most `max`.
    fn drain(&mut self, max: Duration) {
        let until = Instant::now() + max;
        while self.any_open() && Instant::now() < until {
            self.poll(20);
        }
    }

    fn close_all(&mut self) {
        for i in 0..2 {
            if self.open[i] {
                close(self.fds[i]);
                self.open[i] = false;
            }
        }
    }
}

/// Empties `dirs` as the sandbox user, in a helper process (the agent
/// re-executed with `--clear`), and reports what it says.
fn clear(dirs: &[Vec<u8>]) -> Result<(), String> {
    let id = ident();
    let exe = c"/proc/self/exe";
    let mut args: Vec<CString> = vec![
        c"sandbay-agent".into(),
        c"--clear".into(),
        CString::new(id.uid.to_string()).map_err(|e| e.to_string())?,
        CString::new(id.gid.to_string()).map_err(|e| e.to_string())?,
    ];
    for d in dirs {
        args.push(CString::new(d.clone()).map_err(|_| "a directory name has a NUL byte")?);
    }
    let mut argv: Vec<_> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let (err_r, err_w) = pipe().ok_or("no pipe")?;
    // SAFETY: a constant path.
    let null = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    let envp = [std::ptr::null()];
    let (tx, rx) = mpsc::channel();
    let pid = {
        let mut g = STATE.lock().unwrap_or_else(PoisonError::into_inner);
        let s = g.get_or_insert_with(State::default);
        // SAFETY: the child runs only async-signal-safe calls.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: in the child; the helper drops to the user itself.
            unsafe {
                libc::dup2(null, 0);
                libc::dup2(null, 1);
                libc::dup2(err_w, 2);
                libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
                libc::signal(libc::SIGPIPE, libc::SIG_DFL);
                libc::execve(exe.as_ptr(), argv.as_ptr(), envp.as_ptr());
                libc::_exit(127);
            }
        }
        if pid > 0 {
            s.waiters.insert(pid, (tx, -1));
            FORKED.notify_all();
        }
        pid
    };
    for fd in [err_w, null] {
        close(fd);
    }
    if pid < 0 {
        close(err_r);
        return Err(format!("cannot start the clear helper (errno {})", errno()));
    }
    let mut msg = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: reading into a local buffer.
        let n = unsafe { libc::read(err_r, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 && errno() == libc::EINTR {
            continue;
        }
        if n <= 0 || msg.len() > 64 * 1024 {
            break;
        }
        msg.extend_from_slice(&buf[..n as usize]);
    }
    close(err_r);
    let status = rx.recv().unwrap_or(-1);
    if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
        Ok(())
    } else {
        let text = String::from_utf8_lossy(&msg).trim().to_string();
        Err(if text.is_empty() {
            format!("the clear helper failed (status {status})")
        } else {
            text
        })
    }
}

/// `--clear UID GID DIR...`: drops to the user, empties each directory
/// through descriptors (`openat`/`unlinkat`, no path walks, any name),
/// and checks each is empty.
fn clear_main(args: &[String]) -> i32 {
    let (Some(uid), Some(gid)) = (
        args.first().and_then(|a| a.parse::<u32>().ok()),
        args.get(1).and_then(|a| a.parse::<u32>().ok()),
    ) else {
        fail("--clear UID GID DIR...");
    };
    // SAFETY: plain syscalls on this single-threaded helper.
    unsafe {
        if libc::setgroups(0, std::ptr::null()) != 0
            || libc::setgid(gid) != 0
            || libc::setuid(uid) != 0
            || (uid != 0 && libc::geteuid() == 0)
        {
            fail("cannot drop to the sandbox user");
        }
    }
    let mut code = 0;
    for dir in &args[2..] {
        let Ok(c) = CString::new(dir.as_str()) else {
            continue;
        };
        // SAFETY: a valid C string.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            if errno() == libc::ENOENT {
                continue;
            }
            eprintln!("cannot open {dir}: {}", std::io::Error::last_os_error());
            code = 1;
            continue;
        }
        if let Err(e) = empty_dir(fd, 0) {
            eprintln!("cannot empty {dir}: {e}");
            code = 1;
        }
        match count_entries(fd) {
            Ok(0) => {}
            Ok(n) => {
                eprintln!("{dir} still has {n} entries");
                code = 1;
            }
            Err(e) => {
                eprintln!("cannot list {dir}: {e}");
                code = 1;
            }
        }
        close(fd);
    }
    code
}

/// The names in a directory, `.` and `..` left out, read through a
/// duplicate of `fd` (any bytes, no decoding).
fn names(fd: RawFd) -> std::io::Result<Vec<CString>> {
    // SAFETY: dup of a valid fd; fdopendir takes ownership of the dup.
    unsafe {
        let d = libc::dup(fd);
        if d < 0 {
            return Err(std::io::Error::last_os_error());
        }
        libc::lseek(d, 0, libc::SEEK_SET);
        let dir = libc::fdopendir(d);
        if dir.is_null() {
            close(d);
            return Err(std::io::Error::last_os_error());
        }
        let mut out = Vec::new();
        loop {
            let ent = libc::readdir(dir);
            if ent.is_null() {
                break;
            }
            let name = CStr::from_ptr((*ent).d_name.as_ptr());
            let b = name.to_bytes();
            if b != b"." && b != b".." {
                out.push(name.to_owned());
            }
        }
        libc::closedir(dir);
        Ok(out)
    }
}

fn count_entries(fd: RawFd) -> std::io::Result<usize> {
    names(fd).map(|n| n.len())
}

/// Removes every entry under `fd`, depth first.
fn empty_dir(fd: RawFd, depth: usize) -> std::io::Result<()> {
    if depth > 4096 {
        return Err(std::io::Error::other("directories nested too deep"));
    }
    let mut first_error = None;
    for name in names(fd)? {
        // SAFETY: *at calls relative to a directory descriptor.
        unsafe {
            if libc::unlinkat(fd, name.as_ptr(), 0) == 0 {
                continue;
            }
            let e = errno();
            if e != libc::EISDIR && e != libc::EPERM && e != libc::EACCES {
                first_error.get_or_insert(std::io::Error::from_raw_os_error(e));
                continue;
            }
            let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
            let mut sub = libc::openat(fd, name.as_ptr(), flags);
            if sub < 0 && errno() == libc::EACCES {
                // a directory the user closed to itself: open it up again
                libc::fchmodat(fd, name.as_ptr(), 0o700, 0);
                sub = libc::openat(fd, name.as_ptr(), flags);
            }
            if sub < 0 {
                first_error.get_or_insert(std::io::Error::last_os_error());
                continue;
            }
            libc::fchmod(sub, 0o700);
            if let Err(e) = empty_dir(sub, depth + 1) {
                first_error.get_or_insert(e);
            }
            close(sub);
            if libc::unlinkat(fd, name.as_ptr(), libc::AT_REMOVEDIR) != 0 {
                first_error.get_or_insert(std::io::Error::last_os_error());
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
