//! What this host can enforce, found by really starting a jailed process.

use std::ffi::CString;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use sandbay_core::{Error, Isolation, Result};

use crate::cgroup;
use crate::config::JailConfig;
use crate::guard::Exit;
use crate::launch::{HostIds, Launch, launch, stdin_fd};
use crate::plan;
use crate::spawner::spawn_on_blocking;
use crate::sys::decode_failure;
use crate::uid::{JAIL_UIDS, UidLease};

/// The isolation this host can give, with reasons for what it cannot.
///
/// Found once per process by starting a process through the full jail
/// setup of each level (everything but the final `execve`), so a level is
/// reported only if it really works here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSupport {
    /// Why [`Isolation::Limits`] is unavailable, `None` if it works.
    pub limits: Option<String>,
    /// Why [`Isolation::Namespaces`] is unavailable, `None` if it works.
    pub namespaces: Option<String>,
    /// The cgroup v1 `pids` controller caps the processes of each jail.
    pub cgroup_pids: bool,
    /// The cgroup v1 `memory` controller caps the memory of each jail.
    pub cgroup_memory: bool,
    /// The cgroup v1 `cpu` controller caps the CPU of each jail.
    pub cgroup_cpu: bool,
}

impl HostSupport {
    /// The strongest level available ([`Isolation::None`] if neither works).
    pub fn best(&self) -> Isolation {
        if self.namespaces.is_none() {
            Isolation::Namespaces
        } else if self.limits.is_none() {
            Isolation::Limits
        } else {
            Isolation::None
        }
    }

    /// `Ok` if `level` can be enforced here, else `unavailable` with the reason.
    pub fn check(&self, level: Isolation) -> Result<()> {
        let reason = match level {
            Isolation::Limits => self.limits.as_ref(),
            Isolation::Namespaces => self.namespaces.as_ref(),
            other => {
                return Err(Error::invalid_argument(format!(
                    "a local jail offers the `limits` and `namespaces` levels, not `{}`",
                    other.as_str()
                )));
            }
        };
        match reason {
            None => Ok(()),
            Some(why) => Err(Error::Unavailable {
                message: format!(
                    "isolation level `{}` is not available on this host: {why}",
                    level.as_str()
                ),
            }),
        }
    }
}

/// The host's support, probed on first use.
pub(crate) fn host_support() -> &'static HostSupport {
    static SUPPORT: OnceLock<HostSupport> = OnceLock::new();
    SUPPORT.get_or_init(|| {
        let root = nix::unistd::geteuid().is_root();
        let cg = if root { Some(cgroup::host()) } else { None };
        let support = HostSupport {
            limits: probe(false).err(),
            namespaces: probe(true).err(),
            cgroup_pids: cg.is_some_and(|c| c.pids()),
            cgroup_memory: cg.is_some_and(|c| c.memory()),
            cgroup_cpu: cg.is_some_and(|c| c.cpu()),
        };
        tracing::info!(?support, "sandbay-exec host support");
        support
    })
}

/// The host identity for a jail: a leased uid as root, else our own.
pub(crate) fn host_ids(lease: Option<&UidLease>, fixed: Option<(u32, u32)>) -> HostIds {
    let privileged = nix::unistd::geteuid().is_root();
    match (privileged, fixed, lease) {
        (true, Some((uid, gid)), _) => HostIds {
            uid,
            gid,
            privileged,
        },
        (true, None, Some(l)) => HostIds {
            uid: l.uid(),
            gid: l.uid(),
            privileged,
        },
        _ => HostIds {
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
            privileged: false,
        },
    }
}

/// Starts a process through the whole setup of a level, stopping right
/// before `execve`.
fn probe(namespaces: bool) -> std::result::Result<(), String> {
    let privileged = nix::unistd::geteuid().is_root();
    if !namespaces && !privileged {
        return Err("running commands as a distinct sandbox uid needs root".into());
    }
    let lease = if privileged {
        Some(JAIL_UIDS.take().ok_or("no free sandbox uid")?)
    } else {
        None
    };
    let ids = host_ids(lease.as_ref(), None);
    let ns_plan = if namespaces {
        Some(std::sync::Arc::new(
            plan::build(&JailConfig::default()).map_err(|e| format!("preparing the root: {e}"))?,
        ))
    } else {
        None
    };
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        ".sandbay-probe-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir(&dir).map_err(|e| format!("creating a probe directory: {}", e.kind()))?;
    let result = (|| -> std::result::Result<(), String> {
        let host_dir = CString::new(dir.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
        let cwd = if namespaces {
            CString::new(plan::WORKSPACE_DIR).map_err(|e| e.to_string())?
        } else {
            host_dir.clone()
        };
        let null = || stdin_fd(&[]).map_err(|e| e.to_string());
        let l = Launch {
            ns: ns_plan.clone(),
            netns: None,
            workspace: host_dir,
            ids,
            cwd,
            rlimits: Vec::new(),
            argv: vec![c"sh".into()],
            envp: Vec::new(),
            stdin: null()?,
            stdout: null()?,
            stderr: null()?,
            probe_only: true,
        };
        let launched =
            spawn_on_blocking(move || launch(l, None, None)).map_err(|e| e.to_string())?;
        let (mut guard, failures) = (launched.guard, launched.failures);
        let mut report = Vec::new();
        let _ = std::fs::File::from(failures).read_to_end(&mut report);
        let exit = guard
            .wait_blocking()
            .map_err(|e| format!("waiting for the probe: {}", e.kind()))?;
        if let Some((stage, errno)) = decode_failure(&report) {
            return Err(format!(
                "{} failed: {}",
                stage.what(),
                nix::errno::Errno::from_raw(errno).desc()
            ));
        }
        match exit {
            Exit::Code(0) => Ok(()),
            other => Err(format!("the probe process ended with {other:?}")),
        }
    })();
    let _ = std::fs::remove_dir(&dir);
    result
}
