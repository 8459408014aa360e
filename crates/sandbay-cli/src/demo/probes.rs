//! Live probes: each one does the thing the requirement worries about and
//! reports what actually happened. Nothing here is hard-coded per backend.
//!
//! A cell is a verdict only with evidence: the attempt was made, it failed
//! for the expected reason, and a control attempt that should succeed did
//! (the host reaches its own listener, A lists its own processes, removes
//! its own `/tmp` file, reads its own files). Otherwise the cell says
//! `not proven: <why>`. A weakness that shows (B's process in A's `ps`, a
//! connection that reached the host) is reported in capitals.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sandbay_core::{
    Backend, BackendExt, ExecRequest, GrepMode, GrepRequest, ReadRequest, Sandbox, VPath,
};

/// One workspace handed out by a target.
#[derive(Clone)]
pub(crate) struct Workspace {
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) sandbox: Option<Arc<dyn Sandbox>>,
    /// The host directory behind the workspace, when there is one.
    pub(crate) host_root: Option<PathBuf>,
    /// What the local jail of the workspace enforces, read from the jail.
    pub(crate) enforcement: Option<sandbay_exec::Enforcement>,
}

/// The four workspaces of the scenario: users A and B, sessions 1 and 2.
pub(crate) struct Scenario {
    pub(crate) a1: Workspace,
    pub(crate) a2: Workspace,
    pub(crate) b1: Workspace,
    pub(crate) b2: Workspace,
    /// How long opening each of the four workspaces took.
    pub(crate) opened: Vec<Duration>,
    /// Taking a ready workspace from a warm pool, where the target has one.
    pub(crate) warm: Option<Result<Duration, String>>,
}

const NOT_AVAILABLE: &str = "not available";

/// The environment variable naming the `PATH` the network probe looks its
/// tools up in (default: the sandbox's own); an empty directory there
/// leaves it without a tool, so the cell must say `not proven`.
pub(crate) const PROBE_PATH_ENV: &str = "SANDBAY_DEMO_PROBE_PATH";

fn not_proven(why: impl std::fmt::Display) -> String {
    format!("not proven: {why}")
}

/// The first line of `text` that is not empty, cut to 60 characters.
fn first_line(text: &str) -> String {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    line.chars().take(60).collect()
}

fn file() -> VPath {
    VPath::parse("/file.txt").expect("valid")
}

async fn own_content(ws: &Workspace, want: &str) -> Result<bool, String> {
    let got = ws
        .backend
        .read_to_string(&file())
        .await
        .map_err(|e| e.to_string())?;
    Ok(got == want)
}

