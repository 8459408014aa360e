//! The Docker backend against the real daemon: container lifecycle,
//! command round trips through the agent, file operations in both
//! file modes, and 8 concurrent users.
//!
//! Skipped (with a message) when no daemon or no test image is there:
//! `.ci/docker-setup.sh` provides both. Everything made here carries the
//! label `sandbay.bench` and is removed at the end, and at the start in
//! case an earlier run was interrupted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sandbay_core::{Backend, BackendExt, ExecRequest, Sandbox, VPath};
use sandbay_docker::{
    AttachMode, DockerClient, DockerConfig, DockerSandbox, FileMode, PullPolicy, ReapOptions,
    ReapScope, WorkspaceSlots,
};

use super::{Report, Stats};

const SECTION: &str = "docker";
const LABEL: &str = "sandbay.bench";

fn config(mode: FileMode) -> DockerConfig {
    DockerConfig::default()
        .with_image(crate::docker_image::IMAGE)
        .with_label(LABEL, "1")
        .with_owner("bench")
        .with_file_mode(mode)
        .with_pull(PullPolicy::Never)
}

fn mode_name(mode: FileMode) -> &'static str {
    match mode {
        FileMode::Bind => "bind",
        _ => "container",
    }
}

async fn cleanup(client: &DockerClient) {
    let options = ReapOptions::default()
        .with_label(LABEL, "1")
        .with_scope(ReapScope::All);
    if let Err(e) = sandbay_docker::reap_orphans(client, &options).await {
        eprintln!("bench docker: clean-up failed: {e}");
    }
}

/// Times `n` runs of `op`, one after the other.
async fn timed<F, Fut>(n: usize, mut op: F) -> Stats
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut samples = Vec::with_capacity(n);
    let wall = Instant::now();
    for i in 0..n {
        let start = Instant::now();
        op(i).await;
        samples.push(start.elapsed());
    }
    Stats::from_samples(samples, wall.elapsed())
}

/// Container create+start and shutdown, `n` of each.
async fn lifecycle(client: &DockerClient, mode: FileMode, report: &mut Report) {
    let n = 20;
    let mut made = Vec::with_capacity(n);
    let mut samples = Vec::with_capacity(n);
    let wall = Instant::now();
    for _ in 0..n {
        let start = Instant::now();
        let sb = DockerSandbox::create(client, config(mode))
            .await
            .expect("create a sandbox");
        samples.push(start.elapsed());
        made.push(sb);
    }
    let stats = Stats::from_samples(samples, wall.elapsed());
    let note = format!("{} files; until files and commands work", mode_name(mode));
    report.add(SECTION, mode_name(mode), "create+start", stats, &note);
    // first command on a fresh sandbox (the agent is the main process)
    let stats = timed(n, |i| {
        let sb = &made[i];
        async move {
            sb.execute(ExecRequest::new("true"))
                .await
                .expect("first command");
        }
    })
    .await;
    report.add(
        SECTION,
        mode_name(mode),
        "first command",
        stats,
        "right after create",
    );
    let stats = timed(n, |i| {
        let sb = &made[i];
        async move {
            sb.shutdown().await.expect("shutdown");
        }
    })
    .await;
    report.add(
        SECTION,
        mode_name(mode),
        "shutdown",
        stats,
        "container (and volume or dir) removed",
    );
}

/// Command round trips through the agent: one at a time, and four at once
/// on one sandbox.
async fn commands(client: &DockerClient, report: &mut Report) {
    let sb = DockerSandbox::create(client, config(FileMode::Auto))
        .await
        .expect("create a sandbox");
    // warm up
    for _ in 0..3 {
        sb.execute(ExecRequest::new("true")).await.expect("warm-up");
    }
    let stats = timed(300, |_| {
        let sb = &sb;
        async move {
            let out = sb.execute(ExecRequest::new("echo hi")).await.expect("echo");
            assert_eq!(out.stdout, b"hi\n");
        }
    })
    .await;
    report.add(
        SECTION,
        "agent",
        "command round trip",
        stats,
        "`echo hi` through sandbay-agent, one at a time",
    );
    let stats = timed(50, |_| {
        let sb = &sb;
        async move {
            let run = || sb.execute(ExecRequest::new("echo hi"));
            let (a, b, c, d) = tokio::join!(run(), run(), run(), run());
            for out in [a, b, c, d] {
                assert_eq!(out.expect("echo").stdout, b"hi\n");
            }
        }
    })
    .await;
    report.add(
        SECTION,
        "agent",
        "4 commands at once",
        stats,
        "`echo hi` x4 on one sandbox, side by side",
    );
    sb.shutdown().await.expect("shutdown");
}

