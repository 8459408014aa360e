//! Hands the workspace over to the sandbox uid before a run (root hosts).
//!
//! A root host process writes files owned by root; a command running as the
//! sandbox uid could not change them. Before each run every entry of the
//! workspace that is not owned by the sandbox uid and gid is given to them.
//! Files the command creates are already theirs, and the root host keeps
//! full access to everything. The walk is descriptor-relative and never
//! follows a symlink (each directory is opened with `O_NOFOLLOW` beneath
//! its parent's descriptor), never leaves the workspace's filesystem, and
//! skips non-directories with more than one hard link that the sandbox does
//! not own: such a file may be a host file linked in, and is left alone.
//!
//! The workspace root itself becomes mode `0700`: at `Limits` every jail
//! reaches the host's files by their host paths, and workspaces often sit
//! side by side under a parent that other jails' uids may traverse (`0711`
//! or `0755`); a root only its own uid can enter keeps the others out,
//! whatever the modes of the files inside.
//!
//! When a jail with a leased uid is dropped, [`give_back_root`] gives each
//! workspace root it handed over back to the host process (still `0700`):
//! a uid lease is returned and may later go to another jail, which would
//! otherwise own the old workspace. The files inside keep the old uid
//! until the next [`hand_over`], but nobody else can reach them through a
//! root-owned `0700` root.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{FileStat, Mode, SFlag, fchmod, fstat, fstatat};
use nix::unistd::{Gid, Uid, fchownat};

/// Deepest directory level visited; deeper entries keep their owner.
const MAX_DEPTH: usize = 256;

