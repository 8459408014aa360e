//! The jail's limit on concurrent runs: at most `max_concurrent` commands
//! of one jail run at once, a further call waits for a place, and one
//! that waits past `queue_timeout` fails with `unavailable` without
//! running.

mod common;

use std::time::Duration;

use common::{jail, out, workspace};
use sandbay_core::{ErrorCode, ExecRequest, Isolation};

per_level!(
    no_more_than_max_concurrent_run_at_once,
    a_call_that_waits_too_long_fails_without_running
);

/// Each command records when it started and ended (host clock, ns).
const RECORD: &str = "s=$(date +%s%N); sleep 0.3; e=$(date +%s%N); echo \"$s $e\"";

async fn no_more_than_max_concurrent_run_at_once(level: Isolation) {
    let Some(jail) = jail(level, |c| {
        c.max_concurrent = 2;
        c.queue_timeout = Duration::from_secs(60);
    }) else {
        return;
    };
    assert_eq!(jail.enforcement().max_concurrent, 2);
    let ws = workspace();
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let (jail, ws) = (jail.clone(), ws.path().to_path_buf());
            tokio::spawn(async move {
                jail.run(
                    &ws,
                    ExecRequest::new(RECORD).timeout(Duration::from_secs(30)),
                )
                .await
            })
        })
        .collect();
    let mut spans = Vec::new();
    for call in calls {
        let o = call
            .await
            .unwrap()
            .expect("a waiting call runs once a place is free");
        assert_eq!(o.exit_code, Some(0), "{o:?}");
        let text = out(&o);
        let mut it = text.split_whitespace().map(|v| v.parse::<u128>().unwrap());
        spans.push((it.next().unwrap(), it.next().unwrap()));
    }
    // The most commands running at one instant.
    let mut most = 0;
    for &(start, _) in &spans {
        let at_once = spans
            .iter()
            .filter(|&&(s, e)| s <= start && start < e)
            .count();
        most = most.max(at_once);
    }
    println!(
        "[{}] 6 calls, max_concurrent 2: at most {most} ran at once",
        level.as_str()
    );
    assert!(
        most <= 2,
        "{most} commands of one jail ran at once: {spans:?}"
    );
    assert_eq!(most, 2, "the two places were used side by side: {spans:?}");
}

async fn a_call_that_waits_too_long_fails_without_running(level: Isolation) {
    let Some(jail) = jail(level, |c| {
        c.max_concurrent = 2;
        c.queue_timeout = Duration::from_millis(300);
    }) else {
        return;
    };
    let ws = workspace();
    let busy: Vec<_> = (0..2)
        .map(|i| {
            let (jail, ws) = (jail.clone(), ws.path().to_path_buf());
            tokio::spawn(async move {
                jail.run(
                    &ws,
                    ExecRequest::new(format!("touch busy{i}; sleep 3"))
                        .timeout(Duration::from_secs(30)),
                )
                .await
            })
        })
        .collect();
    for i in 0..2 {
        assert!(
            common::wait_file(&ws.path().join(format!("busy{i}")), Duration::from_secs(10)).await,
            "run {i} did not start"
        );
    }
    let started = std::time::Instant::now();
    let e = jail
        .run(ws.path(), ExecRequest::new("touch ran"))
        .await
        .expect_err("a third call while two run, waiting 300 ms");
    let waited = started.elapsed();
    assert_eq!(e.code(), ErrorCode::Unavailable, "{e}");
    assert!(e.to_string().contains("2 commands at once"), "{e}");
    assert!(
        waited >= Duration::from_millis(300),
        "it did not wait: {waited:?}"
    );
    assert!(!ws.path().join("ran").exists(), "the refused command ran");
    // A place frees up when a run ends: the next call runs.
    for b in busy {
        assert_eq!(b.await.unwrap().unwrap().exit_code, Some(0));
    }
    let o = jail
        .run(ws.path(), ExecRequest::new("touch ran; echo ok"))
        .await
        .unwrap();
    assert_eq!(out(&o), "ok\n");
    // A caller that gives up while waiting takes no place with it.
    let sleeper = {
        let (jail, ws) = (jail.clone(), ws.path().to_path_buf());
        tokio::spawn(async move {
            jail.run(
                &ws,
                ExecRequest::new("sleep 1").timeout(Duration::from_secs(30)),
            )
            .await
        })
    };
    let sleeper2 = {
        let (jail, ws) = (jail.clone(), ws.path().to_path_buf());
        tokio::spawn(async move {
            jail.run(
                &ws,
                ExecRequest::new("sleep 1").timeout(Duration::from_secs(30)),
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let gave_up = tokio::time::timeout(
        Duration::from_millis(50),
        jail.run(ws.path(), ExecRequest::new("echo never")),
    )
    .await;
    assert!(gave_up.is_err(), "the third call should still be waiting");
    sleeper.await.unwrap().unwrap();
    sleeper2.await.unwrap().unwrap();
    // Both places are still there: two runs that each wait for the other
    // to have started end only if they run side by side.
    let pair: Vec<_> = [("a", "b"), ("b", "a")]
        .into_iter()
        .map(|(me, other)| {
            let (jail, ws) = (jail.clone(), ws.path().to_path_buf());
            let command =
                format!("touch {me}; while [ ! -e {other} ]; do sleep 0.05; done; echo met");
            tokio::spawn(async move {
                jail.run(
                    &ws,
                    ExecRequest::new(command).timeout(Duration::from_secs(10)),
                )
                .await
            })
        })
        .collect();
    for p in pair {
        let o = p.await.unwrap().unwrap();
        assert!(!o.timed_out, "a place was lost to the caller that gave up");
        assert_eq!(out(&o), "met\n");
    }
}
