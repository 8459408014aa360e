//! The backends the demo runs on: state and fs always, more when present.
//!
//! State and fs workspaces are sandboxes whose commands run in a local
//! jail at the strongest level this host gives ([`Jail::probe`], or the
//! level [`LEVEL_ENV`] names), each workspace with a jail of its own
//! (and, on a root host, a host uid of its own), capped as a multi-user
//! service would cap them ([`demo_jail`]). Where the host gives no level,
//! they serve files only and the execution rows say "not available".

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use sandbay_core::{Isolation, Sandbox};
use sandbay_exec::{Jail, JailConfig};

use super::{Target, Workspace};

/// The environment variable that picks the local jail level (`limits` or
/// `namespaces`) instead of the strongest one here: a weaker level shows
/// which cells it cannot prove.
pub(crate) const LEVEL_ENV: &str = "SANDBAY_DEMO_LEVEL";
/// The environment variable that, set to `0`, leaves the Docker column out.
pub(crate) const DOCKER_ENV: &str = "SANDBAY_DEMO_DOCKER";

/// The jail every demo workspace gets: the strongest level here (or the
/// one [`LEVEL_ENV`] names), at most 256 processes and 512 MiB of memory
/// per command; `Err` with the reason when there is none.
fn demo_jail() -> Result<JailConfig, String> {
    let level = match std::env::var(LEVEL_ENV).as_deref() {
        Ok("limits") => Isolation::Limits,
        Ok("namespaces") => Isolation::Namespaces,
        Ok(other) => return Err(format!("{LEVEL_ENV}={other}: not `limits` or `namespaces`")),
        Err(_) => Jail::probe(),
    };
    if level == Isolation::None {
        let support = Jail::host_support();
        return Err(format!(
            "no commands: this host gives no jail level ({})",
            support
                .limits
                .as_deref()
                .or(support.namespaces.as_deref())
                .unwrap_or("unknown")
        ));
    }
    Jail::host_support()
        .check(level)
        .map_err(|e| format!("no commands: {e}"))?;
    let mut config = JailConfig::new(level);
    config.limits.processes = 256;
    config.limits.memory_bytes = 512 << 20;
    Ok(config)
}

/// In-memory workspaces from one store.
struct StateTarget {
    store: sandbay_state::StateStore,
    jail: Option<JailConfig>,
}

impl Target for StateTarget {
    fn name(&self) -> String {
        "state".into()
    }

    fn open<'a>(
        &'a self,
        user: &'a str,
        session: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Workspace, String>> + Send + 'a>>
    {
        Box::pin(async move {
            let Some(jail) = &self.jail else {
                return Ok(Workspace {
                    backend: self.store.session(user, session),
                    sandbox: None,
                    host_root: None,
                    enforcement: None,
                });
            };
            let sandbox = Arc::new(
                self.store
                    .sandbox(user, session, jail)
                    .map_err(|e| e.to_string())?,
            );
            Ok(Workspace {
                enforcement: Some(sandbox.jail().enforcement()),
                backend: sandbox.clone(),
                sandbox: Some(sandbox as Arc<dyn Sandbox>),
                host_root: None,
            })
        })
    }

    fn files_after_restart(&self) -> Pin<Box<dyn Future<Output = String> + Send + '_>> {
        Box::pin(super::restart::files_after_restart(
            super::restart::Store::State,
            self.jail.as_ref(),
        ))
    }
}

/// Host-directory workspaces under a temporary base directory.
struct FsTarget {
    base: tempfile::TempDir,
    provider: sandbay_fs::FsProvider,
    jail: Option<JailConfig>,
}

impl Target for FsTarget {
    fn name(&self) -> String {
        "fs".into()
    }

    fn open<'a>(
        &'a self,
        user: &'a str,
        session: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Workspace, String>> + Send + 'a>>
    {
        Box::pin(async move {
            let host_root = self
                .provider
                .session_path(user, session)
                .map_err(|e| e.to_string())?;
            let Some(jail) = &self.jail else {
                let backend = self
                    .provider
                    .session(user, session)
                    .await
                    .map_err(|e| e.to_string())?;
                return Ok(Workspace {
                    backend: Arc::new(backend),
                    sandbox: None,
                    host_root: Some(host_root),
                    enforcement: None,
                });
            };
            let sandbox = Arc::new(
                self.provider
                    .sandbox(user, session, jail)
                    .await
                    .map_err(|e| e.to_string())?,
            );
            Ok(Workspace {
                enforcement: Some(sandbox.jail().enforcement()),
                backend: sandbox.clone(),
                sandbox: Some(sandbox as Arc<dyn Sandbox>),
                host_root: Some(host_root),
            })
        })
    }

    fn close(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            // through the provider: quota images are unmounted (and their
            // loop devices freed) before their directories go
            for user in ["user-a", "user-b"] {
                if let Err(e) = self.provider.remove_user(user).await {
                    eprintln!("demo: {user}'s workspaces could not be removed: {e}");
                }
            }
            let _ = std::fs::remove_dir_all(self.base.path().join("users"));
        })
    }

    fn files_after_restart(&self) -> Pin<Box<dyn Future<Output = String> + Send + '_>> {
        Box::pin(super::restart::files_after_restart(
            super::restart::Store::Fs(*self.provider.config()),
            self.jail.as_ref(),
        ))
    }
}

