//! The fixes of the attack review, each attacked for real over loopback:
//! searches that would stall the request threads, clients that never
//! finish their headers or hold every connection, streams that outlive
//! their place among the user's requests, MCP sessions without bound,
//! a user's sessions each with caps of their own.

mod common;

use std::time::Duration;

use common::{ALICE, BOB, Events};
use reqwest::{Method, StatusCode};
use sandbay_testkit::isolation::{procs_with, sleep_marker, wait_until};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(20);

async fn session(s: &common::Running, key: &str, id: &str) {
    let (status, body) = s
        .send(Method::PUT, Some(key), &format!("/v1/sessions/{id}"), None)
        .await;
    assert!(status.is_success(), "{status} {body}");
}

/// Reads until the server closes the connection (or `WAIT` passes);
/// whether it closed.
async fn closed_by_server(stream: &mut tokio::net::TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(WAIT, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue, // a 408, say: the close follows
            Err(_) => return false,
        }
    }
}

#[tokio::test]
async fn a_header_that_never_ends_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(&dir);
    config.connections.header_timeout_ms = 300;
    let s = common::start_in(dir, config).await;
    let mut slow = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    assert!(
        closed_by_server(&mut slow).await,
        "a connection whose header never ended was kept"
    );
    // a connection that says nothing at all is cut off too
    let mut silent = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    assert!(
        closed_by_server(&mut silent).await,
        "a silent connection was kept"
    );
    let (status, _) = s.send(Method::GET, None, "/healthz", None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn connections_beyond_the_cap_are_closed_unread() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(&dir);
    config.connections.max_open = 3;
    config.connections.header_timeout_ms = 60_000;
    let s = common::start_in(dir, config).await;
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(tokio::net::TcpStream::connect(s.addr).await.unwrap());
    }
    // let the server accept them all
    let mut probe = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    probe
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut reply = Vec::new();
    let read = tokio::time::timeout(WAIT, probe.read_to_end(&mut reply)).await;
    assert!(read.is_ok(), "a fourth connection was kept open");
    assert!(
        !String::from_utf8_lossy(&reply).contains("200 OK"),
        "a fourth connection was served: {}",
        String::from_utf8_lossy(&reply)
    );
    // one idle client leaves: a new one is served
    drop(idle.pop());
    let mut served = false;
    for _ in 0..100 {
        let mut c = tokio::net::TcpStream::connect(s.addr).await.unwrap();
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut reply = Vec::new();
        let _ = tokio::time::timeout(WAIT, c.read_to_end(&mut reply)).await;
        if String::from_utf8_lossy(&reply).contains("200 OK") {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(served, "no connection was served after one left");
    let (_, metrics) = {
        let r = s
            .req(Method::GET, Some(common::ADMIN), "/metrics")
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    };
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("sandbay_connections_refused_total ") && !l.ends_with(" 0")),
        "{metrics}"
    );
}

/// `GET /healthz` on a new connection from `source`: whether it was served.
async fn served_from(s: &common::Running, source: &str) -> bool {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let mut c = socket.connect(s.addr).await.unwrap();
    if c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .is_err()
    {
        return false;
    }
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(WAIT, c.read_to_end(&mut reply)).await;
    String::from_utf8_lossy(&reply).contains("200 OK")
}