/// Writes the same path with different content in every workspace.
pub(crate) async fn seed(s: &Scenario) -> Result<(), String> {
    for (ws, content) in [
        (&s.a1, "A1 content"),
        (&s.a2, "A2 content"),
        (&s.b1, "B1 content"),
        (&s.b2, "B2 content"),
    ] {
        ws.backend
            .write(&file(), content)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Users A and B write `/file.txt`; does each read back its own?
pub(crate) async fn users_isolated(s: &Scenario) -> String {
    match (
        own_content(&s.a1, "A1 content").await,
        own_content(&s.b1, "B1 content").await,
    ) {
        (Ok(true), Ok(true)) => "isolated (A and B read their own)".into(),
        (Ok(_), Ok(_)) => "SHARED: one user read the other's file".into(),
        (Err(e), _) | (_, Err(e)) => format!("error: {e}"),
    }
}

/// Sessions 1 and 2 of one user: does each read back its own?
pub(crate) async fn sessions_isolated(s: &Scenario) -> String {
    match (
        own_content(&s.a1, "A1 content").await,
        own_content(&s.a2, "A2 content").await,
    ) {
        (Ok(true), Ok(true)) => "isolated (session 1 and 2 differ)".into(),
        (Ok(_), Ok(_)) => "SHARED between sessions".into(),
        (Err(e), _) | (_, Err(e)) => format!("error: {e}"),
    }
}

/// `ls /` and a grep in A1 see only A1's files.
pub(crate) async fn listing_scoped(s: &Scenario) -> String {
    let ls = match s.a1.backend.ls(&VPath::root()).await {
        Ok(entries) => entries,
        Err(e) => return format!("error: {e}"),
    };
    let mut req = GrepRequest::new("content");
    req.mode = GrepMode::Content;
    let grep = match s.a1.backend.grep(&req).await {
        Ok(g) => g,
        Err(e) => return format!("error: {e}"),
    };
    let lines: Vec<&str> = grep
        .files
        .iter()
        .flat_map(|f| f.lines.iter().map(|l| l.text.as_str()))
        .collect();
    if ls.iter().any(|e| e.path == file()) && lines == ["A1 content"] {
        format!("scoped ({} entry, 1 grep hit)", ls.len())
    } else {
        format!("LEAKS: ls {} entries, grep {:?}", ls.len(), lines)
    }
}

/// A path with `..` above the root, and a symlink planted on the host
/// pointing at a host file.
pub(crate) async fn escapes(s: &Scenario) -> String {
    let dotdot = match VPath::parse("/../../etc/passwd") {
        Err(_) => "`..` refused".to_string(),
        Ok(p) => match s.a1.backend.read(&p, ReadRequest::default()).await {
            Ok(_) => "`..` READ A HOST FILE".into(),
            Err(e) => format!("`..` refused ({})", e.code()),
        },
    };
    // plant a link to a host file: from the host side when there is a host
    // directory, else from inside with a command
    let planted = match (&s.a1.host_root, &s.a1.sandbox) {
        (Some(root), _) => {
            std::os::unix::fs::symlink("/etc/passwd", root.join("passwd-link")).is_ok()
        }
        (None, Some(sb)) => matches!(
            run(sb, "ln -s /etc/passwd passwd-link", 10).await,
            Ok((_, Some(0)))
        ),
        (None, None) => return format!("{dotdot}; no symlinks"),
    };
    if !planted {
        return format!("{dotdot}; symlink probe could not run");
    }
    let path = VPath::parse("/passwd-link").expect("valid");
    let result = s.a1.backend.read(&path, ReadRequest::default()).await;
    let _ = s.a1.backend.delete(&path).await;
    let link_cell = match result {
        Ok(_) => "symlink READ /etc/passwd".to_string(),
        Err(e) => format!("symlink refused ({})", e.code()),
    };
    format!("{dotdot}; {link_cell}")
}

/// Median latency of a write followed by a read, measured now.
pub(crate) async fn file_latency(ws: &Workspace) -> String {
    let path = VPath::parse("/bench/latency.txt").expect("valid");
    let mut samples = Vec::with_capacity(200);
    for i in 0..200 {
        let start = Instant::now();
        if let Err(e) = ws.backend.write(&path, &format!("line {i}\n")).await {
            return format!("error: {e}");
        }
        if let Err(e) = ws.backend.read(&path, ReadRequest::default()).await {
            return format!("error: {e}");
        }
        samples.push(start.elapsed());
    }
    let _ = ws
        .backend
        .delete(&VPath::parse("/bench").expect("valid"))
        .await;
    samples.sort();
    format!(
        "{:.0} µs per write+read (p50)",
        samples[100].as_secs_f64() * 1e6
    )
}

/// A duration in the unit that reads best.
fn short(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1_000.0 {
        format!("{us:.0} µs")
    } else {
        format!("{:.0} ms", us / 1e3)
    }
}

/// Start-up cost of a workspace: a new one, and one from a warm pool.
pub(crate) async fn startup(s: &Scenario) -> String {
    let mut opened = s.opened.clone();
    opened.sort();
    let Some(median) = opened.get(opened.len() / 2) else {
        return "not measured".into();
    };
    let mut cell = format!("new: {} (median of {})", short(*median), opened.len());
    match &s.warm {
        Some(Ok(d)) => cell.push_str(&format!(
            "; fresh, never used, from a warm pool: {}",
            short(*d)
        )),
        Some(Err(e)) => cell.push_str(&format!("; warm pool: error: {e}")),
        None => {}
    }
    cell
}

fn sandbox(ws: &Workspace) -> Option<&Arc<dyn Sandbox>> {
    ws.sandbox.as_ref()
}

async fn run(
    sb: &Arc<dyn Sandbox>,
    command: &str,
    secs: u64,
) -> Result<(String, Option<i32>), String> {
    let out = sb
        .execute(ExecRequest::new(command).timeout(Duration::from_secs(secs)))
        .await
        .map_err(|e| e.to_string())?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    Ok((text, out.exit_code))
}

/// The isolation level commands run with.
pub(crate) fn command_level(ws: &Workspace) -> String {
    match sandbox(ws) {
        None => NOT_AVAILABLE.into(),
        Some(sb) => format!("yes, isolation: {}", sb.capabilities().isolation.as_str()),
    }
}

/// Host pids of live processes whose command line is exactly
/// `sleep <marker>` (any PID namespace or container of this kernel).
fn host_procs_with(marker: &str) -> Result<Vec<i32>, String> {
    let argv = format!("sleep\0{marker}\0");
    let entries = std::fs::read_dir("/proc").map_err(|e| format!("cannot read /proc: {e}"))?;
    Ok(entries
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.parse::<i32>().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            (cmdline == argv.as_bytes()).then_some(pid)
        })
        .collect())
}

