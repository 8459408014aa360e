//! Tells the tests whether a Docker daemon answers, at build time.
//!
//! One file for every crate with Docker tests (`sandbay-docker`, and a
//! symlink from `sandbay-middleware` and `sandbay-pool`; `cargo package`
//! copies the content).
//!
//! Without a daemon, and outside CI, the Docker tests are compiled as
//! `#[ignore]`d with the reason (`cfg(sandbay_no_docker)`), so a machine
//! without Docker reports them as skipped, never as passed. Under
//! `CI=true` they always run, and fail loudly without a daemon.

use std::io::{Read, Write};
use std::time::Duration;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(sandbay_no_docker)");
    println!("cargo::rerun-if-env-changed=CI");
    println!("cargo::rerun-if-env-changed=DOCKER_HOST");
    println!("cargo::rerun-if-changed=build.rs");
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    let host = std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unix:///var/run/docker.sock".into());
    if let Some(path) = host.strip_prefix("unix://") {
        // the socket is re-created when the daemon starts: check again then
        println!("cargo::rerun-if-changed={path}");
    }
    if !ci && !daemon_answers(&host) {
        println!("cargo::rustc-cfg=sandbay_no_docker");
        println!("cargo::warning=no Docker daemon answers: the Docker tests are marked ignored");
    }
}

fn ping(mut stream: impl Read + Write) -> bool {
    let request = b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n";
    if stream.write_all(request).is_err() {
        return false;
    }
    let mut answer = [0u8; 12];
    stream.read_exact(&mut answer).is_ok()
        && answer.starts_with(b"HTTP/1.")
        && &answer[9..12] == b"200"
}

fn daemon_answers(host: &str) -> bool {
    let timeout = Some(Duration::from_secs(2));
    if let Some(path) = host.strip_prefix("unix://") {
        match std::os::unix::net::UnixStream::connect(path) {
            Ok(s) => {
                let _ = s.set_read_timeout(timeout);
                let _ = s.set_write_timeout(timeout);
                ping(s)
            }
            Err(_) => false,
        }
    } else if let Some(addr) = host.strip_prefix("tcp://") {
        use std::net::ToSocketAddrs;
        let Some(addr) = addr.to_socket_addrs().ok().and_then(|mut a| a.next()) else {
            return false;
        };
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            Ok(s) => {
                let _ = s.set_read_timeout(timeout);
                let _ = s.set_write_timeout(timeout);
                ping(s)
            }
            Err(_) => false,
        }
    } else {
        false
    }
}
