//! Workspaces that attach to warm containers: [`WorkspaceSlots`].
//!
//! A warm container is made before anyone needs it, with `/workspace`
//! bind-mounted from an empty per-container *slot* directory on the host
//! with `rslave` propagation. When a user arrives, the host bind-mounts
//! the user's workspace directory onto the slot, and the running
//! container sees it at `/workspace` at once (a mount on the host side
//! propagates into the container's slave copy); when the user leaves,
//! the container is removed and the slot unmounted: the files stay in
//! the workspace directory. Propagation needs the slot to sit in a shared
//! mount: [`WorkspaceSlots::prepare`] makes the slot base a bind mount of
//! itself marked shared.
//!
//! Mounting needs root (`CAP_SYS_ADMIN`) and a daemon on this machine.
//! Without them every sandbox is made *cold*, with the workspace
//! directory bind-mounted at creation ([`AttachMode::Cold`]): the same
//! files and rules, a container start on the user's path.
//!
//! Slots live at `<base>/<process>/<sandbox id>`, `<process>` naming the
//! owning process (boot id, pid, start time), so a later
//! [`WorkspaceSlots::prepare`] can tell the slots of a killed process
//! from live ones: it unmounts them (never deleting what is below a
//! mount) and removes the empty directories.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::mount::{MntFlags, MsFlags};
use sandbay_core::{Error, Result};

use crate::client::DockerClient;
use crate::labels::{self, Liveness};

/// How workspaces reach containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachMode {
    /// A host bind mount onto a warm container's slot: attaching costs a
    /// mount, not a container start.
    Mount,
    /// A container made for the workspace, bind-mounted at creation (no
    /// mounts possible here: not root, or a remote daemon).
    Cold,
}

impl AttachMode {
    /// `"mount"` or `"cold"`.
    pub fn as_str(self) -> &'static str {
        match self {
            AttachMode::Mount => "mount",
            AttachMode::Cold => "cold",
        }
    }
}

/// Where warm containers' workspace slots live, and whether workspaces
/// can attach to running containers here (see the module docs).
///
/// Cheap to clone. Made once per process by [`WorkspaceSlots::prepare`];
/// used with [`crate::DockerSandbox::create_warm`],
/// [`crate::DockerSandbox::create_for_workspace`] and
/// [`crate::DockerSandbox::attach_workspace`].
#[derive(Debug, Clone)]
pub struct WorkspaceSlots {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// `<base>/<process>`: this process's slots.
    dir: PathBuf,
    mode: AttachMode,
}

/// What [`WorkspaceSlots::prepare`] removed of killed processes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlotsReaped {
    /// Slot mounts unmounted.
    pub mounts: usize,
    /// Slot directories removed.
    pub dirs: usize,
}

impl WorkspaceSlots {
    /// Prepares `base` for slots and picks the [`AttachMode`]: `Mount`
    /// when this process is root, the daemon is local and `base` can be
    /// made a shared mount; `Cold` otherwise (logged, and reported by
    /// [`WorkspaceSlots::mode`]). Orphan slot mounts and directories of
    /// killed processes below `base` are removed first.
    ///
    /// # Errors
    /// `unavailable` when `base` cannot be made.
    pub async fn prepare(
        client: &DockerClient,
        base: &Path,
    ) -> Result<(WorkspaceSlots, SlotsReaped)> {
        let base = base.to_path_buf();
        let local = client.is_local();
        tokio::task::spawn_blocking(move || prepare_blocking(&base, local))
            .await
            .map_err(|_| Error::Unavailable {
                message: "the slot preparation stopped".into(),
            })?
    }

    /// Unmounts and removes the slots of killed processes below `base`,
    /// without a daemon: for a restarted service, *before* it opens the
    /// workspaces those slots held (a workspace must not be mounted anew
    /// while a dead process's slot still holds it). Remove the killed
    /// process's containers first ([`crate::reap_orphans`]) where the
    /// daemon answers. [`WorkspaceSlots::prepare`] does this too.
    pub fn reap_orphans(base: &Path) -> SlotsReaped {
        match std::fs::canonicalize(base) {
            Ok(base) => reap(&base),
            Err(_) => SlotsReaped::default(),
        }
    }

    /// For the end of the process, once its sandboxes are shut down:
    /// removes this process's (empty) slot directory and, when no other
    /// process has slots below the base any more, the base's own bind
    /// mount that [`WorkspaceSlots::prepare`] made. Nothing is deleted
    /// that is not empty; slots still in use stay.
    pub fn close(&self) {
        let dir = &self.inner.dir;
        if std::fs::remove_dir(dir).is_err() {
            return;
        }
        let Some(base) = dir.parent() else { return };
        let empty = std::fs::read_dir(base).is_ok_and(|mut d| d.next().is_none());
        if empty
            && is_mount_point(base)
            && let Err(e) = nix::mount::umount2(base, MntFlags::MNT_DETACH)
        {
            tracing::warn!(error = %e, "the slot base stayed mounted");
        }
    }

    /// Slots that never mount ([`AttachMode::Cold`]), for a process that
    /// must not change the host's mounts even when it could.
    ///
    /// # Errors
    /// `unavailable` when `base` cannot be made.
    pub fn without_mounts(base: &Path) -> Result<WorkspaceSlots> {
        let dir = base.join(labels::process_identity());
        std::fs::create_dir_all(&dir)
            .map_err(|e| unavailable("cannot make the slot directory", e.kind()))?;
        tracing::info!(
            mode = AttachMode::Cold.as_str(),
            reason = "chosen",
            "workspaces get a container made for them (no warm attach)"
        );
        Ok(WorkspaceSlots {
            inner: Arc::new(Inner {
                dir,
                mode: AttachMode::Cold,
            }),
        })
    }

