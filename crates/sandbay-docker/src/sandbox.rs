//! [`DockerSandbox`]: one container per sandbox, its lifecycle, and the
//! [`Backend`]/[`Sandbox`] implementation.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bollard::models::{
    ContainerCreateBody, HostConfig, HostConfigLogConfig, Mount, MountBindOptions,
    MountBindOptionsPropagationEnum, MountType, MountVolumeOptions, MountVolumeOptionsDriverConfig,
};
use sandbay_core::{
    Capabilities, DiskQuota, Error, ExecOutput, ExecRequest, Isolation, Result, Sandbox,
    async_trait,
};
use sandbay_exec::UidLease;

use crate::client::{ApiError, DockerClient};
use crate::config::{DockerConfig, FileMode, PullPolicy, WORKSPACE};
use crate::exec::agent::{AGENT_DIR, AGENT_PATH, locate};
use crate::exec::{Agent, Executor};
use crate::files::bind::{self, Remover};
use crate::files::{BindFiles, ContainerFiles, FileSide, Files};
use crate::slots::{self, AttachMode, WorkspaceSlots};
use crate::uid::CONTAINER_UIDS;
use crate::{image, labels};

/// Time limit of one internal file operation.
const FILE_OP_TIMEOUT: Duration = Duration::from_secs(120);

/// A sandbox backed by one Docker container.
///
/// Made by [`DockerSandbox::create`]; removed by [`DockerSandbox::shutdown`],
/// or, best effort, when dropped. Commands run as an unprivileged user
/// with the limits of its [`DockerConfig`]; files live in `/workspace`.
///
/// ```no_run
/// use sandbay_core::{BackendExt, ExecRequest, Sandbox, VPath};
/// use sandbay_docker::{DockerClient, DockerConfig, DockerSandbox};
///
/// # async fn demo() -> sandbay_core::Result<()> {
/// let client = DockerClient::connect().await?;
/// let sandbox = DockerSandbox::create(&client, DockerConfig::default().with_owner("alice")).await?;
/// sandbox.write_bytes(&VPath::parse("/hello.txt")?, b"hi\n".to_vec()).await?;
/// let out = sandbox.execute(ExecRequest::new("cat hello.txt")).await?;
/// assert_eq!(out.stdout, b"hi\n");
/// sandbox.shutdown().await?;
/// # Ok(()) }
/// ```
pub struct DockerSandbox {
    id: String,
    uid: u32,
    _uid_lease: Option<UidLease>,
    container: String,
    client: DockerClient,
    config: DockerConfig,
    mode: FileMode,
    exec: Arc<Executor>,
    files: FileSide,
    volume: Option<String>,
    remover: Option<Remover>,
    /// How the workspace came (`None`: made with the sandbox).
    attach: Option<AttachMode>,
    /// A warm container's slot directory on the host.
    slot: Option<PathBuf>,
    /// The workspace directory mounted onto the slot now.
    attached: tokio::sync::Mutex<Option<PathBuf>>,
    /// Kept while the workspace is attached, dropped once it is unmounted
    /// (see [`DockerSandbox::keep_while_attached`]).
    keep: std::sync::Mutex<Option<Keep>>,
    /// Whether a workspace was ever attached: a container serves one.
    served: AtomicBool,
    closed: AtomicBool,
}

/// What a caller asks a sandbox to hold while its workspace is attached.
type Keep = Box<dyn std::any::Any + Send + Sync>;

/// Where a new sandbox's workspace comes from.
#[derive(Clone, Copy)]
enum Place<'a> {
    /// Its own: a host directory or a volume, removed with it.
    Own,
    /// An empty slot that workspaces are mounted onto later.
    Slot(&'a WorkspaceSlots),
    /// An existing host directory, bind-mounted at creation and kept.
    Dir(&'a Path),
}

impl std::fmt::Debug for DockerSandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerSandbox")
            .field("id", &self.id)
            .field("container", &self.container)
            .field("mode", &self.mode)
            .field("attach", &self.attach)
            .finish()
    }
}

