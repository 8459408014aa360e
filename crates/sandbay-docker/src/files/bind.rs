//! Bind-mounted workspaces: a per-sandbox host directory, mounted at
//! `/workspace`, with every file operation done on the host through the
//! capability-based [`FsBackend`] (microseconds instead of a round trip
//! into the container).
//!
//! The container plants whatever it likes in that directory (symlinks to
//! `/etc`, FIFOs, ...); the fs backend refuses anything that would lead
//! the host side out (cap-std resolves every path beneath the handle).
//!
//! Files must belong to the sandbox user so commands can change them. The
//! host-side operations therefore run on threads whose *filesystem* uid
//! and gid are the sandbox's (`setfsuid`/`setfsgid` are per thread): new
//! files are owned by the sandbox user, and every permission check is
//! the sandbox user's, never root's. Those threads belong to one small
//! runtime per uid, shared by every sandbox of the process.
//!
//! With a disk quota ([`BindFiles::create_with_quota`]) the directory is
//! the workspace inside the fs provider's loop-mounted ext4 image of the
//! quota's size (root hosts): the container's writes to `/workspace` and
//! the host-side file operations meet the same limit, and `df` in the
//! container shows the quota.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use nix::sys::stat::Mode;
use nix::unistd::{Gid, Uid};
use sandbay_core::{Backend, DiskQuota, Error, Result};
use sandbay_fs::{FsBackend, FsConfig, FsProvider, Quota};

/// A runtime whose threads act as one `uid:gid` on the filesystem; shut
/// down (in the background, so it may go from async code) when the last
/// workspace of that identity goes.
struct FsRuntime(Option<tokio::runtime::Runtime>);

impl Drop for FsRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

type Runtimes = Mutex<HashMap<(u32, u32), Weak<FsRuntime>>>;

/// The runtime whose threads act as `uid:gid` on the filesystem, shared by
/// every live workspace of that identity (each container has a uid of
/// its own, so runtimes come and go with them).
fn runtime_for(uid: u32, gid: u32) -> Result<(Arc<FsRuntime>, tokio::runtime::Handle)> {
    static RUNTIMES: OnceLock<Runtimes> = OnceLock::new();
    let map = RUNTIMES.get_or_init(|| Mutex::new(HashMap::new()));
    let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
    map.retain(|_, w| w.strong_count() > 0);
    if let Some(rt) = map.get(&(uid, gid)).and_then(Weak::upgrade) {
        let handle = rt.0.as_ref().map(|r| r.handle().clone());
        if let Some(h) = handle {
            return Ok((rt, h));
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(16)
        .thread_name("sandbay-docker-fs")
        .on_thread_start(move || {
            nix::unistd::setfsgid(Gid::from_raw(gid));
            nix::unistd::setfsuid(Uid::from_raw(uid));
        })
        .enable_all()
        .build()
        .map_err(|e| Error::Unavailable {
            message: format!("cannot start the file threads ({})", e.kind()),
        })?;
    let handle = rt.handle().clone();
    let rt = Arc::new(FsRuntime(Some(rt)));
    map.insert((uid, gid), Arc::downgrade(&rt));
    Ok((rt, handle))
}

/// Whether this process can act as `uid` on the filesystem (it is root,
/// or it is that user).
pub(crate) fn can_act_as(uid: u32) -> bool {
    let me = nix::unistd::geteuid();
    me.is_root() || me.as_raw() == uid
}

/// A workspace in a host directory bind-mounted into the container.
pub(crate) struct BindFiles {
    fs: FsBackend,
    runtime: tokio::runtime::Handle,
    _threads: Arc<FsRuntime>,
    /// The provider that made the directory, and its owner and session
    /// names; `None` for a workspace attached from outside (kept).
    made: Option<(FsProvider, String, String)>,
    host_dir: PathBuf,
}

impl std::fmt::Debug for BindFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // never show the host directory
        f.debug_struct("BindFiles").finish_non_exhaustive()
    }
}

