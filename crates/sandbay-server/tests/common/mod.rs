//! A server on loopback for the streaming, backend and hardening suites,
//! and a server-sent events reader.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::{Client, Method, StatusCode};
use sandbay_server::{KeyStore, Server, ServerConfig};
use sandbay_testkit::isolation::{procs_with, sleep_marker, wait_gone, wait_until};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

pub(crate) const ALICE: &str = "sbk_alice-key";
pub(crate) const BOB: &str = "sbk_bob-key";
pub(crate) const ADMIN: &str = "admin-key";

/// A server on a free loopback port.
#[derive(Debug)]
pub(crate) struct Running {
    pub(crate) base: String,
    pub(crate) addr: SocketAddr,
    pub(crate) client: Client,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) server: Server,
    pub(crate) task: Option<tokio::task::JoinHandle<()>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The configuration of a test server over `dir`.
pub(crate) fn config(dir: &tempfile::TempDir) -> ServerConfig {
    ServerConfig {
        data: dir.path().join("data"),
        ..ServerConfig::default()
    }
}

/// Starts a server with `config` (its data directory under `dir`).
pub(crate) async fn start_in(dir: tempfile::TempDir, config: ServerConfig) -> Running {
    let mut keys = KeyStore::default().with_admin_key(Some(ADMIN));
    keys.insert("alice", ALICE);
    keys.insert("bob", BOB);
    let server = Server::open_with_keys(config, keys).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let serving = server.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = serving
            .serve(listener, async move {
                let _ = stopped.await;
            })
            .await;
    });
    Running {
        base: format!("http://{addr}"),
        addr,
        client: Client::new(),
        dir,
        server,
        task: Some(task),
        stop: Some(stop),
    }
}

/// Starts a server with the default configuration over a new directory.
pub(crate) async fn start() -> Running {
    let dir = tempfile::tempdir().unwrap();
    let config = config(&dir);
    start_in(dir, config).await
}

impl Running {
    pub(crate) fn req(
        &self,
        method: Method,
        key: Option<&str>,
        path: &str,
    ) -> reqwest::RequestBuilder {
        let r = self.client.request(method, format!("{}{path}", self.base));
        match key {
            Some(k) => r.bearer_auth(k),
            None => r,
        }
    }

    pub(crate) async fn send(
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
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    pub(crate) async fn put_file(
        &self,
        key: &str,
        session: &str,
        path: &str,
        bytes: Vec<u8>,
    ) -> StatusCode {
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

    pub(crate) async fn get_file(
        &self,
        key: &str,
        session: &str,
        path: &str,
    ) -> (StatusCode, Vec<u8>) {
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

    /// `POST .../exec` asking for an event stream.
    pub(crate) async fn exec_events(
        &self,
        key: &str,
        session: &str,
        body: Value,
    ) -> reqwest::Response {
        self.req(
            Method::POST,
            Some(key),
            &format!("/v1/sessions/{session}/exec"),
        )
        .header("accept", "text/event-stream")
        .json(&body)
        .send()
        .await
        .unwrap()
    }

    /// Stops serving (graceful end, then the server's shutdown) and waits.
    pub(crate) async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// Whether commands can run here; locally a skip, under CI a failure.
pub(crate) async fn jail_available(s: &Running) -> bool {
    let (_, ready) = s.send(Method::GET, None, "/readyz", None).await;
    if ready["isolation"] != "none" {
        return true;
    }
    sandbay_testkit::skip::skip("this host gives no jail level, commands cannot be tested");
    false
}

/// One server-sent event: its name (`None` for a comment) and data.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sse {
    pub(crate) event: Option<String>,
    pub(crate) data: String,
}

impl Sse {
    /// The data as JSON.
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or(Value::Null)
    }

    /// The bytes of a `stdout`/`stderr` event (`text` or `base64`).
    pub(crate) fn bytes(&self) -> Vec<u8> {
        use base64::Engine;
        let v = self.json();
        match (v["text"].as_str(), v["base64"].as_str()) {
            (Some(t), _) => t.as_bytes().to_vec(),
            (None, Some(b)) => base64::engine::general_purpose::STANDARD.decode(b).unwrap(),
            _ => panic!("a chunk event without text or base64: {self:?}"),
        }
    }
}

/// Reads server-sent events off a response as they come.
#[derive(Debug)]
pub(crate) struct Events {
    response: reqwest::Response,
    buffer: String,
}

impl Events {
    pub(crate) fn new(response: reqwest::Response) -> Events {
        assert_eq!(response.status(), StatusCode::OK);
        let kind = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(kind.starts_with("text/event-stream"), "{kind}");
        Events {
            response,
            buffer: String::new(),
        }
    }

    /// The next event or comment, within `within`; `None` at the end.
    pub(crate) async fn next(&mut self, within: Duration) -> Option<Sse> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = None;
                let mut data = Vec::new();
                let mut comment = false;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = Some(v.trim_start().to_owned());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push(v.strip_prefix(' ').unwrap_or(v).to_owned());
                    } else if line.starts_with(':') {
                        comment = true;
                    }
                }
                if event.is_none() && data.is_empty() && !comment {
                    continue;
                }
                return Some(Sse {
                    event,
                    data: data.join("\n"),
                });
            }
            let chunk = tokio::time::timeout(within, self.response.chunk())
                .await
                .expect("no event within the wait")
                .expect("the event stream broke")?;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// The next event that is not a comment.
    pub(crate) async fn next_event(&mut self, within: Duration) -> Option<Sse> {
        loop {
            let e = self.next(within).await?;
            if e.event.is_some() {
                return Some(e);
            }
        }
    }
}

