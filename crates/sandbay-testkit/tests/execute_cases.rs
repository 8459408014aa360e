//! Runs the execute list of the conformance suite (and the core list)
//! against a minimal real sandbox, so the execute cases are proven
//! against real processes before a production backend declares
//! `execute`.
//!
//! The sandbox here is test scaffolding, not a jail: the fs backend over a
//! temp dir, plus `sh -c` in its own process group with a scrubbed
//! environment, killed as a group on timeout.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Instant;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use sandbay_core::{
    Backend, Capabilities, DirEntry, EditOutcome, EditRequest, Error, ExecOutput, ExecRequest,
    GlobOutput, GlobRequest, GrepOutput, GrepRequest, ReadRequest, Result, Sandbox, TextWindow,
    VPath, async_trait,
};
use sandbay_fs::FsBackend;
use sandbay_testkit::{Fixture, conformance_tests};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug)]
struct ShellSandbox {
    fs: FsBackend,
    root: PathBuf,
}

#[async_trait]
impl Backend for ShellSandbox {
    fn name(&self) -> &'static str {
        "shell-test"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            execute: true,
            ..self.fs.capabilities()
        }
    }
    async fn ls(&self, path: &VPath) -> Result<Vec<DirEntry>> {
        self.fs.ls(path).await
    }
    async fn stat(&self, path: &VPath) -> Result<DirEntry> {
        self.fs.stat(path).await
    }
    async fn read(&self, path: &VPath, request: ReadRequest) -> Result<TextWindow> {
        self.fs.read(path, request).await
    }
    async fn write(&self, path: &VPath, content: &str) -> Result<()> {
        self.fs.write(path, content).await
    }
    async fn edit(&self, path: &VPath, request: &EditRequest) -> Result<EditOutcome> {
        self.fs.edit(path, request).await
    }
    async fn delete(&self, path: &VPath) -> Result<()> {
        self.fs.delete(path).await
    }
    async fn grep(&self, request: &GrepRequest) -> Result<GrepOutput> {
        self.fs.grep(request).await
    }
    async fn glob(&self, request: &GlobRequest) -> Result<GlobOutput> {
        self.fs.glob(request).await
    }
    async fn upload(&self, files: Vec<(VPath, Vec<u8>)>) -> Vec<Result<()>> {
        self.fs.upload(files).await
    }
    async fn download(&self, paths: &[VPath]) -> Vec<Result<Vec<u8>>> {
        self.fs.download(paths).await
    }
}

#[async_trait]
impl Sandbox for ShellSandbox {
    fn id(&self) -> &str {
        "shell-test"
    }

    async fn execute(&self, request: ExecRequest) -> Result<ExecOutput> {
        let workdir = request.workdir.clone().unwrap_or_else(VPath::root);
        let mut command = tokio::process::Command::new("sh");
        command
            .arg("-c")
            .arg(&request.command)
            .current_dir(self.root.join(workdir.relative()))
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .envs(&request.env)
            .stdin(if request.stdin.is_empty() {
                Stdio::null()
            } else {
                Stdio::piped()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let started = Instant::now();
        let mut child = command.spawn().map_err(|e| Error::io(&workdir, &e))?;
        let pgid = Pid::from_raw(
            child
                .id()
                .and_then(|id| i32::try_from(id).ok())
                .unwrap_or(0),
        );
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(&request.stdin).await.ok();
        }
        let collect = |pipe: Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>| {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                if let Some(mut pipe) = pipe {
                    pipe.read_to_end(&mut buf).await.ok();
                }
                buf
            })
        };
        let stdout = collect(child.stdout.take().map(|p| Box::new(p) as _));
        let stderr = collect(child.stderr.take().map(|p| Box::new(p) as _));
        let (timed_out, exit_code) = match tokio::time::timeout(request.timeout, child.wait()).await
        {
            Ok(status) => (false, status.map_err(|e| Error::io(&workdir, &e))?.code()),
            Err(_) => {
                killpg(pgid, Signal::SIGKILL).ok();
                child.wait().await.ok();
                (true, None)
            }
        };
        Ok(ExecOutput {
            stdout: stdout.await.unwrap_or_default(),
            stderr: stderr.await.unwrap_or_default(),
            exit_code,
            timed_out,
            truncated: false,
            duration: started.elapsed(),
        })
    }
}

conformance_tests!(
    async {
        let dir = tempfile::Builder::new()
            .prefix("sandbay-testkit-exec-")
            .tempdir()
            .expect("temp dir");
        let root = sandbay_fs::open_root(dir.path()).await.expect("open root");
        let sandbox = ShellSandbox {
            fs: FsBackend::new(root),
            root: dir.path().to_path_buf(),
        };
        Fixture::with_sandbox(sandbox)
            .host_root(dir.path())
            .guard(dir)
    },
    execute = true
);