/// One container per workspace on a reachable Docker daemon.
struct DockerTarget {
    client: sandbay_docker::DockerClient,
    base: tempfile::TempDir,
    sandboxes: tokio::sync::Mutex<Vec<Arc<sandbay_docker::DockerSandbox>>>,
}

impl Target for DockerTarget {
    fn name(&self) -> String {
        "docker".into()
    }

    fn open<'a>(
        &'a self,
        user: &'a str,
        _session: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Workspace, String>> + Send + 'a>>
    {
        Box::pin(async move {
            let config = crate::docker_config()
                .with_owner(format!("sandbay-demo-{user}"))
                .with_workspace_base(self.base.path())
                .with_disk_quota(Some(sandbay_fs::Quota::new(
                    super::probes::DEMO_QUOTA_BYTES,
                    4096,
                )));
            let sandbox = Arc::new(
                sandbay_docker::DockerSandbox::create(&self.client, config)
                    .await
                    .map_err(|e| e.to_string())?,
            );
            self.sandboxes.lock().await.push(sandbox.clone());
            Ok(Workspace {
                backend: sandbox.clone(),
                sandbox: Some(sandbox as Arc<dyn Sandbox>),
                host_root: None,
                enforcement: None,
            })
        })
    }

    fn files_after_restart(&self) -> Pin<Box<dyn Future<Output = String> + Send + '_>> {
        Box::pin(super::restart::files_after_restart_docker(
            &self.client,
            crate::docker_config().with_owner("sandbay-demo-restart"),
        ))
    }

    fn warm_start(&self) -> super::WarmStart<'_> {
        Box::pin(async move {
            use sandbay_pool::{DockerFactory, Pool, PoolConfig};
            let config = crate::docker_config()
                .with_owner("sandbay-demo-pool")
                .with_workspace_base(self.base.path());
            let pool = match Pool::new(
                DockerFactory::new(self.client.clone(), config),
                PoolConfig::default().with_max_size(1).with_min_idle(1),
            ) {
                Ok(pool) => pool,
                Err(e) => return Some(Err(e.to_string())),
            };
            let measured = async {
                pool.warm().await.map_err(|e| e.to_string())?;
                let start = std::time::Instant::now();
                let lease = pool.acquire().await.map_err(|e| e.to_string())?;
                let took = start.elapsed();
                drop(lease);
                Ok(took)
            }
            .await;
            pool.shutdown().await;
            Some(measured)
        })
    }

    fn close(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            for sandbox in self.sandboxes.lock().await.drain(..) {
                if let Err(e) = sandbox.shutdown().await {
                    eprintln!("demo: a container could not be removed: {e}");
                }
            }
        })
    }
}

/// The Docker target when a daemon answers (and a note on what it runs).
async fn docker_target() -> Result<(Box<dyn Target>, Option<String>), String> {
    let client = sandbay_docker::DockerClient::connect()
        .await
        .map_err(|e| e.to_string())?;
    client.ping().await.map_err(|e| e.to_string())?;
    let base = tempfile::Builder::new()
        .prefix("sandbay-demo-docker-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let image = crate::docker_config().image;
    let note = format!("one container per workspace, image {image}");
    Ok((
        Box::new(DockerTarget {
            client,
            base,
            sandboxes: tokio::sync::Mutex::new(Vec::new()),
        }),
        Some(note),
    ))
}

/// Every target available on this machine, each with an optional note.
pub(crate) async fn available() -> Vec<(Box<dyn Target>, Option<String>)> {
    let jail = tokio::task::spawn_blocking(demo_jail)
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
    let (jail, note) = match jail {
        Ok(config) => (Some(config), None),
        Err(why) => (None, Some(why)),
    };
    let mut targets: Vec<(Box<dyn Target>, Option<String>)> = vec![(
        Box::new(StateTarget {
            store: sandbay_state::StateStore::new(sandbay_state::StateConfig {
                max_total_bytes: Some(super::probes::DEMO_QUOTA_BYTES),
                ..Default::default()
            }),
            jail: jail.clone(),
        }),
        note.clone(),
    )];
    match tempfile::Builder::new().prefix("sandbay-demo-").tempdir() {
        Ok(base) => match sandbay_fs::FsProvider::open(base.path().join("users")).await {
            Ok(provider) => targets.push((
                Box::new(FsTarget {
                    base,
                    // A mounted quota image cannot yet be entered by the
                    // jail's uid at `limits` (no namespaces): the quota
                    // goes only where commands can use it.
                    provider: if jail
                        .as_ref()
                        .is_some_and(|j| j.isolation == sandbay_core::Isolation::Limits)
                    {
                        provider
                    } else {
                        provider.with_config(sandbay_fs::FsConfig::default().with_quota(
                            sandbay_fs::Quota::new(super::probes::DEMO_QUOTA_BYTES, 4096),
                        ))
                    },
                    jail,
                }),
                note,
            )),
            Err(e) => eprintln!("demo: fs backend unavailable: {e}"),
        },
        Err(e) => eprintln!("demo: no temporary directory for the fs backend: {e}"),
    }
    if std::env::var(DOCKER_ENV).as_deref() == Ok("0") {
        eprintln!("demo: no Docker column ({DOCKER_ENV}=0)");
        return targets;
    }
    match docker_target().await {
        Ok(target) => targets.push(target),
        Err(e) => eprintln!("demo: no Docker column ({e})"),
    }
    targets
}
