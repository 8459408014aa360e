//! The public [`Jail`]: configuration checked once, commands run many times.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use sandbay_core::{Error, ExecOutput, ExecRequest, Isolation, Result, VPath};
use tokio::sync::Semaphore;

use crate::cgroup::{self, CgroupPool};
use crate::config::{Identity, JailConfig, ResourceLimits};
use crate::launch::{HostIds, Launch, launch, unavailable};
use crate::plan::{self, NsPlan, WORKSPACE_DIR};
use crate::probe::{HostSupport, host_ids, host_support};
use crate::run;
use crate::spawner;
use crate::stream::OutputSink;
use crate::sys::{self, Rlimit};
use crate::uid::{JAIL_UIDS, UidLease};
use crate::workspace;

/// `PATH` inside the jail.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A local process jail for one sandbox: every command it runs gets the
/// same host uid, limits and isolation level (see the crate docs).
///
/// Cheap to clone (shared, with one set of caps); up to
/// [`JailConfig::max_concurrent`] runs may overlap.
///
/// ```no_run
/// # async fn demo() -> sandbay_core::Result<()> {
/// use sandbay_core::{ExecRequest, Isolation};
/// use sandbay_exec::{Jail, JailConfig};
///
/// let jail = Jail::new(JailConfig::new(Jail::probe()))?;
/// let out = jail.run("/srv/ws/alice".as_ref(), ExecRequest::new("echo hi")).await?;
/// assert_eq!(out.stdout, b"hi\n");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Jail {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) config: JailConfig,
    pub(crate) ids: HostIds,
    lease: Option<UidLease>,
    pub(crate) ns: Option<Arc<NsPlan>>,
    pub(crate) rlimits: Vec<Rlimit>,
    pub(crate) cgroups: Option<Arc<CgroupPool>>,
    /// The jail's network namespace (only `lo`), shared by its runs; made
    /// when the host process is root, else each run gets a new one.
    netns: Option<Arc<OwnedFd>>,
    /// Workspace roots handed over to a leased uid, given back to the host
    /// process when the jail is dropped (see `ownership`).
    handed: Mutex<BTreeSet<PathBuf>>,
    /// Places for [`JailConfig::max_concurrent`] runs at once.
    places: Arc<Semaphore>,
}

/// Tracked workspace roots past which the ones that no longer exist are
/// forgotten (a state sandbox runs each command in a new scratch
/// directory).
const MAX_TRACKED: usize = 32;

impl Inner {
    /// Remembers a workspace root handed over to the leased uid (blocking:
    /// may check which tracked roots still exist).
    fn track(&self, root: &Path) {
        if self.lease.is_none() {
            return;
        }
        let mut handed = self.handed.lock().unwrap_or_else(PoisonError::into_inner);
        if handed.len() >= MAX_TRACKED && !handed.contains(root) {
            handed.retain(|p| p.exists());
        }
        handed.insert(root.to_path_buf());
    }
}

impl Drop for Inner {
    /// Gives the workspace roots back before the uid lease is returned
    /// (a few system calls per workspace, on the dropping thread).
    fn drop(&mut self) {
        if self.lease.is_none() {
            return;
        }
        let handed = std::mem::take(
            self.handed
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner),
        );
        let (uid, gid) = (
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        );
        for root in handed {
            match crate::ownership::give_back_root(&root, self.ids.uid, uid, gid) {
                Ok(()) => {}
                // removed meanwhile (a scratch directory, say)
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(kind = ?e.kind(), "could not give a workspace root back to the host");
                }
            }
        }
    }
}

/// What a jail enforces, as really in force on this host.
#[derive(Debug, Clone, PartialEq)]
pub struct Enforcement {
    /// The level.
    pub isolation: Isolation,
    /// Host uid the commands run as.
    pub host_uid: u32,
    /// Host gid the commands run as.
    pub host_gid: u32,
    /// Commands run as a uid of their own, not the host process's.
    pub distinct_uid: bool,
    /// The Linux namespaces each command gets (empty at `Limits`).
    pub namespaces: Vec<&'static str>,
    /// A `pids` cgroup caps the processes of the jail: all its runs
    /// together, at any concurrency.
    pub cgroup_pids: bool,
    /// A `memory` cgroup caps the memory of the jail: all its runs
    /// together.
    pub cgroup_memory: bool,
    /// A `cpu` cgroup quota caps the CPU of the jail: all its runs
    /// together.
    pub cgroup_cpu: bool,
    /// At most this many commands of the jail run at once; more wait, at
    /// most [`JailConfig::queue_timeout`].
    pub max_concurrent: usize,
    /// The caps in force: rlimits always (`address_space_bytes` at most
    /// `memory_bytes` when no memory cgroup is in force); the cgroup values
    /// where the flags say so.
    pub limits: ResourceLimits,
}

