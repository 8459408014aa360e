//! The contract of one run: exit codes, streams, environment, stdin,
//! working directory, errors, and files shared with the host.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use common::{err, jail, out, run, workspace};
use sandbay_core::{ErrorCode, ExecRequest, Isolation, VPath};
use sandbay_exec::MAX_STDIN;

const T: Duration = Duration::from_secs(20);

per_level!(
    exit_code_and_streams,
    environment_is_scrubbed,
    stdin_is_fed,
    workdir_is_used,
    bad_requests_are_refused,
    files_are_shared_with_the_host,
    level_is_reported,
    concurrent_runs_of_one_jail,
);

async fn exit_code_and_streams(level: Isolation) {
    let Some(jail) = jail(level, |_| {}) else {
        return;
    };
    let ws = workspace();
    let o = run(&jail, ws.path(), "echo out; echo err >&2; exit 7", T).await;
    assert_eq!(o.exit_code, Some(7));
    assert_eq!(out(&o), "out\n");
    assert_eq!(err(&o), "err\n");
    assert!(!o.timed_out && !o.truncated);
    assert!(o.duration > Duration::ZERO && o.duration < T);
    let o = run(&jail, ws.path(), "true", T).await;
    assert_eq!(o.exit_code, Some(0));
    assert!(o.stdout.is_empty() && o.stderr.is_empty());
    // Killed by a signal: no exit code.
    let o = run(&jail, ws.path(), "kill -9 $$; sleep 0.2", T).await;
    if level == Isolation::Namespaces {
        // PID 1 of a namespace ignores signals from inside; the shell
        // goes on and ends normally.
        assert_eq!(o.exit_code, Some(0), "{o:?}");
    } else {
        assert_eq!(o.exit_code, None, "{o:?}");
        assert!(!o.timed_out);
    }
}

async fn environment_is_scrubbed(level: Isolation) {
    let Some(jail) = jail(level, |_| {}) else {
        return;
    };
    let ws = workspace();
    // Cargo sets this for the test process; the command must not see it.
    assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
    let mut env = BTreeMap::new();
    env.insert("SANDBAY_TEST_VAR".to_string(), "hello world".to_string());
    let request = ExecRequest {
        env,
        ..ExecRequest::new("env | sort").timeout(T)
    };
    let o = jail.run(ws.path(), request).await.unwrap();
    let text = out(&o);
    assert!(!text.contains("CARGO"), "host variables leaked:\n{text}");
    assert!(text.contains("SANDBAY_TEST_VAR=hello world\n"), "{text}");
    assert!(text.contains("LANG=C.UTF-8\n"), "{text}");
    assert!(text.contains("PATH=/usr/local/sbin:"), "{text}");
    let home = text
        .lines()
        .find_map(|l| l.strip_prefix("HOME="))
        .expect("HOME set");
    if level == Isolation::Namespaces {
        assert_eq!(home, "/workspace");
    } else {
        assert_eq!(home, ws.path().canonicalize().unwrap().to_str().unwrap());
    }
    let names: Vec<&str> = text.lines().filter_map(|l| l.split('=').next()).collect();
    for name in &names {
        assert!(
            [
                "HOME",
                "LANG",
                "PATH",
                "PWD",
                "SANDBAY_TEST_VAR",
                "SHLVL",
                "_",
                "OLDPWD"
            ]
            .contains(name),
            "unexpected variable {name} in\n{text}"
        );
    }
}

async fn stdin_is_fed(level: Isolation) {
    let Some(jail) = jail(level, |_| {}) else {
        return;
    };
    let ws = workspace();
    let request = ExecRequest {
        stdin: b"line one\nline two\n".to_vec(),
        ..ExecRequest::new("cat; echo end").timeout(T)
    };
    let o = jail.run(ws.path(), request).await.unwrap();
    assert_eq!(out(&o), "line one\nline two\nend\n");
    // Larger than a pipe buffer, binary.
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let request = ExecRequest {
        stdin: big.clone(),
        ..ExecRequest::new("cat").timeout(T)
    };
    let o = jail.run(ws.path(), request).await.unwrap();
    assert!(
        o.stdout == big,
        "stdin came back altered ({} bytes)",
        o.stdout.len()
    );
    // No stdin: reads EOF at once.
    let o = run(&jail, ws.path(), "cat; echo done", T).await;
    assert_eq!(out(&o), "done\n");
    let request = ExecRequest {
        stdin: vec![b'x'; MAX_STDIN + 1],
        ..ExecRequest::new("cat").timeout(T)
    };
    let e = jail.run(ws.path(), request).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::TooLarge);
}

