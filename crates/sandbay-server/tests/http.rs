//! The API over real HTTP on loopback: tenancy, hostile input, limits,
//! many users at once.

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::{Client, Method, StatusCode};
use sandbay_server::{KeyStore, Server, ServerConfig, ServerLimits};
use serde_json::{Value, json};

const ALICE: &str = "sbk_alice-key";
const BOB: &str = "sbk_bob-key";
const ADMIN: &str = "admin-key";

/// A server on a free loopback port over a fresh data directory.
struct Running {
    base: String,
    client: Client,
    _dir: tempfile::TempDir,
    server: Server,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start_with(limits: ServerLimits, users: &[(&str, &str)]) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig {
        data: dir.path().to_path_buf(),
        limits,
        ..ServerConfig::default()
    };
    let mut keys = KeyStore::default().with_admin_key(Some(ADMIN));
    for (user, key) in users {
        keys.insert(user, key);
    }
    let server = Server::open_with_keys(config, keys).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let serving = server.clone();
    let task = tokio::spawn(async move {
        let _ = serving.serve(listener, std::future::pending()).await;
    });
    Running {
        base: format!("http://{addr}"),
        client: Client::new(),
        _dir: dir,
        server,
        task,
    }
}

async fn start() -> Running {
    start_with(ServerLimits::default(), &[("alice", ALICE), ("bob", BOB)]).await
}

impl Running {
    fn req(&self, method: Method, key: Option<&str>, path: &str) -> reqwest::RequestBuilder {
        let r = self.client.request(method, format!("{}{path}", self.base));
        match key {
            Some(k) => r.bearer_auth(k),
            None => r,
        }
    }

    async fn send(
        &self,
        method: Method,
        key: Option<&str>,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut r = self.req(method, key, path);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status();
        let bytes = resp.bytes().await.unwrap();
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, value)
    }

    async fn put_file(&self, key: &str, session: &str, path: &str, bytes: Vec<u8>) -> StatusCode {
        self.req(
            Method::PUT,
            Some(key),
            &format!("/v1/sessions/{session}/files/{path}"),
        )
        .body(bytes)
        .send()
        .await
        .unwrap()
        .status()
    }

    /// A request with the target sent exactly as given (an HTTP client
    /// would normalise `%2e%2e` and the like before sending).
    async fn raw(&self, method: &str, key: &str, target: &str, body: &[u8]) -> (u16, Value) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let host = self.base.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
        let head = format!(
            "{method} {target} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(body).await.unwrap();
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply).await.unwrap();
        let text = String::from_utf8_lossy(&reply);
        let status: u16 = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }

    async fn get_file(&self, key: &str, session: &str, path: &str) -> (StatusCode, Vec<u8>) {
        let resp = self
            .req(
                Method::GET,
                Some(key),
                &format!("/v1/sessions/{session}/files/{path}"),
            )
            .send()
            .await
            .unwrap();
        (resp.status(), resp.bytes().await.unwrap().to_vec())
    }
}

/// Whether commands can run here; locally a skip, under CI a failure.
async fn jail_available(s: &Running) -> bool {
    let (_, ready) = s.send(Method::GET, None, "/readyz", None).await;
    if ready["isolation"] != "none" {
        return true;
    }
    let ci = matches!(std::env::var("CI").as_deref(), Ok("true" | "1"));
    assert!(
        !ci,
        "CI: this host gives no jail level, commands cannot be tested"
    );
    println!("skipped: no jail level on this host");
    false
}