/// The parts of a container definition that depend on the file mode.
struct Workspace {
    mount: Mount,
    volume: Option<String>,
    bind: Option<BindFiles>,
}

fn bind_workspace(files: BindFiles) -> Workspace {
    Workspace {
        mount: Mount {
            target: Some(WORKSPACE.into()),
            source: Some(files.host_dir().to_string_lossy().into_owned()),
            typ: Some(MountType::BIND),
            ..Default::default()
        },
        volume: None,
        bind: Some(files),
    }
}

/// A warm container's workspace: its empty slot, bind-mounted with
/// `rslave` propagation so that a workspace mounted onto the slot on the
/// host appears in the running container.
fn slot_workspace(slot: &Path) -> Workspace {
    Workspace {
        mount: Mount {
            target: Some(WORKSPACE.into()),
            source: Some(slot.to_string_lossy().into_owned()),
            typ: Some(MountType::BIND),
            bind_options: Some(MountBindOptions {
                propagation: Some(MountBindOptionsPropagationEnum::RSLAVE),
                ..Default::default()
            }),
            ..Default::default()
        },
        volume: None,
        bind: None,
    }
}

/// Picks the file mode: bind mounts need a local daemon and a process
/// that can act as the sandbox user on the host (root, or that user).
fn resolve_mode(client: &DockerClient, config: &DockerConfig, uid: u32) -> Result<FileMode> {
    let bindable = client.is_local() && bind::can_act_as(uid);
    match config.file_mode {
        FileMode::Container => Ok(FileMode::Container),
        FileMode::Auto if bindable => Ok(FileMode::Bind),
        FileMode::Auto => Ok(FileMode::Container),
        FileMode::Bind if bindable => Ok(FileMode::Bind),
        FileMode::Bind => Err(Error::invalid_argument(
            "bind-mounted workspaces need a local daemon (unix socket), a numeric uid:gid user, \
             and a process running as root or as that user",
        )),
    }
}

fn volume_workspace(
    name: &str,
    config: &DockerConfig,
    labels: &HashMap<String, String>,
    (uid, gid): (u32, u32),
) -> Workspace {
    let driver_config = config.workspace_bytes.map(|bytes| {
        let mut o = format!("size={bytes},mode=0755");
        o.push_str(&format!(",uid={uid},gid={gid}"));
        MountVolumeOptionsDriverConfig {
            name: Some("local".into()),
            options: Some(HashMap::from([
                ("type".to_string(), "tmpfs".to_string()),
                ("device".to_string(), "tmpfs".to_string()),
                ("o".to_string(), o),
            ])),
        }
    });
    Workspace {
        mount: Mount {
            target: Some(WORKSPACE.into()),
            source: Some(name.into()),
            typ: Some(MountType::VOLUME),
            volume_options: Some(MountVolumeOptions {
                labels: Some(labels.clone()),
                driver_config,
                ..Default::default()
            }),
            ..Default::default()
        },
        volume: Some(name.into()),
        bind: None,
    }
}

/// Capabilities the agent keeps: `SETUID`/`SETGID` to start commands as
/// the sandbox user, `KILL` to end that user's processes, `CHOWN` to give
/// the workspace root to that user at start.
const AGENT_CAPS: [&str; 4] = ["CHOWN", "KILL", "SETGID", "SETUID"];