/// File operations on one sandbox per mode.
async fn files(client: &DockerClient, mode: FileMode, report: &mut Report) {
    let sb = DockerSandbox::create(client, config(mode))
        .await
        .expect("create a sandbox");
    let subject = mode_name(mode);
    let big: Vec<u8> = (0..1 << 20).map(|i: u32| b'a' + (i % 26) as u8).collect();
    let p = |s: String| VPath::parse(&s).expect("bench path");
    let stats = timed(20, |i| {
        let (sb, big) = (&sb, big.clone());
        async move {
            sb.write_bytes(&p(format!("/big/{i}.bin")), big)
                .await
                .expect("write 1 MiB");
        }
    })
    .await;
    report.add(SECTION, subject, "write 1 MiB", stats, "one file per op");
    let stats = timed(20, |i| {
        let sb = &sb;
        async move {
            let bytes = sb
                .read_bytes(&p(format!("/big/{i}.bin")))
                .await
                .expect("read 1 MiB");
            assert_eq!(bytes.len(), 1 << 20);
        }
    })
    .await;
    report.add(SECTION, subject, "read 1 MiB", stats, "one file per op");

    let small = |i: usize| format!("small file {i}\n").repeat(8);
    let stats = timed(100, |i| {
        let sb = &sb;
        async move {
            sb.write(&p(format!("/small/{i}.txt")), &small(i))
                .await
                .expect("write small");
        }
    })
    .await;
    report.add(
        SECTION,
        subject,
        "write small file",
        stats,
        "100 files, ~120 B, one per op",
    );
    let stats = timed(100, |i| {
        let sb = &sb;
        async move {
            let w = sb
                .read(&p(format!("/small/{i}.txt")), Default::default())
                .await
                .expect("read small");
            assert_eq!(w.total_lines, 8);
        }
    })
    .await;
    report.add(
        SECTION,
        subject,
        "read small file",
        stats,
        "100 files, line window, one per op",
    );
    let batch: Vec<(VPath, Vec<u8>)> = (0..100)
        .map(|i| (p(format!("/batch/{i}.txt")), small(i).into_bytes()))
        .collect();
    let paths: Vec<VPath> = batch.iter().map(|(p, _)| p.clone()).collect();
    let stats = timed(10, |_| {
        let (sb, batch) = (&sb, batch.clone());
        async move {
            let results = sb.upload(batch).await;
            assert!(results.iter().all(Result::is_ok));
        }
    })
    .await;
    report.add(
        SECTION,
        subject,
        "upload 100 files",
        stats,
        "one batch call",
    );
    let stats = timed(10, |_| {
        let (sb, paths) = (&sb, &paths);
        async move {
            let results = sb.download(paths).await;
            assert!(results.iter().all(Result::is_ok));
        }
    })
    .await;
    report.add(
        SECTION,
        subject,
        "download 100 files",
        stats,
        "one batch call",
    );
    sb.shutdown().await.expect("shutdown");
}

/// A returning user's first command on a warm container: the user's
/// workspace (100 files of an earlier container's uid) is attached to a
/// running container's slot, then `true` runs. Containers are made ahead
/// (as a pool would), untimed; detach and removal are untimed too.
async fn attach(client: &DockerClient, report: &mut Report) {
    let base = std::env::temp_dir().join(format!("sandbay-bench-attach-{}", std::process::id()));
    let slots_dir = base.join("slots");
    let (slots, _) = match WorkspaceSlots::prepare(client, &slots_dir).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("bench docker: attach skipped: {e}");
            return;
        }
    };
    if slots.mode() != AttachMode::Mount {
        eprintln!("bench docker: attach skipped: workspaces cannot be mounted here (not root)");
        let _ = std::fs::remove_dir_all(&base);
        return;
    }
    let ws = base.join("ws/user");
    std::fs::create_dir_all(&ws).expect("bench workspace");
    for i in 0..100 {
        std::fs::write(ws.join(format!("f{i}.txt")), format!("file {i}\n")).expect("seed file");
    }
    let n = 30;
    let mut warm = Vec::with_capacity(n);
    for _ in 0..n {
        warm.push(
            DockerSandbox::create_warm(client, config(FileMode::Auto), &slots)
                .await
                .expect("warm container"),
        );
    }
    let mut samples = Vec::with_capacity(n);
    let wall = Instant::now();
    for sb in &warm {
        let start = Instant::now();
        sb.attach_workspace(&ws).await.expect("attach");
        let out = sb
            .execute(ExecRequest::new("cat f7.txt"))
            .await
            .expect("first command");
        samples.push(start.elapsed());
        assert_eq!(out.stdout, b"file 7\n");
        sb.detach_workspace().await.expect("detach");
    }
    let stats = Stats::from_samples(samples, wall.elapsed());
    report.add(
        SECTION,
        "attach",
        "attach + first command",
        stats,
        "a returning user on a warm container: mount onto its slot (100 files handed to its uid), `cat`",
    );
    for sb in warm {
        sb.shutdown().await.expect("shutdown");
    }
    let _ = std::process::Command::new("umount")
        .arg(&slots_dir)
        .status();
    let _ = std::fs::remove_dir_all(&base);
}