/// The limits a jail enforces: the configured ones, except that without a
/// memory cgroup the per-process address space is at most the memory cap.
fn effective_limits(mut limits: ResourceLimits, memory_cgroup: bool) -> ResourceLimits {
    if !memory_cgroup {
        // never below the 16 MiB a configuration may ask for at least
        let floor = 16 << 20;
        limits.address_space_bytes = limits
            .address_space_bytes
            .min(limits.memory_bytes.max(floor));
    }
    limits
}

impl Jail {
    /// Prepares a jail with `config`.
    ///
    /// This blocks the calling thread: the first jail of a process probes
    /// the host (it starts a process through the setup of each level and
    /// detects the cgroup controllers, tens of milliseconds), and every
    /// jail scans `/proc` for a free uid and, at `Namespaces` on a root
    /// host, creates a network namespace (a few milliseconds, more when
    /// the kernel waits for an RCU grace period). Async code calls
    /// [`Jail::new_async`], or this in `spawn_blocking`.
    ///
    /// # Errors
    /// `invalid_argument` for a bad configuration, `unavailable` when the
    /// host cannot give the requested level (with the reason) or no sandbox
    /// uid is free. Never falls back to a weaker level.
    pub fn new(config: JailConfig) -> Result<Jail> {
        config.validate()?;
        host_support().check(config.isolation)?;
        let privileged = nix::unistd::geteuid().is_root();
        let (lease, fixed) = match config.identity {
            Identity::Auto if privileged => (
                Some(JAIL_UIDS.take().ok_or_else(|| Error::Unavailable {
                    message: "every sandbox uid of this process is in use".into(),
                })?),
                None,
            ),
            Identity::Auto => (None, None),
            Identity::Fixed { .. } if !privileged => {
                return Err(Error::Unavailable {
                    message: "a fixed sandbox uid needs a root host process".into(),
                });
            }
            Identity::Fixed { uid, gid } => (None, Some((uid, gid))),
        };
        let ids = host_ids(lease.as_ref(), fixed);
        let ns = match config.isolation {
            Isolation::Namespaces => Some(Arc::new(
                plan::build(&config).map_err(|e| unavailable("preparing the jail root", &e))?,
            )),
            _ => None,
        };
        let cgroups = (privileged && config.cgroups)
            .then(|| Arc::new(CgroupPool::new(cgroup::host(), config.limits)));
        // Without a memory cgroup nothing caps the jail's memory as a
        // whole; each process's address space is then held to the memory
        // cap at least, so no single process takes more than the budget.
        let memory_cgroup = cgroups.as_ref().is_some_and(|p| p.host().memory());
        let l = &effective_limits(config.limits, memory_cgroup);
        let rlimits = vec![
            Rlimit {
                resource: libc::RLIMIT_CPU,
                value: l.cpu_seconds,
            },
            Rlimit {
                resource: libc::RLIMIT_AS,
                value: l.address_space_bytes,
            },
            Rlimit {
                resource: libc::RLIMIT_FSIZE,
                value: l.file_size_bytes,
            },
            Rlimit {
                resource: libc::RLIMIT_NOFILE,
                value: l.open_files,
            },
            Rlimit {
                resource: libc::RLIMIT_NPROC,
                value: l.processes,
            },
            Rlimit {
                resource: libc::RLIMIT_CORE,
                value: 0,
            },
        ];
        let places = config.max_concurrent.min(Semaphore::MAX_PERMITS);
        let netns = if ns.is_some() && privileged {
            Some(Arc::new(sys::new_netns().map_err(|e| {
                unavailable("creating the network namespace", &e)
            })?))
        } else {
            None
        };
        Ok(Jail {
            inner: Arc::new(Inner {
                config,
                ids,
                lease,
                ns,
                rlimits,
                cgroups,
                netns,
                handed: Mutex::default(),
                places: Arc::new(Semaphore::new(places)),
            }),
        })
    }

    /// [`Jail::new`] on tokio's blocking pool, for async callers: preparing
    /// a jail blocks (see [`Jail::new`]).
    ///
    /// # Errors
    /// As [`Jail::new`].
    pub async fn new_async(config: JailConfig) -> Result<Jail> {
        tokio::task::spawn_blocking(move || Jail::new(config))
            .await
            .map_err(|_| Error::Unavailable {
                message: "preparing the jail failed".into(),
            })?
    }