fn container_body(
    config: &DockerConfig,
    labels: HashMap<String, String>,
    workspace: &Workspace,
    agent: Option<&std::path::Path>,
    (uid, gid): (u32, u32),
    slot: bool,
) -> ContainerCreateBody {
    let mut security_opt = Vec::new();
    if config.no_new_privileges {
        security_opt.push("no-new-privileges".to_string());
    }
    let tmp = format!("rw,nosuid,nodev,size={},mode=1777", config.tmp_bytes);
    let host_config = HostConfig {
        memory: Some(config.memory_bytes),
        memory_swap: Some(config.memory_bytes),
        nano_cpus: Some(config.nano_cpus),
        pids_limit: Some(config.pids_limit),
        network_mode: Some(config.network_mode.clone()),
        readonly_rootfs: Some(config.read_only_rootfs),
        cap_drop: config.cap_drop_all.then(|| vec!["ALL".to_string()]),
        cap_add: Some({
            let mut caps: Vec<String> = AGENT_CAPS.map(String::from).to_vec();
            caps.extend(config.cap_add.iter().cloned());
            caps.sort();
            caps.dedup();
            caps
        }),
        shm_size: Some(i64::try_from(config.shm_bytes).unwrap_or(i64::MAX)),
        security_opt: Some(security_opt),
        init: Some(config.init),
        tmpfs: Some(HashMap::from([("/tmp".to_string(), tmp)])),
        mounts: Some(
            [workspace.mount.clone()]
                .into_iter()
                .chain(agent.map(|a| Mount {
                    target: Some(AGENT_PATH.into()),
                    source: Some(a.to_string_lossy().into_owned()),
                    typ: Some(MountType::BIND),
                    read_only: Some(true),
                    ..Default::default()
                }))
                .collect(),
        ),
        log_config: Some(HostConfigLogConfig {
            typ: Some("none".into()),
            config: None,
        }),
        auto_remove: Some(config.exit_with_owner),
        runtime: config.runtime.clone(),
        ..Default::default()
    };
    ContainerCreateBody {
        image: Some(config.image.clone()),
        // root, for the agent only: it starts every command as the
        // sandbox user and keeps just the capabilities above
        user: Some("0:0".into()),
        hostname: Some(config.hostname.clone()),
        working_dir: Some(WORKSPACE.into()),
        env: Some(crate::exec::base_env()),
        cmd: Some({
            let mut cmd = vec![
                AGENT_PATH.into(),
                "--uid".into(),
                uid.to_string(),
                "--gid".into(),
                gid.to_string(),
            ];
            // an empty slot stays root's: nothing is written into it
            // before a workspace covers it (attaching hands the workspace over)
            if !slot {
                cmd.extend(["--chown".into(), WORKSPACE.into()]);
            }
            if let Some(n) = config.nproc_limit {
                cmd.extend(["--nproc".into(), n.to_string()]);
            }
            cmd
        }),
        entrypoint: Some(vec![]),
        attach_stdin: Some(true),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        open_stdin: Some(true),
        stdin_once: Some(config.exit_with_owner),
        tty: Some(false),
        // a remote daemon cannot bind-mount a file of this host: the
        // agent is copied into an anonymous volume (removed with the
        // container) before the start
        volumes: agent.is_none().then(|| vec![AGENT_DIR.to_string()]),
        labels: Some(labels),
        host_config: Some(host_config),
        ..Default::default()
    }
}

impl DockerSandbox {
    /// Creates and starts a sandbox container.
    ///
    /// The image is pulled first when the [`PullPolicy`] asks for it (with
    /// [`PullPolicy::IfMissing`], only when creation reports it missing).
    ///
    /// # Errors
    /// `unavailable` when the daemon cannot be reached, the image is
    /// missing and cannot be pulled, or the container does not start;
    /// `invalid_argument` for an impossible config.
    pub async fn create(client: &DockerClient, config: DockerConfig) -> Result<DockerSandbox> {
        Self::create_with(client, config, Place::Own).await
    }

    /// Creates a *warm* container: running, with an empty workspace slot
    /// at `/workspace` (file operations are `unavailable` until a
    /// workspace is attached with [`DockerSandbox::attach_workspace`]).
    /// Needs [`AttachMode::Mount`] slots and a process that can act as
    /// the sandbox user on the host (root).
    ///
    /// # Errors
    /// `unsupported` with [`AttachMode::Cold`] slots (use
    /// [`DockerSandbox::create_for_workspace`]); as [`DockerSandbox::create`].
    pub async fn create_warm(
        client: &DockerClient,
        config: DockerConfig,
        slots: &WorkspaceSlots,
    ) -> Result<DockerSandbox> {
        if slots.mode() != AttachMode::Mount {
            return Err(Error::Unsupported {
                operation: "create_warm (workspaces cannot be mounted here)",
                backend: "docker",
            });
        }
        Self::create_with(client, config, Place::Slot(slots)).await
    }

