//! [`DockerConfig`]: what a sandbox container looks like, with safe defaults.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// The image used when none is set: Docker Hub's `busybox`, pinned to a
/// release. Nothing sandbay needs lives in the image (the agent is
/// bind-mounted or copied in), so any image with a `/bin/sh` serves; set
/// your own with [`DockerConfig::with_image`]. The test suites use the
/// local image `sandbay/busybox:test` (`cargo xtask docker-image`),
/// since they run where no registry can be reached.
pub const DEFAULT_IMAGE: &str = "busybox:1.37";
/// The unprivileged user commands run as by default (`uid:gid`).
pub const DEFAULT_USER: &str = "10001:10001";
/// Where the workspace is mounted inside the container.
pub const WORKSPACE: &str = "/workspace";

/// Where the files of a sandbox live and how file operations reach them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FileMode {
    /// [`FileMode::Bind`] when the daemon is local (a unix socket) and the
    /// bind-mount backend is available, [`FileMode::Container`] otherwise.
    #[default]
    Auto,
    /// A per-sandbox host directory bind-mounted at `/workspace`; file
    /// operations run on the host, through the capability-based fs backend.
    Bind,
    /// A labelled Docker volume at `/workspace`; file operations run inside
    /// the container (works with a remote daemon).
    Container,
}

/// When to pull the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PullPolicy {
    /// Pull only when the image is not present.
    #[default]
    IfMissing,
    /// Never pull: a missing image is an `unavailable` error.
    Never,
    /// Pull before every creation.
    Always,
}

/// The shape of a sandbox container. Every field has a safe default
/// ([`DockerConfig::default`]) and a `with_*` setter.
///
/// ```
/// use sandbay_docker::DockerConfig;
/// let config = DockerConfig::default()
///     .with_owner("user-42")
///     .with_memory_bytes(256 << 20)
///     .with_cpus(1.0)
///     .with_pids_limit(64);
/// assert_eq!(config.network_mode, "none");
/// assert!(config.read_only_rootfs);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct DockerConfig {
    /// Image reference; default [`DEFAULT_IMAGE`].
    pub image: String,
    /// When to pull the image.
    pub pull: PullPolicy,
    /// `uid:gid` (numeric) commands run as when [`DockerConfig::lease_uid`]
    /// is off ([`DEFAULT_USER`]). The container itself runs as root so
    /// that its agent can start commands as this user; root here lets
    /// commands reach the agent, so never use it for untrusted code.
    pub user: String,
    /// Run each container's commands as a host uid (and equal gid) of its
    /// own, leased from [`crate::CONTAINER_UID_RANGE`] for the
    /// container's life, so that per-uid kernel budgets (inotify, message
    /// queues, `RLIMIT_NPROC`) are per container. On by default;
    /// [`DockerConfig::with_user`] turns it off.
    pub lease_uid: bool,
    /// `RLIMIT_NPROC` of commands (processes of their uid); `None`: the
    /// container's default. Default: the process limit.
    pub nproc_limit: Option<u64>,
    /// Memory limit in bytes; swap is pinned to the same value (no swap).
    pub memory_bytes: i64,
    /// CPU limit in billionths of a CPU (`500_000_000` = half a CPU).
    pub nano_cpus: i64,
    /// Maximum number of processes in the container.
    pub pids_limit: i64,
    /// Docker network mode; `"none"` (no network at all) by default.
    pub network_mode: String,
    /// Mount the image's root filesystem read-only.
    pub read_only_rootfs: bool,
    /// Drop every Linux capability.
    pub cap_drop_all: bool,
    /// Capabilities added back for the container (empty by default).
    /// The agent always keeps `CHOWN`, `KILL`, `SETGID` and `SETUID`;
    /// commands never hold any capability (they run as [`DockerConfig::user`]).
    pub cap_add: Vec<String>,
    /// Set `no-new-privileges` (setuid binaries cannot raise privileges).
    pub no_new_privileges: bool,
    /// Run an init process as PID 1 that reaps orphans and forwards signals.
    pub init: bool,
    /// Size of the private `/tmp` tmpfs in bytes.
    pub tmp_bytes: u64,
    /// Size cap of the workspace in bytes, where the mode allows it: in
    /// [`FileMode::Container`] the volume becomes a size-capped tmpfs
    /// (its pages count against the memory limit). `None`: no cap.
    pub workspace_bytes: Option<u64>,
    /// Where files live; see [`FileMode`].
    pub file_mode: FileMode,
    /// Host directory under which bind-mounted workspaces are made
    /// (`<base>/<owner>/<sandbox id>`); default `$TMPDIR/sandbay-docker`.
    pub workspace_base: Option<PathBuf>,
    /// The owner recorded in the `sandbay.owner` label (a user id).
    pub owner: String,
    /// Extra labels (a test or tenant label, for example).
    pub labels: BTreeMap<String, String>,
    /// Cap on captured bytes per output stream of one command.
    pub output_limit: usize,
    /// Cap on the bytes one `download` item may have.
    pub max_download_bytes: u64,
    /// Time limit of every daemon call that is not a running command.
    pub api_timeout: Duration,
    /// The `sandbay-agent` binary on the host (statically linked), mounted
    /// read-only into each container as its main process. `None`: the
    /// `SANDBAY_AGENT` environment variable, else a `sandbay-agent` next
    /// to the current executable or in its parent directory. A binary
    /// that is not a static x86-64 executable (a plain `cargo build`
    /// makes a dynamically linked one) is passed over, and `create` says
    /// so in its `unavailable` error.
    pub agent: Option<PathBuf>,
    /// Size of the container's `/dev/shm` tmpfs in bytes (default 16 MiB).
    pub shm_bytes: u64,
    /// A disk quota for a bind-mounted workspace (bytes and files): on a
    /// root host the workspace is a loop-mounted ext4 image of that size,
    /// which the file API, commands and `df` all meet (see
    /// `sandbay_fs::Quota`). `None` (the default): no quota. Container
    /// mode uses [`DockerConfig::workspace_bytes`] instead.
    pub disk_quota: Option<sandbay_fs::Quota>,
    /// The container stops and removes itself when the owning process's
    /// connection to it closes (a crash leaks nothing). When `false` the
    /// container outlives its owner until [`crate::reap_orphans`] runs.
    pub exit_with_owner: bool,
    /// Hostname inside the container.
    pub hostname: String,
    /// The OCI runtime the daemon starts the container with, by the name
    /// the daemon knows it under (`runc`, `crun`, gVisor's `runsc`, ...);
    /// `None`: the daemon's default. gVisor's `runsc`, for one, puts a
    /// user-space kernel between the commands and the host kernel.
    pub runtime: Option<String>,
}

