//! `--backend docker`: one container per user session, from the Docker
//! pool and registry of `sandbay-pool` (keyed by user and session), with
//! the session's files in a workspace store on the host
//! (`DATA/docker-workspaces`) that outlives every container.
//!
//! Storage and compute are apart: a session's container is made (or
//! taken warm from the pool, its workspace mounted onto it) on the
//! session's first call, and ends on eviction, shutdown or a daemon that
//! goes away; the files stay and the next container gets them. Which
//! sessions exist is kept in an index file, `DATA/docker-sessions.json`
//! (written atomically on every create and delete). The daemon is reached
//! on first use, not at start-up: while it is down every call that needs
//! a container is `503 unavailable`, and the service recovers by itself
//! when it returns. A container whose agent stopped (the daemon went away
//! under it) is let go and the session gets a fresh one on its next call.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use sandbay_core::{
    Backend, Capabilities, DirEntry, EditOutcome, EditRequest, Error, ExecOutput, ExecRequest,
    ExecStream, GlobOutput, GlobRequest, GrepOutput, GrepRequest, Isolation, ReadRequest, Result,
    Sandbox, TextWindow, VPath, async_trait,
};
use sandbay_docker::{DockerClient, DockerConfig, WorkspaceSlots};
use sandbay_exec::Jail;
use sandbay_fs::{FsConfig, Quota, WorkspaceStore};
use sandbay_pool::{
    DockerStorage, Pool, PoolConfig, Registry, RegistryConfig, UserSandbox, WarmDockerFactory,
};

use super::index::SessionIndex;
use super::{Key, Opened, Workspaces};
use crate::config::{DockerSettings, ServerConfig};
use crate::error::ApiError;

type Containers = Registry<WarmDockerFactory, DockerStorage>;

/// Files and directories a session may hold under a mounted quota.
const QUOTA_FILES: u64 = 100_000;

/// Sessions as workspaces of a [`WorkspaceStore`] attached to containers
/// of a [`Registry`].
pub(crate) struct DockerWorkspaces {
    settings: DockerSettings,
    store: WorkspaceStore,
    slots_dir: PathBuf,
    /// Made when the daemon first answers.
    registry: tokio::sync::Mutex<Option<Arc<Containers>>>,
    /// The registry's containers' slots, closed at shutdown.
    slots: Mutex<Option<WorkspaceSlots>>,
    index: SessionIndex,
}

impl std::fmt::Debug for DockerWorkspaces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerWorkspaces")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl DockerWorkspaces {
    /// Opens the workspace store and the session index under the data
    /// directory; the daemon is reached on first use.
    pub(crate) async fn open(config: &ServerConfig) -> Result<Self, String> {
        if config.docker.containers == 0 {
            return Err("docker.containers must be at least 1".into());
        }
        if !config.docker.same_machine() {
            return Err(
                "the docker backend keeps each session's files on this machine and \
                        bind-mounts them: its daemon must run here (a unix socket, or \
                        docker.same_machine = true for TCP on the loopback address)"
                    .into(),
            );
        }
        std::fs::create_dir_all(&config.data)
            .map_err(|e| format!("cannot create the data directory: {e}"))?;
        // a killed predecessor's slots first: they may hold workspaces
        // the store is about to recover (its containers are removed at
        // the first connection to the daemon)
        let reaped = WorkspaceSlots::reap_orphans(&config.data.join("docker-slots"));
        if reaped.mounts > 0 {
            tracing::info!(mounts = reaped.mounts, "orphan workspace slots unmounted");
        }
        // quota images need mounts: root only (see docs/security.md)
        let fs_config = if nix::unistd::geteuid().is_root() {
            FsConfig::default().with_quota(Quota::new(config.limits.session_bytes, QUOTA_FILES))
        } else {
            FsConfig::default()
        };
        let store = WorkspaceStore::open(config.data.join("docker-workspaces"), fs_config)
            .await
            .map_err(|e| format!("cannot open the Docker workspace store: {e}"))?;
        let index = SessionIndex::open(&config.data, "docker-sessions.json", "docker")?;
        Ok(DockerWorkspaces {
            settings: config.docker.clone(),
            store,
            slots_dir: config.data.join("docker-slots"),
            registry: tokio::sync::Mutex::new(None),
            slots: Mutex::new(None),
            index,
        })
    }

    /// The registry, connecting to the daemon if not done yet.
    async fn registry(&self) -> Result<Arc<Containers>, ApiError> {
        let mut slot = self.registry.lock().await;
        if let Some(registry) = &*slot {
            return Ok(Arc::clone(registry));
        }
        let client = match &self.settings.host {
            Some(host) => {
                DockerClient::connect_with_host(host, sandbay_docker::DEFAULT_API_TIMEOUT).await
            }
            None => DockerClient::connect().await,
        }?
        .on_this_machine(true);
        // containers of a killed predecessor with this owner
        match sandbay_docker::reap_orphans(
            &client,
            &sandbay_docker::ReapOptions::default()
                .with_label(sandbay_docker::OWNER, self.settings.owner.clone()),
        )
        .await
        {
            Ok(report) => tracing::info!(?report, "orphan containers reaped"),
            Err(e) => tracing::warn!(error = %e, "orphan containers could not be reaped"),
        }
        let (slots, reaped) = WorkspaceSlots::prepare(&client, &self.slots_dir).await?;
        tracing::info!(
            mode = slots.mode().as_str(),
            orphan_mounts = reaped.mounts,
            "docker sessions: workspaces attach to containers"
        );
        *self.slots.lock().unwrap_or_else(PoisonError::into_inner) = Some(slots.clone());
        let mut config = DockerConfig::default()
            .with_image(self.settings.image.clone())
            .with_owner(self.settings.owner.clone());
        if let Some(agent) = &self.settings.agent {
            config = config.with_agent(agent.clone());
        }
        let pool = Pool::new(
            WarmDockerFactory::new(client, config, slots),
            PoolConfig::default()
                .with_max_size(self.settings.containers)
                .with_min_idle(self.settings.warm.min(self.settings.containers)),
        )
        .map_err(Error::from)?;
        // a full pool ends the least recently used session's container:
        // its files stay in the store
        let registry = Arc::new(Registry::with_storage(
            pool,
            DockerStorage::new(self.store.clone()),
            RegistryConfig::default(),
        ));
        *slot = Some(Arc::clone(&registry));
        Ok(registry)
    }
}

