//! The multi-user isolation section: users A and B, each with a sandbox of
//! their own on one host. What A does must not reach B or the host, and B
//! must keep working while A misbehaves.
//!
//! Each case is a public async function over two fixtures `a` and `b`
//! built with [`Fixture::with_sandbox`](crate::Fixture::with_sandbox),
//! from the same factory but as different users.
//! [`isolation_tests!`](crate::isolation_tests) turns the list into one
//! `#[test]` per case:
//!
//! ```ignore
//! sandbay_testkit::isolation_tests!(
//!     make_sandbox_fixture(),
//!     requires = sandbay_exec::Jail::host_support().check(sandbay_core::Isolation::Namespaces),
//! );
//! ```
//!
//! The factory's sandboxes must cap each command below 1000 processes and
//! below 1 GiB of memory (the fork bomb stops at 1000 processes and the
//! memory hog at 1.5 GiB if nothing else stops them, so the host is never
//! at risk even when a cap is missing). The process cases find their
//! `sleep <marker>` processes in the host's `/proc` ([`procs_with`]), so
//! the commands must run on this kernel. The fork bomb and the memory hog
//! run one at a time within a test binary.
//!
//! The optional `requires` expression (a `Result<(), impl Display>`) is
//! checked first in every test: when it fails the test prints
//! `skipped: <reason>` and returns (counted as skipped by `cargo xtask
//! test`), except under CI (`CI=true` or `1`), where it fails
//! ([`require`]).

mod host;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub use crate::skip::{in_ci, require};
pub use host::{procs_with, rss_kib, sleep_marker, unique, wait_gone, wait_until};
use sandbay_core::{ExecOutput, ExecRequest, Sandbox};

use crate::Fixture;

/// The heavy attacks (fork bomb, memory hog) run one at a time.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Time limit of the ordinary commands of these cases.
const T: Duration = Duration::from_secs(30);

/// Processes the fork bomb tries to start, at most.
pub const FORK_BOMB_MAX: usize = 1000;

fn sandbox(fx: &Fixture) -> Arc<dyn Sandbox> {
    fx.sandbox
        .clone()
        .expect("isolation cases need fixtures built with Fixture::with_sandbox")
}

async fn run(fx: &Fixture, command: &str, timeout: Duration) -> ExecOutput {
    sandbox(fx)
        .execute(ExecRequest::new(command).timeout(timeout))
        .await
        .unwrap_or_else(|e| panic!("execute {command:?} failed: {e}"))
}

/// Starts `command` in `fx` as a task (a long-running job of B).
fn spawn(
    fx: &Fixture,
    command: String,
    timeout: Duration,
) -> tokio::task::JoinHandle<sandbay_core::Result<ExecOutput>> {
    let sb = sandbox(fx);
    tokio::spawn(async move { sb.execute(ExecRequest::new(command).timeout(timeout)).await })
}

fn out(o: &ExecOutput) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `ps` in A shows neither B's running process nor the host's processes.
pub async fn ps_in_a_does_not_show_b(a: &Fixture, b: &Fixture) {
    let m = sleep_marker(3600);
    let job = spawn(b, format!("sleep {m}"), Duration::from_secs(120));
    assert!(
        wait_until(T, || procs_with(&m).len() == 1).await,
        "B's process never showed on the host"
    );
    let o = run(a, "ps -ef 2>/dev/null || ps", T).await;
    let listing = out(&o);
    job.abort();
    let _ = job.await;
    assert_eq!(o.exit_code, Some(0), "ps failed in A: {o:?}");
    assert!(listing.contains("ps"), "A's ps lists itself:\n{listing}");
    assert!(!listing.contains(&m), "A sees B's process:\n{listing}");
    let exe = std::env::current_exe().expect("the test binary");
    let exe = exe.file_name().and_then(|n| n.to_str()).unwrap_or("");
    assert!(
        exe.len() >= 4 && !listing.contains(exe),
        "A sees the host's processes (this test, {exe}):\n{listing}"
    );
    let left = wait_gone(T, &m).await;
    assert!(
        left.is_empty(),
        "B's job survived its dropped future: {left:?}"
    );
}