/// Opens the workspace root itself, never through a symlink.
fn open_root(root: &Path) -> io::Result<std::os::fd::OwnedFd> {
    Ok(nix::fcntl::open(
        root,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?)
}

/// Gives every entry of the workspace tree at `root` that is not owned
/// by `uid`:`gid` to them, and makes `root` mode `0700` (root hosts).
///
/// The walk is descriptor-relative and never follows a symlink, never
/// leaves `root`'s file system, and leaves alone non-directories with
/// more than one hard link that `uid` does not own (a host file linked
/// in). The cost grows with the entries whose owner changes: a workspace
/// handed to the same uid again costs a walk and no `chown`.
///
/// # Errors
/// The first I/O error (`root` missing or a symlink, no permission).
pub fn hand_over(root: &Path, uid: u32, gid: u32) -> io::Result<()> {
    let fd = open_root(root)?;
    let st = fstat(&fd)?;
    let owner = Owner {
        uid,
        gid,
        dev: st.st_dev,
    };
    if !owner.owns(&st) {
        chown_fd(&fd, &owner)?;
    }
    if st.st_mode & 0o7777 != ROOT_MODE {
        fchmod(&fd, Mode::from_bits_truncate(ROOT_MODE))?;
    }
    walk(fd, &owner, 0)
}

/// The mode of a workspace root once handed over: only its owner enters.
pub(crate) const ROOT_MODE: u32 = 0o700;

/// Gives the workspace root at `root` back to `to_uid`:`to_gid` (mode
/// `0700`) if `from_uid` owns it; the tree inside is left as it is. For
/// the end of a uid lease: the uid may go to another owner later, which
/// must not reach this workspace through its root.
///
/// # Errors
/// The first I/O error.
pub fn give_back_root(root: &Path, from_uid: u32, to_uid: u32, to_gid: u32) -> io::Result<()> {
    let fd = open_root(root)?;
    let st = fstat(&fd)?;
    if st.st_uid != from_uid {
        return Ok(());
    }
    fchmod(&fd, Mode::from_bits_truncate(ROOT_MODE))?;
    fchownat(
        fd.as_fd(),
        c"",
        Some(Uid::from_raw(to_uid)),
        Some(Gid::from_raw(to_gid)),
        AtFlags::AT_EMPTY_PATH | AtFlags::AT_SYMLINK_NOFOLLOW,
    )?;
    Ok(())
}

struct Owner {
    uid: u32,
    gid: u32,
    dev: u64,
}

impl Owner {
    fn owns(&self, st: &FileStat) -> bool {
        st.st_uid == self.uid && st.st_gid == self.gid
    }
}

fn chown_fd(fd: &OwnedFd, owner: &Owner) -> io::Result<()> {
    fchownat(
        fd.as_fd(),
        c"",
        Some(Uid::from_raw(owner.uid)),
        Some(Gid::from_raw(owner.gid)),
        AtFlags::AT_EMPTY_PATH | AtFlags::AT_SYMLINK_NOFOLLOW,
    )?;
    Ok(())
}

fn is_dir(st: &FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR
}

fn walk(dir: OwnedFd, owner: &Owner, depth: usize) -> io::Result<()> {
    if depth >= MAX_DEPTH {
        tracing::warn!("workspace deeper than {MAX_DEPTH} levels: deeper entries keep their owner");
        return Ok(());
    }
    let names: Vec<Vec<u8>> = {
        let listing = openat(
            &dir,
            c".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        let mut listing = Dir::from_fd(listing)?;
        listing
            .iter()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_bytes().to_vec())
            .filter(|n| n != b"." && n != b"..")
            .collect()
    };
    for name in names {
        let Ok(cname) = std::ffi::CString::new(name) else {
            continue;
        };
        visit(&dir, &cname, owner, depth)?;
    }
    Ok(())
}

fn visit(dir: &OwnedFd, name: &CStr, owner: &Owner, depth: usize) -> io::Result<()> {
    let st = match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if st.st_dev != owner.dev {
        return Ok(());
    }
    if is_dir(&st) {
        let child = match openat(
            dir,
            name,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            // Replaced meanwhile (by a symlink or a file): not ours to follow.
            Err(Errno::ENOENT | Errno::ELOOP | Errno::ENOTDIR) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let st = fstat(&child)?;
        if st.st_dev != owner.dev {
            return Ok(());
        }
        if !owner.owns(&st) {
            chown_fd(&child, owner)?;
        }
        return walk(child, owner, depth + 1);
    }
    if owner.owns(&st) {
        return Ok(());
    }
    // Decide on the very inode we change: open it without following.
    let fd = match openat(
        dir,
        name,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let st = fstat(&fd)?;
    if st.st_dev != owner.dev || owner.owns(&st) {
        return Ok(());
    }
    if st.st_nlink > 1 {
        tracing::debug!("a hard-linked file in a workspace keeps its owner");
        return Ok(());
    }
    chown_fd(&fd, owner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn gives_the_tree_to_the_sandbox_and_skips_links() {
        if !nix::unistd::geteuid().is_root() {
            sandbay_testkit::skip::skip("changing owners needs root");
            return;
        }
        let ws = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(ws.path().join("a/b")).unwrap();
        std::fs::write(ws.path().join("a/b/f"), "x").unwrap();
        std::fs::write(outside.path().join("host"), "secret").unwrap();
        std::fs::hard_link(outside.path().join("host"), ws.path().join("linked")).unwrap();
        std::os::unix::fs::symlink(outside.path(), ws.path().join("sym")).unwrap();
        std::fs::set_permissions(
            ws.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        hand_over(ws.path(), 4242, 4343).unwrap();
        for p in ["", "a", "a/b", "a/b/f"] {
            let m = std::fs::metadata(ws.path().join(p)).unwrap();
            assert_eq!((m.uid(), m.gid()), (4242, 4343), "{p}");
        }
        let root = std::fs::metadata(ws.path()).unwrap();
        assert_eq!(
            root.mode() & 0o7777,
            0o700,
            "only the sandbox enters the root"
        );
        assert_eq!(
            std::fs::metadata(ws.path().join("a")).unwrap().mode() & 0o777,
            0o755,
            "the tree inside keeps its modes"
        );
        let sym = std::fs::symlink_metadata(ws.path().join("sym")).unwrap();
        assert_eq!(sym.uid(), 4242, "the link itself is handed over");
        let outside_meta = std::fs::metadata(outside.path()).unwrap();
        assert_eq!(outside_meta.uid(), 0, "the symlink target is untouched");
        let host = std::fs::metadata(outside.path().join("host")).unwrap();
        assert_eq!(host.uid(), 0, "a hard-linked file keeps its owner");
        // given back: the root only; another uid does not take it back
        give_back_root(ws.path(), 999, 0, 0).unwrap();
        assert_eq!(std::fs::metadata(ws.path()).unwrap().uid(), 4242);
        give_back_root(ws.path(), 4242, 0, 0).unwrap();
        let root = std::fs::metadata(ws.path()).unwrap();
        assert_eq!(
            (root.uid(), root.gid(), root.mode() & 0o7777),
            (0, 0, 0o700)
        );
        assert_eq!(
            std::fs::metadata(ws.path().join("a/b/f")).unwrap().uid(),
            4242
        );
    }
}