    /// A sandbox on the existing workspace directory `dir` (files kept
    /// when the sandbox goes): with [`AttachMode::Mount`], a warm
    /// container made now with `dir` attached; with [`AttachMode::Cold`],
    /// a container with `dir` bind-mounted at creation (the sandbox user
    /// must then be this process's own uid unless it is root).
    ///
    /// # Errors
    /// As [`DockerSandbox::create`] and [`DockerSandbox::attach_workspace`].
    pub async fn create_for_workspace(
        client: &DockerClient,
        config: DockerConfig,
        slots: &WorkspaceSlots,
        dir: &Path,
    ) -> Result<DockerSandbox> {
        match slots.mode() {
            AttachMode::Mount => {
                let sandbox = Self::create_with(client, config, Place::Slot(slots)).await?;
                sandbox.attach_workspace(dir).await?;
                Ok(sandbox)
            }
            AttachMode::Cold => {
                let dir = tokio::fs::canonicalize(dir)
                    .await
                    .map_err(|e| Error::Unavailable {
                        message: format!(
                            "the workspace directory cannot be resolved ({})",
                            e.kind()
                        ),
                    })?;
                Self::create_with(client, config, Place::Dir(&dir)).await
            }
        }
    }

    async fn create_with(
        client: &DockerClient,
        config: DockerConfig,
        place: Place<'_>,
    ) -> Result<DockerSandbox> {
        if config.memory_bytes <= 0 || config.nano_cpus <= 0 || config.pids_limit <= 0 {
            return Err(Error::invalid_argument(
                "memory, CPU and process limits must be above zero",
            ));
        }
        if config.pull == PullPolicy::Always {
            image::ensure_image(client, &config.image, PullPolicy::Always, |_| {}).await?;
        }
        let lease = if config.lease_uid {
            Some(CONTAINER_UIDS.take().ok_or_else(|| Error::Unavailable {
                message: "every container uid is in use".into(),
            })?)
        } else {
            None
        };
        let (uid, gid) = match (&lease, config.uid(), config.gid()) {
            (Some(l), _, _) => (l.uid(), l.uid()),
            (None, Some(u), Some(g)) => (u, g),
            _ => {
                return Err(Error::invalid_argument(
                    "the sandbox user must be numeric (uid:gid)",
                ));
            }
        };
        if uid == 0 {
            tracing::warn!("commands run as root: they can reach the sandbox agent");
        }
        let agent_bin = locate(config.agent.as_deref())?;
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
        let name = format!("sandbay-{id}");
        let mode = match place {
            Place::Own => resolve_mode(client, &config, uid)?,
            Place::Slot(_) | Place::Dir(_) if client.is_local() && bind::can_act_as(uid) => {
                FileMode::Bind
            }
            _ => {
                return Err(Error::invalid_argument(
                    "attached workspaces need a local daemon and a process running as root \
                     or as the sandbox user",
                ));
            }
        };
        let labels = labels::for_sandbox(&id, &config.owner, &config.labels);
        let slot = match place {
            Place::Slot(slots) => {
                let slot = slots.slot_of(&id);
                slots::make_slot(&slot)?;
                Some(slot)
            }
            _ => None,
        };
        let mut workspace = match (place, mode) {
            (Place::Slot(_), _) => match slot.as_deref() {
                Some(s) => slot_workspace(s),
                None => unreachable!("a slot place has its slot"),
            },
            (Place::Dir(dir), _) => {
                hand_over(dir, uid, gid).await?;
                bind_workspace(BindFiles::over(dir, uid, gid).await?)
            }
            (Place::Own, FileMode::Bind) => {
                let base = config
                    .workspace_base
                    .clone()
                    .unwrap_or_else(|| std::env::temp_dir().join("sandbay-docker"));
                if config.workspace_bytes.is_some() {
                    tracing::warn!(
                        "a workspace size cap is not enforced on bind-mounted workspaces"
                    );
                }
                bind_workspace(
                    BindFiles::create_with_quota(
                        &base,
                        &config.owner,
                        &id,
                        uid,
                        gid,
                        config.disk_quota,
                    )
                    .await?,
                )
            }
            (Place::Own, _) => volume_workspace(&name, &config, &labels, (uid, gid)),
        };
        let remover = workspace.bind.as_ref().and_then(BindFiles::remover);
        let cleanup = |client: DockerClient, container: Option<String>| {
            let (volume, remover) = (workspace.volume.clone(), remover.clone());
            let slot = slot.clone();
            async move {
                if let Some(s) = slot {
                    slots::remove_slot(&s);
                }
                if let Some(c) = container {
                    let _ = client.remove_container(&c).await;
                }
                if let Some(v) = volume {
                    let _ = remove_volume_when_free(&client, &v).await;
                }
                if let Some(r) = remover {
                    let _ = r.remove().await;
                }
            }
        };
        let bind_agent = client.is_local().then_some(agent_bin.as_path());
        let body = container_body(
            &config,
            labels,
            &workspace,
            bind_agent,
            (uid, gid),
            slot.is_some(),
        );
        let created = match client.create_container(&name, body.clone()).await {
            Err(ApiError::NotFound(m)) if config.pull == PullPolicy::IfMissing => {
                tracing::info!(image = %config.image, reason = %m, "image missing; pulling");
                match image::ensure_image(client, &config.image, PullPolicy::IfMissing, |_| {})
                    .await
                {
                    Ok(()) => client
                        .create_container(&name, body)
                        .await
                        .map_err(Error::from),
                    Err(e) => Err(e),
                }
            }
            Err(ApiError::NotFound(_)) => Err(Error::Unavailable {
                message: format!(
                    "image {} is not present and pulling is disabled",
                    config.image
                ),
            }),
            other => other.map_err(Error::from),
        };
        let container = match created {
            Ok(c) => c,
            Err(e) => {
                cleanup(client.clone(), None).await;
                return Err(e);
            }
        };
        if bind_agent.is_none()
            && let Err(e) = copy_agent(client, &container, &agent_bin).await
        {
            cleanup(client.clone(), Some(container)).await;
            return Err(e);
        }
        // Attach and start go out together (one round trip less): the
        // agent's hello is buffered until the attach reads it.
        let (attached, started) = tokio::join!(
            client.attach_container(&container),
            client.start_container(&container)
        );
        let attached = match (attached, started) {
            (Ok(a), Ok(())) => a,
            (Err(e), _) | (_, Err(e)) => {
                cleanup(client.clone(), Some(container)).await;
                return Err(e.into());
            }
        };
        let agent = match Agent::start(attached.0, attached.1, config.api_timeout).await {
            Ok((agent, _pid)) => agent,
            Err(e) => {
                cleanup(client.clone(), Some(container)).await;
                return Err(e);
            }
        };
        let exec = Arc::new(Executor { agent });
        let files = match (workspace.bind.take(), place) {
            (Some(b), _) => Some(Files::Bind(b)),
            (None, Place::Slot(_)) => None,
            (None, _) => Some(Files::Container(ContainerFiles::new(
                exec.clone(),
                FILE_OP_TIMEOUT,
                config.max_download_bytes,
            ))),
        };
        let attach = match place {
            Place::Own => None,
            Place::Slot(_) => Some(AttachMode::Mount),
            Place::Dir(_) => Some(AttachMode::Cold),
        };
        tracing::debug!(sandbox = %id, owner = %config.owner, "sandbox container started");
        Ok(DockerSandbox {
            id,
            uid,
            _uid_lease: lease,
            container,
            client: client.clone(),
            config,
            mode,
            exec,
            files: FileSide::new(files),
            volume: workspace.volume,
            remover,
            attach,
            slot,
            attached: tokio::sync::Mutex::new(match place {
                Place::Dir(dir) => Some(dir.to_path_buf()),
                _ => None,
            }),
            keep: std::sync::Mutex::new(None),
            served: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        })
    }

