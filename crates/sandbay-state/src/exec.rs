//! [`StateSandbox`]: a state workspace whose commands run in a local jail
//! over a scratch copy of its files (see the crate docs, "Running
//! commands").

mod scratch;
mod sync;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sandbay_core::{
    Capabilities, ExecOutput, ExecRequest, ExecStream, Result, Sandbox, VPath, async_trait,
};
use sandbay_exec::{Jail, OutputSink};

use crate::backend::StateBackend;
use crate::tree::Node;
pub use scratch::sweep_orphaned_scratch;
use scratch::{Bounds, Entry, Scratch};

/// Most bytes a run's files may add up to when the workspace has no quota
/// ([`crate::StateConfig::max_total_bytes`]): 1 GiB. Change it with
/// [`StateSandbox::with_max_sync_bytes`].
pub const DEFAULT_MAX_SYNC_BYTES: u64 = 1 << 30;

/// Most files and directories a run may leave in its scratch directory.
pub const MAX_SYNC_ENTRIES: usize = 100_000;

/// How many notes about a run's files are listed before "and N more".
const MAX_NOTES: usize = 10;

/// An in-memory workspace that can also run commands, each in the
/// sandbox's own [`Jail`] over a scratch copy of the files.
///
/// File operations go straight to the [`StateBackend`]. `execute` writes
/// the workspace into a private scratch directory, runs the command there
/// in the jail, and stores back what the command created, changed and
/// deleted; the scratch directory is removed before `execute` returns
/// (also on error, timeout or when the future is dropped). The crate docs
/// ("Running commands") give the rules.
///
/// Cheap to clone (everything inside is shared).
///
/// ```no_run
/// # async fn demo() -> sandbay_core::Result<()> {
/// use std::sync::Arc;
/// use sandbay_core::{Backend, BackendExt, ExecRequest, Sandbox, VPath};
/// use sandbay_exec::{Jail, JailConfig};
/// use sandbay_state::{StateBackend, StateSandbox};
///
/// let jail = Jail::new(JailConfig::new(Jail::probe()))?;
/// let ws = StateSandbox::new("alice", Arc::new(StateBackend::default()), jail);
/// ws.write(&VPath::parse("/in.txt")?, "hello\n").await?;
/// let out = ws.execute(ExecRequest::new("tr a-z A-Z < in.txt > out.txt")).await?;
/// assert_eq!(out.exit_code, Some(0));
/// assert_eq!(ws.read_to_string(&VPath::parse("/out.txt")?).await?, "HELLO\n");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct StateSandbox {
    id: String,
    backend: Arc<StateBackend>,
    jail: Jail,
    /// Where scratch directories go; `None`: chosen per run ([`scratch_parent`]).
    scratch_parent: Option<PathBuf>,
    max_sync_bytes: u64,
    /// The jail caps each run's memory, tmpfs pages included.
    memory_capped: bool,
}

impl fmt::Debug for StateSandbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the host path of the scratch directories.
        f.debug_struct("StateSandbox")
            .field("id", &self.id)
            .field("isolation", &self.jail.isolation())
            .field("max_sync_bytes", &self.max_sync_bytes)
            .finish_non_exhaustive()
    }
}

impl StateSandbox {
    /// A sandbox named `id` over `backend`, whose commands run in `jail`.
    ///
    /// Scratch directories go to `/dev/shm` when it is a tmpfs with room
    /// for the workspace plus its sync limit *and* the jail caps each run's
    /// memory with a cgroup (which then also caps what the command writes
    /// there); otherwise to the host's temporary directory
    /// (`std::env::temp_dir()`). See the crate docs, "Cost and limits".
    pub fn new(id: impl Into<String>, backend: Arc<StateBackend>, jail: Jail) -> Self {
        let memory_capped = jail.enforcement().cgroup_memory;
        StateSandbox {
            id: id.into(),
            backend,
            jail,
            scratch_parent: None,
            max_sync_bytes: DEFAULT_MAX_SYNC_BYTES,
            memory_capped,
        }
    }

