//! What a [`crate::Jail`] enforces: level, identity, limits.

use std::time::Duration;

use sandbay_core::{Error, Isolation, Result};

/// Bytes in a mebibyte.
const MIB: u64 = 1024 * 1024;

/// Configuration of a [`crate::Jail`].
///
/// ```
/// use sandbay_core::Isolation;
/// use sandbay_exec::JailConfig;
///
/// let mut config = JailConfig::new(Isolation::Limits);
/// config.limits.processes = 64;
/// config.max_output_bytes = 64 * 1024;
/// assert_eq!(config.isolation, Isolation::Limits);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct JailConfig {
    /// The level to enforce: [`Isolation::Limits`] or
    /// [`Isolation::Namespaces`]. [`crate::Jail::new`] fails when the host
    /// cannot give it; it never falls back to a weaker level.
    pub isolation: Isolation,
    /// Which host uid commands run as.
    pub identity: Identity,
    /// Resource caps for every command.
    pub limits: ResourceLimits,
    /// Cap on the captured bytes of stdout, and separately of stderr. Output
    /// beyond it is read and dropped, and the result is marked `truncated`.
    pub max_output_bytes: usize,
    /// Size of the private `/tmp` (a tmpfs, namespaces level only).
    pub tmp_bytes: u64,
    /// Hostname inside the jail (namespaces level only).
    pub hostname: String,
    /// Give the jail its own cgroups (v1 `pids`, `memory`, `cpu`) when the
    /// host has them and the host process is root: one parent per
    /// controller carrying the caps, and a child of it for each run. They
    /// cap the memory, processes and CPU of all the jail's runs together,
    /// however many run at once, and list every process of a run so none
    /// survives it. Moving the new process into them takes a
    /// kernel-wide lock: about +0.1 ms at the median, several ms now and
    /// then, and more while other processes fork heavily (see the crate
    /// docs, "Cost"). Without them, `RLIMIT_NPROC` still caps processes and
    /// `RLIMIT_AS` caps memory per process.
    pub cgroups: bool,
    /// How many commands of this jail run at once. A further call waits
    /// for one of them to end, at most [`JailConfig::queue_timeout`].
    pub max_concurrent: usize,
    /// How long a call waits for a free place among the
    /// [`JailConfig::max_concurrent`] running commands before it fails
    /// with `unavailable` (nothing of it has run then).
    pub queue_timeout: Duration,
}

impl JailConfig {
    /// The default configuration at `isolation`.
    pub fn new(isolation: Isolation) -> JailConfig {
        JailConfig {
            isolation,
            ..JailConfig::default()
        }
    }

    /// Checks the values; `invalid_argument` names the field.
    pub(crate) fn validate(&self) -> Result<()> {
        if !matches!(self.isolation, Isolation::Limits | Isolation::Namespaces) {
            return Err(Error::invalid_argument(format!(
                "a local jail offers the `limits` and `namespaces` levels, not `{}`",
                self.isolation.as_str()
            )));
        }
        let l = &self.limits;
        let checks: [(&str, bool); 7] = [
            ("limits.cpu_seconds must be at least 1", l.cpu_seconds >= 1),
            (
                "limits.address_space_bytes must be at least 16 MiB",
                l.address_space_bytes >= 16 * MIB,
            ),
            ("limits.open_files must be at least 16", l.open_files >= 16),
            ("limits.processes must be at least 2", l.processes >= 2),
            (
                "limits.memory_bytes must be at least 8 MiB",
                l.memory_bytes >= 8 * MIB,
            ),
            ("tmp_bytes must be at least 1 MiB", self.tmp_bytes >= MIB),
            (
                "max_concurrent must be at least 1",
                self.max_concurrent >= 1,
            ),
        ];
        if let Some((message, _)) = checks.iter().find(|(_, ok)| !ok) {
            return Err(Error::invalid_argument(*message));
        }
        if let Some(cores) = l.cpu_cores
            && !(cores.is_finite() && cores >= 0.01)
        {
            return Err(Error::invalid_argument(
                "limits.cpu_cores must be a number of at least 0.01",
            ));
        }
        let host_ok = !self.hostname.is_empty()
            && self.hostname.len() <= 63
            && self
                .hostname
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !host_ok {
            return Err(Error::invalid_argument(
                "hostname must be 1 to 63 letters, digits, '-' or '.'",
            ));
        }
        if let Identity::Fixed { uid, gid } = self.identity
            && (uid == 0 || gid == 0 || uid == u32::MAX || gid == u32::MAX)
        {
            return Err(Error::invalid_argument(
                "identity: the sandbox uid and gid must not be 0 (root) or -1",
            ));
        }
        Ok(())
    }
}