    /// The strongest level this host can enforce (probed once per process
    /// by starting a jailed process at each level; the first call blocks
    /// for that probe, later calls return at once).
    pub fn probe() -> Isolation {
        host_support().best()
    }

    /// Details of what this host supports, with reasons for what it does
    /// not (the first call blocks for the probe, as [`Jail::probe`]).
    pub fn host_support() -> &'static HostSupport {
        host_support()
    }

    /// The level this jail enforces.
    pub fn isolation(&self) -> Isolation {
        self.inner.config.isolation
    }

    /// The configuration.
    pub fn config(&self) -> &JailConfig {
        &self.inner.config
    }

    /// Everything this jail enforces, as in force on this host.
    pub fn enforcement(&self) -> Enforcement {
        let i = &self.inner;
        let cg = i.cgroups.as_ref().map(|p| p.host());
        Enforcement {
            isolation: i.config.isolation,
            host_uid: i.ids.uid,
            host_gid: i.ids.gid,
            distinct_uid: i.ids.privileged,
            namespaces: if i.ns.is_some() {
                vec!["user", "pid", "mount", "network", "ipc", "uts"]
            } else {
                Vec::new()
            },
            cgroup_pids: cg.is_some_and(|c| c.pids()),
            cgroup_memory: cg.is_some_and(|c| c.memory()),
            cgroup_cpu: cg.is_some_and(|c| c.cpu()) && i.config.limits.cpu_cores.is_some(),
            max_concurrent: i.config.max_concurrent,
            limits: effective_limits(i.config.limits, cg.is_some_and(|c| c.memory())),
        }
    }

    /// Runs `request.command` with `sh -c` in the workspace at
    /// `host_workspace_dir` (a host directory).
    ///
    /// Inside a namespaced jail the workspace is at [`WORKSPACE_DIR`]; at
    /// `Limits` the command sees the host path. The working directory is
    /// the workspace, or `request.workdir` below it.
    ///
    /// A timeout is not an error: the result has `timed_out` set and keeps
    /// the output produced so far. Dropping the returned future kills the
    /// whole process tree at once.
    ///
    /// When the host process is root, entries of the workspace not owned by
    /// the jail's uid are handed over to it first, so the command can
    /// change every file; root keeps full access to what the command makes.
    /// The workspace root becomes mode `0700`, so no other jail's uid can
    /// enter it; a jail with a leased uid gives its workspace roots back to
    /// the host process when it is dropped, as the uid may later go to
    /// another jail. At `Limits` the command reaches the workspace by its
    /// host path, so the jail's uid must be able to traverse its parent
    /// directories (mode `o+x`); at `Namespaces` the workspace is opened
    /// with the host process's rights and its parents may stay private.
    ///
    /// The workspace must be a directory a jail may take over: not `/` or
    /// a top-level directory, nothing in a system tree (`/usr`, `/etc`,
    /// `/proc`, ...), not a mount point, and owned by root, the host
    /// process's user, the jail's uid or another sandbox uid of
    /// [`UID_RANGE`](crate::UID_RANGE) (a workspace left by an earlier
    /// jail).
    ///
    /// # Errors
    /// `invalid_argument` (NUL in the command, bad environment names),
    /// `too_large` (stdin over 1 MiB), `not_found` / `not_a_directory`
    /// (workspace or `workdir`), `permission_denied` (a workspace a jail
    /// may not take over, with a fixed reason), `unavailable` when the jail
    /// cannot start, or when [`JailConfig::max_concurrent`] commands of
    /// this jail are running and none ends within
    /// [`JailConfig::queue_timeout`] (the command has not run).
    pub async fn run(&self, host_workspace_dir: &Path, request: ExecRequest) -> Result<ExecOutput> {
        check_request(&request)?;
        let place = self.wait_for_place().await?;
        self.run_in(place, host_workspace_dir, request).await
    }

    /// [`Jail::run`] in a place already taken with [`Jail::wait_for_place`]
    /// (for callers that prepare the workspace only once a place is
    /// theirs). The place is given back when the run is over.
    ///
    /// # Errors
    /// As [`Jail::run`]; `invalid_argument` for a place of another jail.
    pub async fn run_in(
        &self,
        place: Place,
        host_workspace_dir: &Path,
        request: ExecRequest,
    ) -> Result<ExecOutput> {
        self.run_with(place, host_workspace_dir, request, None)
            .await
    }

    /// [`Jail::run`], its output sent to `sink` as it comes instead of
    /// kept: the result's `stdout` and `stderr` are empty, `truncated`
    /// says whether the cap dropped bytes. Use it inside
    /// [`exec_stream`](crate::exec_stream), which makes the sink and turns
    /// the run into a live [`ExecStream`](sandbay_core::ExecStream):
    ///
    /// ```no_run
    /// # async fn demo() -> sandbay_core::Result<()> {
    /// use sandbay_core::{ExecEvent, ExecRequest};
    /// use sandbay_exec::{Jail, JailConfig, exec_stream};
    ///
    /// let jail = Jail::new(JailConfig::new(Jail::probe()))?;
    /// let mut stream = exec_stream(|sink| async move {
    ///     jail.run_streaming("/srv/ws/alice".as_ref(), ExecRequest::new("echo a; sleep 1; echo b"), sink).await
    /// })
    /// .await?;
    /// while let Some(event) = stream.next().await {
    ///     if let ExecEvent::Stdout(bytes) = event? {
    ///         print!("{}", String::from_utf8_lossy(&bytes));
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`Jail::run`].
    pub async fn run_streaming(
        &self,
        host_workspace_dir: &Path,
        request: ExecRequest,
        sink: OutputSink,
    ) -> Result<ExecOutput> {
        check_request(&request)?;
        let place = self.wait_for_place().await?;
        self.run_with(place, host_workspace_dir, request, Some(sink))
            .await
    }

    /// [`Jail::run_streaming`] in a place already taken with
    /// [`Jail::wait_for_place`].
    ///
    /// # Errors
    /// As [`Jail::run_in`].
    pub async fn run_in_streaming(
        &self,
        place: Place,
        host_workspace_dir: &Path,
        request: ExecRequest,
        sink: OutputSink,
    ) -> Result<ExecOutput> {
        self.run_with(place, host_workspace_dir, request, Some(sink))
            .await
    }

    async fn run_with(
        &self,
        place: Place,
        host_workspace_dir: &Path,
        request: ExecRequest,
        sink: Option<OutputSink>,
    ) -> Result<ExecOutput> {
        if !Arc::ptr_eq(&place.places, &self.inner.places) {
            return Err(Error::invalid_argument(
                "the place was taken in another jail",
            ));
        }
        // Held until the run is over (or the future is dropped).
        let _place = place;
        let inner = &self.inner;
        let workdir = request.workdir.clone().unwrap_or_else(VPath::root);
        let (argv, env_pairs) = check_request(&request)?;
        let stdio = run::Stdio::new(&request.stdin)?;
        let ws = host_workspace_dir.to_path_buf();
        let ids = inner.ids;
        let pool = inner.cgroups.clone();
        // File system work off the async threads, in one hop: the
        // workspace walk, and creating the run's cgroup directories when
        // the jail has no idle ones (cgroup v1 `mkdir` may wait for an RCU
        // grace period).
        let tracked = Arc::clone(&self.inner);
        let (canonical, cgroup) = tokio::task::spawn_blocking(move || {
            let canonical = workspace::prepare(&ws, ids)?;
            tracked.track(&canonical);
            let cgroup = match &pool {
                Some(pool) => pool
                    .take()
                    .map_err(|e| unavailable("creating the run's cgroup", &e))?,
                None => None,
            };
            Ok::<_, Error>((canonical, cgroup))
        })
        .await
        .map_err(|_| Error::Unavailable {
            message: "preparing the workspace failed".into(),
        })??;

        let c = |s: &[u8]| {
            CString::new(s).map_err(|_| Error::invalid_argument("a path contains a NUL byte"))
        };
        let host_ws = c(canonical.as_os_str().as_bytes())?;
        let (cwd, home) = if inner.ns.is_some() {
            let cwd = if workdir.is_root() {
                WORKSPACE_DIR.to_string()
            } else {
                format!("{WORKSPACE_DIR}{}", workdir.as_str())
            };
            (c(cwd.as_bytes())?, WORKSPACE_DIR.as_bytes().to_vec())
        } else {
            let cwd = canonical.join(workdir.relative());
            (
                c(cwd.as_os_str().as_bytes())?,
                canonical.as_os_str().as_bytes().to_vec(),
            )
        };
        let envp = environment(&home, env_pairs)?;
        let started = std::time::Instant::now();
        let l = Launch {
            ns: inner.ns.clone(),
            netns: inner.netns.clone(),
            workspace: host_ws,
            ids,
            cwd,
            rlimits: inner.rlimits.clone(),
            argv,
            envp,
            stdin: stdio.child_stdin,
            stdout: stdio.child_stdout,
            stderr: stdio.child_stderr,
            probe_only: false,
        };
        let pool = inner.cgroups.clone();
        let launched = spawner::spawn_on(move || launch(l, cgroup, pool)).await?;
        run::supervise(
            launched,
            (stdio.stdout, stdio.stderr),
            started,
            request.timeout,
            inner.config.max_output_bytes,
            &workdir,
            sink,
        )
        .await
    }
}

