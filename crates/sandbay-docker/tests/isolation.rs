//! The requirement's multi-user scenarios, for two users at once: files,
//! `ps aux`, wiping `/tmp`, the network, host files. Every check runs in
//! both file modes.

mod common;

use std::time::Duration;

use sandbay_core::{BackendExt, ExecOutput, ExecRequest, Sandbox, VPath};
use sandbay_docker::{DockerSandbox, FileMode};

async fn run(sb: &DockerSandbox, command: &str) -> ExecOutput {
    sb.execute(ExecRequest::new(command))
        .await
        .unwrap_or_else(|e| panic!("{command}: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn two_users(
    client: &sandbay_docker::DockerClient,
    guard: &common::Guard,
    mode: FileMode,
    base: &std::path::Path,
) -> (DockerSandbox, DockerSandbox) {
    let a = guard
        .config()
        .with_owner("user-a")
        .with_file_mode(mode)
        .with_workspace_base(base);
    let b = guard
        .config()
        .with_owner("user-b")
        .with_file_mode(mode)
        .with_workspace_base(base);
    let (a, b) = tokio::join!(
        DockerSandbox::create(client, a),
        DockerSandbox::create(client, b)
    );
    (a.unwrap(), b.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_users_are_isolated() {
    let client = require_docker!();
    let guard = common::Guard::new(&client, "isolation");
    let base = tempfile::tempdir().unwrap();
    for mode in [FileMode::Bind, FileMode::Container] {
        let (a, b) = two_users(&client, &guard, mode, base.path()).await;
        assert_eq!((a.file_mode(), b.file_mode()), (mode, mode));

        // files: the same path holds each user's own content
        let file = VPath::parse("/file.txt").unwrap();
        a.write_bytes(&file, b"A1 content".to_vec()).await.unwrap();
        b.write_bytes(&file, b"B1 content".to_vec()).await.unwrap();
        assert_eq!(a.read_to_string(&file).await.unwrap(), "A1 content");
        assert_eq!(b.read_to_string(&file).await.unwrap(), "B1 content");
        assert_eq!(text(&run(&a, "cat file.txt").await.stdout), "A1 content");
        assert_eq!(
            text(&run(&b, "cat /workspace/file.txt").await.stdout),
            "B1 content"
        );

        // processes: A's running command is invisible to B
        let a = std::sync::Arc::new(a);
        let busy = {
            let a = a.clone();
            tokio::spawn(async move {
                let _ = a
                    .execute(ExecRequest::new("sleep 300").timeout(Duration::from_secs(60)))
                    .await;
            })
        };
        let mut ps_a = String::new();
        for _ in 0..100 {
            ps_a = text(&run(&a, "ps aux").await.stdout);
            if ps_a.contains("sleep 300") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let ps_b = text(&run(&b, "ps aux").await.stdout);
        assert!(
            ps_a.contains("sleep 300"),
            "{mode:?}: A sees its own process: {ps_a}"
        );
        assert!(
            !ps_b.contains("sleep 300"),
            "{mode:?}: B sees A's process: {ps_b}"
        );
        busy.abort();
        let _ = busy.await;
        let a = std::sync::Arc::into_inner(a).expect("the command task is gone");
        // the processes B sees are only its own init, runner and command
        let b_lines = ps_b.lines().filter(|l| !l.trim().is_empty()).count();
        assert!(b_lines <= 8, "{mode:?}: B sees few processes: {ps_b}");

        // /tmp: A wiping it does not touch B's
        run(&b, "echo keep > /tmp/b-file").await;
        run(
            &a,
            "echo gone > /tmp/a-file; rm -rf /tmp/* /tmp/.[!.]* 2>/dev/null; true",
        )
        .await;
        assert_eq!(text(&run(&b, "cat /tmp/b-file").await.stdout), "keep\n");
        assert_eq!(run(&a, "ls -A /tmp | wc -l").await.stdout, b"0\n");

        // network: no interface but loopback, nothing reachable
        let ifaces = text(&run(&a, "cat /proc/net/dev").await.stdout);
        assert!(
            !ifaces.contains("eth0"),
            "{mode:?}: a network interface: {ifaces}"
        );
        let out = run(&a, "wget -q -T 2 -O- http://1.1.1.1/ 2>&1; echo rc=$?").await;
        assert!(!text(&out.stdout).ends_with("rc=0\n"), "{mode:?}: {out:?}");
        let out = run(&a, "nc -w 2 127.0.0.1 2375 </dev/null; echo rc=$?").await;
        assert!(
            !text(&out.stdout).ends_with("rc=0\n"),
            "{mode:?}: the daemon port: {out:?}"
        );

        // host files: /etc is the image's, the host's are out of reach
        let passwd = text(&run(&a, "cat /etc/passwd").await.stdout);
        assert!(passwd.contains("sandbox:x:10001"), "{passwd}");
        let host_passwd = std::fs::read_to_string("/etc/passwd").unwrap();
        assert_ne!(passwd, host_passwd);
        let out = run(&a, "ls /workspace/.. /; id").await;
        let shown = text(&out.stdout);
        assert!(
            shown.contains(&format!("uid={}", a.uid())),
            "the container's own uid: {shown}"
        );
        assert_ne!(a.uid(), b.uid(), "{mode:?}: each container has its own uid");
        assert!(
            !shown.contains(&base.path().display().to_string()),
            "{shown}"
        );
        // and B's workspace is nowhere in A's filesystem
        let search = "for d in /*; do case $d in /proc|/sys|/dev) ;; \
                      *) grep -rl 'B1 content' \"$d\" 2>/dev/null ;; esac; done; true";
        let out = run(&a, search).await;
        assert_eq!(text(&out.stdout), "", "{mode:?}: A finds B's file");

        // writes outside the workspace fail: read-only root, no capabilities
        let out = run(&a, "touch /etc/x 2>&1; echo rc=$?").await;
        assert!(text(&out.stdout).ends_with("rc=1\n"), "{out:?}");

        a.shutdown().await.unwrap();
        b.shutdown().await.unwrap();
    }
    assert_eq!(
        common::count_objects(&guard),
        (0, 0),
        "shutdown leaves nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_settings_are_the_safe_defaults() {
    let client = require_docker!();
    let guard = common::Guard::new(&client, "defaults");
    let sb = DockerSandbox::create(&client, guard.config())
        .await
        .unwrap();
    let out = std::process::Command::new("docker")
        .args([
            "inspect",
            "--format",
            "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.HostConfig.NanoCpus}} \
             {{.HostConfig.PidsLimit}} {{.HostConfig.NetworkMode}} {{.HostConfig.ReadonlyRootfs}} \
             {{.HostConfig.CapDrop}} {{.HostConfig.CapAdd}} {{.HostConfig.SecurityOpt}} {{.HostConfig.Init}} {{.Config.User}} \
             {{index .Config.Labels \"sandbay.managed\"}} {{index .Config.Labels \"sandbay.owner\"}} \
             {{index .HostConfig.Tmpfs \"/tmp\"}} {{.HostConfig.ShmSize}}",
            sb.container_id(),
        ])
        .output()
        .unwrap();
    let shown = text(&out.stdout);
    let expected_owner = sb.config().owner.clone();
    assert_eq!(
        shown.trim(),
        format!(
            "536870912 536870912 500000000 128 none true [ALL] [CHOWN KILL SETGID SETUID] \
             [no-new-privileges] true 0:0 \
             true {expected_owner} rw,nosuid,nodev,size=67108864,mode=1777 16777216"
        )
    );
    // and from the inside: no capabilities at all (the agent's are not
    // passed on), the leased uid, the /tmp cap
    let out = run(
        &sb,
        "grep -E 'Cap(Inh|Prm|Eff|Amb)' /proc/self/status; id -u; df -k /tmp | tail -1",
    )
    .await;
    let inside = text(&out.stdout);
    for set in ["CapInh", "CapPrm", "CapEff", "CapAmb"] {
        assert!(
            inside.contains(&format!("{set}:\t0000000000000000")),
            "{set}: {inside}"
        );
    }
    assert!(sandbay_docker::CONTAINER_UID_RANGE.contains(&sb.uid()));
    assert!(inside.contains(&format!("\n{}\n", sb.uid())), "{inside}");
    assert!(inside.contains("65536"), "{inside}");
    sb.shutdown().await.unwrap();
}