#[tokio::test]
async fn one_address_cannot_take_every_connection() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(&dir);
    config.connections.max_open = 100;
    config.connections.max_per_peer = 3;
    config.connections.header_timeout_ms = 60_000;
    let s = common::start_in(dir, config).await;
    let mut idle = Vec::new();
    for _ in 0..3 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        idle.push(socket.connect(s.addr).await.unwrap());
    }
    // the flooding address gets no fourth place; another address does
    let mut refused = false;
    for _ in 0..20 {
        if !served_from(&s, "127.0.0.1").await {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "a fourth connection of one address was served");
    assert!(
        served_from(&s, "127.0.0.2").await,
        "another address was refused while one held its share"
    );
    drop(idle);
    let mut served = false;
    for _ in 0..100 {
        if served_from(&s, "127.0.0.1").await {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        served,
        "the address got no place back after its connections closed"
    );
}

#[tokio::test]
async fn a_streamed_reply_holds_its_place_until_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(&dir);
    config.limits.concurrent_per_user = 1;
    let s = common::start_in(dir, config).await;
    if !common::jail_available(&s).await {
        return;
    }
    session(&s, ALICE, "s").await;
    let m = sleep_marker(3600);
    let r = s
        .exec_events(
            ALICE,
            "s",
            json!({"command": format!("echo go; sleep {m}"), "timeout": 600}),
        )
        .await;
    let mut events = Events::new(r);
    assert_eq!(events.next_event(WAIT).await.unwrap().bytes(), b"go\n");
    // the stream is alice's one request in progress
    let (status, body) = s.send(Method::GET, Some(ALICE), "/v1/sessions", None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    // bob has places of his own
    let (status, _) = s.send(Method::GET, Some(BOB), "/v1/sessions", None).await;
    assert_eq!(status, StatusCode::OK);
    drop(events);
    assert!(
        wait_until(WAIT, || procs_with(&m).is_empty()).await,
        "the command outlived its stream"
    );
    let mut freed = false;
    for _ in 0..100 {
        let (status, _) = s.send(Method::GET, Some(ALICE), "/v1/sessions", None).await;
        if status == StatusCode::OK {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(freed, "the place was not given back when the stream ended");
}

/// `initialize` on an MCP endpoint: the status and the session id.
async fn mcp_initialize(
    s: &common::Running,
    key: &str,
    path: &str,
) -> (StatusCode, Option<String>) {
    let r = s
        .req(Method::POST, Some(key), path)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-03-26", "capabilities": {},
                       "clientInfo": {"name": "hardening", "version": "0"}}
        }))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let id = r
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let _ = r.bytes().await;
    (status, id)
}