impl BindFiles {
    /// Makes `base/<owner>/<session>`, owned by `uid:gid` with mode 0700.
    /// With a disk quota, on a root host the
    /// workspace is `base/<owner>/<session>.mnt/workspace` inside a
    /// loop-mounted image of the quota's size (see [`sandbay_fs::Quota`]),
    /// elsewhere only the host-side file operations count bytes
    /// ([`BindFiles::quota`] says which).
    pub(crate) async fn create_with_quota(
        base: &Path,
        owner: &str,
        session: &str,
        uid: u32,
        gid: u32,
        quota: Option<Quota>,
    ) -> Result<BindFiles> {
        let mut config = FsConfig::default();
        if let Some(quota) = quota {
            config = config.with_quota(quota);
        }
        let provider = FsProvider::open(base).await?.with_config(config);
        let fs = provider.session(owner, session).await?;
        let host_dir = provider.session_path(owner, session)?;
        // fchown/fchmod through the capability itself: no host path, no
        // race (the root handle is O_PATH, so open "." for a real fd)
        let given = fs.root().open(".").and_then(|dir| {
            std::os::unix::fs::fchown(&dir, Some(uid), Some(gid))?;
            nix::sys::stat::fchmod(&dir, Mode::from_bits_truncate(0o700))
                .map_err(std::io::Error::from)
        });
        if let Err(e) = given {
            tracing::warn!(kind = ?e.kind(), "cannot hand the workspace to the sandbox user");
            let _ = provider.remove_session(owner, session).await;
            return Err(Error::Unavailable {
                message: "cannot give the workspace directory to the sandbox user".into(),
            });
        }
        let (threads, runtime) = runtime_for(uid, gid)?;
        Ok(BindFiles {
            fs,
            runtime,
            _threads: threads,
            made: Some((provider, owner.into(), session.into())),
            host_dir,
        })
    }

    /// The workspace in an existing host directory (one a caller keeps:
    /// it is never removed from here), reached as `uid:gid`.
    pub(crate) async fn over(dir: &Path, uid: u32, gid: u32) -> Result<BindFiles> {
        let fs = FsBackend::new(sandbay_fs::open_root(dir).await?);
        let (threads, runtime) = runtime_for(uid, gid)?;
        Ok(BindFiles {
            fs,
            runtime,
            _threads: threads,
            made: None,
            host_dir: dir.to_path_buf(),
        })
    }

    /// The host directory (for the bind mount only; never shown to users).
    pub(crate) fn host_dir(&self) -> &Path {
        &self.host_dir
    }

    /// The disk quota in force, for the sandbox's
    /// [`sandbay_core::Capabilities::quota`].
    pub(crate) fn quota(&self) -> Option<DiskQuota> {
        self.fs.capabilities().quota
    }

