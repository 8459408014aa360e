//! The Docker gate of the test suites, checked when the tests run (never
//! when they are built): does a daemon answer at `DOCKER_HOST` (or the
//! default unix socket), and does it hold the image a suite runs?
//!
//! A plain HTTP request over the socket, so the check needs no Docker
//! client library. Use it with [`crate::skip::require`]: locally a missing
//! daemon or image skips the test with the reason, under CI it fails.

use std::io::{Read, Write};
use std::time::Duration;

/// The local test image (`cargo xtask docker-image` builds it).
pub const TEST_IMAGE: &str = "sandbay/busybox:test";

/// The daemon address the Docker client uses: `DOCKER_HOST`, or the
/// default unix socket.
pub fn docker_host() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unix:///var/run/docker.sock".into())
}

/// `Ok` when a Docker daemon answers and holds `image`; otherwise the
/// reason, naming the address or the image (and how to build the test
/// image).
pub fn check(image: &str) -> Result<(), String> {
    let host = docker_host();
    match get(&host, "/_ping") {
        Ok(200) => {}
        Ok(status) => return Err(format!("no Docker daemon at {host} (ping: HTTP {status})")),
        Err(e) => return Err(format!("no Docker daemon at {host} ({e})")),
    }
    match get(&host, &format!("/images/{image}/json")) {
        Ok(200) => Ok(()),
        Ok(404) if image == TEST_IMAGE => Err(format!(
            "no Docker image {image} (run `cargo xtask docker-image`)"
        )),
        Ok(404) => Err(format!("no Docker image {image} (docker pull {image})")),
        Ok(status) => Err(format!("cannot inspect the image {image}: HTTP {status}")),
        Err(e) => Err(format!("cannot inspect the image {image}: {e}")),
    }
}

/// `GET path` over HTTP/1.0; the status code of the answer.
fn get(host: &str, path: &str) -> Result<u16, String> {
    let timeout = Some(Duration::from_secs(5));
    let request = format!("GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n");
    let answer = if let Some(socket) = host.strip_prefix("unix://") {
        let mut s = std::os::unix::net::UnixStream::connect(socket).map_err(|e| e.to_string())?;
        s.set_read_timeout(timeout).map_err(|e| e.to_string())?;
        s.set_write_timeout(timeout).map_err(|e| e.to_string())?;
        exchange(&mut s, &request)?
    } else if let Some(addr) = host.strip_prefix("tcp://") {
        use std::net::ToSocketAddrs;
        let addr = addr
            .to_socket_addrs()
            .map_err(|e| e.to_string())?
            .next()
            .ok_or_else(|| format!("{addr} resolves to nothing"))?;
        let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .map_err(|e| e.to_string())?;
        s.set_read_timeout(timeout).map_err(|e| e.to_string())?;
        s.set_write_timeout(timeout).map_err(|e| e.to_string())?;
        exchange(&mut s, &request)?
    } else {
        return Err(format!("unsupported DOCKER_HOST {host}"));
    };
    status_code(&answer).ok_or_else(|| "not an HTTP answer".to_string())
}

fn exchange(stream: &mut (impl Read + Write), request: &str) -> Result<Vec<u8>, String> {
    stream
        .write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut head = [0u8; 64];
    let mut n = 0;
    while n < 12 {
        match stream.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(head[..n].to_vec())
}

/// The status code of `HTTP/1.x NNN ...`.
fn status_code(answer: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(answer.get(..12)?).ok()?;
    let rest = text.strip_prefix("HTTP/1.")?;
    rest.get(2..5)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_status_lines() {
        assert_eq!(status_code(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(status_code(b"HTTP/1.0 404 Not Found"), Some(404));
        assert_eq!(status_code(b"SSH-2.0-OpenSSH"), None);
        assert_eq!(status_code(b"HTTP/1.1"), None);
    }

    #[test]
    fn a_missing_socket_is_a_reason() {
        let e = get("unix:///nonexistent/docker.sock", "/_ping").unwrap_err();
        assert!(e.contains("No such file"), "{e}");
    }
}
