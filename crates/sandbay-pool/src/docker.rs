//! Pooled Docker sandboxes.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use sandbay_core::Result;
use sandbay_docker::{AttachMode, DockerClient, DockerConfig, DockerSandbox, WorkspaceSlots};
use sandbay_fs::{Workspace, WorkspaceStore};

use crate::SandboxFactory;
use crate::pool::Lease;
use crate::storage::{Attached, Storage, WorkspaceKey};

/// The owner label pooled containers carry (see
/// [`sandbay_docker::OWNER`]) unless the config names another owner.
pub const POOL_OWNER: &str = "sandbay-pool";

/// Makes [`DockerSandbox`]es for a [`Pool`](crate::Pool): one container
/// each, from one [`DockerConfig`] (with its limits, no network, and the
/// rest of its safe defaults).
///
/// Each container serves one lease and is then removed
/// ([`DockerSandbox::shutdown`]: the container with every process in it,
/// its IPC namespace with `/dev/shm` and message queues, its volume or
/// workspace directory). The next user gets a container nobody has used.
///
/// Containers are labelled with owner [`POOL_OWNER`] unless the config
/// names another owner, so [`sandbay_docker::reap_orphans`] finds what a
/// crashed process left.
///
/// ```no_run
/// use sandbay_docker::{DockerClient, DockerConfig};
/// use sandbay_pool::{DockerFactory, Pool, PoolConfig};
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let client = DockerClient::connect().await?;
/// let factory = DockerFactory::new(client, DockerConfig::default());
/// let pool = Pool::new(factory, PoolConfig::default().with_min_idle(4))?;
/// pool.warm().await?; // four containers ready, no start-up on the request path
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct DockerFactory {
    client: DockerClient,
    config: DockerConfig,
}

impl DockerFactory {
    /// A factory for containers made with `config` on `client`'s daemon.
    pub fn new(client: DockerClient, config: DockerConfig) -> DockerFactory {
        let config = if config.owner == DockerConfig::default().owner {
            config.with_owner(POOL_OWNER)
        } else {
            config
        };
        DockerFactory { client, config }
    }

    /// The config every container is made from.
    pub fn config(&self) -> &DockerConfig {
        &self.config
    }
}

#[async_trait]
impl SandboxFactory for DockerFactory {
    type Sandbox = DockerSandbox;

    async fn create(&self) -> Result<DockerSandbox> {
        DockerSandbox::create(&self.client, self.config.clone()).await
    }

    async fn destroy(&self, sandbox: DockerSandbox) -> Result<()> {
        sandbox.shutdown().await
    }
}

/// Makes *warm* containers for a [`Registry`](crate::Registry) with
/// [`DockerStorage`]: running containers whose `/workspace` is an empty
/// slot (see [`WorkspaceSlots`]), so that a user's workspace attaches in
/// a mount, not a container start.
///
/// Where workspaces cannot be mounted ([`AttachMode::Cold`]: not root,
/// or a remote daemon) the pool holds places, not containers:
/// [`DockerStorage`] makes each session's container when the session
/// attaches, with its workspace bind-mounted, and the pool's `max_size`
/// still bounds how many exist.
#[derive(Debug, Clone)]
pub struct WarmDockerFactory {
    client: DockerClient,
    config: DockerConfig,
    slots: WorkspaceSlots,
}

impl WarmDockerFactory {
    /// A factory for containers made with `config` on `client`'s daemon,
    /// their slots in `slots`. Containers are labelled with owner
    /// [`POOL_OWNER`] unless the config names another owner.
    pub fn new(client: DockerClient, config: DockerConfig, slots: WorkspaceSlots) -> Self {
        let config = if config.owner == DockerConfig::default().owner {
            config.with_owner(POOL_OWNER)
        } else {
            config
        };
        WarmDockerFactory {
            client,
            config,
            slots,
        }
    }

    /// How workspaces reach this factory's containers.
    pub fn attach_mode(&self) -> AttachMode {
        self.slots.mode()
    }

    /// The config every container is made from.
    pub fn config(&self) -> &DockerConfig {
        &self.config
    }
}

/// What a [`WarmDockerFactory`] pool holds: a warm container, or, with
/// [`AttachMode::Cold`], the place of a container made at attach.
#[derive(Debug)]
pub struct PooledContainer {
    warm: Option<Arc<DockerSandbox>>,
    cold: OnceLock<Arc<DockerSandbox>>,
    factory: WarmDockerFactory,
}

impl PooledContainer {
    /// The container, once there is one (a warm one from the start, a
    /// cold one from its attach).
    pub fn sandbox(&self) -> Option<&Arc<DockerSandbox>> {
        self.warm.as_ref().or_else(|| self.cold.get())
    }
}

#[async_trait]
impl SandboxFactory for WarmDockerFactory {
    type Sandbox = PooledContainer;