    /// Runs a file operation on the sandbox user's threads.
    pub(crate) async fn call<T, F, Fut>(&self, op: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(FsBackend) -> Fut,
        Fut: Future<Output = Result<T>> + Send + 'static,
    {
        let fut = op(self.fs.clone());
        self.runtime.spawn(fut).await.unwrap_or_else(|_| {
            Err(Error::Unavailable {
                message: "the file threads stopped".into(),
            })
        })
    }

    /// Like [`BindFiles::call`] for operations that return a value per item.
    pub(crate) async fn call_vec<T, F, Fut>(&self, items: usize, op: F) -> Vec<Result<T>>
    where
        T: Send + 'static,
        F: FnOnce(FsBackend) -> Fut,
        Fut: Future<Output = Vec<Result<T>>> + Send + 'static,
    {
        let fut = op(self.fs.clone());
        match self.runtime.spawn(fut).await {
            Ok(v) => v,
            Err(_) => (0..items)
                .map(|_| {
                    Err(Error::Unavailable {
                        message: "the file threads stopped".into(),
                    })
                })
                .collect(),
        }
    }

    /// A handle that removes the directory later (from `Drop`); `None`
    /// for a directory this sandbox did not make.
    pub(crate) fn remover(&self) -> Option<Remover> {
        self.made
            .as_ref()
            .map(|(provider, owner, session)| Remover {
                provider: provider.clone(),
                owner: owner.clone(),
                session: session.clone(),
            })
    }
}

/// Removes a bind-mounted workspace directory.
#[derive(Clone)]
pub(crate) struct Remover {
    provider: FsProvider,
    owner: String,
    session: String,
}

impl Remover {
    /// Deletes the directory and everything in it; a missing one is fine.
    pub(crate) async fn remove(&self) -> Result<()> {
        match self
            .provider
            .remove_session(&self.owner, &self.session)
            .await
        {
            Ok(()) | Err(Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    //! Bind mode with a disk quota: a real container (the test image, no
    //! network, the sandbox uid) with the quota'd workspace bind-mounted
    //! at `/workspace`, filled through the host-side file API and through
    //! commands. Needs root (loop mounts), `mkfs.ext4` and a Docker daemon:
    //! without them it prints `skipped: <reason>` (a failure under
    //! `CI=true`). The container and the image are removed, and no loop
    //! device is left, even when the test fails.

    use std::process::Command;
    use std::time::{Duration, Instant};

    use sandbay_core::{
        Capabilities, ExecOutput, ExecRequest, Isolation, Sandbox, VPath, async_trait,
    };

    use super::*;
    use crate::files::Files;

    const UID: u32 = 10001;

    /// The workspace's files and a container that bind-mounts them;
    /// commands go through `docker exec`.
    #[derive(Debug)]
    struct Bound {
        files: Files,
        container: String,
    }

    impl Drop for Bound {
        fn drop(&mut self) {
            let _ = Command::new("docker")
                .args(["rm", "-f", &self.container])
                .output();
        }
    }

    sandbay_core::delegate_backend!(impl Backend for Bound => files {
        fn name(&self) -> &'static str {
            "docker"
        }
        fn capabilities(&self) -> Capabilities {
            Capabilities {
                execute: true,
                isolation: Isolation::Container,
                symlinks: true,
                quota: match &self.files {
                    Files::Bind(b) => b.quota(),
                    Files::Container(_) => None,
                },
                ..Capabilities::default()
            }
        }
    });

    #[async_trait]
    impl Sandbox for Bound {
        fn id(&self) -> &str {
            &self.container
        }

        async fn execute(&self, request: ExecRequest) -> Result<ExecOutput> {
            let container = self.container.clone();
            let started = Instant::now();
            let out = tokio::task::spawn_blocking(move || {
                Command::new("docker")
                    .args(["exec", "-w", "/workspace", &container, "sh", "-c"])
                    .arg(&request.command)
                    .output()
            })
            .await
            .expect("docker exec thread")
            .map_err(|e| Error::Unavailable {
                message: format!("docker exec: {}", e.kind()),
            })?;
            Ok(ExecOutput {
                stdout: out.stdout,
                stderr: out.stderr,
                exit_code: out.status.code(),
                duration: started.elapsed(),
                ..ExecOutput::default()
            })
        }
    }

    /// Unmounts what is left below the base directory (a failed test).
    struct Base(tempfile::TempDir);

    impl Drop for Base {
        fn drop(&mut self) {
            let base = self.0.path().to_string_lossy().into_owned();
            let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
            for mount in table.lines().filter_map(|l| l.split(' ').nth(4)) {
                if mount.starts_with(&base) {
                    let _ = nix::mount::umount2(mount, nix::mount::MntFlags::MNT_DETACH);
                }
            }
        }
    }

    fn loops_below(base: &Path) -> Vec<String> {
        let out = Command::new("losetup").arg("-a").output().expect("losetup");
        let base = base.to_string_lossy().into_owned();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains(&base))
            .map(str::to_owned)
            .collect()
    }

    fn ready() -> std::result::Result<(), String> {
        if !nix::unistd::geteuid().is_root() {
            return Err("a bind-mode quota needs root".into());
        }
        if !sandbay_fs::host_can_mount() {
            return Err("a bind-mode quota needs mkfs.ext4 and loop devices".into());
        }
        sandbay_testkit::docker::check(sandbay_testkit::docker::TEST_IMAGE)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bind_mode_quota_holds_for_the_api_and_the_container() {
        if !sandbay_testkit::isolation::require(ready()) {
            return;
        }
        let base = Base(
            tempfile::Builder::new()
                .prefix("sandbay-docker-quota-test-")
                .tempdir()
                .unwrap(),
        );
        let quota = Quota::new(8 << 20, 400);
        let files =
            BindFiles::create_with_quota(base.0.path(), "quota-test", "s1", UID, UID, Some(quota))
                .await
                .unwrap();
        let host_dir = files.host_dir().to_path_buf();
        let remover = files.remover().unwrap();
        let run = Command::new("docker")
            .args([
                "run",
                "-d",
                "--rm",
                "--network",
                "none",
                "--cap-drop",
                "ALL",
                "--label",
                "sandbay.managed=true",
                "--label",
                "sandbay.owner=quota-test",
                "--label",
                "sandbay.test=bind-quota",
                "--user",
                &format!("{UID}:{UID}"),
                "-v",
            ])
            .arg(format!("{}:/workspace", host_dir.display()))
            .args([sandbay_testkit::docker::TEST_IMAGE, "sleep", "600"])
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "docker run: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        let bound = Bound {
            files: Files::Bind(files),
            container: String::from_utf8_lossy(&run.stdout).trim().to_owned(),
        };
        assert_eq!(
            bound.capabilities().quota,
            Some(DiskQuota {
                bytes: 8 << 20,
                files: Some(400),
                commands: true,
            })
        );
        // what the container writes belongs to the sandbox user on the host
        let out = bound
            .execute(ExecRequest::new("echo hi > mine.txt; id -u"))
            .await
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), UID.to_string());
        let meta = std::fs::metadata(host_dir.join("mine.txt")).unwrap();
        assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), UID);
        bound
            .delete(&VPath::parse("/mine.txt").unwrap())
            .await
            .unwrap();

        let fx = sandbay_testkit::Fixture::with_sandbox(bound).host_root(&host_dir);
        sandbay_testkit::quota::disk_quota_holds(&fx).await;
        drop(fx); // removes the container
        remover.remove().await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !loops_below(base.0.path()).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(loops_below(base.0.path()), Vec::<String>::new());
        assert!(!host_dir.exists());
    }
}