/// While B runs `sleep <marker>` (seen running in the host's `/proc`
/// before and after), does `ps` in A show it? Control: A's `ps` lists
/// A's own `ps`.
pub(crate) async fn processes(s: &Scenario) -> String {
    let (Some(a), Some(b)) = (sandbox(&s.a1), sandbox(&s.b1)) else {
        return NOT_AVAILABLE.into();
    };
    let marker = format!("8.{}{:09}", std::process::id(), nanos());
    let b = Arc::clone(b);
    let b_cmd = format!("sleep {marker}");
    let b_task = tokio::spawn(async move { run(&b, &b_cmd, 15).await });
    // B's process must be running before A looks
    let mut before = Ok(Vec::new());
    for _ in 0..50 {
        before = host_procs_with(&marker);
        if before.as_ref().is_ok_and(|p| !p.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen = run(a, "ps -ef 2>/dev/null || ps", 10).await;
    let after = host_procs_with(&marker);
    b_task.abort();
    let _ = b_task.await;
    let (text, code) = match seen {
        Ok(r) => r,
        Err(e) => return format!("error: {e}"),
    };
    if text.contains(&marker) {
        return "VISIBLE: A's ps shows B's process".into();
    }
    match (before, after) {
        (Err(e), _) | (_, Err(e)) => return not_proven(format!("B's process not checked ({e})")),
        (Ok(b), Ok(a)) if b.is_empty() || a.is_empty() => {
            return not_proven("B's process was not running while A looked");
        }
        _ => {}
    }
    let own = text.lines().skip(1).any(|l| {
        l.split_whitespace()
            .any(|w| w == "ps" || w.ends_with("/ps"))
    });
    if code != Some(0) || !own {
        return not_proven(format!(
            "A's ps did not list its own process (exit {}): {}",
            exit(code),
            first_line(&text)
        ));
    }
    format!(
        "hidden: B's process ran, A's ps lists {} processes, none of B's",
        text.lines().count().saturating_sub(1)
    )
}

fn nanos() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}

fn exit(code: Option<i32>) -> String {
    code.map(|c| c.to_string())
        .unwrap_or_else(|| "by signal".into())
}

/// A marker file in the host's `/tmp`: can A see it, and delete it with
/// `rm`? Private only when A does not see it at all; control: A makes
/// and removes a file of its own in its `/tmp`.
pub(crate) async fn tmp_shared(s: &Scenario) -> String {
    let Some(a) = sandbox(&s.a1) else {
        return NOT_AVAILABLE.into();
    };
    let name = format!("sandbay-demo-marker-{}-{}", std::process::id(), nanos());
    let marker = PathBuf::from("/tmp").join(&name);
    if let Err(e) = std::fs::write(&marker, b"host") {
        return not_proven(format!("cannot write {}: {e}", marker.display()));
    }
    let cmd = format!(
        "if [ -e /tmp/{name} ]; then echo seen; else echo unseen; fi; rm /tmp/{name}; echo rm=$?; \
         touch /tmp/own-{name} && rm /tmp/own-{name} && echo control=ok"
    );
    let result = run(a, &cmd, 10).await;
    let survived = marker.exists();
    let _ = std::fs::remove_file(&marker);
    let text = match result {
        Err(e) => return format!("error: {e}"),
        Ok((text, _)) => text,
    };
    if !survived {
        return "SHARED: A's rm deleted a host /tmp file".into();
    }
    if !text.contains("control=ok") {
        return not_proven(format!(
            "A could not make and remove its own /tmp file: {}",
            first_line(&text)
        ));
    }
    if text.lines().any(|l| l == "seen") {
        return not_proven(format!(
            "A sees the host's /tmp; its rm was refused by permissions ({})",
            first_line(
                &text
                    .lines()
                    .filter(|l| l.contains("rm"))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        ));
    }
    if text.lines().any(|l| l == "unseen") && !text.contains("rm=0") {
        "private: A does not see the host's /tmp file; host file untouched".into()
    } else {
        not_proven(format!("unexpected answer: {}", first_line(&text)))
    }
}

/// A bounded fork bomb in A (400 processes at most) that keeps forking
/// at its cap for 4 s; meanwhile B runs `echo` again and again, timed.
pub(crate) async fn fork_bomb(s: &Scenario) -> String {
    let (Some(a), Some(b)) = (sandbox(&s.a1), sandbox(&s.b1)) else {
        return NOT_AVAILABLE.into();
    };
    // Subshells start sleepers until a fork fails (the shell then exits);
    // the outer loop starts a new subshell at once, so forks keep hitting
    // the cap until the timeout, or until 400 sleepers were started (the
    // bound if nothing caps them). `.bomb-log` says how many started (a
    // log: the timeout may kill a write, which loses one line at most);
    // `.bomb-why` keeps the error of a failed fork (shell builtins only:
    // no fork is needed to record it).
    let bomb = "n=0; echo 0 > .bomb-count; : > .bomb-why; while [ $n -lt 400 ]; do \
                ( while [ $n -lt 400 ]; do sleep 30 & n=$((n+1)); echo $n > .bomb-count; echo $n >> .bomb-log; done ) 2>.bomb-err; \
                read why < .bomb-err && echo \"$why\" > .bomb-why; read n < .bomb-count; done";
    let a_task = Arc::clone(a);
    let bomb_task = tokio::spawn(async move {
        a_task
            .execute(ExecRequest::new(bomb).timeout(Duration::from_secs(4)))
            .await
    });
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mut latencies = Vec::new();
    let mut b_error = None;
    while !bomb_task.is_finished() {
        let start = Instant::now();
        match run(b, "echo ok", 10).await {
            Ok((t, _)) if t.trim() == "ok" => latencies.push(start.elapsed()),
            Ok((t, _)) => b_error = Some(format!("B answered oddly: {t:?}")),
            Err(e) => b_error = Some(format!("B failed: {e}")),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let bomb = bomb_task.await;
    let log = VPath::parse("/.bomb-log").expect("valid");
    let why = VPath::parse("/.bomb-why").expect("valid");
    let started = a.read_to_string(&log).await.ok();
    let mut failed_fork = a.read_to_string(&why).await.unwrap_or_default();
    if failed_fork.trim().is_empty() {
        // the last subshell's error, when the timeout came before `.bomb-why`
        let err = VPath::parse("/.bomb-err").expect("valid");
        failed_fork = a.read_to_string(&err).await.unwrap_or_default();
    }
    for p in ["/.bomb-count", "/.bomb-log", "/.bomb-why", "/.bomb-err"] {
        let _ = a.delete(&VPath::parse(p).expect("valid")).await;
    }
    let started: Option<u32> =
        started.and_then(|t| t.lines().filter_map(|l| l.trim().parse().ok()).max());
    // a fork refused to the outer shell shows in the bomb's own stderr
    let failed_fork = match &bomb {
        Ok(Ok(out)) if failed_fork.trim().is_empty() => String::from_utf8_lossy(&out.stderr)
            .lines()
            .find(|l| {
                let l = l.to_lowercase();
                l.contains("fork") || l.contains("resource temporarily unavailable")
            })
            .unwrap_or_default()
            .to_string(),
        _ => failed_fork,
    };
    let lower = failed_fork.to_lowercase();
    let fork_refused = lower.contains("fork") || lower.contains("resource temporarily unavailable");
    latencies.sort();
    let b_cell = match (b_error, latencies.is_empty()) {
        (Some(e), _) => e,
        (None, true) => "B was not measured".into(),
        (None, false) => format!(
            "B answered {} times, p50 {} ms, max {} ms",
            latencies.len(),
            latencies[latencies.len() / 2].as_millis(),
            latencies[latencies.len() - 1].as_millis()
        ),
    };
    let b_ok = !latencies.is_empty() && b_cell.starts_with("B answered");
    match (bomb, started) {
        (Ok(Ok(_)), Some(n)) if n >= 400 => format!("NOT capped ({n} processes ran); {b_cell}"),
        (Ok(Ok(_)), Some(n)) if fork_refused && b_ok => format!(
            "capped: forks refused at {n} of 400 ({}); {b_cell}",
            first_line(&failed_fork)
        ),
        (Ok(Ok(_)), Some(n)) if !fork_refused => not_proven(format!(
            "{n} of 400 started, no fork was seen failing; {b_cell}"
        )),
        (Ok(Ok(_)), Some(_)) => not_proven(format!("B was not measured: {b_cell}")),
        (Ok(Err(e)), _) => format!("error: {e}"),
        (Err(e), _) => format!("error: {e}"),
        (Ok(Ok(_)), None) => not_proven(format!("the bomb left no count; {b_cell}")),
    }
}

/// A shell that holds `bytes` in a variable and prints its length.
fn hog(bytes: u64) -> String {
    format!("x=$(head -c {bytes} /dev/zero | tr '\\0' a); echo ${{#x}}")
}

/// A allocates 1 GiB in a shell variable. Stopped only when it was killed
/// by a signal (the memory cap's OOM kill) or exit 137, or an allocation
/// was refused (`out of memory`, `Cannot allocate memory`); control: the
/// same command for 1 MiB succeeds.
pub(crate) async fn memory_hog(s: &Scenario) -> String {
    let Some(a) = sandbox(&s.a1) else {
        return NOT_AVAILABLE.into();
    };
    match run(a, &hog(1 << 20), 20).await {
        Ok((text, Some(0))) if text.trim() == "1048576" => {}
        Ok((text, code)) => {
            return not_proven(format!(
                "the 1 MiB control failed (exit {}): {}",
                exit(code),
                first_line(&text)
            ));
        }
        Err(e) => return format!("error: {e}"),
    }
    let out = match a
        .execute(ExecRequest::new(hog(1 << 30)).timeout(Duration::from_secs(30)))
        .await
    {
        Ok(out) => out,
        Err(e) => return format!("error: {e}"),
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let lower = text.to_lowercase();
    if out.exit_code == Some(0) && text.trim() == "1073741824" {
        return "NOT limited (1 GiB allocated)".into();
    }
    if out.timed_out {
        return not_proven("the hog ran into the time limit, not a memory cap");
    }
    if out.exit_code.is_none() || out.exit_code == Some(137) {
        return format!(
            "stopped: killed by the memory cap (exit {})",
            exit(out.exit_code)
        );
    }
    if lower.contains("out of memory")
        || lower.contains("cannot allocate memory")
        || lower.contains("memory exhausted")
    {
        return format!("stopped: allocation refused ({})", first_line(&text));
    }
    not_proven(format!(
        "exit {}, no sign of a memory cap: {}",
        exit(out.exit_code),
        first_line(&text)
    ))
}

/// A listener on the host's 127.0.0.1: can A connect? Blocked only when
/// the host itself reached the listener (control), A had a tool to try
/// with (`nc`, `bash` or `python3`), the tool reported a failure, and no
/// connection from A arrived.
pub(crate) async fn network(s: &Scenario) -> String {
    let Some(a) = sandbox(&s.a1) else {
        return NOT_AVAILABLE.into();
    };
    let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(e) => return not_proven(format!("no host listener: {e}")),
    };
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    let accept = tokio::spawn(async move {
        while let Ok((_sock, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    // control: the host reaches its own listener
    let control = tokio::net::TcpStream::connect(("127.0.0.1", port)).await;
    let mut from_host = false;
    for _ in 0..50 {
        if accepted.load(Ordering::SeqCst) > 0 {
            from_host = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(control);
    let before = accepted.load(Ordering::SeqCst);
    let path = std::env::var(PROBE_PATH_ENV)
        .map(|p| format!("PATH='{}'; ", p.replace('\'', "")))
        .unwrap_or_default();
    let cmd = format!(
        "{path}if command -v nc >/dev/null 2>&1; then echo tool=nc; echo hi | nc -w 2 127.0.0.1 {port}; \
         elif command -v bash >/dev/null 2>&1; then echo tool=bash; bash -c 'echo hi > /dev/tcp/127.0.0.1/{port}'; \
         elif command -v python3 >/dev/null 2>&1; then echo tool=python3; \
         python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {port}), 2)'; \
         else echo tool=none; exit 0; fi; echo rc=$?"
    );
    let result = run(a, &cmd, 10).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    accept.abort();
    let from_a = accepted.load(Ordering::SeqCst) - before;
    let text = match result {
        Err(e) => return format!("error: {e}"),
        Ok((text, _)) => text,
    };
    if from_a > 0 {
        return "OPEN: A reached the host's 127.0.0.1".into();
    }
    if !from_host {
        return not_proven("the host could not reach its own listener");
    }
    let tool = text
        .lines()
        .find_map(|l| l.strip_prefix("tool="))
        .unwrap_or("none");
    if tool == "none" {
        return not_proven("no probe tool (nc, bash, python3) in A");
    }
    let rc = text.lines().find_map(|l| l.strip_prefix("rc="));
    match rc {
        Some(rc) if rc != "0" => {
            let why = text
                .lines()
                .filter(|l| !l.starts_with("tool=") && !l.starts_with("rc="))
                .collect::<Vec<_>>()
                .join(" ");
            format!(
                "blocked: {tool} in A failed ({}); the host reached its own listener",
                first_line(&why)
            )
        }
        _ => not_proven(format!(
            "{tool} in A reported no failure, yet no connection arrived: {}",
            first_line(&text)
        )),
    }
}

/// A secret file in a host directory outside every workspace: can A read
/// it? Hidden only when A's `cat` failed and A read its own file
/// (control).
pub(crate) async fn host_files(s: &Scenario) -> String {
    let Some(a) = sandbox(&s.a1) else {
        return NOT_AVAILABLE.into();
    };
    let dir = PathBuf::from(format!(
        "/var/tmp/sandbay-demo-secret-{}",
        std::process::id()
    ));
    let secret = dir.join("secret.txt");
    if let Err(e) =
        std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&secret, b"TOP-SECRET-42"))
    {
        return not_proven(format!("cannot plant the host secret: {e}"));
    }
    let result = run(a, &format!("cat {}", secret.display()), 10).await;
    let control = run(a, "cat file.txt", 10).await;
    let _ = std::fs::remove_dir_all(&dir);
    let (text, code) = match result {
        Ok(r) => r,
        Err(e) => return format!("error: {e}"),
    };
    if text.contains("TOP-SECRET-42") {
        return "READABLE: A read a host secret".into();
    }
    match control {
        Ok((own, Some(0))) if own.contains("A1 content") => {}
        Ok((own, code)) => {
            return not_proven(format!(
                "A could not read its own file (exit {}): {}",
                exit(code),
                first_line(&own)
            ));
        }
        Err(e) => return format!("error: {e}"),
    }
    if code == Some(0) {
        return not_proven("A's cat succeeded without the secret");
    }
    format!("hidden: A's cat failed ({})", first_line(&text))
}

/// What the sandbox of `ws` enforces: read from its local jail, or from
/// inside the container (uid, capabilities, root filesystem, cgroup caps,
/// network interfaces).
pub(crate) async fn enforced(ws: &Workspace) -> Option<String> {
    if let Some(e) = &ws.enforcement {
        let uid = if e.distinct_uid {
            format!("host uid {} of its own", e.host_uid)
        } else {
            format!(
                "the host process's uid {} (no uid of its own without root)",
                e.host_uid
            )
        };
        let processes = if e.cgroup_pids {
            format!("{} processes (pids cgroup)", e.limits.processes)
        } else {
            format!("{} processes per uid (rlimit)", e.limits.processes)
        };
        let memory = if e.cgroup_memory {
            format!("{} MiB (memory cgroup)", e.limits.memory_bytes >> 20)
        } else {
            format!(
                "{} MiB address space per process (rlimit; no memory cgroup)",
                e.limits.address_space_bytes >> 20
            )
        };
        let namespaces = if e.namespaces.is_empty() {
            "no namespaces".to_string()
        } else {
            format!("namespaces: {}", e.namespaces.join(", "))
        };
        return Some(format!(
            "enforced by the local jail: level `{}`, {namespaces}, {uid}, {processes}, {memory}",
            e.isolation.as_str()
        ));
    }
    let sb = sandbox(ws)?;
    let probe = "echo uid=$(id -u); grep -E '^Cap(Eff|Bnd):' /proc/self/status; \
                 echo rootfs=$(touch /.sandbay-probe 2>&1 && rm -f /.sandbay-probe && echo writable); \
                 echo pids=$(cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max 2>/dev/null); \
                 echo mem=$(cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null); \
                 echo net=$(ls /sys/class/net 2>/dev/null)";
    let text = match run(sb, probe, 10).await {
        Ok((text, _)) => text,
        Err(e) => return Some(format!("enforcement not read: {e}")),
    };
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(str::trim)
            .unwrap_or("")
            .to_string()
    };
    let mut parts = vec![format!("uid {}", field("uid="))];
    let bnd = field("CapBnd:");
    parts.push(if !bnd.is_empty() && bnd.chars().all(|c| c == '0') {
        "all capabilities dropped".into()
    } else {
        format!("capabilities {bnd}")
    });
    let rootfs = field("rootfs=");
    parts.push(if rootfs.to_lowercase().contains("read-only") {
        "read-only root".into()
    } else if rootfs == "writable" {
        "WRITABLE root".into()
    } else {
        format!("root not writable, read-only not proven ({rootfs})")
    });
    let pids = field("pids=");
    parts.push(format!(
        "pids cap {}",
        if pids.is_empty() { "unknown" } else { &pids }
    ));
    let mem = field("mem=");
    parts.push(match mem.parse::<u64>() {
        Ok(bytes) if bytes < (1 << 50) => format!("memory cap {} MiB", bytes >> 20),
        _ => format!(
            "memory cap {}",
            if mem.is_empty() { "unknown" } else { &mem }
        ),
    });
    let net = field("net=");
    parts.push(if net == "lo" {
        "network: loopback only".into()
    } else {
        format!("network interfaces: {net}")
    });
    Some(format!("enforced in the container: {}", parts.join(", ")))
}

/// The quota every demo workspace gets.
pub(crate) const DEMO_QUOTA_BYTES: u64 = 16 << 20;

/// A disk quota: the file API refuses a write over it with
/// `quota_exceeded`, a command's `dd` stops at it (where commands are
/// capped), and after deleting, a write works again. A verdict only with
/// that evidence.
pub(crate) async fn disk_quota(s: &Scenario) -> String {
    let ws = &s.a1;
    let Some(quota) = ws.backend.capabilities().quota else {
        return not_proven("the backend reports no quota in force here");
    };
    let mib = quota.bytes >> 20;
    let big = VPath::parse("/quota-fill.bin").expect("a valid path");
    let over = vec![7u8; (quota.bytes + (1 << 20)) as usize];
    let api = ws.backend.upload(vec![(big.clone(), over)]).await.pop();
    let api_cell = match api {
        Some(Err(e)) if e.code() == sandbay_core::ErrorCode::QuotaExceeded => {
            "API write over it refused (quota_exceeded)".to_owned()
        }
        Some(Err(e)) => return not_proven(format!("the API write failed otherwise: {e}")),
        Some(Ok(())) => {
            let _ = ws.backend.delete(&big).await;
            return format!("NOT CAPPED: the API wrote {} MiB", mib + 1);
        }
        None => return not_proven("the upload gave no result"),
    };
    let command_cell = match (sandbox(ws), quota.commands) {
        (None, _) => "no commands".to_owned(),
        (Some(_), false) => "commands not capped while they run".to_owned(),
        (Some(sb), true) => {
            let count = mib + 8;
            let dd = format!(
                "dd if=/dev/zero of=dd-fill bs=1048576 count={count} 2>&1; echo; ls -l dd-fill | awk '{{print $5}}'; rm -f dd-fill"
            );
            match run(sb, &dd, 60).await {
                Ok((text, _)) => {
                    let written: u64 = text
                        .lines()
                        .rev()
                        .find_map(|l| l.trim().parse().ok())
                        .unwrap_or(u64::MAX);
                    let enospc = text.contains("No space left") || text.contains("quota");
                    if written <= quota.bytes && enospc {
                        format!("dd stopped at {} MiB (no space left)", written >> 20)
                    } else {
                        return format!(
                            "NOT CAPPED: dd wrote {written} bytes: {}",
                            first_line(&text)
                        );
                    }
                }
                Err(e) => return format!("error: {e}"),
            }
        }
    };
    let small = VPath::parse("/after-quota.txt").expect("a valid path");
    let control = ws.backend.write(&small, "room again\n").await;
    let _ = ws.backend.delete(&small).await;
    if let Err(e) = control {
        return not_proven(format!("a small write after the refusals failed: {e}"));
    }
    format!("{mib} MiB: {api_cell}; {command_cell}; writes work after")
}
