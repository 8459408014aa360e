//! The process tree never outlives its run: timeouts, normal exits,
//! cancelled futures; output is capped while streaming.

mod common;

use std::time::{Duration, Instant};

use common::{
    err, jail, out, procs_of_uid, procs_with, run, skip, sleep_marker, wait_empty, wait_file,
    workspace,
};
use sandbay_core::{ExecRequest, Isolation};

const GONE_WITHIN: Duration = Duration::from_secs(5);

per_level!(
    timeout_kills_background_children,
    partial_output_survives_a_timeout,
    normal_exit_kills_leftovers,
    dropped_future_leaves_no_process,
    session_escape_is_killed_too,
);

async fn timeout_kills_background_children(level: Isolation) {
    let Some(jail) = jail(level, |_| {}) else {
        return;
    };
    let ws = workspace();
    let (m1, m2) = (sleep_marker(), sleep_marker());
    let start = Instant::now();
    let o = run(
        &jail,
        ws.path(),
        &format!("sleep {m1} & (sleep {m2} &) ; echo started; sleep 600"),
        Duration::from_secs(1),
    )
    .await;
    assert!(o.timed_out, "{o:?}");
    assert_eq!(o.exit_code, None);
    assert_eq!(out(&o), "started\n");
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "took {:?}",
        start.elapsed()
    );
    assert!(o.duration >= Duration::from_secs(1));
    for m in [&m1, &m2] {
        let left = wait_empty(GONE_WITHIN, || procs_with(m)).await;
        assert!(left.is_empty(), "sleep {m} survived the timeout: {left:?}");
    }
    let uid = jail.enforcement().host_uid;
    if jail.enforcement().distinct_uid {
        let left = wait_empty(GONE_WITHIN, || procs_of_uid(uid)).await;
        assert!(
            left.is_empty(),
            "processes of the sandbox uid left: {left:?}"
        );
    }
}

async fn partial_output_survives_a_timeout(level: Isolation) {
    let Some(jail) = jail(level, |_| {}) else {
        return;
    };
    let ws = workspace();
    let o = run(
        &jail,
        ws.path(),
        "echo before; echo warn >&2; sleep 30; echo after",
        Duration::from_millis(700),
    )
    .await;
    assert!(o.timed_out);
    assert_eq!(out(&o), "before\n");
    assert_eq!(err(&o), "warn\n");
}

async fn normal_exit_kills_leftovers(level: Isolation) {
    let Some(jail) = jail(level, |_| {}) else {
        return;
    };
    let ws = workspace();
    let m = sleep_marker();
    let start = Instant::now();
    let o = run(
        &jail,
        ws.path(),
        &format!("sleep {m} & echo bye"),
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(o.exit_code, Some(0));
    assert!(!o.timed_out);
    assert_eq!(out(&o), "bye\n");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "waited for the background job"
    );
    let left = wait_empty(GONE_WITHIN, || procs_with(&m)).await;
    assert!(
        left.is_empty(),
        "a background job outlived its command: {left:?}"
    );
}

async fn dropped_future_leaves_no_process(level: Isolation) {
    let Some(jail) = jail(level, |_| {}) else {
        return;
    };
    let ws = workspace();
    let (m1, m2) = (sleep_marker(), sleep_marker());
    let ready = ws.path().join("ready");
    let command = format!("sleep {m1} & touch ready; sleep {m2}");
    let fut = jail.run(
        ws.path(),
        ExecRequest::new(command).timeout(Duration::from_secs(600)),
    );
    let mut fut = Box::pin(fut);
    tokio::select! {
        r = &mut fut => panic!("finished early: {r:?}"),
        started = wait_file(&ready, Duration::from_secs(10)) => assert!(started, "command did not start"),
    }
    // `ready` is touched just before the second sleep starts.
    let mut seen = 0;
    for _ in 0..250 {
        seen = procs_with(&m1).len() + procs_with(&m2).len();
        if seen == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen, 2, "both sleeps run before the cancel");
    drop(fut);
    for m in [&m1, &m2] {
        let left = wait_empty(GONE_WITHIN, || procs_with(m)).await;
        assert!(
            left.is_empty(),
            "sleep {m} survived the dropped future: {left:?}"
        );
    }
    if jail.enforcement().distinct_uid {
        let uid = jail.enforcement().host_uid;
        let left = wait_empty(GONE_WITHIN, || procs_of_uid(uid)).await;
        assert_eq!(left.len(), 0, "processes of the sandbox uid left: {left:?}");
    }
}

async fn session_escape_is_killed_too(level: Isolation) {
    let Some(jail) = jail(level, |_| {}) else {
        return;
    };
    if level == Isolation::Limits && !jail.enforcement().cgroup_pids {
        // Without a PID namespace only a cgroup lists processes that left
        // the session; that is a documented limit of Limits without cgroups.
        skip("no pids cgroup: a process that leaves the session is not tracked at `limits`");
        return;
    }
    let ws = workspace();
    let m = sleep_marker();
    let o = run(
        &jail,
        ws.path(),
        &format!("setsid sh -c 'sleep {m}' < /dev/null > /dev/null 2>&1 & sleep 0.3; echo ok"),
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(out(&o), "ok\n", "{}", err(&o));
    let left = wait_empty(GONE_WITHIN, || procs_with(&m)).await;
    assert!(
        left.is_empty(),
        "a process that left the session survived: {left:?}"
    );
}