impl Default for DockerConfig {
    fn default() -> Self {
        DockerConfig {
            image: DEFAULT_IMAGE.into(),
            pull: PullPolicy::IfMissing,
            user: DEFAULT_USER.into(),
            lease_uid: true,
            nproc_limit: Some(128),
            memory_bytes: 512 << 20,
            nano_cpus: 500_000_000,
            pids_limit: 128,
            network_mode: "none".into(),
            read_only_rootfs: true,
            cap_drop_all: true,
            cap_add: Vec::new(),
            no_new_privileges: true,
            init: true,
            tmp_bytes: 64 << 20,
            workspace_bytes: None,
            file_mode: FileMode::Auto,
            workspace_base: None,
            owner: "anonymous".into(),
            labels: BTreeMap::new(),
            output_limit: 1 << 20,
            max_download_bytes: 256 << 20,
            api_timeout: Duration::from_secs(30),
            agent: None,
            shm_bytes: 16 << 20,
            disk_quota: None,
            exit_with_owner: true,
            hostname: "sandbox".into(),
            runtime: None,
        }
    }
}

impl DockerConfig {
    /// Sets the OCI runtime (see [`DockerConfig::runtime`]).
    pub fn with_runtime(mut self, runtime: impl Into<String>) -> Self {
        self.runtime = Some(runtime.into());
        self
    }
    /// Sets the image.
    pub fn with_image(mut self, image: impl Into<String>) -> Self {
        self.image = image.into();
        self
    }
    /// Sets the pull policy.
    pub fn with_pull(mut self, pull: PullPolicy) -> Self {
        self.pull = pull;
        self
    }
    /// Sets the user commands run as (`uid:gid`), instead of a leased uid.
    pub fn with_user(mut self, user: impl Into<String>) -> Self {
        self.user = user.into();
        self.lease_uid = false;
        self
    }
    /// Chooses whether each container gets a leased uid (default).
    pub fn with_lease_uid(mut self, on: bool) -> Self {
        self.lease_uid = on;
        self
    }
    /// Sets `RLIMIT_NPROC` of commands (see [`DockerConfig::nproc_limit`]).
    pub fn with_nproc_limit(mut self, limit: Option<u64>) -> Self {
        self.nproc_limit = limit;
        self
    }
    /// Sets the memory limit (swap pinned to it).
    pub fn with_memory_bytes(mut self, bytes: i64) -> Self {
        self.memory_bytes = bytes;
        self
    }
    /// Sets the CPU limit in CPUs (`0.5` = half a CPU).
    pub fn with_cpus(mut self, cpus: f64) -> Self {
        self.nano_cpus = (cpus * 1e9).round() as i64;
        self
    }
    /// Sets the process limit (and `RLIMIT_NPROC` of commands to match).
    pub fn with_pids_limit(mut self, pids: i64) -> Self {
        self.pids_limit = pids;
        self.nproc_limit = u64::try_from(pids).ok();
        self
    }
    /// Sets the Docker network mode (`"none"` by default).
    pub fn with_network_mode(mut self, mode: impl Into<String>) -> Self {
        self.network_mode = mode.into();
        self
    }
    /// Chooses a read-only (default) or writable root filesystem.
    pub fn with_read_only_rootfs(mut self, read_only: bool) -> Self {
        self.read_only_rootfs = read_only;
        self
    }
    /// Chooses whether every capability is dropped (default) and which are added back.
    pub fn with_capabilities(mut self, drop_all: bool, add: Vec<String>) -> Self {
        self.cap_drop_all = drop_all;
        self.cap_add = add;
        self
    }
    /// Chooses whether `no-new-privileges` is set (default).
    pub fn with_no_new_privileges(mut self, on: bool) -> Self {
        self.no_new_privileges = on;
        self
    }
    /// Chooses whether an init runs as PID 1 (default).
    pub fn with_init(mut self, on: bool) -> Self {
        self.init = on;
        self
    }
    /// Sets the size of `/tmp`.
    pub fn with_tmp_bytes(mut self, bytes: u64) -> Self {
        self.tmp_bytes = bytes;
        self
    }
    /// Sets a workspace size cap (see [`DockerConfig::workspace_bytes`]).
    pub fn with_workspace_bytes(mut self, bytes: Option<u64>) -> Self {
        self.workspace_bytes = bytes;
        self
    }
    /// Chooses where files live.
    pub fn with_file_mode(mut self, mode: FileMode) -> Self {
        self.file_mode = mode;
        self
    }
    /// Sets the host base directory of bind-mounted workspaces.
    pub fn with_workspace_base(mut self, base: impl Into<PathBuf>) -> Self {
        self.workspace_base = Some(base.into());
        self
    }
    /// Sets the owner label.
    pub fn with_owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = owner.into();
        self
    }
    /// Adds a label.
    pub fn with_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }
    /// Sets the per-stream output cap of commands.
    pub fn with_output_limit(mut self, bytes: usize) -> Self {
        self.output_limit = bytes;
        self
    }
    /// Sets the time limit of daemon calls.
    pub fn with_api_timeout(mut self, timeout: Duration) -> Self {
        self.api_timeout = timeout;
        self
    }
    /// Sets the host path of the `sandbay-agent` binary (see [`DockerConfig::agent`]).
    pub fn with_agent(mut self, path: impl Into<PathBuf>) -> Self {
        self.agent = Some(path.into());
        self
    }
    /// Sets the bind-mounted workspace's disk quota (see
    /// [`DockerConfig::disk_quota`]).
    pub fn with_disk_quota(mut self, quota: Option<sandbay_fs::Quota>) -> Self {
        self.disk_quota = quota;
        self
    }
    /// Sets the size of `/dev/shm` (see [`DockerConfig::shm_bytes`]).
    pub fn with_shm_bytes(mut self, bytes: u64) -> Self {
        self.shm_bytes = bytes;
        self
    }
    /// Chooses whether the container ends with its owner's connection.
    pub fn with_exit_with_owner(mut self, on: bool) -> Self {
        self.exit_with_owner = on;
        self
    }

    /// The uid of [`DockerConfig::user`], when numeric (with
    /// [`DockerConfig::lease_uid`], see `DockerSandbox::uid` instead).
    pub fn uid(&self) -> Option<u32> {
        self.user.split(':').next()?.parse().ok()
    }

    /// The gid commands run as (the uid when no group is given).
    pub fn gid(&self) -> Option<u32> {
        match self.user.split_once(':') {
            Some((_, g)) => g.parse().ok(),
            None => self.uid(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_safe() {
        let c = DockerConfig::default();
        assert_eq!(c.network_mode, "none");
        assert!(c.read_only_rootfs && c.cap_drop_all && c.no_new_privileges && c.init);
        assert_ne!(c.uid(), Some(0));
        assert_eq!(c.uid(), Some(10001));
        assert_eq!(c.gid(), Some(10001));
        assert!(c.pids_limit > 0 && c.memory_bytes > 0 && c.nano_cpus > 0);
    }

    #[test]
    fn setters_change_defaults() {
        let c = DockerConfig::default()
            .with_cpus(1.5)
            .with_user("2000")
            .with_network_mode("bridge")
            .with_label("k", "v");
        assert_eq!(c.nano_cpus, 1_500_000_000);
        assert_eq!((c.uid(), c.gid()), (Some(2000), Some(2000)));
        assert_eq!(c.network_mode, "bridge");
        assert_eq!(c.labels["k"], "v");
    }
}
