//! The "files after eviction and restart" row: a session's files must
//! outlive its compute and the process's store.
//!
//! Measured live on a store of its own (a temporary directory): user A
//! writes files through the file API and one through a command on a
//! jail from a pool, the registry evicts the idle session (the jail is
//! destroyed), the registry and its store are dropped and opened again
//! (as a restarted service would), and a fresh jail attached to the same
//! storage reads everything back, compared byte for byte.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sandbay_core::{ExecRequest, Sandbox, VPath};
use sandbay_exec::JailConfig;
use sandbay_pool::{
    DockerStorage, FsStorage, JailFactory, Pool, PoolConfig, Registry, RegistryConfig,
    SandboxFactory, StateStorage, Storage, WarmDockerFactory,
};

const FILES: usize = 20;
const USER: &str = "user-a";
const SESSION: &str = "session-1";

/// What a restart proof needs to open its storage twice.
pub(crate) enum Store {
    /// A durable state store under the directory.
    State,
    /// A workspace store under the directory, with these settings.
    Fs(sandbay_fs::FsConfig),
}

fn registry<S: Storage<JailFactory>>(
    jail: &JailConfig,
    storage: S,
) -> Result<Registry<JailFactory, S>, String> {
    let pool = Pool::new(
        JailFactory::new(jail.clone()),
        PoolConfig::default().with_max_size(2),
    )
    .map_err(|e| e.to_string())?;
    Ok(Registry::with_storage(
        pool,
        storage,
        RegistryConfig::default().with_idle_timeout(Duration::ZERO),
    ))
}

fn content(i: usize) -> Vec<u8> {
    // varied bytes, not only text
    (0..(512 + i * 97))
        .map(|n| ((n * 31 + i * 7) % 251) as u8)
        .collect()
}

/// The sandbox inside a jail storage's workspace.
fn jailed<W>(w: &W) -> &W::Target
where
    W: std::ops::Deref,
{
    w
}

/// Writes, evicts and returns the expected files.
async fn before<F, S, X>(
    registry: Registry<F, S>,
    sandbox: fn(&S::Workspace) -> &X,
) -> Result<Vec<(VPath, Vec<u8>)>, String>
where
    F: SandboxFactory,
    S: Storage<F>,
    X: Sandbox + ?Sized,
{
    let held = registry
        .session(USER, SESSION)
        .await
        .map_err(|e| e.to_string())?;
    let ws = sandbox(&held);
    let mut files: Vec<(VPath, Vec<u8>)> = (0..FILES)
        .map(|i| {
            (
                VPath::parse(&format!("/kept/{i}.bin")).expect("valid"),
                content(i),
            )
        })
        .collect();
    for result in ws.upload(files.clone()).await {
        result.map_err(|e| format!("a write failed: {e}"))?;
    }
    let out = ws
        .execute(ExecRequest::new("echo made by a command > kept/cmd.txt"))
        .await
        .map_err(|e| format!("the command failed: {e}"))?;
    if out.exit_code != Some(0) {
        return Err(format!("the command failed: exit {:?}", out.exit_code));
    }
    files.push((
        VPath::parse("/kept/cmd.txt").expect("valid"),
        b"made by a command\n".to_vec(),
    ));
    drop(held);
    if registry.evict_idle() != 1 {
        return Err("the idle session was not evicted".into());
    }
    registry.shutdown().await;
    if registry.pool().status().destroyed != 1 {
        return Err("the session's compute was not destroyed".into());
    }
    Ok(files)
}

/// Reads back after the restart; returns how many match and the resume time.
async fn after<F, S, X>(
    registry: Registry<F, S>,
    sandbox: fn(&S::Workspace) -> &X,
    files: &[(VPath, Vec<u8>)],
) -> Result<(usize, Duration), String>
where
    F: SandboxFactory,
    S: Storage<F>,
    X: Sandbox + ?Sized,
{
    let start = Instant::now();
    let held = registry
        .session(USER, SESSION)
        .await
        .map_err(|e| e.to_string())?;
    let ws = sandbox(&held);
    let resumed = start.elapsed();
    let paths: Vec<VPath> = files.iter().map(|(p, _)| p.clone()).collect();
    let got = ws.download(&paths).await;
    let same = files
        .iter()
        .zip(got)
        .filter(|((_, want), got)| got.as_ref().is_ok_and(|g| g == want))
        .count();
    drop(held);
    registry
        .remove(USER, SESSION)
        .await
        .map_err(|e| format!("removing the workspace failed: {e}"))?;
    registry.shutdown().await;
    Ok((same, resumed))
}

