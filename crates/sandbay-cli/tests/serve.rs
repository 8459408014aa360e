//! `sandbay serve` as a process: keys, a graceful stop on SIGTERM, and a
//! SIGKILL, each followed by a restart that finds the files.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use reqwest::{Client, StatusCode};

const BIN: &str = env!("CARGO_BIN_EXE_sandbay");

fn add_key(data: &Path, user: &str) -> String {
    let out = Command::new(BIN)
        .args(["keys", "add", user, "--data"])
        .arg(data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let key = stdout.lines().last().unwrap().to_owned();
    assert!(
        key.starts_with("sbk_"),
        "the key alone on the last line: {stdout:?}"
    );
    key
}

/// Starts the server and returns it with its base URL.
fn serve(data: &Path, config: Option<&Path>) -> (Child, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data);
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut first)
        .unwrap();
    let url = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .to_owned();
    (child, url)
}

async fn put(client: &Client, url: &str, key: &str, path: &str, body: &'static str) -> StatusCode {
    client
        .put(format!("{url}{path}"))
        .bearer_auth(key)
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
}

async fn get(client: &Client, url: &str, key: &str, path: &str) -> (StatusCode, String) {
    let resp = client
        .get(format!("{url}{path}"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    (resp.status(), resp.text().await.unwrap())
}

#[tokio::test]
async fn files_survive_sigterm_and_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let key = add_key(&data, "alice");
    let other = add_key(&data, "bob");
    assert_ne!(key, other);
    let client = Client::new();

    // a graceful stop writes what is pending
    let (mut child, url) = serve(&data, None);
    assert_eq!(
        put(&client, &url, &key, "/v1/sessions/s", "").await,
        StatusCode::CREATED
    );
    assert_eq!(
        put(
            &client,
            &url,
            &key,
            "/v1/sessions/s/files/notes.md",
            "kept\n"
        )
        .await,
        StatusCode::NO_CONTENT
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(child.wait().unwrap().success(), "a clean exit on SIGTERM");
    let (mut child, url) = serve(&data, None);
    assert_eq!(
        get(&client, &url, &key, "/v1/sessions/s/files/notes.md").await,
        (StatusCode::OK, "kept\n".to_owned())
    );
    assert_eq!(
        get(&client, &url, &other, "/v1/sessions/s/files/notes.md")
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    child.kill().unwrap();
    child.wait().unwrap();

    // writing every change before replying: SIGKILL right after loses nothing
    let config = dir.path().join("sandbay.toml");
    std::fs::write(&config, "write_behind_ms = 0\n").unwrap();
    let (mut child, url) = serve(&data, Some(&config));
    assert_eq!(
        put(
            &client,
            &url,
            &key,
            "/v1/sessions/s/files/late.md",
            "acknowledged\n"
        )
        .await,
        StatusCode::NO_CONTENT
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let (mut child, url) = serve(&data, None);
    assert_eq!(
        get(&client, &url, &key, "/v1/sessions/s/files/late.md").await,
        (StatusCode::OK, "acknowledged\n".to_owned())
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn bad_configuration_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "listen = 5\nunknown_key = true\n").unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml"), "{err}");
    let out = Command::new(BIN)
        .args(["keys", "add", "two words", "--data"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
}