async fn workdir_is_used(level: Isolation) {
    let Some(jail) = jail(level, |_| {}) else {
        return;
    };
    let ws = workspace();
    std::fs::create_dir_all(ws.path().join("sub/dir")).unwrap();
    std::fs::write(ws.path().join("file"), "x").unwrap();
    let o = run(&jail, ws.path(), "pwd", T).await;
    let root = if level == Isolation::Namespaces {
        "/workspace".to_string()
    } else {
        ws.path()
            .canonicalize()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(out(&o), format!("{root}\n"));
    let request = ExecRequest {
        workdir: Some(VPath::parse("/sub/dir").unwrap()),
        ..ExecRequest::new("pwd; echo here > made").timeout(T)
    };
    let o = jail.run(ws.path(), request).await.unwrap();
    assert_eq!(out(&o), format!("{root}/sub/dir\n"));
    assert_eq!(
        std::fs::read_to_string(ws.path().join("sub/dir/made")).unwrap(),
        "here\n"
    );
    for (workdir, code) in [
        ("/missing", ErrorCode::NotFound),
        ("/file", ErrorCode::NotADirectory),
    ] {
        let request = ExecRequest {
            workdir: Some(VPath::parse(workdir).unwrap()),
            ..ExecRequest::new("pwd").timeout(T)
        };
        let e = jail.run(ws.path(), request).await.unwrap_err();
        assert_eq!(e.code(), code, "{workdir}: {e}");
        assert!(e.to_string().contains(workdir), "{e}");
        assert!(
            !e.to_string().contains(ws.path().to_str().unwrap()),
            "host path leaked: {e}"
        );
    }
}

async fn bad_requests_are_refused(level: Isolation) {
    let Some(jail) = jail(level, |_| {}) else {
        return;
    };
    let ws = workspace();
    let e = jail
        .run(ws.path(), ExecRequest::new("echo a\0b"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    for key in ["", "A=B", "A\0"] {
        let mut env = BTreeMap::new();
        env.insert(key.to_string(), "v".to_string());
        let request = ExecRequest {
            env,
            ..ExecRequest::new("true")
        };
        let e = jail.run(ws.path(), request).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidArgument, "{key:?}");
    }
    let missing = ws.path().join("nope");
    let e = jail
        .run(&missing, ExecRequest::new("true"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::NotFound);
    assert!(!e.to_string().contains("nope"), "host path leaked: {e}");
    std::fs::write(ws.path().join("plain"), "x").unwrap();
    let e = jail
        .run(&ws.path().join("plain"), ExecRequest::new("true"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::NotADirectory);
}

async fn files_are_shared_with_the_host(level: Isolation) {
    let Some(jail) = jail(level, |_| {}) else {
        return;
    };
    let ws = workspace();
    // Written by the host (root-owned when the tests run as root).
    std::fs::create_dir(ws.path().join("docs")).unwrap();
    std::fs::write(ws.path().join("docs/host.txt"), "from host\n").unwrap();
    let o = run(
        &jail,
        ws.path(),
        "cat docs/host.txt && echo changed >> docs/host.txt && mkdir -p made/deep && \
         echo from command > made/deep/cmd.txt && rm docs/host.txt && echo again > docs/host.txt && \
         chmod 600 made/deep/cmd.txt && ls -n docs",
        T,
    )
    .await;
    assert_eq!(o.exit_code, Some(0), "{}", err(&o));
    assert!(out(&o).starts_with("from host\n"));
    // The host reads, rewrites and deletes what the command made.
    let made = ws.path().join("made/deep/cmd.txt");
    assert_eq!(std::fs::read_to_string(&made).unwrap(), "from command\n");
    std::fs::write(&made, "host rewrote it\n").unwrap();
    assert_eq!(
        std::fs::read_to_string(ws.path().join("docs/host.txt")).unwrap(),
        "again\n"
    );
    let meta = std::fs::metadata(&made).unwrap();
    let enforcement = jail.enforcement();
    assert_eq!(
        meta.uid(),
        enforcement.host_uid,
        "files belong to the sandbox uid"
    );
    // And the command can change what the host just rewrote.
    let o = run(&jail, ws.path(), "cat made/deep/cmd.txt && rm -r made", T).await;
    assert_eq!(out(&o), "host rewrote it\n", "{}", err(&o));
    assert!(!ws.path().join("made").exists());
    std::fs::remove_dir_all(ws.path().join("docs")).unwrap();
}

async fn level_is_reported(level: Isolation) {
    let Some(jail) = jail(level, |_| {}) else {
        return;
    };
    let ws = workspace();
    let e = jail.enforcement();
    assert_eq!(jail.isolation(), level);
    assert_eq!(e.isolation, level);
    let o = run(
        &jail,
        ws.path(),
        "id -u; hostname; cat /proc/self/status | grep NoNewPrivs",
        T,
    )
    .await;
    let text = out(&o);
    let mut lines = text.lines();
    let uid: u32 = lines.next().unwrap().parse().unwrap();
    if level == Isolation::Namespaces {
        assert_eq!(uid, sandbay_exec::SANDBOX_UID);
        assert_eq!(lines.next(), Some("sandbay"));
        assert_eq!(
            e.namespaces,
            ["user", "pid", "mount", "network", "ipc", "uts"]
        );
    } else {
        assert_eq!(uid, e.host_uid);
        assert!(e.namespaces.is_empty());
        lines.next();
    }
    assert!(
        lines.next().unwrap().ends_with('1'),
        "no_new_privs is set: {text}"
    );
    if nix_is_root() {
        assert!(e.distinct_uid);
        assert_ne!(e.host_uid, 0);
        assert!(sandbay_exec::UID_RANGE.contains(&e.host_uid));
    }
}

async fn concurrent_runs_of_one_jail(level: Isolation) {
    let Some(jail) = jail(level, |_| {}) else {
        return;
    };
    let ws = workspace();
    let runs = (0..8).map(|i| {
        let jail = jail.clone();
        let ws = ws.path().to_path_buf();
        tokio::spawn(async move {
            let command = format!("sleep 0.2; echo {i} > out-{i}; cat out-{i}");
            jail.run(&ws, ExecRequest::new(command).timeout(T)).await
        })
    });
    let outputs: Vec<_> = futures_join(runs).await;
    for (i, o) in outputs.into_iter().enumerate() {
        let o = o.unwrap();
        assert_eq!(o.exit_code, Some(0), "{}", err(&o));
        assert_eq!(out(&o), format!("{i}\n"));
    }
}

async fn futures_join<T>(handles: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for h in handles.collect::<Vec<_>>() {
        out.push(h.await.unwrap());
    }
    out
}

#[test]
fn run_future_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let Some(jail) =
        jail(Isolation::Limits, |_| {}).or_else(|| jail(Isolation::Namespaces, |_| {}))
    else {
        return;
    };
    let fut = jail.run(
        std::path::Path::new("/nonexistent"),
        ExecRequest::new("true"),
    );
    assert_send(&fut);
}

fn nix_is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// `Jail::new_async` prepares the jail on the blocking pool: it works on a
/// single-threaded runtime and gives the jail `Jail::new` would.
#[tokio::test(flavor = "current_thread")]
async fn new_async_prepares_the_same_jail() {
    let level = sandbay_exec::Jail::probe();
    if sandbay_exec::Jail::host_support().check(level).is_err() {
        common::skip("no jail level on this host");
        return;
    }
    let jail = sandbay_exec::Jail::new_async(sandbay_exec::JailConfig::new(level))
        .await
        .unwrap();
    let sync = sandbay_exec::Jail::new(sandbay_exec::JailConfig::new(level)).unwrap();
    let (a, b) = (jail.enforcement(), sync.enforcement());
    assert_eq!(a.isolation, b.isolation);
    assert_eq!(a.namespaces, b.namespaces);
    assert_eq!(a.distinct_uid, b.distinct_uid);
    let ws = workspace();
    let o = run(&jail, ws.path(), "echo async", T).await;
    assert_eq!(out(&o), "async\n");
    let bad = sandbay_exec::Jail::new_async(sandbay_exec::JailConfig::new(Isolation::Container))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), ErrorCode::InvalidArgument);
}
