//! [`FsSandbox`]: an fs workspace whose commands run in a local jail.
//!
//! The files are served by an [`FsBackend`] (capability handle, no host
//! path); commands run through a [`sandbay_exec::Jail`] with the
//! workspace's host directory as their working directory. Both sides work
//! on the same directory, so a file written through the backend is at once
//! visible to `cat`, and a file a command makes is at once visible to
//! `read`: there is nothing to copy or sync.

use std::fmt;
use std::path::{Path, PathBuf};

use sandbay_core::{
    Capabilities, ExecOutput, ExecRequest, ExecStream, Result, Sandbox, async_trait,
};
use sandbay_exec::Jail;

use crate::backend::FsBackend;

/// A host-directory workspace that can also run commands, each in the
/// sandbox's own [`Jail`] (see the crate docs, "Running commands").
///
/// Every file operation goes to the [`FsBackend`]; `execute` runs
/// `sh -c <command>` in the jail with the workspace directory as working
/// directory (mounted at [`sandbay_exec::WORKSPACE_DIR`] at the
/// `namespaces` level). Give every sandbox its own jail: distinct jails get
/// distinct host uids, which is what keeps two users' commands apart, and
/// each jail's cgroups cap the memory, processes and CPU of all its
/// commands together, however many run at once (at most the jail's
/// `max_concurrent`; see [`sandbay_exec::JailConfig`]).
///
/// Cheap to clone (everything inside is shared).
///
/// ```no_run
/// # async fn demo() -> sandbay_core::Result<()> {
/// use sandbay_core::{Backend, BackendExt, ExecRequest, Sandbox, VPath};
/// use sandbay_exec::{Jail, JailConfig};
/// use sandbay_fs::FsProvider;
///
/// let provider = FsProvider::open("/srv/sandbay").await?;
/// let alice = provider.sandbox("alice", "s1", &JailConfig::new(Jail::probe())).await?;
/// alice.write(&VPath::parse("/hello.txt")?, "hi\n").await?;
/// let out = alice.execute(ExecRequest::new("cat hello.txt; echo made > made.txt")).await?;
/// assert_eq!(out.stdout, b"hi\n");
/// assert_eq!(alice.read_to_string(&VPath::parse("/made.txt")?).await?, "made\n");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct FsSandbox {
    id: String,
    fs: FsBackend,
    host_root: PathBuf,
    jail: Jail,
}

impl fmt::Debug for FsSandbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the host path.
        f.debug_struct("FsSandbox")
            .field("id", &self.id)
            .field("fs", &self.fs)
            .field("isolation", &self.jail.isolation())
            .finish_non_exhaustive()
    }
}

impl FsSandbox {
    /// A sandbox named `id` over `fs`, whose commands run in `jail`.
    ///
    /// `host_root` must be the host directory `fs` was opened on (the
    /// jail needs a path; the backend never uses one). With
    /// [`FsProvider::sandbox`](crate::FsProvider::sandbox) both come from
    /// one place.
    pub fn new(
        id: impl Into<String>,
        fs: FsBackend,
        host_root: impl Into<PathBuf>,
        jail: Jail,
    ) -> Self {
        FsSandbox {
            id: id.into(),
            fs,
            host_root: host_root.into(),
            jail,
        }
    }

    /// The file backend.
    pub fn backend(&self) -> &FsBackend {
        &self.fs
    }

    /// The jail commands run in (its [`Jail::enforcement`] tells what is
    /// in force).
    pub fn jail(&self) -> &Jail {
        &self.jail
    }

    /// The host directory of the workspace. Never show it to a user.
    pub fn host_root(&self) -> &Path {
        &self.host_root
    }
}

sandbay_core::delegate_backend!(impl Backend for FsSandbox => fs {
    fn name(&self) -> &'static str {
        self.fs.name()
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            execute: true,
            isolation: self.jail.isolation(),
            ..self.fs.capabilities()
        }
    }
});

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl Sandbox for FsSandbox {
    fn id(&self) -> &str {
        &self.id
    }

    async fn execute(&self, request: ExecRequest) -> Result<ExecOutput> {
        let out = self.jail.run(&self.host_root, request).await;
        // the command may have changed any file: a counted quota counts again
        self.fs.forget_usage();
        out
    }

    /// Streams from the jail as the command writes (the files are the
    /// workspace's own: nothing to store afterwards). Dropping the stream
    /// kills the tree.
    async fn execute_stream(&self, request: ExecRequest) -> Result<ExecStream> {
        let this = self.clone();
        sandbay_exec::exec_stream(move |sink| async move {
            // also when the stream is dropped midway
            let _recount = Recount(this.fs.clone());
            this.jail
                .run_streaming(&this.host_root, request, sink)
                .await
        })
        .await
    }
}

/// Makes a counted quota count again when dropped: a command may have
/// changed any file.
struct Recount(FsBackend);

impl Drop for Recount {
    fn drop(&mut self) {
        self.0.forget_usage();
    }
}
