//! Tells the Docker tests whether a Docker daemon answers, at build time.
//!
//! Without a daemon, and outside CI, the tests in `tests/docker.rs` are
//! compiled as `#[ignore]`d with the reason (`cfg(sandbay_no_docker)`), so
//! they are reported as skipped, never as passed. Under `CI=true` they
//! always run, and fail loudly without a daemon.

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
        println!("cargo::rerun-if-changed={path}");
    }
    if !ci && !daemon_answers(&host) {
        println!("cargo::rustc-cfg=sandbay_no_docker");
    }
}

/// Sends `GET /_ping` and expects `OK`.
fn daemon_answers(host: &str) -> bool {
    let request = b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n";
    let mut reply = String::new();
    let timeout = Some(Duration::from_secs(2));
    if let Some(path) = host.strip_prefix("unix://") {
        let Ok(mut s) = std::os::unix::net::UnixStream::connect(path) else {
            return false;
        };
        let _ = s.set_read_timeout(timeout);
        s.write_all(request).is_ok()
            && s.read_to_string(&mut reply).is_ok()
            && reply.ends_with("OK")
    } else if let Some(addr) = host.strip_prefix("tcp://") {
        let Ok(mut s) = std::net::TcpStream::connect(addr) else {
            return false;
        };
        let _ = s.set_read_timeout(timeout);
        s.write_all(request).is_ok()
            && s.read_to_string(&mut reply).is_ok()
            && reply.ends_with("OK")
    } else {
        false
    }
}
