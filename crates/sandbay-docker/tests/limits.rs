//! Bounded attacks inside the container limits: a fork bomb against the
//! process limit, a memory hog against the memory limit, an output flood
//! against the output cap. Each runs in user A's sandbox while user B's
//! keeps working, and A's sandbox is usable afterwards.

mod common;

use std::time::{Duration, Instant};

use sandbay_core::{ExecRequest, Sandbox};
use sandbay_docker::{DockerConfig, DockerSandbox};

async fn pair(
    client: &sandbay_docker::DockerClient,
    config: DockerConfig,
) -> (DockerSandbox, DockerSandbox) {
    let (a, b) = tokio::join!(
        DockerSandbox::create(client, config.clone().with_owner("attacker")),
        DockerSandbox::create(client, config.with_owner("bystander")),
    );
    (a.unwrap(), b.unwrap())
}

/// B runs a quick command while A's attack is under way.
async fn bystander_is_fine(b: &DockerSandbox) {
    let started = Instant::now();
    let out = b.execute(ExecRequest::new("echo fine")).await.unwrap();
    assert_eq!(out.stdout, b"fine\n");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fork_bomb_hits_the_process_limit() {
    let client = require_docker!();
    let guard = common::Guard::new(&client, "forkbomb");
    let (a, b) = pair(&client, guard.config().with_pids_limit(48).with_cpus(0.5)).await;
    let a = std::sync::Arc::new(a);
    let bomb = {
        let a = a.clone();
        tokio::spawn(async move {
            a.execute(
                ExecRequest::new("b() { b | b & }; b; sleep 2; echo survived")
                    .timeout(Duration::from_secs(8)),
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    bystander_is_fine(&b).await;
    let out = bomb.await.unwrap().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("can't fork"),
        "the limit stopped the bomb: {stderr}"
    );
    // the container never held more than its limit
    let pids = std::fs::read_to_string(format!(
        "/sys/fs/cgroup/pids/docker/{}/pids.max",
        a.container_id()
    ));
    if let Ok(max) = pids {
        assert_eq!(max.trim(), "48");
    }
    // A recovers: the bomb's process group is gone
    let out = a.execute(ExecRequest::new("ps | wc -l")).await.unwrap();
    let count: usize = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert!(count < 10, "{count} processes left");
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_hog_hits_the_memory_limit() {
    let client = require_docker!();
    let guard = common::Guard::new(&client, "memhog");
    let (a, b) = pair(&client, guard.config().with_memory_bytes(96 << 20)).await;
    // ~300 MB in one shell variable: the kernel kills it at 96 MiB
    let out = a
        .execute(
            ExecRequest::new("x=$(head -c 300000000 /dev/zero | tr '\\0' a); echo ${#x}")
                .timeout(Duration::from_secs(30)),
        )
        .await
        .unwrap();
    assert!(!out.timed_out);
    assert_ne!(out.exit_code, Some(0), "{out:?}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("300000000"));
    bystander_is_fine(&b).await;
    // the limit held, and A still works
    let out = a
        .execute(ExecRequest::new(
            "cd /sys/fs/cgroup/memory && cat memory.limit_in_bytes && grep oom_kill memory.oom_control",
        ))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("100663296"), "{text}");
    let kills: u64 = lines
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(kills > 0, "the kernel killed the hog at the limit: {text}");
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_flood_is_capped_and_bounded_in_time() {
    let client = require_docker!();
    let guard = common::Guard::new(&client, "flood");
    let (a, b) = pair(&client, guard.config().with_output_limit(256 * 1024)).await;
    let a = std::sync::Arc::new(a);
    let flood = {
        let a = a.clone();
        tokio::spawn(async move {
            a.execute(ExecRequest::new("yes flood; yes flood >&2").timeout(Duration::from_secs(3)))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    bystander_is_fine(&b).await;
    let out = flood.await.unwrap().unwrap();
    assert!(out.timed_out && out.truncated);
    assert_eq!(out.stdout.len(), 256 * 1024);
    assert!(out.stdout.starts_with(b"flood\nflood\n"));
    let out = a.execute(ExecRequest::new("echo calm")).await.unwrap();
    assert_eq!(out.stdout, b"calm\n");
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}