#[tokio::test]
async fn no_user_reaches_another_users_session() {
    let s = start().await;
    assert_eq!(
        s.send(Method::PUT, Some(ALICE), "/v1/sessions/s1", None)
            .await
            .0,
        StatusCode::CREATED
    );
    assert_eq!(
        s.put_file(ALICE, "s1", "secret.txt", b"alice's secret".to_vec())
            .await,
        StatusCode::NO_CONTENT
    );
    let jail = jail_available(&s).await;
    // every route on alice's session, with bob's key: 404, as if it did not exist
    let routes: Vec<(Method, &str, Option<Value>)> = vec![
        (Method::GET, "/v1/sessions/s1", None),
        (Method::DELETE, "/v1/sessions/s1", None),
        (Method::GET, "/v1/sessions/s1/files/secret.txt", None),
        (Method::DELETE, "/v1/sessions/s1/files/secret.txt", None),
        (Method::GET, "/v1/sessions/s1/files/", None),
        (
            Method::POST,
            "/v1/sessions/s1/tools/read_file",
            Some(json!({"file_path": "/secret.txt"})),
        ),
        (
            Method::POST,
            "/v1/sessions/s1/tools",
            Some(json!({"calls": [{"name": "ls", "arguments": {"path": "/"}}]})),
        ),
        (
            Method::POST,
            "/v1/sessions/s1/exec",
            Some(json!({"command": "cat secret.txt"})),
        ),
    ];
    for (method, path, body) in &routes {
        let (status, err) = s.send(method.clone(), Some(BOB), path, body.clone()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {err}");
        assert_eq!(err["code"], "not_found", "{method} {path}");
        assert!(!err.to_string().contains("alice"), "{method} {path}: {err}");
    }
    assert_eq!(
        s.put_file(BOB, "s1", "secret.txt", b"overwritten".to_vec())
            .await,
        StatusCode::NOT_FOUND
    );
    // bob's list does not show it; his own s1 is his own
    let (_, list) = s.send(Method::GET, Some(BOB), "/v1/sessions", None).await;
    assert_eq!(list["sessions"], json!([]));
    assert_eq!(
        s.send(Method::PUT, Some(BOB), "/v1/sessions/s1", None)
            .await
            .0,
        StatusCode::CREATED
    );
    assert_eq!(
        s.get_file(BOB, "s1", "secret.txt").await.0,
        StatusCode::NOT_FOUND
    );
    if jail {
        let (_, out) = s
            .send(
                Method::POST,
                Some(BOB),
                "/v1/sessions/s1/exec",
                Some(json!({"command": "cat secret.txt; ls -a"})),
            )
            .await;
        assert!(!out["stdout"].as_str().unwrap().contains("secret"), "{out}");
    }
    // nothing of alice's changed
    assert_eq!(
        s.get_file(ALICE, "s1", "secret.txt").await,
        (StatusCode::OK, b"alice's secret".to_vec())
    );
    let (_, list) = s.send(Method::GET, Some(ALICE), "/v1/sessions", None).await;
    assert_eq!(list["sessions"], json!([{"id": "s1", "loaded": true}]));
}

#[tokio::test]
async fn credentials_are_checked_on_every_route() {
    let s = start().await;
    let routes = [
        (Method::GET, "/v1/sessions"),
        (Method::PUT, "/v1/sessions/x"),
        (Method::GET, "/v1/tools"),
        (Method::GET, "/v1/sessions/x/files/a"),
        (Method::POST, "/v1/sessions/x/exec"),
    ];
    for (method, path) in &routes {
        for key in [None, Some("sbk_wrong"), Some(""), Some("Bearer x")] {
            let (status, err) = s.send(method.clone(), key, path, None).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path} {key:?}");
            assert_eq!(err["code"], "unauthorized");
        }
        // the admin key does not act as a user
        let (status, err) = s.send(method.clone(), Some(ADMIN), path, None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}");
        assert_eq!(err["code"], "forbidden");
    }
    // a Basic header is not a bearer key
    let resp = s
        .client
        .get(format!("{}/v1/sessions", s.base))
        .basic_auth("alice", Some(ALICE))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // health needs none
    assert_eq!(
        s.send(Method::GET, None, "/healthz", None).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn hostile_input_gets_typed_errors_and_changes_nothing() {
    let s = start().await;
    s.send(Method::PUT, Some(ALICE), "/v1/sessions/s", None)
        .await;
    s.put_file(ALICE, "s", "keep.txt", b"keep".to_vec()).await;
    // traversal in every encoding
    for path in [
        "%2e%2e/%2e%2e/etc/passwd",
        "..%2f..%2fetc%2fpasswd",
        "a/%2e%2e/%2e%2e/x",
        "a%00b",
        "%ff%fe",
    ] {
        let target = format!("/v1/sessions/s/files/{path}");
        for method in ["GET", "PUT", "DELETE"] {
            let (status, err) = s.raw(method, ALICE, &target, b"x").await;
            assert_eq!(status, 400, "{method} {path}: {err}");
            assert!(
                ["invalid_path", "invalid_argument"].contains(&err["code"].as_str().unwrap_or("")),
                "{method} {path}: {err}"
            );
        }
    }
    // double encoding is a literal name inside the workspace, nothing more
    assert_eq!(
        s.put_file(ALICE, "s", "%252e%252e", b"literal".to_vec())
            .await,
        StatusCode::NO_CONTENT
    );
    let (_, listing) = s
        .send(Method::GET, Some(ALICE), "/v1/sessions/s/files/", None)
        .await;
    let names: Vec<&str> = listing["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["/%2e%2e", "/keep.txt"]);
    // an overlong path
    let long = "a/".repeat(3000);
    let (status, _) = s
        .send(
            Method::GET,
            Some(ALICE),
            &format!("/v1/sessions/s/files/{long}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // bad session ids
    for id in ["..", "%2e%2e", "a%2fb", "%00", "x%20y", "%ff"] {
        let (status, err) = s
            .raw("PUT", ALICE, &format!("/v1/sessions/{id}"), b"")
            .await;
        assert_eq!(status, 400, "{id}: {err}");
    }
    // a session id that climbs reaches no other route
    let (status, _) = s.raw("GET", ALICE, "/v1/sessions/../sessions", b"").await;
    assert_ne!(status, 200);
    // malformed JSON, wrong types, unknown fields, no JSON type
    let exec = format!("{}/v1/sessions/s/exec", s.base);
    for body in [
        "{",
        "[]",
        r#"{"command": 5}"#,
        r#"{"command": "true", "evil": 1}"#,
    ] {
        let resp = s
            .client
            .post(&exec)
            .bearer_auth(ALICE)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{body}");
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["code"], "invalid_argument", "{body}");
    }
    let resp = s
        .client
        .post(&exec)
        .bearer_auth(ALICE)
        .body(r#"{"command": "true"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // an unknown tool, an unknown route
    let (status, err) = s
        .send(
            Method::POST,
            Some(ALICE),
            "/v1/sessions/s/tools/rm_rf",
            Some(json!({})),
        )
        .await;
    assert_eq!(
        (status, err["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (status, err) = s.send(Method::GET, Some(ALICE), "/v1/nothing", None).await;
    assert_eq!(
        (status, err["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    // nothing changed
    assert_eq!(
        s.get_file(ALICE, "s", "keep.txt").await,
        (StatusCode::OK, b"keep".to_vec())
    );
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused_whole() {
    let limits = ServerLimits {
        body_bytes: 64 * 1024,
        ..ServerLimits::default()
    };
    let s = start_with(limits, &[("alice", ALICE)]).await;
    s.send(Method::PUT, Some(ALICE), "/v1/sessions/s", None)
        .await;
    let resp = s
        .req(Method::PUT, Some(ALICE), "/v1/sessions/s/files/big.bin")
        .body(vec![7u8; 64 * 1024 + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["code"], "too_large");
    assert_eq!(
        s.get_file(ALICE, "s", "big.bin").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.put_file(ALICE, "s", "fits.bin", vec![7u8; 64 * 1024])
            .await,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn files_are_binary_safe() {
    let s = start().await;
    s.send(Method::PUT, Some(ALICE), "/v1/sessions/s", None)
        .await;
    let bytes: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    assert_eq!(
        s.put_file(ALICE, "s", "dir/all bytes.bin", bytes.clone())
            .await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        s.get_file(ALICE, "s", "dir/all%20bytes.bin").await,
        (StatusCode::OK, bytes)
    );
    // read_file refuses binary with a typed tool error
    let (status, out) = s
        .send(
            Method::POST,
            Some(ALICE),
            "/v1/sessions/s/tools/read_file",
            Some(json!({"file_path": "/dir/all bytes.bin"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (out["is_error"].as_bool(), out["code"].as_str()),
        (Some(true), Some("binary_file"))
    );
    let resp = s
        .req(Method::DELETE, Some(ALICE), "/v1/sessions/s/files/dir")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        s.get_file(ALICE, "s", "dir/all%20bytes.bin").await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn sessions_are_idempotent_listed_and_deleted_for_good() {
    let s = start().await;
    let (status, info) = s
        .send(Method::PUT, Some(ALICE), "/v1/sessions/a", None)
        .await;
    assert_eq!(
        (status, info["id"].as_str()),
        (StatusCode::CREATED, Some("a"))
    );
    s.put_file(ALICE, "a", "f", b"1".to_vec()).await;
    let (status, _) = s
        .send(Method::PUT, Some(ALICE), "/v1/sessions/a", None)
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the same id reaches the same workspace"
    );
    assert_eq!(s.get_file(ALICE, "a", "f").await.1, b"1");
    s.send(Method::PUT, Some(ALICE), "/v1/sessions/b", None)
        .await;
    let (_, list) = s.send(Method::GET, Some(ALICE), "/v1/sessions", None).await;
    let ids: Vec<&str> = list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a", "b"]);
    assert_eq!(
        s.send(Method::DELETE, Some(ALICE), "/v1/sessions/a", None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        s.send(Method::GET, Some(ALICE), "/v1/sessions/a", None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    // a new session of that name starts empty
    s.send(Method::PUT, Some(ALICE), "/v1/sessions/a", None)
        .await;
    assert_eq!(s.get_file(ALICE, "a", "f").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn per_user_caps_answer_429_with_retry_after() {
    let limits = ServerLimits {
        sessions_per_user: 2,
        concurrent_per_user: 1,
        ..ServerLimits::default()
    };
    let s = start_with(limits, &[("alice", ALICE), ("bob", BOB)]).await;
    for id in ["1", "2"] {
        assert_eq!(
            s.send(
                Method::PUT,
                Some(ALICE),
                &format!("/v1/sessions/{id}"),
                None
            )
            .await
            .0,
            StatusCode::CREATED
        );
    }
    let (status, err) = s
        .send(Method::PUT, Some(ALICE), "/v1/sessions/3", None)
        .await;
    assert_eq!(
        (status, err["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("limit_reached"))
    );
    // bob is not affected by alice's sessions
    assert_eq!(
        s.send(Method::PUT, Some(BOB), "/v1/sessions/1", None)
            .await
            .0,
        StatusCode::CREATED
    );
    if !jail_available(&s).await {
        return;
    }
    // one request in progress at most: a second one meanwhile gets 429
    let slow = s
        .req(Method::POST, Some(ALICE), "/v1/sessions/1/exec")
        .json(&json!({"command": "sleep 2"}))
        .send();
    let second = async {
        tokio::time::sleep(Duration::from_millis(700)).await;
        s.req(Method::GET, Some(ALICE), "/v1/sessions")
            .send()
            .await
            .unwrap()
    };
    let bob = async {
        tokio::time::sleep(Duration::from_millis(700)).await;
        s.req(Method::GET, Some(BOB), "/v1/sessions")
            .send()
            .await
            .unwrap()
    };
    let (slow, second, bob) = tokio::join!(slow, second, bob);
    assert_eq!(slow.unwrap().status(), StatusCode::OK);
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(second.headers()["retry-after"], "1");
    assert_eq!(bob.status(), StatusCode::OK, "another user is not limited");
}

#[tokio::test]
async fn commands_run_in_the_sessions_workspace() {
    let s = start().await;
    if !jail_available(&s).await {
        return;
    }
    s.send(Method::PUT, Some(ALICE), "/v1/sessions/s", None)
        .await;
    s.put_file(ALICE, "s", "in.txt", b"from the api\n".to_vec())
        .await;
    let (status, out) = s
        .send(
            Method::POST,
            Some(ALICE),
            "/v1/sessions/s/exec",
            Some(json!({
                "command": "cat in.txt; echo made > out.txt; printf '\\377'; echo err >&2; exit 3",
                "env": {"X": "1"}
            })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out["exit_code"], 3);
    assert_eq!(out["stderr"], "err\n");
    assert_eq!(out["stdout_base64"], "ZnJvbSB0aGUgYXBpCv8=");
    assert_eq!(
        s.get_file(ALICE, "s", "out.txt").await,
        (StatusCode::OK, b"made\n".to_vec())
    );
    // the timeout is capped by the server's maximum
    let (_, out) = s
        .send(
            Method::POST,
            Some(ALICE),
            "/v1/sessions/s/exec",
            Some(json!({"command": "sleep 30", "timeout": 1})),
        )
        .await;
    assert_eq!(out["timed_out"], true);
    // stdin and a workdir
    s.put_file(ALICE, "s", "sub/keep", b"".to_vec()).await;
    let (_, out) = s
        .send(
            Method::POST,
            Some(ALICE),
            "/v1/sessions/s/exec",
            Some(json!({"command": "pwd; cat", "stdin": "hi", "workdir": "/sub"})),
        )
        .await;
    assert_eq!(out["stdout"].as_str().unwrap().lines().last(), Some("hi"));
}

#[tokio::test]
async fn a_hundred_users_at_once_each_see_only_their_files() {
    let users: Vec<(String, String)> = (0..100)
        .map(|i| (format!("user{i}"), format!("sbk_key-{i}")))
        .collect();
    let pairs: Vec<(&str, &str)> = users
        .iter()
        .map(|(u, k)| (u.as_str(), k.as_str()))
        .collect();
    let s = start_with(ServerLimits::default(), &pairs).await;
    let s = &s;
    let runs = users.iter().enumerate().map(|(i, (_, key))| async move {
        let mut errors = 0;
        let ok = |st: StatusCode| st.is_success();
        if !ok(s
            .send(Method::PUT, Some(key), "/v1/sessions/work", None)
            .await
            .0)
        {
            errors += 1;
        }
        for j in 0..5 {
            let body = format!("user {i} file {j}");
            if !ok(s
                .put_file(key, "work", &format!("f{j}.txt"), body.clone().into_bytes())
                .await)
            {
                errors += 1;
            }
            let (st, got) = s.get_file(key, "work", &format!("f{j}.txt")).await;
            if !ok(st) || got != body.as_bytes() {
                errors += 1;
            }
        }
        let (st, out) = s
            .send(
                Method::POST,
                Some(key),
                "/v1/sessions/work/tools/grep",
                Some(json!({"pattern": "user", "output_mode": "content"})),
            )
            .await;
        let text = out["text"].as_str().unwrap_or("").to_owned();
        let foreign = (0..100)
            .filter(|other| *other != i)
            .any(|other| text.contains(&format!("user {other} ")));
        if !ok(st) || foreign || !text.contains(&format!("user {i} file 4")) {
            errors += 1;
        }
        errors
    });
    let errors: usize = futures_util::future::join_all(runs).await.into_iter().sum();
    assert_eq!(errors, 0);
    drop(s.server.flush().await);
}

#[tokio::test]
async fn admin_routes_need_the_admin_key_and_evict_keeps_files() {
    let s = start().await;
    s.send(Method::PUT, Some(ALICE), "/v1/sessions/a", None)
        .await;
    s.put_file(ALICE, "a", "kept.txt", b"kept".to_vec()).await;
    s.send(Method::PUT, Some(BOB), "/v1/sessions/b", None).await;
    for path in ["/v1/admin/sessions", "/metrics"] {
        assert_eq!(
            s.send(Method::GET, Some(ALICE), path, None).await.0,
            StatusCode::FORBIDDEN,
            "{path}"
        );
        assert_eq!(
            s.send(Method::GET, None, path, None).await.0,
            StatusCode::UNAUTHORIZED,
            "{path}"
        );
    }
    assert_eq!(
        s.send(Method::POST, Some(BOB), "/v1/admin/evict", None)
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    let (status, all) = s
        .send(Method::GET, Some(ADMIN), "/v1/admin/sessions", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        all["sessions"],
        json!([
            {"user": "alice", "id": "a", "loaded": true},
            {"user": "bob", "id": "b", "loaded": true}
        ])
    );
    // evicting ends compute and memory, never files
    let (_, evicted) = s
        .send(Method::POST, Some(ADMIN), "/v1/admin/evict", None)
        .await;
    assert_eq!(evicted["evicted"], 2);
    let (_, all) = s
        .send(Method::GET, Some(ADMIN), "/v1/admin/sessions", None)
        .await;
    assert_eq!(all["sessions"][0]["loaded"], false);
    assert_eq!(
        s.get_file(ALICE, "a", "kept.txt").await,
        (StatusCode::OK, b"kept".to_vec())
    );
    // metrics count what happened
    let text = s
        .req(Method::GET, Some(ADMIN), "/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("sandbay_evictions_total 2"), "{text}");
    assert!(text.contains("sandbay_sessions 2"), "{text}");
    assert!(
        text.contains(
            r#"sandbay_http_requests_total{method="PUT",route="/v1/sessions/{id}",status="201"} 2"#
        ),
        "{text}"
    );
    assert!(
        text.contains("sandbay_http_request_duration_seconds_bucket"),
        "{text}"
    );
    // draining refuses new sessions and reports not ready; existing ones work
    s.send(Method::POST, Some(ADMIN), "/v1/admin/drain", None)
        .await;
    let (status, err) = s
        .send(Method::PUT, Some(ALICE), "/v1/sessions/new", None)
        .await;
    assert_eq!(
        (status, err["code"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("unavailable"))
    );
    assert_eq!(
        s.send(Method::PUT, Some(ALICE), "/v1/sessions/a", None)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        s.send(Method::GET, None, "/readyz", None).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn the_openapi_document_lists_every_route() {
    let s = start().await;
    let (status, doc) = s.send(Method::GET, None, "/v1/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"].as_str().map(|v| &v[..3]), Some("3.1"));
    let paths = doc["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/readyz", &["get"][..]),
        ("/metrics", &["get"]),
        ("/v1/sessions", &["get"]),
        ("/v1/sessions/{id}", &["put", "get", "delete"]),
        ("/v1/tools", &["get"]),
        ("/v1/sessions/{id}/tools", &["post"]),
        ("/v1/sessions/{id}/tools/{name}", &["post"]),
        ("/v1/sessions/{id}/files", &["get"]),
        ("/v1/sessions/{id}/files/{path}", &["get", "put", "delete"]),
        ("/v1/sessions/{id}/exec", &["post"]),
        ("/v1/admin/sessions", &["get"]),
        ("/v1/admin/evict", &["post"]),
        ("/v1/admin/drain", &["post"]),
    ] {
        for m in methods {
            assert!(
                paths.get(path).and_then(|p| p.get(*m)).is_some(),
                "{m} {path} missing"
            );
        }
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    assert!(doc["components"]["schemas"]["ExecBody"]["properties"]["command"].is_object());
}

#[tokio::test]
async fn unknown_methods_add_no_metric_series() {
    let s = start().await;
    for i in 0..20 {
        let method = format!("X{}{i}", "Y".repeat(200));
        let (status, _) = s.raw(&method, ALICE, "/v1/sessions", b"").await;
        assert_ne!(status, 200);
    }
    let text = s
        .req(Method::GET, Some(ADMIN), "/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !text.contains("YYYY"),
        "a method name became a label:\n{text}"
    );
    assert!(text.contains(r#"method="other""#), "{text}");
}

#[tokio::test]
async fn a_session_is_held_to_its_byte_quota() {
    let limits = ServerLimits {
        session_bytes: 1 << 20,
        exec_timeout_max_secs: 2,
        exec_timeout_default_secs: 1,
        ..ServerLimits::default()
    };
    let s = start_with(limits, &[("alice", ALICE)]).await;
    s.send(Method::PUT, Some(ALICE), "/v1/sessions/s", None)
        .await;
    assert_eq!(
        s.put_file(ALICE, "s", "half.bin", vec![1u8; 600 << 10])
            .await,
        StatusCode::NO_CONTENT
    );
    let resp = s
        .req(Method::PUT, Some(ALICE), "/v1/sessions/s/files/more.bin")
        .body(vec![2u8; 600 << 10])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["code"], "quota_exceeded");
    assert_eq!(
        s.get_file(ALICE, "s", "half.bin").await.1.len(),
        600 << 10,
        "nothing lost"
    );
    if !jail_available(&s).await {
        return;
    }
    // a command cannot leave more than the quota either
    let (_, out) = s
        .send(
            Method::POST,
            Some(ALICE),
            "/v1/sessions/s/exec",
            Some(json!({"command": "dd if=/dev/zero of=big bs=1048576 count=4 2>/dev/null; echo done"})),
        )
        .await;
    assert_eq!(out["stdout"], "done\n", "{out}");
    assert!(
        !out["notes"].as_array().unwrap().is_empty(),
        "the refusal is noted: {out}"
    );
    assert_eq!(s.get_file(ALICE, "s", "big").await.0, StatusCode::NOT_FOUND);
    // the tools' execute meets the server's time limits, not its own
    let (_, out) = s
        .send(
            Method::POST,
            Some(ALICE),
            "/v1/sessions/s/tools/execute",
            Some(json!({"command": "sleep 20", "timeout": 30})),
        )
        .await;
    let text = out["text"].as_str().unwrap();
    assert!(text.contains("timed out after 2"), "{text}");
}