/// The first chunk is in while the command's `sleep` still runs; the rest
/// and the `exit` event come once the sleep is killed from outside.
pub(crate) async fn chunks_arrive_while_it_runs(s: &Running, key: &str, id: &str) {
    let m = sleep_marker(3600);
    let response = s
        .exec_events(
            key,
            id,
            json!({"command": format!("echo first; {{ sleep {m}; }} 2>/dev/null; printf 'second\\377'; echo err >&2; exit 4"), "timeout": 60}),
        )
        .await;
    let mut events = Events::new(response);
    let first = events.next_event(WAIT).await.expect("a first event");
    assert_eq!(first.event.as_deref(), Some("stdout"), "{first:?}");
    assert_eq!(first.bytes(), b"first\n");
    assert!(
        wait_until(WAIT, || procs_with(&m).len() == 1).await,
        "the command is not running while its first chunk is in"
    );
    for pid in procs_with(&m) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let exit = loop {
        let e = events
            .next_event(WAIT)
            .await
            .expect("the stream ended before its exit");
        match e.event.as_deref() {
            Some("stdout") => stdout.extend(e.bytes()),
            Some("stderr") => stderr.extend(e.bytes()),
            Some("exit") => break e.json(),
            other => panic!("unexpected event {other:?}: {e:?}"),
        }
    };
    assert_eq!(stdout, b"second\xff");
    assert_eq!(stderr, b"err\n");
    assert_eq!(exit["exit_code"], 4, "{exit}");
    assert_eq!(exit["timed_out"], false);
    assert!(exit["duration_ms"].is_u64());
    assert!(events.next(WAIT).await.is_none(), "events after the exit");
}

/// A client that closes the connection mid-stream ends the command's
/// whole tree (a background child too); the session runs the next one.
pub(crate) async fn a_disconnect_leaves_no_process(s: &Running, key: &str, id: &str) {
    let m = sleep_marker(3600);
    let response = s
        .exec_events(
            key,
            id,
            json!({"command": format!("echo go; sleep {m} & sleep {m}; wait"), "timeout": 600}),
        )
        .await;
    let mut events = Events::new(response);
    let first = events.next_event(WAIT).await.expect("a first event");
    assert_eq!(first.bytes(), b"go\n");
    assert!(
        wait_until(WAIT, || procs_with(&m).len() == 2).await,
        "the sleeps never showed on the host"
    );
    drop(events);
    let left = wait_gone(WAIT, &m).await;
    assert!(
        left.is_empty(),
        "processes survived the disconnect: {left:?}"
    );
    let (status, out) = s
        .send(
            Method::POST,
            Some(key),
            &format!("/v1/sessions/{id}/exec"),
            Some(json!({"command": "echo alive"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out["stdout"], "alive\n");
}
