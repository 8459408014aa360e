//! Pooled local jails: the compute of state and fs workspaces.

use async_trait::async_trait;
use sandbay_core::{Error, Result};
use sandbay_exec::{Jail, JailConfig};

use crate::SandboxFactory;

/// Makes a fresh [`Jail`] per lease: the compute that
/// [`StateStorage`](crate::StateStorage) and [`FsStorage`](crate::FsStorage)
/// attach workspaces to. Each jail has a host uid and cgroups of its own
/// (root hosts); destroying it gives the workspace roots it used and its
/// uid back to the host. Jails carry no files, so a pool of them is
/// pure compute.
#[derive(Debug, Clone)]
pub struct JailFactory {
    config: JailConfig,
}

impl JailFactory {
    /// A factory for jails made from `config`.
    pub fn new(config: JailConfig) -> JailFactory {
        JailFactory { config }
    }

    /// The config every jail is made from.
    pub fn config(&self) -> &JailConfig {
        &self.config
    }
}

fn cancelled(_: tokio::task::JoinError) -> Error {
    Error::Unavailable {
        message: "making or ending a jail was cancelled".into(),
    }
}

#[async_trait]
impl SandboxFactory for JailFactory {
    type Sandbox = Jail;

    async fn create(&self) -> Result<Jail> {
        let config = self.config.clone();
        tokio::task::spawn_blocking(move || Jail::new(config))
            .await
            .map_err(cancelled)?
    }

    async fn destroy(&self, jail: Jail) -> Result<()> {
        // the last handle's drop gives workspace roots and the uid back,
        // a few system calls each
        tokio::task::spawn_blocking(move || drop(jail))
            .await
            .map_err(cancelled)
    }
}