    /// The uid (and gid) commands run as: leased for this container
    /// unless the config names a user.
    pub fn uid(&self) -> u32 {
        self.uid
    }

    /// The Docker container id.
    pub fn container_id(&self) -> &str {
        &self.container
    }

    /// The config this sandbox was made with.
    pub fn config(&self) -> &DockerConfig {
        &self.config
    }

    /// Where the files live ([`FileMode::Bind`] or [`FileMode::Container`]).
    /// With [`FileMode::Auto`], a local daemon and a process that can act
    /// as the sandbox user give [`FileMode::Bind`].
    pub fn file_mode(&self) -> FileMode {
        self.mode
    }

    /// How this sandbox's workspace came: [`AttachMode::Mount`] for a
    /// warm container (workspaces attach to its slot),
    /// [`AttachMode::Cold`] for one made on a workspace directory, `None`
    /// for one with a workspace of its own.
    pub fn attach_mode(&self) -> Option<AttachMode> {
        self.attach
    }

    /// Mounts the workspace directory `dir` onto this warm container's
    /// slot: the running container sees it at `/workspace` at once, and
    /// file operations reach it (on the host, as the sandbox user). The
    /// files are handed over to the sandbox uid first (entries another
    /// uid owns are given to it; a workspace this uid had costs a walk).
    ///
    /// # Errors
    /// `unsupported` for a sandbox without a slot; `invalid_argument`
    /// when a workspace is attached already; `unavailable` when `dir`
    /// cannot be handed over or mounted.
    pub async fn attach_workspace(&self, dir: &Path) -> Result<()> {
        let Some(slot) = self.slot.clone() else {
            return Err(Error::Unsupported {
                operation: "attach_workspace (a sandbox made without a slot)",
                backend: "docker",
            });
        };
        let mut attached = self.attached.lock().await;
        if attached.is_some() || self.files.is_set() || self.served.load(Ordering::Acquire) {
            return Err(Error::invalid_argument(
                "this container has served a workspace already: a container serves one \
                 workspace for its life (its /tmp, /dev/shm and processes are that user's)",
            ));
        }
        let started = std::time::Instant::now();
        let dir = tokio::fs::canonicalize(dir)
            .await
            .map_err(|e| Error::Unavailable {
                message: format!("the workspace directory cannot be resolved ({})", e.kind()),
            })?;
        let gid = self
            .config
            .gid()
            .filter(|_| !self.config.lease_uid)
            .unwrap_or(self.uid);
        hand_over(&dir, self.uid, gid).await?;
        let files = BindFiles::over(&dir, self.uid, gid).await?;
        let (d, s) = (dir.clone(), slot.clone());
        blocking(move || slots::mount_onto(&d, &s)).await?;
        self.files.replace(Some(Files::Bind(files)));
        self.served.store(true, Ordering::Release);
        *attached = Some(dir);
        tracing::info!(
            sandbox = %self.id,
            mode = AttachMode::Mount.as_str(),
            micros = started.elapsed().as_micros() as u64,
            "workspace attached to a warm container"
        );
        Ok(())
    }