impl Default for JailConfig {
    /// Namespaces level, an automatic uid, [`ResourceLimits::default`], 1 MiB
    /// of output per stream, a 256 MiB `/tmp`, hostname `sandbay`, cgroups
    /// where available, 4 commands at once and a 30 s wait for a place.
    fn default() -> Self {
        JailConfig {
            isolation: Isolation::Namespaces,
            identity: Identity::Auto,
            limits: ResourceLimits::default(),
            max_output_bytes: MIB as usize,
            tmp_bytes: 256 * MIB,
            hostname: "sandbay".into(),
            cgroups: true,
            max_concurrent: 4,
            queue_timeout: Duration::from_secs(30),
        }
    }
}

/// Which host uid a jail's commands run as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Identity {
    /// When the host process is root: a uid and gid leased for the jail's
    /// lifetime from a range no other jail of this process uses (see
    /// [`crate::UID_RANGE`]); distinct jails never share a uid. When it is
    /// not root: its own uid, mapped into the jail's user namespace.
    #[default]
    Auto,
    /// This host uid and gid (needs root). Use it for a stable identity
    /// across restarts, e.g. derived from a user id. Never 0.
    Fixed {
        /// Host uid.
        uid: u32,
        /// Host gid.
        gid: u32,
    },
}

/// Resource caps applied to every command.
///
/// `rlimit`s apply per process (`processes` per uid); the cgroup caps
/// (`memory_bytes`, `processes` again, `cpu_cores`) apply to all runs of
/// the jail together when the host offers cgroup v1 controllers (see
/// [`crate::Enforcement`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResourceLimits {
    /// `RLIMIT_CPU`: CPU seconds per process.
    pub cpu_seconds: u64,
    /// `RLIMIT_AS`: virtual memory per process, in bytes. Where no memory
    /// cgroup is in force, the jail holds it to at most `memory_bytes`
    /// ([`crate::Enforcement::limits`] reports the value in force).
    pub address_space_bytes: u64,
    /// `RLIMIT_FSIZE`: largest file a process may write, in bytes.
    pub file_size_bytes: u64,
    /// `RLIMIT_NOFILE`: open descriptors per process.
    pub open_files: u64,
    /// `RLIMIT_NPROC` (processes of the sandbox uid) and the `pids` cgroup
    /// cap of the jail (all its runs together).
    pub processes: u64,
    /// Memory cgroup cap of the jail, all its runs together (RAM plus swap
    /// when the host accounts swap), in bytes. tmpfs pages written by the
    /// runs count too.
    pub memory_bytes: u64,
    /// CPU cgroup quota of the jail, all its runs together, in cores
    /// (`None`: no quota).
    pub cpu_cores: Option<f64>,
}

impl Default for ResourceLimits {
    /// 300 CPU seconds, 8 GiB address space, 1 GiB files, 1024 open files,
    /// 512 processes, 2 GiB memory, 1 core.
    fn default() -> Self {
        ResourceLimits {
            cpu_seconds: 300,
            address_space_bytes: 8 * 1024 * MIB,
            file_size_bytes: 1024 * MIB,
            open_files: 1024,
            processes: 512,
            memory_bytes: 2048 * MIB,
            cpu_cores: Some(1.0),
        }
    }
}
