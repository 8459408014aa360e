//! [`StateBackend`]: the in-memory [`Backend`] of one session.

use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use sandbay_core::text::{self, GlobMatcher, GrepPlan};
use sandbay_core::{
    Backend, Capabilities, DirEntry, DiskQuota, EditOutcome, EditRequest, Error, GlobOutput,
    GlobRequest, GrepOutput, GrepRequest, Isolation, ReadRequest, Result, TextWindow, VPath,
    async_trait,
};

use crate::config::StateConfig;
use crate::snapshot::Snapshot;
use crate::tree::{Content, Node, Tree};

/// An in-memory workspace that behaves like a small POSIX filesystem.
///
/// Directories are explicit nodes (one stays after its last file is
/// deleted), `write` and `upload` create parents, every change is built
/// completely and then swapped in under the lock, so a reader never sees
/// half a write. Text operations use the shared rules of
/// [`sandbay_core::text`], so results equal those of the disk backend
/// byte for byte.
///
/// ```
/// # async fn demo() -> sandbay_core::Result<()> {
/// use sandbay_core::{Backend, BackendExt, VPath};
/// use sandbay_state::StateBackend;
///
/// let backend = StateBackend::default();
/// let path = VPath::parse("/notes/todo.md")?;
/// backend.write(&path, "buy milk\n").await?;
/// assert_eq!(backend.read_to_string(&path).await?, "buy milk\n");
/// # Ok(()) }
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(demo()).unwrap();
/// ```
#[derive(Debug, Default)]
pub struct StateBackend {
    config: StateConfig,
    tree: RwLock<Tree>,
    /// The link to the disk of a durable store's session.
    #[cfg(feature = "persist")]
    saver: Option<Arc<crate::persist::Saver>>,
    /// Why a durable session could not be loaded: every call fails so.
    #[cfg(feature = "persist")]
    broken: Option<crate::persist::LoadError>,
}

impl StateBackend {
    /// An empty workspace with the given settings.
    pub fn new(config: StateConfig) -> Self {
        StateBackend {
            config,
            tree: RwLock::new(Tree::default()),
            ..StateBackend::default()
        }
    }

    /// A durable store's session: `tree` loaded from disk, changes saved
    /// through `saver`.
    #[cfg(feature = "persist")]
    pub(crate) fn durable(
        config: StateConfig,
        tree: Tree,
        saver: Arc<crate::persist::Saver>,
    ) -> Self {
        StateBackend {
            config,
            tree: RwLock::new(tree),
            saver: Some(saver),
            broken: None,
        }
    }

    /// A durable store's session that could not be loaded.
    #[cfg(feature = "persist")]
    pub(crate) fn broken(config: StateConfig, error: crate::persist::LoadError) -> Self {
        StateBackend {
            config,
            broken: Some(error),
            ..StateBackend::default()
        }
    }

    #[cfg(feature = "persist")]
    pub(crate) fn saver(&self) -> Option<&Arc<crate::persist::Saver>> {
        self.saver.as_ref()
    }

    /// Why this durable session could not be loaded, if it could not.
    #[cfg(feature = "persist")]
    pub(crate) fn load_error(&self) -> Option<&crate::persist::LoadError> {
        self.broken.as_ref()
    }

    /// The files, taking them out of the backend.
    #[cfg(feature = "persist")]
    pub(crate) fn into_tree(self) -> Tree {
        self.tree
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Fails when the session could not be loaded from disk.
    fn usable(&self) -> Result<()> {
        #[cfg(feature = "persist")]
        if let Some(e) = &self.broken {
            return Err(e.clone().into());
        }
        Ok(())
    }

    /// After a change: with a durable store set to write every change,
    /// waits until it is on disk.
    async fn committed(&self) -> Result<()> {
        #[cfg(feature = "persist")]
        if let Some(saver) = &self.saver {
            return saver.clone().commit(self).await;
        }
        Ok(())
    }

    /// The settings in force.
    pub fn config(&self) -> &StateConfig {
        &self.config
    }

    /// Sum of the sizes of all files (what the quota counts).
    pub fn total_bytes(&self) -> u64 {
        self.read_tree().total_bytes()
    }

    /// A consistent copy of the whole workspace.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot::of(&self.read_tree())
    }

    /// A workspace with the default settings holding a snapshot's files.
    ///
    /// # Errors
    /// `invalid_argument` for an unknown format or inconsistent entries
    /// (a path twice, a file below a file).
    pub fn restore(snapshot: Snapshot) -> Result<Self> {
        Self::restore_with(StateConfig::default(), snapshot)
    }

    /// Like [`StateBackend::restore`] with explicit settings.
    ///
    /// # Errors
    /// As [`StateBackend::restore`], plus `too_large` over the quota.
    pub fn restore_with(config: StateConfig, snapshot: Snapshot) -> Result<Self> {
        let tree = snapshot.into_tree(config.max_total_bytes)?;
        Ok(StateBackend {
            config,
            tree: RwLock::new(tree),
            ..StateBackend::default()
        })
    }