    /// Holds `value` until the attached workspace is unmounted from this
    /// sandbox (by [`DockerSandbox::detach_workspace`], `shutdown` or
    /// drop), then drops it: for a handle that keeps the workspace's own
    /// mount (a quota image) alive for as long as a container sees it.
    /// Replaces what was kept before.
    pub fn keep_while_attached(&self, value: impl std::any::Any + Send + Sync) {
        *self
            .keep
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Box::new(value));
    }

    fn take_keep(&self) -> Option<Keep> {
        self.keep
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }

    /// Detaches the workspace attached with
    /// [`DockerSandbox::attach_workspace`]: every process of the sandbox
    /// user is killed, the slot unmounted (the files stay where they
    /// are) and the workspace root given back to this process. Nothing
    /// attached: nothing to do.
    ///
    /// # Errors
    /// `unavailable` when the slot cannot be unmounted.
    pub async fn detach_workspace(&self) -> Result<()> {
        let Some(slot) = self.slot.clone() else {
            return Ok(());
        };
        let mut attached = self.attached.lock().await;
        let Some(dir) = attached.take() else {
            return Ok(());
        };
        self.files.replace(None);
        if self.exec.agent.is_alive()
            && let Err(e) = self.kill_all().await
        {
            tracing::warn!(error = %e, "processes of a detached workspace could not be killed");
        }
        let uid = self.uid;
        blocking(move || {
            slots::unmount(&slot)?;
            give_back(&dir, uid);
            Ok(())
        })
        .await?;
        drop(self.take_keep());
        tracing::debug!(sandbox = %self.id, "workspace detached");
        Ok(())
    }

    /// Removes every entry of the workspace, whatever its name (newlines,
    /// control characters, backslashes, invalid UTF-8), after killing
    /// every process of the sandbox user, and checks that it is empty. The
    /// agent does it as the sandbox user through a directory descriptor.
    ///
    /// # Errors
    /// `unavailable` when an entry survives or the agent is gone.
    pub async fn clear_all(&self) -> Result<()> {
        self.exec.agent.clear(&[WORKSPACE], FILE_OP_TIMEOUT).await
    }

    /// Kills every process of the sandbox user (running commands end as
    /// if cancelled); for the end of a lease.
    ///
    /// # Errors
    /// `unavailable` when the agent is gone.
    pub async fn kill_all(&self) -> Result<()> {
        self.exec.agent.kill_all(self.config.api_timeout).await
    }

    /// Stops and removes the container, its volume and its workspace.
    /// Calling it again does nothing.
    ///
    /// # Errors
    /// `unavailable` when the daemon cannot be reached (the container is
    /// then left for [`crate::reap_orphans`]).
    pub async fn shutdown(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        // the host side (slot, workspace) is let go whatever the daemon
        // says: a container it cannot remove now is the reaper's later
        let removed = self.client.remove_container(&self.container).await;
        if removed.is_ok()
            && let Some(v) = &self.volume
        {
            remove_volume_when_free(&self.client, v).await?;
        }
        if removed.is_ok()
            && let Some(r) = &self.remover
        {
            r.remove().await?;
        }
        if let Some(slot) = self.slot.clone() {
            let dir = self.attached.lock().await.take();
            self.files.replace(None);
            let uid = self.uid;
            blocking(move || {
                let unmounted = slots::unmount(&slot);
                if let Some(d) = dir {
                    give_back(&d, uid);
                }
                if unmounted.is_ok() {
                    slots::remove_slot(&slot);
                }
                unmounted
            })
            .await?;
        }
        drop(self.take_keep());
        removed?;
        tracing::debug!(sandbox = %self.id, "sandbox removed");
        Ok(())
    }
}