    /// How workspaces reach containers here.
    pub fn mode(&self) -> AttachMode {
        self.inner.mode
    }

    /// The slot directory of a sandbox.
    pub(crate) fn slot_of(&self, sandbox: &str) -> PathBuf {
        self.inner.dir.join(sandbox)
    }
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Unavailable {
        message: format!("{what} ({e})"),
    }
}

/// Mount points of this mount namespace, in mount order.
fn mount_points() -> Vec<PathBuf> {
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    table
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape(p)))
        .collect()
}

/// Undoes mountinfo's octal escapes (`\040` for a space, ...).
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `path` is a mount point.
pub(crate) fn is_mount_point(path: &Path) -> bool {
    mount_points().iter().any(|m| m == path)
}

fn prepare_blocking(base: &Path, local: bool) -> Result<(WorkspaceSlots, SlotsReaped)> {
    std::fs::create_dir_all(base)
        .map_err(|e| unavailable("cannot make the slot base", e.kind()))?;
    let base = std::fs::canonicalize(base)
        .map_err(|e| unavailable("cannot resolve the slot base", e.kind()))?;
    // first: a fresh bind of the base would hide the orphans' mounts
    let reaped = reap(&base);
    let root = nix::unistd::geteuid().is_root();
    let mut mode = AttachMode::Cold;
    let mut why = if !root {
        "mounting needs root"
    } else if !local {
        "the daemon is not on this machine"
    } else {
        ""
    };
    if root && local {
        match make_shared(&base) {
            Ok(()) => mode = AttachMode::Mount,
            Err(e) => {
                tracing::warn!(error = %e, "the slot base cannot be made a shared mount");
                why = "the slot base cannot be made a shared mount";
            }
        }
    }
    let dir = base.join(labels::process_identity());
    std::fs::create_dir_all(&dir)
        .map_err(|e| unavailable("cannot make the slot directory", e.kind()))?;
    match mode {
        AttachMode::Mount => tracing::info!(
            mode = mode.as_str(),
            "workspaces attach to warm containers by a bind mount onto their slot"
        ),
        AttachMode::Cold => tracing::info!(
            mode = mode.as_str(),
            reason = why,
            "workspaces get a container made for them (no warm attach)"
        ),
    }
    Ok((
        WorkspaceSlots {
            inner: Arc::new(Inner { dir, mode }),
        },
        reaped,
    ))
}

/// Makes `base` a mount point of its own marked shared (a bind mount of
/// itself), unless it already is one.
fn make_shared(base: &Path) -> nix::Result<()> {
    if !is_mount_point(base) {
        nix::mount::mount(
            Some(base),
            base,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )?;
    }
    nix::mount::mount(
        None::<&str>,
        base,
        None::<&str>,
        MsFlags::MS_SHARED,
        None::<&str>,
    )
}

/// Unmounts and removes the slots of processes that are gone.
fn reap(base: &Path) -> SlotsReaped {
    let mut reaped = SlotsReaped::default();
    let Ok(entries) = std::fs::read_dir(base) else {
        return reaped;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !matches!(labels::liveness(&name), Liveness::Dead | Liveness::Unknown) {
            continue;
        }
        let dir = entry.path();
        // deepest first: a mount below a mount goes before its parent
        let mut below: Vec<PathBuf> = mount_points()
            .into_iter()
            .filter(|m| m.starts_with(&dir) && m != &dir)
            .collect();
        below.reverse();
        for m in below {
            match nix::mount::umount2(&m, MntFlags::MNT_DETACH) {
                Ok(()) => reaped.mounts += 1,
                Err(e) => tracing::warn!(error = %e, "cannot unmount an orphan slot"),
            }
        }
        // only empty directories go: whatever is still mounted, or was
        // put there, is never deleted
        if let Ok(slots) = std::fs::read_dir(&dir) {
            for slot in slots.flatten() {
                if std::fs::remove_dir(slot.path()).is_ok() {
                    reaped.dirs += 1;
                }
            }
        }
        let _ = std::fs::remove_dir(&dir);
    }
    if reaped != SlotsReaped::default() {
        tracing::info!(
            mounts = reaped.mounts,
            dirs = reaped.dirs,
            "removed the workspace slots of killed processes"
        );
    }
    reaped
}

/// Makes an empty slot directory (root's, mode 0755: the container only
/// ever sees what is mounted onto it).
pub(crate) fn make_slot(slot: &Path) -> Result<()> {
    std::fs::create_dir(slot).map_err(|e| unavailable("cannot make a workspace slot", e.kind()))
}

/// Bind-mounts `workspace` onto `slot` (its own mounts below included).
pub(crate) fn mount_onto(workspace: &Path, slot: &Path) -> Result<()> {
    nix::mount::mount(
        Some(workspace),
        slot,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| unavailable("cannot mount the workspace onto its slot", e))
}

/// Unmounts whatever is mounted on `slot` (lazily: nothing of the
/// sandbox user runs any more when this is called), then removes the
/// empty slot directory when `remove` is set.
pub(crate) fn unmount(slot: &Path) -> Result<()> {
    while is_mount_point(slot) {
        nix::mount::umount2(slot, MntFlags::MNT_DETACH)
            .map_err(|e| unavailable("cannot unmount a workspace slot", e))?;
    }
    Ok(())
}

/// Removes an empty slot directory (never its content).
pub(crate) fn remove_slot(slot: &Path) {
    if let Err(e) = std::fs::remove_dir(slot)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(kind = ?e.kind(), "a workspace slot could not be removed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape("/a\\040b"), "/a b");
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape("/end\\04"), "/end\\04");
    }
}
