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

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use nix::sys::stat::Mode;
use nix::unistd::{Gid, Uid};
use sandbay_core::{Error, Result};
use sandbay_fs::{FsBackend, FsProvider};

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
    provider: FsProvider,
    owner: String,
    session: String,
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
    pub(crate) async fn create(
        base: &Path,
        owner: &str,
        session: &str,
        uid: u32,
        gid: u32,
    ) -> Result<BindFiles> {
        let provider = FsProvider::open(base).await?;
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
            provider,
            owner: owner.into(),
            session: session.into(),
            host_dir,
        })
    }

    /// The host directory (for the bind mount only; never shown to users).
    pub(crate) fn host_dir(&self) -> &Path {
        &self.host_dir
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

    /// A handle that removes the directory later (from `Drop`).
    pub(crate) fn remover(&self) -> Remover {
        Remover {
            provider: self.provider.clone(),
            owner: self.owner.clone(),
            session: self.session.clone(),
        }
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