/// `rm -rf /tmp/*` in A leaves B's `/tmp` and the host's `/tmp` intact.
pub async fn rm_rf_tmp_in_a_spares_b_and_host(a: &Fixture, b: &Fixture) {
    let host_marker = tempfile::Builder::new()
        .prefix("sandbay-isolation-host-marker-")
        .tempfile_in(std::env::temp_dir())
        .expect("a host marker in the host's /tmp");
    let m = sleep_marker(5);
    let job = spawn(
        b,
        format!("echo b > /tmp/sandbay-b-file && sleep {m}; cat /tmp/sandbay-b-file"),
        T,
    );
    assert!(
        wait_until(T, || procs_with(&m).len() == 1).await,
        "B's job never started"
    );
    let o = run(
        a,
        "echo a > /tmp/a-file; rm -rf /tmp/* /tmp/.[!.]* 2>/dev/null; ls -A /tmp | wc -l",
        T,
    )
    .await;
    let b_still_waiting = !procs_with(&m).is_empty();
    assert_eq!(out(&o).trim(), "0", "A's /tmp is empty after its rm: {o:?}");
    assert!(
        host_marker.path().exists(),
        "A's rm -rf /tmp/* removed a file of the host's /tmp"
    );
    assert!(
        b_still_waiting,
        "A's rm did not finish within B's 5 s window; the case proves nothing"
    );
    let b_out = job.await.expect("B's task").expect("B's run");
    assert_eq!(out(&b_out), "b\n", "A's rm reached B's /tmp: {b_out:?}");
}