    /// Replaces the whole content with a snapshot's, atomically: on error
    /// nothing changes.
    ///
    /// # Errors
    /// As [`StateBackend::restore_with`].
    pub fn load(&self, snapshot: Snapshot) -> Result<()> {
        let tree = snapshot.into_tree(self.config.max_total_bytes)?;
        *self.write_tree() = tree;
        Ok(())
    }

    pub(crate) fn read_tree(&self) -> RwLockReadGuard<'_, Tree> {
        // No code path panics while holding the lock; recover anyway.
        self.tree.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The tree, for a change: a durable session records that it has
    /// one to save.
    pub(crate) fn write_tree(&self) -> RwLockWriteGuard<'_, Tree> {
        let tree = self.tree.write().unwrap_or_else(PoisonError::into_inner);
        #[cfg(feature = "persist")]
        if let Some(saver) = &self.saver {
            saver.touch();
        }
        tree
    }

    /// Refuses a change that would take the total over the quota.
    fn check_quota(&self, tree: &Tree, path: &VPath, old: u64, new: u64) -> Result<()> {
        let Some(limit) = self.config.max_total_bytes else {
            return Ok(());
        };
        let size = tree.total_bytes() - old + new;
        if new > old && size > limit {
            tracing::debug!(%path, size, limit, "state quota refused a write");
            return Err(Error::QuotaExceeded {
                path: path.clone(),
                limit: Some(limit),
            });
        }
        Ok(())
    }

    /// Checks, then stores a file, all under one write lock (the content
    /// is built and checked for text before the lock is taken).
    fn store(&self, path: &VPath, content: Content) -> Result<()> {
        let mut tree = self.write_tree();
        let old = tree.check_put(path)?;
        self.check_quota(&tree, path, old, content.len() as u64)?;
        tree.put_checked(path, old, content)
    }

    /// The bytes of the file at `path`.
    fn file_bytes(tree: &Tree, path: &VPath) -> Result<Arc<[u8]>> {
        match tree.get(path)? {
            Node::File(f) => Ok(f.data.clone()),
            Node::Dir(_) => Err(Error::IsDirectory { path: path.clone() }),
        }
    }

    /// The bytes of the file at `path` and its text, if it is text.
    fn file_content(tree: &Tree, path: &VPath) -> Result<Content> {
        match tree.get(path)? {
            Node::File(f) => Ok(Content {
                data: f.data.clone(),
                text: f.text.clone(),
            }),
            Node::Dir(_) => Err(Error::IsDirectory { path: path.clone() }),
        }
    }

    /// Applies an edit to a file's content: size limit, text check (made
    /// when the file was stored), then the rules.
    fn edited(
        &self,
        path: &VPath,
        data: &[u8],
        text: Option<&str>,
        request: &EditRequest,
    ) -> Result<(Content, usize)> {
        let limit = self.config.limits.max_text_file_bytes;
        if data.len() as u64 > limit {
            return Err(Error::TooLarge {
                what: path.to_string(),
                size: data.len() as u64,
                limit,
            });
        }
        let Some(content) = text else {
            return Err(Error::BinaryFile { path: path.clone() });
        };
        let (new, count) = text::apply_edit(path, content, request, limit)?;
        // `content` is text, so it holds no NUL: the result holds one only
        // if the replacement brought it.
        let new = if request.new.contains('\0') {
            Content::from_text(&new)
        } else {
            Content::from_edited_text(&new)
        };
        Ok((new, count))
    }

    /// An edit under the lock, in memory.
    fn edit_in_memory(&self, path: &VPath, request: &EditRequest) -> Result<EditOutcome> {
        // Optimistic: compute outside the lock, swap if nobody changed the
        // file meanwhile; otherwise redo it holding the write lock.
        let Content { data, text } = Self::file_content(&self.read_tree(), path)?;
        let (new, replacements) = self.edited(path, &data, text.as_deref(), request)?;
        let mut tree = self.write_tree();
        let Content {
            data: current,
            text: current_text,
        } = Self::file_content(&tree, path)?;
        let (data, new, replacements) = if Arc::ptr_eq(&current, &data) {
            (data, new, replacements)
        } else {
            let (new, replacements) =
                self.edited(path, &current, current_text.as_deref(), request)?;
            (current, new, replacements)
        };
        self.check_quota(&tree, path, data.len() as u64, new.len() as u64)?;
        let swapped = tree.swap_file(path, &data, new);
        debug_assert!(swapped, "the write lock is held and the file is unchanged");
        Ok(EditOutcome { replacements })
    }
}