#[async_trait]
impl Workspaces for DockerWorkspaces {
    fn isolation(&self) -> Isolation {
        Isolation::Container
    }

    fn local_jail(&self) -> bool {
        false
    }

    fn all(&self) -> Result<Vec<Key>, ApiError> {
        Ok(self.index.all())
    }

    fn of_user(&self, user: &str) -> Result<Vec<String>, ApiError> {
        Ok(self.index.of_user(user))
    }

    fn exists(&self, user: &str, id: &str) -> bool {
        self.index.contains(user, id)
    }

    fn loaded(&self, _user: &str, _id: &str) -> bool {
        false
    }

    async fn create(&self, user: &str, id: &str) -> Result<(), ApiError> {
        // the workspace now (its name checked, its quota made), the
        // container on first use
        drop(self.store.attach(user, id).await?);
        self.store.detach(user, id).await?;
        self.index.insert(user, id).await
    }

    async fn remove(&self, user: &str, id: &str) -> Result<(), ApiError> {
        let registry = self.registry.lock().await.clone();
        let removed = match registry {
            Some(registry) => registry.remove(user, id).await,
            None => self.store.remove(user, id).await,
        };
        match removed {
            Ok(()) | Err(Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        self.index.remove(user, id).await
    }

    async fn files(&self, _user: &str, _id: &str) -> Result<Option<Arc<dyn Backend>>, ApiError> {
        Ok(None)
    }

    async fn open(&self, user: &str, id: &str, _jail: Option<Jail>) -> Result<Opened, ApiError> {
        let registry = self.registry().await?;
        // the first container now: errors show here, not on a later call
        let lease = registry.session(user, id).await.map_err(Error::from)?;
        let held = Arc::new(Held {
            capabilities: lease.capabilities(),
            registry,
            user: user.to_owned(),
            session: id.to_owned(),
            id: format!("docker:{user}/{id}"),
            broken: Arc::new(AtomicBool::new(false)),
        });
        drop(lease);
        Ok(Opened {
            broken: Some(Arc::clone(&held.broken)),
            files: held.clone(),
            sandbox: Some(held),
        })
    }

    /// Ends the session's container; its files stay for the next one.
    async fn unload(&self, user: &str, id: &str) -> Result<bool, ApiError> {
        Ok(match &*self.registry.lock().await {
            Some(registry) => registry.release_session(user, id),
            None => false,
        })
    }

    /// Lets a broken container go: the session's next call gets a new one.
    async fn discard(&self, user: &str, id: &str) {
        if let Some(registry) = &*self.registry.lock().await {
            registry.release_session(user, id);
        }
    }

    fn loaded_keys(&self) -> Vec<Key> {
        Vec::new()
    }

    async fn flush(&self) -> Result<(), ApiError> {
        Ok(())
    }

    /// Removes every container and waits until they are gone; the
    /// workspaces stay.
    async fn shutdown(&self) {
        if let Some(registry) = self.registry.lock().await.take() {
            registry.shutdown().await;
            registry.detached().await;
        }
        if let Some(slots) = self
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            slots.close();
        }
        // every container let go of its workspace: unmount their images
        let keys: Vec<Key> = self.index.all();
        for (user, id) in keys {
            if let Err(e) = self.store.detach(&user, &id).await {
                tracing::warn!(user, session = id, error = %e, "a session's image stayed mounted");
            }
        }
    }
}

/// A session's container as the server holds it: every call takes the
/// session's container from the registry for the call's length only (a
/// stream for the stream's life), so that between calls the registry may
/// end an idle session's container when all are in use (its files stay);
/// an `unavailable` answer (its agent or the daemon is gone) marks it
/// broken.
struct Held {
    registry: Arc<Containers>,
    user: String,
    session: String,
    /// Stable across the containers the session gets.
    id: String,
    capabilities: Capabilities,
    broken: Arc<AtomicBool>,
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Held")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

type Lease = UserSandbox<WarmDockerFactory, DockerStorage>;

impl Held {
    async fn lease(&self) -> Result<Lease> {
        self.check(
            self.registry
                .session(&self.user, &self.session)
                .await
                .map_err(Error::from),
        )
    }

