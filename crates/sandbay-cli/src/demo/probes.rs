//! Live probes: each one does the thing the requirement worries about and
//! reports what actually happened. Nothing here is hard-coded per backend.

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

/// While B runs a marked command, does `ps` in A show it?
pub(crate) async fn processes(s: &Scenario) -> String {
    let (Some(a), Some(b)) = (sandbox(&s.a1), sandbox(&s.b1)) else {
        return NOT_AVAILABLE.into();
    };
    let marker = format!("sandbay-demo-{}", std::process::id());
    let b = Arc::clone(b);
    let b_cmd = format!("sleep 3; : {marker}");
    let b_task = tokio::spawn(async move { run(&b, &b_cmd, 10).await });
    tokio::time::sleep(Duration::from_millis(700)).await;
    let seen = run(a, "ps -ef 2>/dev/null || ps", 10).await;
    let _ = b_task.await;
    match seen {
        Ok((text, _)) if text.contains(&marker) => "VISIBLE: A's ps shows B's command".into(),
        Ok((text, _)) => format!(
            "hidden: A's ps shows {} processes, none of B's",
            text.lines().count().saturating_sub(1)
        ),
        Err(e) => format!("error: {e}"),
    }
}

/// A marker file in the host's `/tmp`: can A delete it with `rm`?
pub(crate) async fn tmp_shared(s: &Scenario) -> String {
    let Some(a) = sandbox(&s.a1) else {
        return NOT_AVAILABLE.into();
    };
    let marker = std::env::temp_dir().join(format!("sandbay-demo-marker-{}", std::process::id()));
    if std::fs::write(&marker, b"host").is_err() {
        return "probe could not run".into();
    }
    let cmd = format!("rm -f {}", marker.display());
    let result = run(a, &cmd, 10).await;
    let survived = marker.exists();
    let _ = std::fs::remove_file(&marker);
    match result {
        Err(e) => format!("error: {e}"),
        Ok(_) if survived => "private: host /tmp untouched by A's rm".into(),
        Ok(_) => "SHARED: A's rm deleted a host /tmp file".into(),
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
    // bound if nothing caps them). `.bomb-count` says how many started.
    let bomb = "n=0; echo 0 > .bomb-count; while [ $n -lt 400 ]; do \
                ( while [ $n -lt 400 ]; do sleep 30 & n=$((n+1)); echo $n > .bomb-count; done ) 2>/dev/null; \
                read n < .bomb-count; done";
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
    let count = VPath::parse("/.bomb-count").expect("valid");
    let started = a.read_to_string(&count).await.ok();
    let _ = a.delete(&count).await;
    let started: Option<u32> = started.and_then(|t| t.trim().parse().ok());
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
    match (bomb, started) {
        (Ok(Ok(_)), Some(n)) if n < 400 => {
            format!("capped by the process limit ({n} of 400 started); {b_cell}")
        }
        (Ok(Ok(_)), Some(n)) => format!("NOT capped ({n} processes ran); {b_cell}"),
        (Ok(Err(e)), _) => format!("error: {e}"),
        _ => format!("bomb did not report; {b_cell}"),
    }
}

/// A allocates 1 GiB in a shell variable.
pub(crate) async fn memory_hog(s: &Scenario) -> String {
    let Some(a) = sandbox(&s.a1) else {
        return NOT_AVAILABLE.into();
    };
    let hog = "x=$(head -c 1073741824 /dev/zero | tr '\\0' a); echo ${#x}";
    match run(a, hog, 20).await {
        Ok((text, Some(0))) if text.trim() == "1073741824" => {
            "NOT limited (1 GiB allocated)".into()
        }
        Ok((_, code)) => format!(
            "stopped (exit {})",
            code.map(|c| c.to_string())
                .unwrap_or_else(|| "by signal".into())
        ),
        Err(e) => format!("error: {e}"),
    }
}

/// A listener on the host's 127.0.0.1: can A connect?
pub(crate) async fn network(s: &Scenario) -> String {
    let Some(a) = sandbox(&s.a1) else {
        return NOT_AVAILABLE.into();
    };
    let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(_) => return "probe could not run".into(),
    };
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    let accept = tokio::spawn(async move {
        while let Ok((_sock, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    let cmd = format!(
        "if command -v nc >/dev/null 2>&1; then echo hi | nc -w 2 127.0.0.1 {port}; \
         elif command -v bash >/dev/null 2>&1; then bash -c 'echo hi > /dev/tcp/127.0.0.1/{port}'; \
         else python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {port}), 2)'; fi"
    );
    let result = run(a, &cmd, 10).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    accept.abort();
    match result {
        Err(e) => format!("error: {e}"),
        Ok(_) if accepted.load(Ordering::SeqCst) > 0 => {
            "OPEN: A reached the host's 127.0.0.1".into()
        }
        Ok(_) => "blocked: no connection reached the host".into(),
    }
}

/// A secret file in a host directory outside every workspace.
pub(crate) async fn host_files(s: &Scenario) -> String {
    let Some(a) = sandbox(&s.a1) else {
        return NOT_AVAILABLE.into();
    };
    let dir = PathBuf::from(format!(
        "/var/tmp/sandbay-demo-secret-{}",
        std::process::id()
    ));
    let secret = dir.join("secret.txt");
    if std::fs::create_dir_all(&dir).is_err() || std::fs::write(&secret, b"TOP-SECRET-42").is_err()
    {
        return "probe could not run".into();
    }
    let result = run(a, &format!("cat {}", secret.display()), 10).await;
    let _ = std::fs::remove_dir_all(&dir);
    match result {
        Ok((text, _)) if text.contains("TOP-SECRET-42") => "READABLE: A read a host secret".into(),
        Ok(_) => "hidden: A cannot read host files".into(),
        Err(e) => format!("error: {e}"),
    }
}
