//! `POST /v1/sessions/{id}/exec` with `Accept: text/event-stream` over
//! real loopback HTTP, on the embedded default: chunks arrive while the
//! command runs, a client that goes away ends the command's tree, another
//! user's session is a 404 here too.

mod common;

use std::time::Duration;

use common::{ALICE, BOB, Events, Running};
use reqwest::{Method, StatusCode};
use sandbay_testkit::isolation::{procs_with, sleep_marker, wait_until};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);

async fn session(s: &Running, key: &str, id: &str) {
    let (status, body) = s
        .send(Method::PUT, Some(key), &format!("/v1/sessions/{id}"), None)
        .await;
    assert!(status.is_success(), "{status} {body}");
}

#[tokio::test]
async fn sse_chunks_arrive_before_the_end() {
    let s = common::start().await;
    if !common::jail_available(&s).await {
        return;
    }
    session(&s, ALICE, "s").await;
    common::chunks_arrive_while_it_runs(&s, ALICE, "s").await;
}

#[tokio::test]
async fn sse_disconnect_leaves_no_process() {
    let s = common::start().await;
    if !common::jail_available(&s).await {
        return;
    }
    session(&s, ALICE, "s").await;
    common::a_disconnect_leaves_no_process(&s, ALICE, "s").await;
}

#[tokio::test]
async fn sse_is_scoped_to_the_caller_and_checks_input() {
    let s = common::start().await;
    if !common::jail_available(&s).await {
        return;
    }
    session(&s, ALICE, "mine").await;
    // another user's session: 404, as JSON, before any stream
    let r = s
        .exec_events(BOB, "mine", json!({"command": "echo never"}))
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "not_found");
    // no key
    let r = s
        .req(Method::POST, None, "/v1/sessions/mine/exec")
        .header("accept", "text/event-stream")
        .json(&json!({"command": "echo never"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // a start error is an HTTP error, not an event
    let r = s
        .exec_events(
            ALICE,
            "mine",
            json!({"command": "true", "workdir": "/missing"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "not_found");
    // the files a streamed command makes are stored
    let r = s
        .exec_events(ALICE, "mine", json!({"command": "echo made > out.txt"}))
        .await;
    let mut events = Events::new(r);
    let exit = events.next_event(WAIT).await.unwrap();
    assert_eq!(exit.event.as_deref(), Some("exit"), "{exit:?}");
    assert_eq!(exit.json()["exit_code"], 0);
    assert_eq!(
        s.get_file(ALICE, "mine", "out.txt").await,
        (StatusCode::OK, b"made\n".to_vec())
    );
}

#[tokio::test]
async fn quiet_streams_get_keep_alives() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(&dir);
    config.limits.sse_keepalive_ms = 100;
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
            json!({"command": format!("{{ sleep {m}; }} 2>/dev/null; echo late")}),
        )
        .await;
    let mut events = Events::new(r);
    // while the command is quiet, comments come
    let first = events.next(WAIT).await.unwrap();
    assert_eq!(first.event, None, "a keep-alive comment first: {first:?}");
    assert!(
        wait_until(WAIT, || procs_with(&m).len() == 1).await,
        "the command's sleep never showed"
    );
    for pid in procs_with(&m) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let late = events.next_event(WAIT).await.unwrap();
    assert_eq!(late.bytes(), b"late\n");
    assert_eq!(
        events.next_event(WAIT).await.unwrap().event.as_deref(),
        Some("exit")
    );
}