    fn check<T>(&self, result: Result<T>) -> Result<T> {
        if let Err(Error::Unavailable { .. }) = &result {
            self.broken.store(true, Ordering::Release);
        }
        result
    }

    fn check_all<T>(&self, results: Vec<Result<T>>) -> Vec<Result<T>> {
        if results
            .iter()
            .any(|r| matches!(r, Err(Error::Unavailable { .. })))
        {
            self.broken.store(true, Ordering::Release);
        }
        results
    }
}

/// A session's container that could not be had, once per file of a batch.
fn again(e: &Error) -> Error {
    match e {
        Error::Unavailable { message } => Error::Unavailable {
            message: message.clone(),
        },
        other => Error::Unavailable {
            message: other.to_string(),
        },
    }
}

/// A command's stream with the container it runs in held for its life.
struct Holding {
    stream: ExecStream,
    _lease: Lease,
}

impl futures_core::Stream for Holding {
    type Item = Result<sandbay_core::ExecEvent>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        std::pin::Pin::new(&mut self.stream).poll_next(cx)
    }
}

#[async_trait]
impl Backend for Held {
    fn name(&self) -> &'static str {
        "docker"
    }
    fn capabilities(&self) -> Capabilities {
        self.capabilities
    }
    async fn ls(&self, path: &VPath) -> Result<Vec<DirEntry>> {
        let lease = self.lease().await?;
        self.check(lease.ls(path).await)
    }
    async fn stat(&self, path: &VPath) -> Result<DirEntry> {
        let lease = self.lease().await?;
        self.check(lease.stat(path).await)
    }
    async fn read(&self, path: &VPath, request: ReadRequest) -> Result<TextWindow> {
        let lease = self.lease().await?;
        self.check(lease.read(path, request).await)
    }
    async fn write(&self, path: &VPath, content: &str) -> Result<()> {
        let lease = self.lease().await?;
        self.check(lease.write(path, content).await)
    }
    async fn edit(&self, path: &VPath, request: &EditRequest) -> Result<EditOutcome> {
        let lease = self.lease().await?;
        self.check(lease.edit(path, request).await)
    }
    async fn delete(&self, path: &VPath) -> Result<()> {
        let lease = self.lease().await?;
        self.check(lease.delete(path).await)
    }
    async fn grep(&self, request: &GrepRequest) -> Result<GrepOutput> {
        let lease = self.lease().await?;
        self.check(lease.grep(request).await)
    }
    async fn glob(&self, request: &GlobRequest) -> Result<GlobOutput> {
        let lease = self.lease().await?;
        self.check(lease.glob(request).await)
    }
    async fn upload(&self, files: Vec<(VPath, Vec<u8>)>) -> Vec<Result<()>> {
        match self.lease().await {
            Ok(lease) => self.check_all(lease.upload(files).await),
            Err(e) => files.iter().map(|_| Err(again(&e))).collect(),
        }
    }
    async fn download(&self, paths: &[VPath]) -> Vec<Result<Vec<u8>>> {
        match self.lease().await {
            Ok(lease) => self.check_all(lease.download(paths).await),
            Err(e) => paths.iter().map(|_| Err(again(&e))).collect(),
        }
    }
    async fn clear(&self) -> Result<usize> {
        let lease = self.lease().await?;
        self.check(lease.clear().await)
    }
}

#[async_trait]
impl Sandbox for Held {
    fn id(&self) -> &str {
        &self.id
    }
    async fn execute(&self, request: ExecRequest) -> Result<ExecOutput> {
        let lease = self.lease().await?;
        self.check(lease.execute(request).await)
    }
    async fn execute_stream(&self, request: ExecRequest) -> Result<ExecStream> {
        let lease = self.lease().await?;
        let stream = self.check(lease.execute_stream(request).await)?;
        Ok(ExecStream::new(Holding {
            stream,
            _lease: lease,
        }))
    }
}