#[tokio::test]
async fn mcp_sessions_are_capped_per_user_and_streams_hold_their_place() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(&dir);
    config.limits.mcp_sessions_per_user = 2;
    config.limits.concurrent_per_user = 2;
    let s = common::start_in(dir, config).await;
    session(&s, ALICE, "a").await;
    session(&s, ALICE, "b").await;
    // two MCP sessions, over two sandbay sessions
    let (status, first) = mcp_initialize(&s, ALICE, "/v1/sessions/a/mcp").await;
    assert_eq!(status, StatusCode::OK);
    let (status, second) = mcp_initialize(&s, ALICE, "/v1/sessions/b/mcp").await;
    assert_eq!(status, StatusCode::OK);
    let second = second.expect("an MCP session id");
    // a third is refused, on either endpoint
    let (status, _) = mcp_initialize(&s, ALICE, "/v1/sessions/a/mcp").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let (status, _) = mcp_initialize(&s, ALICE, "/v1/mcp?session=c").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // bob is not counted with alice
    let (status, _) = mcp_initialize(&s, BOB, "/v1/mcp").await;
    assert_eq!(status, StatusCode::OK);
    // ending one makes room
    let first = first.expect("an MCP session id");
    let r = s
        .req(Method::DELETE, Some(ALICE), "/v1/sessions/a/mcp")
        .header("mcp-session-id", &first)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let (status, third) = mcp_initialize(&s, ALICE, "/v1/sessions/a/mcp").await;
    assert_eq!(status, StatusCode::OK);
    let third = third.unwrap();

    // an MCP stream (the server's GET stream) holds one of alice's two
    // places for as long as it is open
    let mut held = Vec::new();
    for (path, id) in [
        ("/v1/sessions/a/mcp", &third),
        ("/v1/sessions/b/mcp", &second),
    ] {
        let r = s
            .req(Method::POST, Some(ALICE), path)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", id)
            .json(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
        let _ = r.bytes().await;
        let stream = s
            .req(Method::GET, Some(ALICE), path)
            .header("accept", "text/event-stream")
            .header("mcp-session-id", id)
            .send()
            .await
            .unwrap();
        assert_eq!(stream.status(), StatusCode::OK);
        held.push(stream);
    }
    let (status, body) = s.send(Method::GET, Some(ALICE), "/v1/sessions", None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    drop(held);
    let mut freed = false;
    for _ in 0..100 {
        let (status, _) = s.send(Method::GET, Some(ALICE), "/v1/sessions", None).await;
        if status == StatusCode::OK {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        freed,
        "the places were not given back when the streams closed"
    );
}

#[tokio::test]
async fn a_users_sessions_share_one_jail() {
    let s = common::start().await;
    if !common::jail_available(&s).await {
        return;
    }
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    for (key, id) in [(ALICE, "one"), (ALICE, "two"), (BOB, "one")] {
        session(&s, key, id).await;
    }
    let run = |key: &'static str, id: &'static str, m: String| {
        let req = s
            .req(Method::POST, Some(key), &format!("/v1/sessions/{id}/exec"))
            .json(&json!({"command": format!("sleep {m}"), "timeout": 60}));
        tokio::spawn(async move { req.send().await.map(|r| r.status()) })
    };
    let marks: Vec<String> = (0..3).map(|_| sleep_marker(3600)).collect();
    let runs = [
        run(ALICE, "one", marks[0].clone()),
        run(ALICE, "two", marks[1].clone()),
        run(BOB, "one", marks[2].clone()),
    ];
    assert!(
        wait_until(WAIT, || marks.iter().all(|m| procs_with(m).len() == 1)).await,
        "the sleeps never showed"
    );
    let pid = |m: &String| procs_with(m)[0];
    let uid = |pid: i32| {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap()
            .lines()
            .find_map(|l| {
                l.strip_prefix("Uid:")
                    .map(|v| v.split_whitespace().next().unwrap().to_owned())
            })
            .unwrap()
    };
    // a run's cgroup is a child of its jail's: the jail is the parent path
    let jail_cgroup = |pid: i32| -> Option<String> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        let line = text.lines().find(|l| l.contains(":pids:"))?;
        let path = line.rsplit(':').next()?;
        Some(path.rsplit_once('/')?.0.to_owned())
    };
    let (a1, a2, b1) = (pid(&marks[0]), pid(&marks[1]), pid(&marks[2]));
    let privileged = nix::unistd::geteuid().is_root();
    if privileged {
        assert_eq!(uid(a1), uid(a2), "alice's sessions run as one uid");
        assert_ne!(uid(a1), uid(b1), "bob runs as another uid");
    }
    match (jail_cgroup(a1), jail_cgroup(a2), jail_cgroup(b1)) {
        (Some(x), Some(y), Some(z)) if cgroups.contains(":pids:") && privileged => {
            assert_eq!(x, y, "alice's sessions are in one jail's cgroup");
            assert_ne!(x, z, "bob's jail is another");
        }
        _ => sandbay_testkit::skip::skip("no pids cgroup here to compare jails by"),
    }
    for m in &marks {
        for pid in procs_with(m) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    for r in runs {
        assert_eq!(r.await.unwrap().unwrap(), StatusCode::OK);
    }
}

/// A user's searches over large files run off the request threads: on a
/// server with one request thread, another user's call is answered while
/// they run, before the first of them, and so is another user's search
/// (one user never holds every search place of the host).
#[test]
fn searches_do_not_stall_other_users() {
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = common::config(&dir);
    let s = server_rt.block_on(async { common::start_in(dir, config).await });
    client_rt.block_on(async {
        session(&s, ALICE, "big").await;
        session(&s, BOB, "small").await;
        s.put_file(BOB, "small", "note.txt", b"hello\n".to_vec()).await;
        // 4 files of 8 MiB of text
        let line = "the quick brown fox jumps over the lazy dog 0123456789 abcdefghij\n";
        let body = line.repeat((8 << 20) / line.len()).into_bytes();
        for i in 0..4 {
            assert_eq!(
                s.put_file(ALICE, "big", &format!("f{i}.txt"), body.clone()).await,
                StatusCode::NO_CONTENT
            );
        }
        let grep = |i: usize| {
            let req = s
                .req(Method::POST, Some(ALICE), "/v1/sessions/big/tools/grep")
                .json(&json!({"pattern": format!("(fox|dog) [0-9]+ [a-j]+{i}zz"), "output_mode": "count"}));
            tokio::spawn(async move {
                let r = req.send().await.unwrap();
                let status = r.status();
                let body: Value = r.json().await.unwrap();
                (status, body, std::time::Instant::now())
            })
        };
        let greps: Vec<_> = (0..2).map(grep).collect();
        // let them start
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (status, out) = s
            .send(
                Method::POST,
                Some(BOB),
                "/v1/sessions/small/tools/read_file",
                Some(json!({"file_path": "/note.txt"})),
            )
            .await;
        let bob_done = std::time::Instant::now();
        assert_eq!(status, StatusCode::OK, "{out}");
        assert!(out["text"].as_str().unwrap().contains("hello"), "{out}");
        // alice holds every search place a user may have (2); bob's own
        // search still finds a place of the host's
        let (status, out) = s
            .send(
                Method::POST,
                Some(BOB),
                "/v1/sessions/small/tools/grep",
                Some(json!({"pattern": "hel+o", "output_mode": "count"})),
            )
            .await;
        let bob_searched = std::time::Instant::now();
        assert_eq!(status, StatusCode::OK, "{out}");
        assert_eq!(out["is_error"], false, "{out}");
        let mut firsts = Vec::new();
        for g in greps {
            let (status, body, at) = g.await.unwrap();
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(body["is_error"], false, "{body}");
            firsts.push(at);
        }
        let first_grep = firsts.into_iter().min().unwrap();
        assert!(
            bob_done < first_grep,
            "bob was answered only after alice's first search ({:?} later)",
            bob_done - first_grep
        );
        assert!(
            bob_searched < first_grep,
            "bob's search waited for alice's first search ({:?} later)",
            bob_searched - first_grep
        );
    });
    drop(s);
    drop(server_rt);
}

/// An eviction while an MCP session runs on a session's jail cannot give
/// the user a second jail: MCP and HTTP calls after it run as one uid.
#[tokio::test]
async fn an_eviction_does_not_split_a_user_across_jails() {
    let s = common::start().await;
    if !common::jail_available(&s).await {
        return;
    }
    if !sandbay_testkit::skip::require(if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err("jails get uids of their own only as root")
    }) {
        return;
    }
    session(&s, ALICE, "a").await;
    let (status, sid) = mcp_initialize(&s, ALICE, "/v1/sessions/a/mcp").await;
    assert_eq!(status, StatusCode::OK);
    let sid = sid.expect("an MCP session id");
    let mcp = |body: serde_json::Value| {
        s.req(Method::POST, Some(ALICE), "/v1/sessions/a/mcp")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &sid)
            .json(&body)
            .send()
    };
    let r = mcp(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let (status, body) = s
        .send(Method::POST, Some(common::ADMIN), "/v1/admin/evict", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // a command over HTTP and one over MCP, both running: one host uid
    let (m_http, m_mcp) = (sleep_marker(3600), sleep_marker(3600));
    let http = {
        let req = s
            .req(Method::POST, Some(ALICE), "/v1/sessions/a/exec")
            .json(&json!({"command": format!("sleep {m_http}"), "timeout": 60}));
        tokio::spawn(async move { req.send().await.map(|r| r.status()) })
    };
    let over_mcp = {
        let req = s
            .req(Method::POST, Some(ALICE), "/v1/sessions/a/mcp")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &sid)
            .json(&json!({
                "jsonrpc": "2.0", "id": 2, "method": "tools/call",
                "params": {"name": "execute", "arguments": {"command": format!("sleep {m_mcp}")}}
            }));
        tokio::spawn(async move {
            let r = req.send().await?;
            r.text().await
        })
    };
    let both = wait_until(WAIT, || {
        procs_with(&m_http).len() == 1 && procs_with(&m_mcp).len() == 1
    })
    .await;
    let host_uid = |pid: i32| {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| {
                l.strip_prefix("Uid:")
                    .map(|v| v.split_whitespace().next().unwrap_or("").to_owned())
            })
    };
    let uids = both.then(|| {
        (
            host_uid(procs_with(&m_http)[0]),
            host_uid(procs_with(&m_mcp)[0]),
        )
    });
    for m in [&m_http, &m_mcp] {
        for pid in procs_with(m) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    let _ = http.await;
    let _ = over_mcp.await;
    let (a, b) = uids.expect("both commands ran");
    assert!(a.is_some(), "the host uid of the command is readable");
    assert_eq!(a, b, "after an eviction MCP and HTTP run in one jail");
}