/// The cell of the row for one backend.
pub(crate) async fn files_after_restart(store: Store, jail: Option<&JailConfig>) -> String {
    let Some(jail) = jail else {
        return "not proven: no jail here to run compute on".into();
    };
    let dir = match tempfile::Builder::new()
        .prefix("sandbay-demo-restart-")
        .tempdir()
    {
        Ok(dir) => dir,
        Err(e) => return format!("not proven: no temporary directory ({e})"),
    };
    let result = match store {
        Store::State => {
            let open = || {
                sandbay_state::StateStore::open(
                    Default::default(),
                    sandbay_state::Durability::new(dir.path()),
                )
                .map(|s| StateStorage::new(Arc::new(s)))
                .map_err(|e| e.to_string())
            };
            match open().and_then(|s| registry(jail, s)) {
                Ok(r) => match before(r, jailed).await {
                    Ok(files) => match open().and_then(|s| registry(jail, s)) {
                        Ok(r) => after(r, jailed, &files).await.map(|r| (r, files.len())),
                        Err(e) => Err(e),
                    },
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            }
        }
        Store::Fs(config) => {
            let open = async || {
                sandbay_fs::WorkspaceStore::open(dir.path(), config)
                    .await
                    .map(FsStorage::new)
                    .map_err(|e| e.to_string())
            };
            match open().await.and_then(|s| registry(jail, s)) {
                Ok(r) => match before(r, jailed).await {
                    Ok(files) => match open().await.and_then(|s| registry(jail, s)) {
                        Ok(r) => after(r, jailed, &files).await.map(|r| (r, files.len())),
                        Err(e) => Err(e),
                    },
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            }
        }
    };
    verdict(result, "jail")
}

fn verdict(result: Result<((usize, Duration), usize), String>, compute: &str) -> String {
    match result {
        Err(e) => format!("not proven: {e}"),
        Ok(((same, resumed), total)) if same == total => format!(
            "{same} of {total} files byte-identical after eviction and a store restart (fresh {compute}, resumed in {} ms)",
            resumed.as_millis()
        ),
        Ok(((same, _), total)) => {
            format!("LOST: {} of {total} files differ or are gone", total - same)
        }
    }
}

/// The sandbox of a Docker storage's workspace.
fn in_container(w: &sandbay_pool::DockerWorkspace) -> &sandbay_docker::DockerSandbox {
    w
}

/// The Docker cell: the same proof on containers of a [`WarmDockerFactory`]
/// pool with a [`DockerStorage`] over a workspace store of its own.
pub(crate) async fn files_after_restart_docker(
    client: &sandbay_docker::DockerClient,
    config: sandbay_docker::DockerConfig,
) -> String {
    let dir = match tempfile::Builder::new()
        .prefix("sandbay-demo-restart-")
        .tempdir()
    {
        Ok(dir) => dir,
        Err(e) => return format!("not proven: no temporary directory ({e})"),
    };
    let slots =
        match sandbay_docker::WorkspaceSlots::prepare(client, &dir.path().join("slots")).await {
            Ok((slots, _)) => slots,
            Err(e) => return format!("not proven: {e}"),
        };
    let mode = slots.mode();
    let registry = |store: sandbay_fs::WorkspaceStore| -> Result<_, String> {
        let pool = Pool::new(
            WarmDockerFactory::new(client.clone(), config.clone(), slots.clone()),
            PoolConfig::default().with_max_size(2),
        )
        .map_err(|e| e.to_string())?;
        Ok(Registry::with_storage(
            pool,
            DockerStorage::new(store),
            RegistryConfig::default().with_idle_timeout(Duration::ZERO),
        ))
    };
    let open = async || {
        sandbay_fs::WorkspaceStore::open(dir.path().join("workspaces"), Default::default())
            .await
            .map_err(|e| e.to_string())
    };
    let result = async {
        let files = before(registry(open().await?)?, in_container).await?;
        let again = registry(open().await?)?;
        after(again, in_container, &files)
            .await
            .map(|r| (r, files.len()))
    }
    .await;
    slots.close();
    verdict(
        result,
        match mode {
            sandbay_docker::AttachMode::Mount => "warm container, workspace mounted onto its slot",
            sandbay_docker::AttachMode::Cold => "container made with the workspace bind-mounted",
        },
    )
}