/// Runs blocking host work (mounts, ownership walks) off the runtime.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|_| {
        Err(Error::Unavailable {
            message: "host work stopped".into(),
        })
    })
}

/// Hands the workspace at `dir` over to `uid:gid` when this process is
/// root (otherwise its files are this process's, the sandbox user's).
async fn hand_over(dir: &Path, uid: u32, gid: u32) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let dir = dir.to_path_buf();
    blocking(move || {
        sandbay_exec::hand_over(&dir, uid, gid).map_err(|e| Error::Unavailable {
            message: format!(
                "the workspace cannot be handed to the sandbox user ({})",
                e.kind()
            ),
        })
    })
    .await
}

/// Gives an attached workspace's root back to this process (root) when
/// the sandbox uid, whose lease ends, owns it.
fn give_back(dir: &Path, uid: u32) {
    if nix::unistd::geteuid().is_root()
        && let Err(e) = sandbay_exec::give_back_root(dir, uid, 0, 0)
    {
        tracing::warn!(kind = ?e.kind(), "a detached workspace root was not given back");
    }
}

/// Copies the agent binary into the container's agent volume.
async fn copy_agent(client: &DockerClient, container: &str, agent: &std::path::Path) -> Result<()> {
    let bytes = tokio::fs::read(agent)
        .await
        .map_err(|e| Error::Unavailable {
            message: format!("cannot read the sandbox agent binary ({})", e.kind()),
        })?;
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o555);
    header.set_uid(0);
    header.set_gid(0);
    header.set_entry_type(tar::EntryType::Regular);
    let mut archive = tar::Builder::new(Vec::with_capacity(bytes.len() + 4096));
    archive
        .append_data(&mut header, "agent", bytes.as_slice())
        .map_err(|e| Error::Unavailable {
            message: format!("cannot pack the sandbox agent ({})", e.kind()),
        })?;
    let tar = archive.into_inner().map_err(|e| Error::Unavailable {
        message: format!("cannot pack the sandbox agent ({})", e.kind()),
    })?;
    client.upload_archive(container, AGENT_DIR, tar).await?;
    Ok(())
}