    async fn create(&self) -> Result<PooledContainer> {
        let warm = match self.slots.mode() {
            AttachMode::Mount => Some(Arc::new(
                DockerSandbox::create_warm(&self.client, self.config.clone(), &self.slots).await?,
            )),
            AttachMode::Cold => None,
        };
        Ok(PooledContainer {
            warm,
            cold: OnceLock::new(),
            factory: self.clone(),
        })
    }

    async fn destroy(&self, container: PooledContainer) -> Result<()> {
        match container.sandbox() {
            Some(sandbox) => sandbox.shutdown().await,
            None => Ok(()),
        }
    }
}

/// A session of a [`DockerStorage`] registry: its container, with the
/// session's workspace at `/workspace`. Derefs to the
/// [`DockerSandbox`]; dropping it ends the container (the pool removes
/// it) and then detaches the workspace, its files kept.
pub type DockerWorkspace = Attached<WarmDockerFactory, Arc<DockerSandbox>>;

/// Workspaces of a [`WorkspaceStore`] attached to containers: storage
/// that outlives them. `attach` opens (makes, mounts) the session's
/// workspace and mounts it onto a warm container's slot (or, with
/// [`AttachMode::Cold`], makes a container with it bind-mounted); the
/// container's end unmounts it and keeps the files, and `remove`
/// deletes them.
///
/// The workspace's files are handed to the container's uid at attach
/// (see [`DockerSandbox::attach_workspace`]), so a returning user's files
/// are theirs in whichever container they land. Acknowledged writes
/// survive a `kill -9` of the process (see [`WorkspaceStore`],
/// "Durability").
///
/// ```no_run
/// use sandbay_docker::{DockerClient, DockerConfig, WorkspaceSlots};
/// use sandbay_fs::{FsConfig, WorkspaceStore};
/// use sandbay_pool::{DockerStorage, Pool, PoolConfig, Registry, RegistryConfig, WarmDockerFactory};
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let client = DockerClient::connect().await?;
/// let (slots, _reaped) = WorkspaceSlots::prepare(&client, "/var/lib/sandbay/slots".as_ref()).await?;
/// let store = WorkspaceStore::open("/var/lib/sandbay/workspaces", FsConfig::default()).await?;
/// let factory = WarmDockerFactory::new(client, DockerConfig::default(), slots);
/// let pool = Pool::new(factory, PoolConfig::default().with_min_idle(2))?;
/// let registry = Registry::with_storage(pool, DockerStorage::new(store), RegistryConfig::default());
/// let alice = registry.session("alice", "s1").await?; // a warm container, alice's files mounted
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct DockerStorage {
    store: WorkspaceStore,
}

impl DockerStorage {
    /// Storage over `store`.
    pub fn new(store: WorkspaceStore) -> DockerStorage {
        DockerStorage { store }
    }

    /// The store.
    pub fn store(&self) -> &WorkspaceStore {
        &self.store
    }
}

/// Kept by a container while a workspace is mounted in it; once the
/// container has let go of it, the store unmounts what nobody uses.
struct Detach {
    workspace: Option<Workspace>,
    store: WorkspaceStore,
    key: WorkspaceKey,
}

impl Drop for Detach {
    fn drop(&mut self) {
        drop(self.workspace.take());
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let store = self.store.clone();
        let key = self.key.clone();
        handle.spawn(async move {
            if let Err(e) = store.detach(&key.user, &key.session).await {
                tracing::warn!(error = %e, "a container's workspace could not be detached");
            }
        });
    }
}

#[async_trait]
impl Storage<WarmDockerFactory> for DockerStorage {
    type Workspace = DockerWorkspace;

    async fn attach(
        &self,
        key: &WorkspaceKey,
        lease: Lease<WarmDockerFactory>,
    ) -> Result<DockerWorkspace> {
        let workspace = self.store.attach(&key.user, &key.session).await?;
        let dir = workspace.host_dir().to_path_buf();
        let sandbox = match &lease.warm {
            Some(warm) => {
                warm.attach_workspace(&dir).await?;
                Arc::clone(warm)
            }
            None => {
                let f = &lease.factory;
                let made = Arc::new(
                    DockerSandbox::create_for_workspace(
                        &f.client,
                        f.config.clone(),
                        &f.slots,
                        &dir,
                    )
                    .await?,
                );
                // a fresh place: nobody set it before
                let _ = lease.cold.set(Arc::clone(&made));
                made
            }
        };
        sandbox.keep_while_attached(Detach {
            workspace: Some(workspace),
            store: self.store.clone(),
            key: key.clone(),
        });
        Ok(Attached::new(sandbox, lease))
    }

    async fn detach(&self, key: &WorkspaceKey) -> Result<()> {
        self.store.record(&key.user, &key.session).await.map(drop)
    }

    async fn remove(&self, key: &WorkspaceKey) -> Result<()> {
        self.store.remove(&key.user, &key.session).await
    }
}
