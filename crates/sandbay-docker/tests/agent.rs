//! The agent under attack, in both file modes: a command goes for the
//! agent's `/proc` entries, ptraces it, prints every frame and marker it
//! can forge, signals it and every process it can reach, leaves escapees
//! behind; afterwards the next commands' outputs and exit codes are
//! exactly right. The agent killed from outside gives `unavailable`,
//! never a forged result. Per-container uids: one container exhausting
//! its inotify, message-queue and process budgets leaves another's whole.
//! `/dev/shm` is capped. `clear_all` removes names of any bytes.

mod common;

use std::time::Duration;

use sandbay_agent::{End, Event, Message};
use sandbay_core::{Backend, BackendExt, ExecOutput, ExecRequest, Sandbox, VPath};
use sandbay_docker::{DockerSandbox, FileMode};

async fn run(sb: &DockerSandbox, command: &str) -> ExecOutput {
    sb.execute(ExecRequest::new(command).timeout(Duration::from_secs(60)))
        .await
        .unwrap_or_else(|e| panic!("{command}: {e}"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A plain command whose result is known exactly.
async fn check_exact(sb: &DockerSandbox, round: usize) {
    let out = run(
        sb,
        &format!("echo out-{round}; echo err-{round} >&2; exit 42"),
    )
    .await;
    assert_eq!(text(&out.stdout), format!("out-{round}\n"));
    assert_eq!(text(&out.stderr), format!("err-{round}\n"));
    assert_eq!(out.exit_code, Some(42));
    assert!(!out.timed_out && !out.truncated);
}

/// The agent's pid as a command sees it.
async fn agent_pid(sb: &DockerSandbox) -> String {
    let out = run(
        sb,
        "for d in /proc/[0-9]*; do \
           case \"$(tr '\\0' ' ' < $d/cmdline 2>/dev/null)\" in \
             /.sandbay/agent*) echo ${d#/proc/};; esac; done",
    )
    .await;
    let pid = text(&out.stdout).trim().to_string();
    assert!(
        !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()),
        "one agent pid: {pid:?}"
    );
    pid
}

async fn sandbox(
    client: &sandbay_docker::DockerClient,
    guard: &common::Guard,
    mode: FileMode,
    base: &std::path::Path,
) -> DockerSandbox {
    let client = if mode == FileMode::Container {
        common::remote().await
    } else {
        client.clone()
    };
    let sb = DockerSandbox::create(
        &client,
        guard
            .config()
            .with_file_mode(mode)
            .with_workspace_base(base),
    )
    .await
    .unwrap();
    assert_eq!(sb.file_mode(), mode);
    sb
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_cannot_reach_the_agent() {
    let client = require_docker!();
    let Some(probe) = common::require_probe() else {
        return;
    };
    let probe_bytes = std::fs::read(probe).unwrap();
    let guard = common::Guard::new(&client, "agent-attack");
    let base = tempfile::tempdir().unwrap();
    for mode in [FileMode::Bind, FileMode::Container] {
        let sb = sandbox(&client, &guard, mode, base.path()).await;
        check_exact(&sb, 0).await;
        let pid = agent_pid(&sb).await;

        // every descriptor, mem, environ, the cwd and root links: refused
        let out = run(
            &sb,
            &format!(
                "A={pid}; \
                 ls /proc/$A/fd >/dev/null 2>&1 && echo LIST-FD; \
                 for n in 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16; do \
                   (echo pwned > /proc/$A/fd/$n) 2>/dev/null && echo WROTE-$n; \
                   timeout 1 dd if=/proc/$A/fd/$n of=/dev/null bs=1 count=1 2>/dev/null && echo READ-$n; \
                 done; \
                 cat /proc/$A/environ >/dev/null 2>&1 && echo ENVIRON; \
                 dd if=/proc/$A/mem of=/dev/null bs=1 count=1 skip=4194304 2>/dev/null && echo MEM; \
                 (echo x > /proc/$A/mem) 2>/dev/null && echo MEM-WRITE; \
                 ls /proc/$A/cwd/ >/dev/null 2>&1 && echo CWD; \
                 ls /proc/$A/root/ >/dev/null 2>&1 && echo ROOT; \
                 cat /proc/$A/maps >/dev/null 2>&1 && [ -s /proc/$A/maps ] && echo MAPS; \
                 kill -0 $A 2>/dev/null && echo SIGNAL; \
                 kill -9 $A 2>/dev/null && echo KILLED; \
                 kill -STOP $A 2>/dev/null && echo STOPPED; \
                 echo checked"
            ),
        )
        .await;
        assert_eq!(
            text(&out.stdout),
            "checked\n",
            "{mode:?}: every attempt on the agent is refused; stderr: {}",
            text(&out.stderr)
        );
        check_exact(&sb, 1).await;

        // ptrace and process_vm_readv, with a real binary
        let p = VPath::parse("/probe").unwrap();
        sb.write_bytes(&p, probe_bytes.clone()).await.unwrap();
        let out = run(&sb, &format!("chmod +x probe && ./probe ptrace {pid}")).await;
        let said = text(&out.stdout);
        for line in ["attach refused", "seize refused", "vm_readv refused"] {
            assert!(said.contains(line), "{mode:?}: {said}");
        }
        // the kernel's host-wide budgets are refused (seccomp, set by the agent)
        let out = run(&sb, "./probe aio").await;
        let said = text(&out.stdout);
        for line in ["io_setup refused (38)", "io_uring_setup refused (38)"] {
            assert!(said.contains(line), "{mode:?}: {said}");
        }
        // the agent's channel is not among a command's descriptors
        let out = run(&sb, "ls /proc/self/fd /proc/$$/fd").await;
        let fds: Vec<String> = text(&out.stdout)
            .lines()
            .filter(|l| !l.is_empty() && !l.ends_with(':'))
            .map(String::from)
            .collect();
        for fd in &fds {
            assert!(
                ["0", "1", "2", "3"].contains(&fd.as_str()),
                "{mode:?}: only stdio (and ls's own dir fd) are open: {fds:?}"
            );
        }

        // every process the user can signal dies; the agent does not
        let out = run(&sb, "kill -9 -1; echo survived; exit 3").await;
        assert_eq!(
            (text(&out.stdout).as_str(), out.exit_code),
            ("survived\n", Some(3))
        );
        check_exact(&sb, 2).await;
        assert_eq!(agent_pid(&sb).await, pid, "the same agent runs");
        sb.delete(&p).await.unwrap();
        sb.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_frames_and_markers_stay_output() {
    let client = require_docker!();
    let guard = common::Guard::new(&client, "agent-forge");
    let base = tempfile::tempdir().unwrap();
    // every event the agent could send, for the ids the next commands
    // will likely get, and the old runner's markers
    let mut forged = Vec::new();
    for id in 0..64 {
        forged.extend(
            Event::Exit {
                id,
                end: End::Code(0),
                truncated: false,
            }
            .encode(),
        );
        forged.extend(
            Event::Stdout {
                id,
                data: b"forged output\n".to_vec(),
            }
            .encode(),
        );
        forged.extend(
            Event::Note {
                id,
                text: "sandbay: forged note".into(),
            }
            .encode(),
        );
        forged.extend(Event::Done { id, error: None }.encode());
    }
    forged.extend(Event::Hello { version: 1, pid: 1 }.encode());
    forged.extend(b"\n__sb_end 0\n\x1e0\x1e\n__SANDBAY_END__ 0\nsandbay: note\n");
    // half a frame header last: the stream must not wait for the rest
    forged.extend([0, 0, 0xff]);
    for mode in [FileMode::Bind, FileMode::Container] {
        let sb = sandbox(&client, &guard, mode, base.path()).await;
        let mut request =
            ExecRequest::new("tee /dev/stderr; exit 7").timeout(Duration::from_secs(60));
        request.stdin = forged.clone();
        let out = sb.execute(request).await.unwrap();
        assert_eq!(
            out.stdout, forged,
            "{mode:?}: stdout is exactly the bytes printed"
        );
        assert_eq!(out.stderr, forged, "{mode:?}: so is stderr");
        assert_eq!(out.exit_code, Some(7), "{mode:?}");
        assert!(
            out.notes.is_empty(),
            "{mode:?}: no note came from a command"
        );
        // the same bytes written in pieces from several processes
        let path = VPath::parse("/forged.bin").unwrap();
        sb.write_bytes(&path, forged.clone()).await.unwrap();
        let out = run(
            &sb,
            "head -c 1000 forged.bin; (tail -c +1001 forged.bin) & wait; \
             cat forged.bin >&2; exit 0",
        )
        .await;
        assert_eq!(out.stdout, forged, "{mode:?}");
        assert_eq!(out.stderr, forged, "{mode:?}");
        assert_eq!(out.exit_code, Some(0));
        for round in 0..3 {
            check_exact(&sb, round).await;
        }
        sb.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escapees_die_with_their_command_and_running_commands_are_spared() {
    let client = require_docker!();
    let guard = common::Guard::new(&client, "agent-escape");
    let sb = DockerSandbox::create(&client, guard.config())
        .await
        .unwrap();
    let out = run(
        &sb,
        "setsid sleep 301 & nohup sleep 302 >/dev/null 2>&1 & (sleep 303 &) ; \
         sleep 304 & kill -STOP $!; setsid sh -c 'setsid sleep 305 & sleep 306' & \
         sleep 0.2; echo left",
    )
    .await;
    assert_eq!(text(&out.stdout), "left\n");
    let ps = run(&sb, "ps -o args").await;
    let ps = text(&ps.stdout);
    for n in 301..=306 {
        assert!(
            !ps.contains(&format!("sleep {n}")),
            "sleep {n} survived:\n{ps}"
        );
    }
    // a command still running is not an escapee of one that ends
    let long = sb.execute(ExecRequest::new("sleep 2; echo alive").timeout(Duration::from_secs(60)));
    let short = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        run(&sb, "true").await
    };
    let (long, short) = tokio::join!(long, short);
    let long = long.unwrap();
    assert_eq!(short.exit_code, Some(0));
    assert_eq!(
        (text(&long.stdout).as_str(), long.exit_code),
        ("alive\n", Some(0))
    );
    sb.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_agent_is_unavailable_never_a_result() {
    let client = require_docker!();
    let guard = common::Guard::new(&client, "agent-dead");
    let sb = DockerSandbox::create(&client, guard.config())
        .await
        .unwrap();
    check_exact(&sb, 0).await;
    let pid = agent_pid(&sb).await;
    // from outside, as root: nothing inside can do this
    let killed = std::process::Command::new("docker")
        .args(["exec", "-u", "0", sb.container_id(), "kill", "-9", &pid])
        .status()
        .expect("docker cli");
    assert!(killed.success());
    let mut saw_unavailable = false;
    for _ in 0..50 {
        match sb.execute(ExecRequest::new("echo forged; exit 0")).await {
            Ok(out) => {
                // only possible before the stream end was seen; never a
                // result that differs from the truth
                assert_eq!(
                    (out.stdout.as_slice(), out.exit_code),
                    (&b"forged\n"[..], Some(0))
                );
            }
            Err(e) => {
                assert_eq!(e.code(), sandbay_core::ErrorCode::Unavailable, "{e}");
                saw_unavailable = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(saw_unavailable, "a dead agent is reported as unavailable");
    sb.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_shm_is_capped() {
    let client = require_docker!();
    let guard = common::Guard::new(&client, "agent-shm");
    let sb = DockerSandbox::create(&client, guard.config().with_shm_bytes(8 << 20))
        .await
        .unwrap();
    let out = run(
        &sb,
        "dd if=/dev/zero of=/dev/shm/fill bs=1M count=32 2>&1; echo rc=$?; \
         du -k /dev/shm/fill | cut -f1",
    )
    .await;
    let said = text(&out.stdout);
    assert!(said.contains("No space left on device"), "{said}");
    assert!(!said.contains("rc=0"), "{said}");
    let kib: u64 = said.lines().last().unwrap().trim().parse().unwrap();
    assert!(kib <= 8 * 1024, "at most the cap was written: {kib} KiB");
    sb.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_removes_names_of_any_bytes() {
    let client = require_docker!();
    let guard = common::Guard::new(&client, "agent-clear");
    let base = tempfile::tempdir().unwrap();
    for mode in [FileMode::Bind, FileMode::Container] {
        let sb = sandbox(&client, &guard, mode, base.path()).await;
        let out = run(
            &sb,
            "printf 'x' > \"$(printf 'a\\nb')\"; printf 'x' > \"$(printf 'x\\377y')\"; \
             printf 'x' > 'back\\slash'; mkdir \"$(printf 'dir\\001')\"; \
             printf secret > \"$(printf 'dir\\001')/secret\"; \
             mkdir -p locked/deep && printf x > locked/deep/f && chmod 000 locked/deep && chmod 500 locked; \
             printf x > .hidden; ln -s /etc/passwd link; mkfifo fifo; \
             setsid sh -c 'while :; do printf x > respawn; sleep 0.01; done' & sleep 0.2; \
             ls -A | wc -l",
        )
        .await;
        assert_eq!(
            text(&out.stdout).trim(),
            "9",
            "{mode:?}: {}",
            text(&out.stderr)
        );
        sb.clear_all().await.unwrap();
        let out = run(&sb, "ls -A /workspace | wc -l; ls -A /workspace").await;
        assert_eq!(text(&out.stdout), "0\n", "{mode:?}: the workspace is empty");
        assert!(sb.ls(&VPath::root()).await.unwrap().is_empty());
        if mode == FileMode::Bind {
            // the host directory itself is empty
            let dir = base.path();
            let mut left = Vec::new();
            for owner in std::fs::read_dir(dir).unwrap().flatten() {
                for ws in std::fs::read_dir(owner.path()).unwrap().flatten() {
                    left.extend(
                        std::fs::read_dir(ws.path())
                            .unwrap()
                            .flatten()
                            .map(|e| e.file_name()),
                    );
                }
            }
            assert!(left.is_empty(), "{left:?}");
        }
        // still usable
        check_exact(&sb, 0).await;
        sb.write_bytes(&VPath::parse("/after.txt").unwrap(), b"ok".to_vec())
            .await
            .unwrap();
        assert_eq!(text(&run(&sb, "cat after.txt").await.stdout), "ok");
        sb.shutdown().await.unwrap();
    }
}

/// Runs `probe KIND HOLD FILE` in `a` (in the background of the test),
/// waits until it holds its take, then runs `probe KIND` in `b`; both
/// counts.
async fn take_while_held(a: &DockerSandbox, b: &DockerSandbox, kind: &str) -> (u64, u64) {
    let held = VPath::parse(&format!("/held-{kind}")).unwrap();
    let hold = a.execute(
        ExecRequest::new(format!("./probe {kind} 6 /workspace/held-{kind}"))
            .timeout(Duration::from_secs(60)),
    );
    let other = async {
        let mut waited = 0;
        while !a.exists(&held).await.unwrap() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            waited += 1;
            assert!(waited < 300, "{kind}: A never held its take");
        }
        let out = run(b, &format!("./probe {kind}")).await;
        let said = text(&out.stdout);
        said.trim()
            .strip_prefix(&format!("{kind} "))
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{kind}: {said} {}", text(&out.stderr)))
    };
    let (hold, b_count) = tokio::join!(hold, other);
    hold.unwrap();
    let a_count: u64 = text(a.read_to_string(&held).await.unwrap().as_bytes())
        .trim()
        .parse()
        .unwrap();
    a.delete(&held).await.unwrap();
    (a_count, b_count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_uid_budgets_are_per_container() {
    let client = require_docker!();
    let Some(probe) = common::require_probe() else {
        return;
    };
    let probe_bytes = std::fs::read(probe).unwrap();
    let guard = common::Guard::new(&client, "agent-budgets");
    let config = guard.config().with_nproc_limit(Some(48));
    let (a, b) = tokio::join!(
        DockerSandbox::create(&client, config.clone().with_owner("budget-a")),
        DockerSandbox::create(&client, config.clone().with_owner("budget-b"))
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_ne!(a.uid(), b.uid(), "each container has a uid of its own");
    for sb in [&a, &b] {
        sb.write_bytes(&VPath::parse("/probe").unwrap(), probe_bytes.clone())
            .await
            .unwrap();
        run(sb, "chmod +x probe").await;
    }
    let max_inotify: u64 = std::fs::read_to_string("/proc/sys/fs/inotify/max_user_instances")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    for kind in ["inotify", "mqueue", "nproc"] {
        let (a_count, b_count) = take_while_held(&a, &b, kind).await;
        assert!(a_count > 2, "{kind}: A took some ({a_count})");
        assert!(
            b_count + 2 >= a_count,
            "{kind}: B gets its full budget while A holds all of its own: A {a_count}, B {b_count}"
        );
        if kind == "inotify" {
            assert!(
                a_count + 4 >= max_inotify,
                "{kind}: A {a_count} of {max_inotify}"
            );
        }
        if kind == "nproc" {
            assert!(
                a_count < 48 && b_count < 48,
                "RLIMIT_NPROC holds: {a_count} {b_count}"
            );
        }
    }
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();

    // the finding this fixes: one uid for both containers, and B starves
    let shared = guard.config().with_user("10001:10001");
    let (a, b) = tokio::join!(
        DockerSandbox::create(&client, shared.clone().with_owner("shared-a")),
        DockerSandbox::create(&client, shared.with_owner("shared-b"))
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    for sb in [&a, &b] {
        sb.write_bytes(&VPath::parse("/probe").unwrap(), probe_bytes.clone())
            .await
            .unwrap();
        run(sb, "chmod +x probe").await;
    }
    let (a_count, b_count) = take_while_held(&a, &b, "inotify").await;
    assert!(
        b_count * 2 < a_count,
        "with one shared uid, A's take starves B: A {a_count}, B {b_count}"
    );
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}
