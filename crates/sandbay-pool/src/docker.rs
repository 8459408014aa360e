//! Pooled Docker sandboxes.

use std::time::Duration;

use async_trait::async_trait;
use sandbay_core::Result;
use sandbay_docker::{DockerClient, DockerConfig, DockerSandbox};

use crate::SandboxFactory;

/// The owner label pooled containers carry until a user takes them (see
/// [`sandbay_docker::OWNER`]).
pub const POOL_OWNER: &str = "sandbay-pool";

/// Makes [`DockerSandbox`]es for a [`Pool`](crate::Pool): one container
/// each, from one [`DockerConfig`] (with its limits, no network, and the
/// rest of its safe defaults).
///
/// A reset is [`DockerSandbox::reset`]: every process the previous user
/// left is killed (also those that left their command's process group
/// with `setsid`), `/tmp` is emptied, and every file of the workspace is
/// deleted through the sandbox's own file API. A container whose reset
/// fails is destroyed, never handed out.
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
    reset_timeout: Duration,
}

impl DockerFactory {
    /// A factory for containers made with `config` on `client`'s daemon.
    pub fn new(client: DockerClient, config: DockerConfig) -> DockerFactory {
        let config = if config.owner == DockerConfig::default().owner {
            config.with_owner(POOL_OWNER)
        } else {
            config
        };
        DockerFactory {
            client,
            config,
            reset_timeout: Duration::from_secs(20),
        }
    }

    /// Time limit of the in-container part of a reset (default 20 s).
    pub fn with_reset_timeout(mut self, timeout: Duration) -> DockerFactory {
        self.reset_timeout = timeout;
        self
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

    async fn reset(&self, sandbox: &DockerSandbox) -> Result<()> {
        sandbox.reset(self.reset_timeout).await
    }

    async fn destroy(&self, sandbox: DockerSandbox) -> Result<()> {
        sandbox.shutdown().await
    }
}