/// A fork bomb in A (at most [`FORK_BOMB_MAX`] processes) is stopped by
/// A's process cap, leaves nothing behind, and B keeps answering
/// meanwhile; B's latency is printed.
pub async fn fork_bomb_in_a_is_capped_while_b_answers(a: &Fixture, b: &Fixture) {
    let _heavy = HEAVY.lock().await;
    let mut before = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        assert_eq!(out(&run(b, "echo hi", T).await), "hi\n");
        before.push(t.elapsed());
    }
    before.sort();
    let m = sleep_marker(60);
    // Subshells start sleepers until a fork fails (the shell then exits);
    // the outer loop starts a new subshell at once, so forks hit the cap
    // again and again until the timeout, or until FORK_BOMB_MAX sleepers
    // were started (the bound if no cap stops it). The shell's last
    // complaint is kept in `forkerr` with builtins only (no fork needed):
    // it says why the fork failed.
    let bomb = format!(
        "n=0; echo 0 > count; : > forkerr; while [ $n -lt {FORK_BOMB_MAX} ]; do \
         ( while [ $n -lt {FORK_BOMB_MAX} ]; do sleep {m} & n=$((n+1)); echo $n > count; done ) 2>forkerr.new; \
         read -r e < forkerr.new && echo \"$e\" > forkerr; read n < count; done"
    );
    let bomb = spawn(a, bomb, Duration::from_secs(5));
    let peak = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, stop, m) = (peak.clone(), stop.clone(), m.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(procs_with(&m).len(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    assert!(
        wait_until(T, || peak.load(Ordering::Relaxed) >= 50).await,
        "the fork bomb never got going"
    );
    let start = Instant::now();
    let mut during = Vec::new();
    while !bomb.is_finished() {
        let t = Instant::now();
        let o = run(b, "echo hi", T).await;
        during.push(t.elapsed());
        assert_eq!(out(&o), "hi\n", "B failed during A's fork bomb: {o:?}");
        assert!(start.elapsed() < T, "the bomb run does not end");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let a_out = bomb.await.expect("A's task").expect("A's run");
    stop.store(true, Ordering::Relaxed);
    sampler.await.expect("sampler");
    let peak = peak.load(Ordering::Relaxed);
    let launched: usize = a.text("/count").await.trim().parse().unwrap_or(usize::MAX);
    during.sort();
    let p50 = during.get(during.len() / 2).copied().unwrap_or_default();
    let max = during.last().copied().unwrap_or_default();
    println!(
        "[{}] B's `echo hi`: before A's fork bomb p50 {:.1} ms; during it {} runs, p50 {:.1} ms, max {:.1} ms; \
         A started {launched} of {FORK_BOMB_MAX} processes, {peak} alive at the peak",
        a.backend.name(),
        ms(before[before.len() / 2]),
        during.len(),
        ms(p50),
        ms(max),
    );
    assert!(a_out.timed_out, "the bomb ran until its timeout: {a_out:?}");
    // the last complaint of a subshell that ended, and the one of the
    // subshell the timeout killed (bash retries a failed fork for seconds
    // before it gives up, so its complaint may be the only one)
    let why = format!(
        "{}{}",
        a.text("/forkerr").await,
        a.text("/forkerr.new").await
    );
    println!(
        "[{}] A's shell on a failed fork: {}",
        a.backend.name(),
        why.trim()
    );
    assert!(
        fork_refused(&why),
        "A's forks did not fail for the process cap; the shell said {why:?}"
    );
    assert!(
        launched < FORK_BOMB_MAX && peak < FORK_BOMB_MAX,
        "A's process cap did not stop the bomb: {launched} started, {peak} at once"
    );
    // B's latency is printed above, a figure for benchmarks; a bound on it
    // would be a timing assert on a shared machine. B answered every time.
    assert!(during.len() >= 3, "B answered only {} times", during.len());
    let left = wait_gone(T, &m).await;
    assert!(left.is_empty(), "{} bomb processes survived", left.len());
}

/// Whether a shell's message says a fork was refused for the process
/// cap: EAGAIN ("Resource temporarily unavailable", as bash and busybox
/// name it; the pids cgroup and `RLIMIT_NPROC` both refuse with EAGAIN),
/// or dash's "Cannot fork", which names no reason.
fn fork_refused(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    (m.contains("fork") && m.contains("resource temporarily unavailable"))
        || m.trim_end().ends_with("cannot fork")
}

/// A memory hog in A (1.5 GiB at most) is stopped for memory (an OOM
/// kill or an allocation refused), and A and B work afterwards.
pub async fn memory_hog_in_a_is_stopped(a: &Fixture, b: &Fixture) {
    let _heavy = HEAVY.lock().await;
    let full = 1_572_864_000u64;
    // `tail` holds the last 1.5 GiB in memory; its own exit status says
    // why it stopped (137: SIGKILL, the memory cgroup's OOM kill; else an
    // error naming memory: ENOMEM under the address-space limit)
    let o = run(
        a,
        &format!("head -c 1610612736 /dev/zero | {{ tail -c {full}; echo tail=$? >&2; }} | wc -c"),
        Duration::from_secs(60),
    )
    .await;
    assert_ne!(
        out(&o).trim(),
        full.to_string(),
        "the hog got all its memory: {o:?}"
    );
    assert!(
        !o.timed_out,
        "the hog was not stopped, only timed out: {o:?}"
    );
    let err = String::from_utf8_lossy(&o.stderr).to_lowercase();
    let oom_killed = err.contains("tail=137") || o.exit_code.is_none() || o.exit_code == Some(137);
    let enomem = err.contains("memory") && !err.contains("tail=0");
    assert!(
        oom_killed || enomem,
        "the hog stopped, but not for memory (no OOM kill, no ENOMEM): {o:?}"
    );
    assert_eq!(out(&run(a, "echo alive", T).await), "alive\n");
    assert_eq!(out(&run(b, "echo alive", T).await), "alive\n");
}

/// A cannot open a TCP connection to a listener on the host's 127.0.0.1.
pub async fn a_cannot_reach_host_loopback(a: &Fixture, _b: &Fixture) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback listener");
    let port = listener.local_addr().expect("its address").port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    let accept = tokio::spawn(async move {
        while listener.accept().await.is_ok() {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    let command = format!(
        "if command -v bash >/dev/null 2>&1; then bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port} && echo CONNECTED'; \
         elif command -v nc >/dev/null 2>&1; then echo hi | nc -w 2 127.0.0.1 {port} && echo CONNECTED; \
         elif command -v python3 >/dev/null 2>&1; then python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {port}), 2); print(\"CONNECTED\")'; \
         else echo NO-TOOL; fi; echo tried"
    );
    let o = run(a, &command, T).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    accept.abort();
    let text = out(&o);
    assert!(text.ends_with("tried\n"), "{o:?}");
    assert!(
        !text.contains("NO-TOOL"),
        "no bash, nc or python3 in A to try with"
    );
    assert!(
        !text.contains("CONNECTED"),
        "A connected to the host: {text}"
    );
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        0,
        "the host's listener accepted a connection from A"
    );
}

/// A cannot read a secret file in a host directory outside its workspace
/// (world-readable, so only the sandbox can hide it), nor find B's files
/// while B runs a command.
pub async fn a_cannot_read_host_or_b_files(a: &Fixture, b: &Fixture) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("sandbay-isolation-secret-")
        .tempdir()
        .expect("a host directory");
    let host_token = format!("HOST-SECRET-{}", unique());
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, &host_token).expect("the secret");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let b_token = format!("B-SECRET-{}", unique());
    b.put("/b-secret.txt", &b_token).await;
    let m = sleep_marker(3600);
    let job = spawn(b, format!("sleep {m}"), Duration::from_secs(120));
    assert!(
        wait_until(T, || procs_with(&m).len() == 1).await,
        "B's job never started"
    );
    let mut command = format!("cat {} 2>&1; ", secret.display());
    if let Some(b_root) = &b.host_root {
        command.push_str(&format!(
            "cat {0}/b-secret.txt 2>&1; ls {0} 2>&1; ",
            b_root.display()
        ));
    }
    command.push_str(
        "find / \\( -path /proc -o -path /sys -o -path /usr \\) -prune -o -name 'b-secret*' -print 2>/dev/null \
         | sed 's/^/FOUND /'; echo end",
    );
    let o = run(a, &command, T).await;
    job.abort();
    let _ = job.await;
    let text = format!("{}{}", out(&o), String::from_utf8_lossy(&o.stderr));
    assert!(text.contains("end"), "{o:?}");
    assert!(
        !text.contains(&host_token),
        "A read the host's secret: {text}"
    );
    assert!(!text.contains(&b_token), "A read B's file: {text}");
    assert!(!text.contains("FOUND"), "A found B's file: {text}");
    assert!(wait_gone(T, &m).await.is_empty());
}

/// Emits one `#[test]` per isolation case for a fixture factory (an
/// expression evaluating to a future of [`Fixture`], evaluated twice per
/// test: user A, then user B), optionally gated by `requires`.
#[macro_export]
macro_rules! isolation_tests {
    ($factory:expr $(,)?) => {
        $crate::isolation_tests!($factory, requires = ::std::result::Result::<(), &str>::Ok(()));
    };
    ($factory:expr, requires = $requires:expr $(,)?) => {
        $crate::isolation_tests!(@emit [$requires] $factory;
            ps_in_a_does_not_show_b,
            rm_rf_tmp_in_a_spares_b_and_host,
            fork_bomb_in_a_is_capped_while_b_answers,
            memory_hog_in_a_is_stopped,
            a_cannot_reach_host_loopback,
            a_cannot_read_host_or_b_files,
        );
    };
    (@emit [$requires:expr] $factory:expr; $($name:ident,)*) => {
        $(
            #[test]
            fn $name() {
                $crate::block_on(async {
                    if !$crate::skip::require($requires) {
                        return;
                    }
                    let a: $crate::Fixture = ($factory).await;
                    let b: $crate::Fixture = ($factory).await;
                    $crate::isolation::$name(&a, &b).await;
                });
            }
        )*
    };
}
