//! `sandbay serve` on the `fs=DIR` and `docker` backends, over real
//! loopback HTTP: files, commands, streamed commands, tenancy, restart
//! (fs), a daemon that goes away and comes back, and nothing left after
//! shutdown (Docker).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{ADMIN, ALICE, BOB, Running};
use reqwest::{Method, StatusCode};
use sandbay_server::BackendChoice;
use serde_json::json;

async fn session(s: &Running, key: &str, id: &str) {
    let (status, body) = s
        .send(Method::PUT, Some(key), &format!("/v1/sessions/{id}"), None)
        .await;
    assert!(status.is_success(), "{status} {body}");
}

/// A `DELETE` that races writes to the same session: afterwards nothing
/// of the session is open or kept, and the same id made again is empty.
/// Returns after `rounds` rounds.
async fn deletes_race_writes(s: &Running, rounds: usize) {
    for round in 0..rounds {
        let id = format!("race{round}");
        session(s, ALICE, &id).await;
        let writers: Vec<_> = (0..6)
            .map(|i| {
                let req = s
                    .req(
                        Method::PUT,
                        Some(ALICE),
                        &format!("/v1/sessions/{id}/files/f{i}"),
                    )
                    .body(vec![b'x'; 256 * 1024]);
                tokio::spawn(async move { req.send().await.map(|r| r.status()) })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis((round % 4) as u64 * 5)).await;
        let (status, body) = s
            .send(
                Method::DELETE,
                Some(ALICE),
                &format!("/v1/sessions/{id}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        for w in writers {
            let status = w.await.unwrap().unwrap();
            assert!(
                status == StatusCode::NO_CONTENT
                    || status == StatusCode::NOT_FOUND
                    || status == StatusCode::CREATED,
                "a racing write got {status}"
            );
        }
        let (status, _) = s
            .send(
                Method::GET,
                Some(ALICE),
                &format!("/v1/sessions/{id}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "deleted means gone");
    }
    let (_, list) = s.send(Method::GET, Some(ALICE), "/v1/sessions", None).await;
    assert!(
        !list.to_string().contains("race"),
        "no raced session is listed: {list}"
    );
    // a deleted id made again starts empty
    for round in 0..rounds {
        let id = format!("race{round}");
        session(s, ALICE, &id).await;
        let (status, listing) = s
            .send(
                Method::GET,
                Some(ALICE),
                &format!("/v1/sessions/{id}/files/"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{listing}");
        assert!(
            !listing.to_string().contains("\"f"),
            "round {round}: files came back after a delete: {listing}"
        );
        let (status, _) = s
            .send(
                Method::DELETE,
                Some(ALICE),
                &format!("/v1/sessions/{id}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
}

/// Files and commands on one workspace, and another user kept out.
async fn files_and_commands(s: &Running) {
    session(s, ALICE, "w").await;
    assert_eq!(
        s.put_file(ALICE, "w", "src/in.txt", b"from the api\n".to_vec())
            .await,
        StatusCode::NO_CONTENT
    );
    let (status, out) = s
        .send(
            Method::POST,
            Some(ALICE),
            "/v1/sessions/w/exec",
            Some(json!({"command": "cat src/in.txt; echo made > out.txt; echo err >&2; exit 3"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out["stdout"], "from the api\n");
    assert_eq!(out["stderr"], "err\n");
    assert_eq!(out["exit_code"], 3);
    assert_eq!(
        s.get_file(ALICE, "w", "out.txt").await,
        (StatusCode::OK, b"made\n".to_vec())
    );
    let (status, out) = s
        .send(
            Method::POST,
            Some(ALICE),
            "/v1/sessions/w/tools/grep",
            Some(json!({"pattern": "made", "output_mode": "files_with_matches"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert!(out["text"].as_str().unwrap().contains("out.txt"), "{out}");
    // bob sees none of it, streamed or not
    assert_eq!(
        s.get_file(BOB, "w", "out.txt").await.0,
        StatusCode::NOT_FOUND
    );
    let r = s.exec_events(BOB, "w", json!({"command": "true"})).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    session(s, BOB, "w").await;
    assert_eq!(
        s.get_file(BOB, "w", "out.txt").await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn fs_backend_serves_files_commands_and_streams() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(&dir);
    config.backend = BackendChoice::Fs(dir.path().join("workspaces"));
    let config_again = config.clone();
    let mut s = common::start_in(dir, config).await;
    if !common::jail_available(&s).await {
        s.stop().await;
        return;
    }
    files_and_commands(&s).await;
    common::chunks_arrive_while_it_runs(&s, ALICE, "w").await;
    common::a_disconnect_leaves_no_process(&s, ALICE, "w").await;
    // a command's file is in the session's host directory at once
    let (_, out) = s
        .send(
            Method::POST,
            Some(ALICE),
            "/v1/sessions/w/exec",
            Some(json!({"command": "echo direct > direct.txt"})),
        )
        .await;
    assert_eq!(out["exit_code"], 0, "{out}");
    // the sessions and their files outlive the server
    s.stop().await;
    let dir = std::mem::replace(&mut s.dir, tempfile::tempdir().unwrap());
    drop(s);
    let mut again = common::start_in(dir, config_again).await;
    let (status, list) = again
        .send(Method::GET, Some(ALICE), "/v1/sessions", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["sessions"][0]["id"], "w", "{list}");
    assert_eq!(
        again.get_file(ALICE, "w", "direct.txt").await,
        (StatusCode::OK, b"direct\n".to_vec())
    );
    // deletes racing writes leave no directory, image or mount behind
    let root = again.dir.path().join("workspaces");
    deletes_race_writes(&again, 12).await;
    let left: Vec<String> = std::fs::read_dir(root.join("alice"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains("race"))
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "left by deleted sessions: {left:?}");
    // (other tests of this binary mount images of their own meanwhile)
    let root_str = std::fs::canonicalize(&root)
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let ours: Vec<&str> = mounts
        .lines()
        .filter(|l| l.contains(root_str.as_str()) && l.contains("race"))
        .collect();
    assert!(
        ours.is_empty(),
        "a deleted session's image is mounted: {ours:?}"
    );
    // deleting a session deletes its directory
    let (status, _) = again
        .send(Method::DELETE, Some(ALICE), "/v1/sessions/w", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        again.get_file(ALICE, "w", "direct.txt").await.0,
        StatusCode::NOT_FOUND
    );
    again.stop().await;
}

/// A TCP proxy to the Docker daemon that can be switched off (its
/// connections cut, new ones refused) and on again: a daemon that goes
/// away and comes back.
struct Proxy {
    addr: std::net::SocketAddr,
    on: Arc<AtomicBool>,
    cut: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(daemon: &str) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let on = Arc::new(AtomicBool::new(true));
        let cut = Arc::new(tokio::sync::Notify::new());
        let daemon = daemon.to_owned();
        let (on2, cut2) = (on.clone(), cut.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if !on2.load(Ordering::SeqCst) {
                    continue; // dropped: refused
                }
                let daemon = daemon.clone();
                let cut = cut2.clone();
                tokio::spawn(async move {
                    let Ok(mut upstream) = tokio::net::TcpStream::connect(&daemon).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
                        () = cut.notified() => {}
                    }
                });
            }
        });
        Proxy {
            addr,
            on,
            cut,
            task,
        }
    }

    fn set(&self, on: bool) {
        self.on.store(on, Ordering::SeqCst);
        if !on {
            self.cut.notify_waiters();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Containers of this owner, running or not.
fn containers_of(owner: &str) -> Vec<String> {
    let out = std::process::Command::new("docker")
        .args(["ps", "-aq", "--filter"])
        .arg(format!("label=sandbay.owner={owner}"))
        .output()
        .expect("the docker command line runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Removes this owner's containers when dropped, even when the test
/// fails, then every mount below the data directory (slots, images).
struct Cleanup(String, std::path::PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for id in containers_of(&self.0) {
            let _ = std::process::Command::new("docker")
                .args(["rm", "-f", &id])
                .output();
        }
        let Ok(base) = std::fs::canonicalize(&self.1) else {
            return;
        };
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut below: Vec<std::path::PathBuf> = info
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .map(std::path::PathBuf::from)
            .filter(|m| m.starts_with(&base))
            .collect();
        below.reverse();
        for m in below {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&m)
                .stderr(std::process::Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

#[tokio::test]
async fn docker_backend_survives_the_daemon_and_leaves_nothing() {
    if !sandbay_testkit::skip::require(sandbay_testkit::docker::check(
        sandbay_testkit::docker::TEST_IMAGE,
    )) {
        return;
    }
    let daemon =
        std::env::var("SANDBAY_TEST_DOCKER_TCP").unwrap_or_else(|_| "127.0.0.1:2375".into());
    if std::net::TcpStream::connect(&daemon).is_err() {
        sandbay_testkit::skip::skip(format!(
            "no Docker daemon on tcp://{daemon} to put a switchable proxy in front of"
        ));
        return;
    }
    let proxy = Proxy::start(&daemon).await;
    let owner = format!("serve-test-{}", sandbay_testkit::isolation::unique());
    let dir = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(owner.clone(), dir.path().to_path_buf());
    let mut config = common::config(&dir);
    config.backend = BackendChoice::Docker;
    config.docker.host = Some(format!("tcp://{}", proxy.addr));
    config.docker.same_machine = Some(true);
    config.docker.image = sandbay_testkit::docker::TEST_IMAGE.into();
    config.docker.owner = owner.clone();
    config.docker.containers = 8;
    // containers counted here are the sessions' own (warm ones: below)
    config.docker.warm = 0;
    let config_again = config.clone();

    // the daemon is away at start-up: sessions are made, files answer 503
    proxy.set(false);
    let mut s = common::start_in(dir, config).await;
    session(&s, ALICE, "w").await;
    let (status, body) = s
        .send(Method::GET, Some(ALICE), "/v1/sessions/w/files/", None)
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["code"], "unavailable");

    // it comes back: the service works without a restart
    proxy.set(true);
    files_and_commands(&s).await;
    common::chunks_arrive_while_it_runs(&s, ALICE, "w").await;
    common::a_disconnect_leaves_no_process(&s, ALICE, "w").await;
    assert_eq!(
        containers_of(&owner).len(),
        2,
        "one container per user session"
    );

    // deletes racing writes leave no container held
    let before = containers_of(&owner).len();
    deletes_race_writes(&s, 4).await;
    let mut now = containers_of(&owner).len();
    for _ in 0..100 {
        if now <= before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        now = containers_of(&owner).len();
    }
    assert!(
        now <= before,
        "{now} containers after the races, {before} before"
    );

    // it goes away under running containers: 503, then a fresh container
    proxy.set(false);
    let (status, body) = s
        .send(
            Method::POST,
            Some(ALICE),
            "/v1/sessions/w/exec",
            Some(json!({"command": "echo hi"})),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    proxy.set(true);
    let mut answered = None;
    for _ in 0..50 {
        let (status, out) = s
            .send(
                Method::POST,
                Some(ALICE),
                "/v1/sessions/w/exec",
                Some(json!({"command": "echo back"})),
            )
            .await;
        if status == StatusCode::OK {
            answered = Some(out);
            break;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{out}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let out = answered.expect("the session never worked again after the daemon came back");
    assert_eq!(out["stdout"], "back\n");
    // the fresh container has the session's files
    let (status, out) = s
        .send(
            Method::POST,
            Some(ALICE),
            "/v1/sessions/w/exec",
            Some(json!({"command": "cat out.txt"})),
        )
        .await;
    assert_eq!(
        (status, &out["stdout"]),
        (StatusCode::OK, &json!("made\n")),
        "{out}"
    );

    // more sessions than containers (8): an idle session's container
    // goes to the next one, its files stay
    for i in 0..10 {
        let id = format!("many{i}");
        session(&s, ALICE, &id).await;
        assert_eq!(
            s.put_file(ALICE, &id, "f.txt", format!("{i}\n").into_bytes())
                .await,
            StatusCode::NO_CONTENT,
            "session {i} got no container"
        );
    }
    for i in 0..10 {
        assert_eq!(
            s.get_file(ALICE, &format!("many{i}"), "f.txt").await,
            (StatusCode::OK, format!("{i}\n").into_bytes())
        );
    }
    assert!(
        containers_of(&owner).len() <= 8 + 1,
        "{:?}",
        containers_of(&owner)
    );

    // an eviction ends the containers, not the files
    let (status, body) = s
        .send(Method::POST, Some(ADMIN), "/v1/admin/evict", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        s.get_file(ALICE, "w", "out.txt").await,
        (StatusCode::OK, b"made\n".to_vec())
    );

    // shutdown removes every container; the files outlive the server
    s.stop().await;
    let left = containers_of(&owner);
    assert!(left.is_empty(), "containers left after shutdown: {left:?}");
    let dir = std::mem::replace(&mut s.dir, tempfile::tempdir().unwrap());
    drop(s);
    let mut again = common::start_in(dir, config_again).await;
    let (status, list) = again
        .send(Method::GET, Some(ALICE), "/v1/sessions", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        list["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["id"] == "w"),
        "{list}"
    );
    let (status, out) = again
        .send(
            Method::POST,
            Some(ALICE),
            "/v1/sessions/w/exec",
            Some(json!({"command": "cat out.txt src/in.txt"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(
        out["stdout"], "made\nfrom the api\n",
        "files after a restart"
    );
    // deleting a session deletes its files
    let (status, _) = again
        .send(Method::DELETE, Some(ALICE), "/v1/sessions/w", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    session(&again, ALICE, "w").await;
    assert_eq!(
        again.get_file(ALICE, "w", "out.txt").await.0,
        StatusCode::NOT_FOUND
    );
    let data = std::fs::canonicalize(again.dir.path()).unwrap();
    again.stop().await;
    let left = containers_of(&owner);
    assert!(left.is_empty(), "containers left after shutdown: {left:?}");
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mounted: Vec<&str> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| std::path::Path::new(m).starts_with(&data))
        .collect();
    assert!(
        mounted.is_empty(),
        "mounts left after shutdown: {mounted:?}"
    );
}

/// `docker.warm`: fresh containers wait in the background, a new
/// session's first command runs on one of them (its workspace mounted
/// onto it), the pool refills, and a stopped server leaves none behind.
#[tokio::test]
async fn docker_sessions_start_on_warm_containers() {
    if !sandbay_testkit::skip::require(sandbay_testkit::docker::check(
        sandbay_testkit::docker::TEST_IMAGE,
    )) {
        return;
    }
    let owner = format!("serve-warm-{}", sandbay_testkit::isolation::unique());
    let dir = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(owner.clone(), dir.path().to_path_buf());
    let mut config = common::config(&dir);
    config.backend = BackendChoice::Docker;
    config.docker.image = sandbay_testkit::docker::TEST_IMAGE.into();
    config.docker.owner = owner.clone();
    config.docker.containers = 8;
    config.docker.warm = 2;
    let mut s = common::start_in(dir, config).await;
    let settle = |want: usize| {
        let owner = owner.clone();
        async move {
            let mut now = containers_of(&owner).len();
            for _ in 0..150 {
                if now == want {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                now = containers_of(&owner).len();
            }
            now
        }
    };
    // the first session connects to the daemon and starts the pool
    session(&s, ALICE, "one").await;
    let (status, out) = s
        .send(
            Method::POST,
            Some(ALICE),
            "/v1/sessions/one/exec",
            Some(json!({"command": "echo one > f.txt; cat f.txt"})),
        )
        .await;
    assert_eq!(
        (status, &out["stdout"]),
        (StatusCode::OK, &json!("one\n")),
        "{out}"
    );
    assert_eq!(settle(3).await, 3, "alice's container and 2 warm ones");
    // a warm container is handed out once it runs and its agent answers
    for _ in 0..100 {
        let running = std::process::Command::new("docker")
            .args(["ps", "-q", "--filter", "status=running", "--filter"])
            .arg(format!("label=sandbay.owner={owner}"))
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).lines().count())
            .unwrap_or(0);
        if running == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let warm: std::collections::BTreeSet<String> = containers_of(&owner).into_iter().collect();
    // bob's new session runs on a container that was already there
    session(&s, BOB, "two").await;
    let (status, out) = s
        .send(
            Method::POST,
            Some(BOB),
            "/v1/sessions/two/exec",
            Some(json!({"command": "cat /proc/self/cgroup"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    // the container bob's command ran in (its id is in its cgroup paths)
    // is one that was waiting before his session began
    let cgroups = out["stdout"].as_str().unwrap_or_default();
    assert!(
        warm.iter()
            .any(|id| cgroups.contains(&format!("/docker/{id}"))),
        "bob ran in none of {warm:?}: {cgroups}"
    );
    assert_eq!(
        settle(4).await,
        4,
        "two sessions' containers and 2 warm ones"
    );
    s.stop().await;
    assert_eq!(settle(0).await, 0, "a stopped server leaves no container");
}
