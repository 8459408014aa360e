//! The warm pool of Docker containers (`sandbay-pool`) against the real
//! daemon: acquiring from an empty pool and from a warm one, ending a
//! lease (the container is removed), and the background refill rate
//! while leases end back to back.
//!
//! Skipped (with a message) when no daemon or no test image is there.
//! Everything made here carries the label `sandbay.bench=pool` and is
//! removed at the end, and at the start in case an earlier run was
//! interrupted.

use std::time::{Duration, Instant};

use sandbay_docker::{DockerClient, DockerConfig, FileMode, PullPolicy, ReapOptions, ReapScope};
use sandbay_pool::{DockerFactory, Pool, PoolConfig};

use super::{Report, Stats};

const SECTION: &str = "pool";
const LABEL: &str = "sandbay.bench";
const LABEL_VALUE: &str = "pool";
/// Places in the pools measured here.
const SIZE: usize = 8;

fn factory(client: &DockerClient) -> DockerFactory {
    let config = DockerConfig::default()
        .with_image(crate::docker_image::IMAGE)
        .with_label(LABEL, LABEL_VALUE)
        .with_owner("bench")
        .with_file_mode(FileMode::Auto)
        .with_pull(PullPolicy::Never);
    DockerFactory::new(client.clone(), config)
}

async fn cleanup(client: &DockerClient) {
    let options = ReapOptions::default()
        .with_label(LABEL, LABEL_VALUE)
        .with_scope(ReapScope::All);
    if let Err(e) = sandbay_docker::reap_orphans(client, &options).await {
        eprintln!("bench pool: clean-up failed: {e}");
    }
}

/// Waits until `min_idle` fresh containers are ready again.
async fn settle(pool: &Pool<DockerFactory>) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while pool.status().idle < pool.config().min_idle {
        assert!(Instant::now() < deadline, "the pool did not refill");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Runs the pool benchmarks, or says why they are skipped.
pub(crate) async fn run(report: &mut Report) {
    let client = match DockerClient::connect().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bench pool: skipped: no Docker daemon ({e})");
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
        eprintln!("bench pool: skipped: {e}; run `cargo xtask docker-image`");
        return;
    }
    cleanup(&client).await;
    cold_and_release(&client, report).await;
    warm(&client, report).await;
    refill(&client, report).await;
    cleanup(&client).await;
}

/// An empty pool: every acquire creates and starts a container; then
/// each lease ends, which waits until its container is removed.
async fn cold_and_release(client: &DockerClient, report: &mut Report) {
    let pool = Pool::new(factory(client), PoolConfig::default().with_max_size(SIZE))
        .expect("a valid pool config");
    let mut leases = Vec::with_capacity(SIZE);
    let mut samples = Vec::with_capacity(SIZE);
    let wall = Instant::now();
    for _ in 0..SIZE {
        let start = Instant::now();
        leases.push(pool.acquire().await.expect("cold acquire"));
        samples.push(start.elapsed());
    }
    report.add(
        SECTION,
        "docker",
        "acquire, cold",
        Stats::from_samples(samples, wall.elapsed()),
        "empty pool: create+start on the caller's path",
    );
    let mut samples = Vec::with_capacity(SIZE);
    let wall = Instant::now();
    for lease in leases.drain(..) {
        let start = Instant::now();
        lease.release().await;
        samples.push(start.elapsed());
    }
    report.add(
        SECTION,
        "docker",
        "release (remove)",
        Stats::from_samples(samples, wall.elapsed()),
        "Lease::release waits until the container is removed; a drop does it in the background",
    );
    pool.shutdown().await;
}

/// A warm pool: every acquire takes a fresh container made ahead of need.
async fn warm(client: &DockerClient, report: &mut Report) {
    let rounds = 5;
    let config = PoolConfig::default()
        .with_max_size(SIZE)
        .with_min_idle(SIZE);
    let pool = Pool::new(factory(client), config).expect("a valid pool config");
    pool.warm().await.expect("warm the pool");
    let mut samples = Vec::with_capacity(rounds * SIZE);
    let mut wall = Duration::ZERO;
    for _ in 0..rounds {
        settle(&pool).await;
        let mut leases = Vec::with_capacity(SIZE);
        let round = Instant::now();
        for _ in 0..SIZE {
            let start = Instant::now();
            leases.push(pool.acquire().await.expect("warm acquire"));
            samples.push(start.elapsed());
        }
        wall += round.elapsed();
        drop(leases);
    }
    let warm_hits = pool.status().warm_acquires;
    assert_eq!(warm_hits as usize, rounds * SIZE, "every acquire was warm");
    report.add(
        SECTION,
        "docker",
        "acquire, warm",
        Stats::from_samples(samples, wall),
        &format!("{SIZE} fresh containers ready, {rounds} rounds"),
    );
    pool.shutdown().await;
}

/// Leases end back to back; each ended container is removed and a fresh
/// one made in its place, in the background. ops/s is the refill rate
/// (fresh containers ready per second); the latencies are the acquires
/// during the stream.
async fn refill(client: &DockerClient, report: &mut Report) {
    let leases = 48;
    let config = PoolConfig::default()
        .with_max_size(SIZE)
        .with_min_idle(SIZE);
    let pool = Pool::new(factory(client), config).expect("a valid pool config");
    pool.warm().await.expect("warm the pool");
    let before = pool.status();
    let mut samples = Vec::with_capacity(leases);
    let wall = Instant::now();
    for _ in 0..leases {
        let start = Instant::now();
        let lease = pool.acquire().await.expect("acquire");
        samples.push(start.elapsed());
        drop(lease);
    }
    settle(&pool).await;
    let wall = wall.elapsed();
    let after = pool.status();
    let made = (after.created - before.created) as usize;
    assert_eq!(made, leases, "one fresh container per ended lease");
    let warm = after.warm_acquires - before.warm_acquires;
    let mut stats = Stats::from_samples(samples, wall);
    stats.ops_per_sec = made as f64 / wall.as_secs_f64();
    report.add(
        SECTION,
        "docker",
        "refill (remove + create)",
        stats,
        &format!(
            "ops/s = fresh containers per second, {SIZE} places, {leases} leases ended back to back \
             ({warm} of the acquires warm); p50/p95 = acquire during the stream"
        ),
    );
    pool.shutdown().await;
}