#[async_trait]
impl Backend for StateBackend {
    fn name(&self) -> &'static str {
        "state"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            snapshot: true,
            isolation: Isolation::None,
            // A command's changes are saved only within the quota, but the
            // scratch copy it runs in is not capped while it runs.
            quota: self.config.max_total_bytes.map(|bytes| DiskQuota {
                bytes,
                files: None,
                commands: false,
            }),
            #[cfg(feature = "persist")]
            persistent: self.saver.is_some(),
            ..Capabilities::default()
        }
    }

    async fn ls(&self, path: &VPath) -> Result<Vec<DirEntry>> {
        self.usable()?;
        match self.read_tree().get(path)? {
            Node::Dir(d) => Ok(d.children.values().map(Node::entry).collect()),
            Node::File(_) => Err(Error::NotADirectory { path: path.clone() }),
        }
    }

    async fn stat(&self, path: &VPath) -> Result<DirEntry> {
        self.usable()?;
        Ok(self.read_tree().get(path)?.entry())
    }

    async fn read(&self, path: &VPath, request: ReadRequest) -> Result<TextWindow> {
        self.usable()?;
        let text = match self.read_tree().get(path)? {
            Node::File(f) => f.text.clone(),
            Node::Dir(_) => return Err(Error::IsDirectory { path: path.clone() }),
        };
        match text {
            // checked when written: no validation on the read path
            Some(text) => Ok(text::window_text(
                &text,
                request,
                self.config.limits.max_window_bytes,
            )),
            None => Err(Error::BinaryFile { path: path.clone() }),
        }
    }

    async fn write(&self, path: &VPath, content: &str) -> Result<()> {
        self.usable()?;
        self.store(path, Content::from_text(content))?;
        self.committed().await
    }

    async fn edit(&self, path: &VPath, request: &EditRequest) -> Result<EditOutcome> {
        self.usable()?;
        let outcome = self.edit_in_memory(path, request)?;
        self.committed().await?;
        Ok(outcome)
    }

    async fn delete(&self, path: &VPath) -> Result<()> {
        self.usable()?;
        self.write_tree().remove(path)?;
        self.committed().await
    }

    async fn grep(&self, request: &GrepRequest) -> Result<GrepOutput> {
        self.usable()?;
        let plan = GrepPlan::new(request)?;
        let limit = self.config.limits.max_text_file_bytes;
        // only text files are searched; text-ness was checked on write
        let mut files: Vec<(VPath, Arc<str>)> = {
            let tree = self.read_tree();
            let mut found = Vec::new();
            tree.get(&request.path)?.collect_files(&mut found);
            found
                .into_iter()
                .filter(|f| f.data.len() as u64 <= limit && plan.wants(&f.path))
                .filter_map(|f| Some((f.path.clone(), f.text.clone()?)))
                .collect()
        };
        files.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut search = plan.start();
        for (path, text) in &files {
            if search.is_done() {
                break;
            }
            search.text_file(path, text);
        }
        Ok(search.finish())
    }

    async fn glob(&self, request: &GlobRequest) -> Result<GlobOutput> {
        self.usable()?;
        let matcher = GlobMatcher::new(&request.pattern)?;
        let base = &request.path;
        let tree = self.read_tree();
        let node = tree.get(base)?;
        if let Node::File(_) = node {
            return Err(Error::NotADirectory { path: base.clone() });
        }
        let mut found = Vec::new();
        node.collect_files(&mut found);
        let paths = found
            .into_iter()
            .filter(|f| matcher.is_match(base, &f.path))
            .map(|f| f.path.clone())
            .collect();
        drop(tree);
        Ok(text::finish_glob(paths, request.limit))
    }

    async fn upload(&self, files: Vec<(VPath, Vec<u8>)>) -> Vec<Result<()>> {
        if let Err(e) = self.usable() {
            let message = e.to_string();
            return files
                .iter()
                .map(|_| {
                    Err(Error::Unavailable {
                        message: message.clone(),
                    })
                })
                .collect();
        }
        let mut results: Vec<Result<()>> = files
            .into_iter()
            .map(|(path, bytes)| self.store(&path, Content::from_bytes(Arc::from(bytes))))
            .collect();
        if results.iter().any(Result::is_ok)
            && let Err(e) = self.committed().await
        {
            // stored in memory, not on disk: say so for each
            let message = e.to_string();
            for r in results.iter_mut().filter(|r| r.is_ok()) {
                *r = Err(Error::Unavailable {
                    message: message.clone(),
                });
            }
        }
        results
    }

    async fn download(&self, paths: &[VPath]) -> Vec<Result<Vec<u8>>> {
        if let Err(e) = self.usable() {
            let message = e.to_string();
            return paths
                .iter()
                .map(|_| {
                    Err(Error::Unavailable {
                        message: message.clone(),
                    })
                })
                .collect();
        }
        let found: Vec<Result<Arc<[u8]>>> = {
            let tree = self.read_tree();
            paths
                .iter()
                .map(|path| Self::file_bytes(&tree, path))
                .collect()
        };
        // copy outside the lock
        found
            .into_iter()
            .map(|r| r.map(|data| data.to_vec()))
            .collect()
    }
}