    /// Puts the scratch directories in `dir` (a host directory that
    /// exists; each run makes and removes one directory in it) instead of
    /// choosing one per run. At the `limits` isolation level the jail's
    /// uid must be able to traverse `dir` and its parents.
    pub fn with_scratch_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.scratch_parent = Some(dir.into());
        self
    }

    /// Sets the most bytes a run's files may add up to when the workspace
    /// has no quota (default [`DEFAULT_MAX_SYNC_BYTES`]); with a quota, the
    /// quota is the limit.
    pub fn with_max_sync_bytes(mut self, bytes: u64) -> Self {
        self.max_sync_bytes = bytes;
        self
    }

    /// The workspace.
    pub fn backend(&self) -> &Arc<StateBackend> {
        &self.backend
    }

    /// The jail commands run in (its [`Jail::enforcement`] tells what is
    /// in force).
    pub fn jail(&self) -> &Jail {
        &self.jail
    }

    /// The sync limit of a run: the quota, else the configured limit.
    fn sync_limit(&self) -> u64 {
        self.backend
            .config()
            .max_total_bytes
            .unwrap_or(self.max_sync_bytes)
    }

    /// Where this run's scratch directory goes (see [`StateSandbox::new`]).
    fn scratch_parent(&self) -> PathBuf {
        if let Some(dir) = &self.scratch_parent {
            return dir.clone();
        }
        let need = self.backend.total_bytes().saturating_add(self.sync_limit());
        if self.memory_capped && tmpfs_room(Path::new(SHM)).is_some_and(|room| room >= need) {
            return PathBuf::from(SHM);
        }
        std::env::temp_dir()
    }

    /// Every directory and file of the workspace now, by path.
    fn files(&self) -> BTreeMap<VPath, Entry> {
        let tree = self.backend.read_tree();
        let mut files = BTreeMap::new();
        tree.root().visit(&mut |node| match node {
            Node::Dir(d) if !d.path.is_root() => {
                files.insert(d.path.clone(), Entry::Dir);
            }
            Node::File(f) => {
                files.insert(f.path.clone(), Entry::File(f.data.clone()));
            }
            Node::Dir(_) => {}
        });
        files
    }

    /// Reads the scratch directory back and stores the command's changes;
    /// returns the notes for stderr.
    async fn sync_back(
        &self,
        scratch: &Scratch,
        before: Arc<BTreeMap<VPath, Entry>>,
    ) -> Result<Vec<String>> {
        let quota = self.backend.config().max_total_bytes;
        let bounds = Bounds {
            max_bytes: self.sync_limit(),
            what: if quota.is_some() {
                "quota"
            } else {
                "sync limit"
            },
            max_entries: MAX_SYNC_ENTRIES,
        };
        let read = match scratch.read_back(Arc::clone(&before), bounds).await? {
            Ok(read) => read,
            Err(refused) => {
                tracing::warn!(sandbox = %self.id, "{}", refused.0);
                return Ok(vec![refused.0]);
            }
        };
        let mut notes = read.skipped;
        let changes = sync::diff(&before, read.seen);
        if changes.is_empty() {
            return Ok(notes);
        }
        let kept = {
            let mut tree = self.backend.write_tree();
            let (next, kept) = sync::apply(&tree, changes);
            if let Some(limit) = quota
                && next.total_bytes() > limit
                && next.total_bytes() > tree.total_bytes()
            {
                let note = format!(
                    "the workspace would hold {} bytes after the command, over its quota of {limit} bytes, so none of the command's file changes were saved",
                    next.total_bytes()
                );
                tracing::warn!(sandbox = %self.id, "{note}");
                return Ok(vec![note]);
            }
            *tree = next;
            kept
        };
        // a durable session set to write every change has it on disk
        // before the command is reported done, like any other write
        #[cfg(feature = "persist")]
        if let Some(saver) = self.backend.saver() {
            saver.clone().commit(&self.backend).await?;
        }
        notes.extend(kept);
        Ok(notes)
    }
}

/// The host's shared-memory tmpfs, the fast place for scratch directories.
const SHM: &str = "/dev/shm";

/// Free bytes of the tmpfs at `path`; `None` if it is not a tmpfs.
fn tmpfs_room(path: &Path) -> Option<u64> {
    let fs = nix::sys::statfs::statfs(path).ok()?;
    if fs.filesystem_type() != nix::sys::statfs::TMPFS_MAGIC {
        return None;
    }
    let vfs = nix::sys::statvfs::statvfs(path).ok()?;
    // `c_ulong` is `u64` on 64-bit Linux; the cast keeps 32-bit hosts building.
    #[allow(clippy::unnecessary_cast)]
    let fragment = vfs.fragment_size() as u64;
    Some(vfs.blocks_available().saturating_mul(fragment))
}

/// Adds the notes about a run's files to its output's own notes field,
/// ten at most and then a count.
fn append_notes(out: &mut Vec<String>, notes: &[String]) {
    out.extend(notes.iter().take(MAX_NOTES).cloned());
    if notes.len() > MAX_NOTES {
        let more = notes.len() - MAX_NOTES;
        out.push(format!("and {more} more like these"));
    }
}

sandbay_core::delegate_backend!(impl Backend for StateSandbox => backend {
    fn name(&self) -> &'static str {
        self.backend.name()
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            execute: true,
            isolation: self.jail.isolation(),
            ..self.backend.capabilities()
        }
    }
});

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl Sandbox for StateSandbox {
    fn id(&self) -> &str {
        &self.id
    }

    async fn execute(&self, request: ExecRequest) -> Result<ExecOutput> {
        self.run(request, None).await
    }

    /// Streams from the jail as the command writes; the command's file
    /// changes are stored before the `Exit` event, whose notes tell about
    /// them. Dropping the stream kills the tree and removes the scratch
    /// directory without storing anything.
    async fn execute_stream(&self, request: ExecRequest) -> Result<ExecStream> {
        let this = self.clone();
        sandbay_exec::exec_stream(move |sink| async move { this.run(request, Some(sink)).await })
            .await
    }
}

impl StateSandbox {
    /// One command over a scratch copy; its output kept, or sent to `sink`.
    async fn run(&self, request: ExecRequest, sink: Option<OutputSink>) -> Result<ExecOutput> {
        // A call that waits for one of the jail's places holds no scratch
        // copy meanwhile, and copies the files as they are when it starts.
        let place = self.jail.wait_for_place().await?;
        let before = Arc::new(self.files());
        let scratch = Scratch::create(&self.scratch_parent(), Arc::clone(&before)).await?;
        let result = match sink {
            Some(sink) => {
                self.jail
                    .run_in_streaming(place, scratch.path(), request, sink)
                    .await
            }
            None => self.jail.run_in(place, scratch.path(), request).await,
        };
        let result = match result {
            Ok(mut out) => {
                let notes = self.sync_back(&scratch, before).await.unwrap_or_else(|e| {
                    tracing::warn!(sandbox = %self.id, error = %e, "a command's files were not saved");
                    vec![format!(
                        "the command's file changes could not be saved: {e}"
                    )]
                });
                append_notes(&mut out.notes, &notes);
                Ok(out)
            }
            Err(e) => Err(e),
        };
        scratch.remove().await;
        result
    }
}