/// Removes a volume, retrying briefly while the daemon still finishes
/// removing the container that used it.
async fn remove_volume_when_free(client: &DockerClient, volume: &str) -> Result<()> {
    let mut delay = Duration::from_millis(5);
    for _ in 0..20 {
        match client.remove_volume(volume).await {
            Ok(()) => return Ok(()),
            Err(ApiError::Conflict(_)) => tokio::time::sleep(delay).await,
            Err(e) => return Err(e.into()),
        }
        delay = (delay * 2).min(Duration::from_millis(200));
    }
    Err(Error::Unavailable {
        message: "the sandbox volume stayed in use".into(),
    })
}

impl Drop for DockerSandbox {
    fn drop(&mut self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        // Best effort, on a thread of its own so it works whatever runtime
        // (or none) the owner has. If the process exits first, the
        // container still ends with its owner's connection, and
        // `reap_orphans` finds the rest.
        let host = self.client.host().to_string();
        let timeout = self.client.timeout();
        let container = self.container.clone();
        let volume = self.volume.clone();
        let remover = self.remover.clone();
        let slot = self.slot.clone();
        let attached = self.attached.get_mut().take();
        let keep = self.take_keep();
        let uid = self.uid;
        let spawned = std::thread::Builder::new()
            .name("sandbay-docker-drop".into())
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async move {
                    let Ok(client) = DockerClient::connect_with_host(&host, timeout).await else {
                        return;
                    };
                    let _ = client.remove_container(&container).await;
                    if let Some(v) = volume {
                        let _ = remove_volume_when_free(&client, &v).await;
                    }
                    if let Some(r) = remover {
                        let _ = r.remove().await;
                    }
                });
                if let Some(slot) = slot {
                    if slots::unmount(&slot).is_ok() {
                        slots::remove_slot(&slot);
                    }
                    if let Some(d) = attached {
                        give_back(&d, uid);
                    }
                }
                drop(keep);
            });
        if spawned.is_err() {
            tracing::warn!(container = %self.container, "could not remove a dropped sandbox");
        }
    }
}

sandbay_core::delegate_backend!(impl Backend for DockerSandbox => files {
    fn name(&self) -> &'static str {
        "docker"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            execute: true,
            isolation: Isolation::Container,
            symlinks: true,
            quota: self.files.quota().or(match (self.mode, self.config.workspace_bytes) {
                // the size-capped tmpfs volume: commands meet it too
                (FileMode::Container, Some(bytes)) => Some(DiskQuota {
                    bytes,
                    files: None,
                    commands: true,
                }),
                _ => None,
            }),
            ..Capabilities::default()
        }
    }
});

#[async_trait]
impl Sandbox for DockerSandbox {
    fn id(&self) -> &str {
        &self.id
    }

    async fn execute(&self, request: ExecRequest) -> Result<ExecOutput> {
        self.exec.execute(request, self.config.output_limit).await
    }

    async fn execute_stream(&self, request: ExecRequest) -> Result<sandbay_core::ExecStream> {
        let exec = Arc::clone(&self.exec);
        crate::stream::execute_stream(self, exec, request, self.config.output_limit).await
    }
}