/// 8 users at once: each creates a sandbox, runs 20 commands, shuts down.
///
/// Each row's latencies are the single operations; its throughput counts
/// that operation's samples over the span of that phase (first start to
/// last end across the 8 users), not over the whole run.
async fn concurrent_users(client: &DockerClient, report: &mut Report) {
    let users = 8;
    let commands = 20;
    let wall = Instant::now();
    let mut tasks = Vec::new();
    for u in 0..users {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut phases = UserPhases::default();
            let started = Instant::now();
            let sb = DockerSandbox::create(
                &client,
                config(FileMode::Auto).with_owner(format!("user-{u}")),
            )
            .await
            .expect("create");
            phases.create.push(started, Instant::now());
            for c in 0..commands {
                let t = Instant::now();
                let out = sb
                    .execute(ExecRequest::new(format!("echo {u}-{c}")))
                    .await
                    .expect("command");
                assert_eq!(out.stdout, format!("{u}-{c}\n").into_bytes());
                phases.command.push(t, Instant::now());
            }
            let t = Instant::now();
            sb.shutdown().await.expect("shutdown");
            let done = Instant::now();
            phases.shutdown.push(t, done);
            phases.session.push(started, done);
            phases
        }));
    }
    let mut all = UserPhases::default();
    for t in tasks {
        all.merge(t.await.expect("user task"));
    }
    let wall = wall.elapsed();
    for (op, phase) in [
        ("session", all.session),
        ("create+start", all.create),
        ("command", all.command),
        ("shutdown", all.shutdown),
    ] {
        let span = phase.span();
        let note = format!(
            "{users} users at once; ops/s over this phase's span {:.0} ms (whole run {:.0} ms)",
            span.as_secs_f64() * 1e3,
            wall.as_secs_f64() * 1e3
        );
        report.add(
            SECTION,
            "8 users",
            op,
            Stats::from_samples(phase.samples, span),
            &note,
        );
    }
}

/// One phase's timings across users: each sample, and the span from the
/// first start to the last end.
#[derive(Default)]
struct Phase {
    samples: Vec<Duration>,
    first: Option<Instant>,
    last: Option<Instant>,
}

impl Phase {
    fn push(&mut self, start: Instant, end: Instant) {
        self.samples.push(end - start);
        self.first = Some(self.first.map_or(start, |f| f.min(start)));
        self.last = Some(self.last.map_or(end, |l| l.max(end)));
    }

    fn merge(&mut self, other: Phase) {
        self.samples.extend(other.samples);
        self.first = match (self.first, other.first) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last = match (self.last, other.last) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }

    fn span(&self) -> Duration {
        match (self.first, self.last) {
            (Some(f), Some(l)) => l - f,
            _ => Duration::ZERO,
        }
    }
}

#[derive(Default)]
struct UserPhases {
    session: Phase,
    create: Phase,
    command: Phase,
    shutdown: Phase,
}

impl UserPhases {
    fn merge(&mut self, other: UserPhases) {
        self.session.merge(other.session);
        self.create.merge(other.create);
        self.command.merge(other.command);
        self.shutdown.merge(other.shutdown);
    }
}

/// Runs the Docker benchmarks, or says why they are skipped.
pub(crate) async fn run(report: &mut Report) {
    let client = match DockerClient::connect().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bench docker: skipped: no Docker daemon ({e})");
            return;
        }
    };
    if let Err(e) = sandbay_docker::ensure_image(
        &client,
        crate::docker_image::IMAGE,
        PullPolicy::Never,
        |_| {},
    )
    .await
    {
        eprintln!("bench docker: skipped: {e}; run `cargo xtask docker-image`");
        return;
    }
    cleanup(&client).await;
    let client = Arc::new(client);
    let modes: Vec<FileMode> = if client.is_local() {
        vec![FileMode::Bind, FileMode::Container]
    } else {
        vec![FileMode::Container]
    };
    for &mode in &modes {
        lifecycle(&client, mode, report).await;
    }
    commands(&client, report).await;
    attach(&client, report).await;
    for &mode in &modes {
        files(&client, mode, report).await;
    }
    concurrent_users(&client, report).await;
    cleanup(&client).await;
}