/// One of a jail's [`JailConfig::max_concurrent`] places for a run, taken
/// with [`Jail::wait_for_place`] and given back when dropped.
#[derive(Debug)]
pub struct Place {
    places: Arc<Semaphore>,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Jail {
    /// Waits for one of the [`JailConfig::max_concurrent`] places, at most
    /// [`JailConfig::queue_timeout`]; [`Jail::run`] does this itself.
    ///
    /// # Errors
    /// `unavailable` when no place became free in time. A full jail is
    /// `unavailable` rather than `timeout`: nothing of the command ran (a
    /// command's own time limit is not an error but `timed_out` on its
    /// result), the condition passes, and a caller retries later, as with
    /// a full sandbox pool.
    pub async fn wait_for_place(&self) -> Result<Place> {
        let config = &self.inner.config;
        let places = Arc::clone(&self.inner.places);
        match tokio::time::timeout(config.queue_timeout, Arc::clone(&places).acquire_owned()).await
        {
            Ok(Ok(permit)) => Ok(Place {
                places,
                _permit: permit,
            }),
            Ok(Err(_)) => Err(Error::Unavailable {
                message: "the jail is closed".into(),
            }),
            Err(_) => Err(Error::Unavailable {
                message: format!(
                    "this sandbox already runs {} commands at once and none ended within {:?}; \
                     the command did not run, try again later",
                    config.max_concurrent, config.queue_timeout
                ),
            }),
        }
    }
}

/// Checks the request; returns `sh -c` arguments and the extra environment.
fn check_request(request: &ExecRequest) -> Result<(Vec<CString>, &BTreeMap<String, String>)> {
    let command = CString::new(request.command.as_bytes())
        .map_err(|_| Error::invalid_argument("the command contains a NUL byte"))?;
    for (k, v) in &request.env {
        if k.is_empty() || k.contains('=') || k.contains('\0') {
            return Err(Error::invalid_argument(format!(
                "environment variable name {k:?} is not valid (empty, '=' or NUL)"
            )));
        }
        if v.contains('\0') {
            return Err(Error::invalid_argument(format!(
                "environment variable {k} contains a NUL byte"
            )));
        }
    }
    Ok((vec![c"sh".into(), c"-c".into(), command], &request.env))
}

/// The scrubbed environment: `PATH`, `HOME`, `LANG`, then the request's.
fn environment(home: &[u8], extra: &BTreeMap<String, String>) -> Result<Vec<CString>> {
    let mut env: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    env.insert(b"PATH".to_vec(), PATH.as_bytes().to_vec());
    env.insert(b"HOME".to_vec(), home.to_vec());
    env.insert(b"LANG".to_vec(), b"C.UTF-8".to_vec());
    for (k, v) in extra {
        env.insert(k.as_bytes().to_vec(), v.as_bytes().to_vec());
    }
    let mut out = Vec::with_capacity(env.len());
    for (mut k, v) in env {
        k.push(b'=');
        k.extend_from_slice(&v);
        out.push(
            CString::new(k)
                .map_err(|_| Error::invalid_argument("the environment contains a NUL byte"))?,
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_memory_cgroup_the_address_space_is_held_to_the_memory_cap() {
        let mib = 1u64 << 20;
        let configured = ResourceLimits {
            address_space_bytes: 8192 * mib,
            memory_bytes: 512 * mib,
            ..ResourceLimits::default()
        };
        assert_eq!(
            effective_limits(configured, true).address_space_bytes,
            8192 * mib
        );
        assert_eq!(
            effective_limits(configured, false).address_space_bytes,
            512 * mib
        );
        let tiny = ResourceLimits {
            memory_bytes: 8 * mib,
            ..configured
        };
        assert_eq!(effective_limits(tiny, false).address_space_bytes, 16 * mib);
        let small_as = ResourceLimits {
            address_space_bytes: 64 * mib,
            ..configured
        };
        assert_eq!(
            effective_limits(small_as, false).address_space_bytes,
            64 * mib
        );
    }
}
