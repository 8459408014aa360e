//! Pooled Docker sandboxes.

use async_trait::async_trait;
use sandbay_core::Result;
use sandbay_docker::{DockerClient, DockerConfig, DockerSandbox};

use crate::SandboxFactory;

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
