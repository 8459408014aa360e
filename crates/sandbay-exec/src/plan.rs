//! The file system a namespaced command sees, prepared once per jail.
//!
//! The root is a fresh tmpfs (read-only once built) holding:
//!
//! | path | what |
//! |---|---|
//! | `/usr`, `/bin`, `/sbin`, `/lib*` | the host's, bind-mounted read-only, `nosuid`, `nodev` (symlinks copied as symlinks) |
//! | `/etc` | synthesized `passwd`, `group`, `hosts`, `hostname`, `nsswitch.conf`, `resolv.conf`; a few host entries read-only (`alternatives`, `ld.so.*`, `localtime`, `os-release`, `protocols`, `services`, `terminfo`) |
//! | `/dev` | `null`, `zero`, `full`, `random`, `urandom` from the host, `fd`/`stdin`/`stdout`/`stderr` links, a private `shm` |
//! | `/proc` | a new procfs of the jail's PID namespace |
//! | `/tmp` | a private tmpfs (`/var/tmp` links to it) |
//! | `/workspace` | the workspace, read-write, `nosuid`, `nodev` |
//!
//! Nothing else of the host exists inside: `/home`, `/root`, `/srv`,
//! `/var`, `/run`, other workspaces are simply absent.

use std::ffi::CString;
use std::io;
use std::path::Path;

use crate::config::JailConfig;
use crate::sys::{
    MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY, RootOp, TreeSource,
};

/// Where the workspace appears inside a namespaced jail.
pub const WORKSPACE_DIR: &str = "/workspace";

/// The uid and gid a command has inside a namespaced jail, mapped to the
/// jail's host uid and gid.
pub const SANDBOX_UID: u32 = 1000;

/// Host system directories bound read-only (when they exist).
const SYSTEM_DIRS: &[&str] = &["usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"];

/// Host `/etc` entries bound read-only (when they exist): what programs
/// need to run (dynamic linker, Debian alternatives), nothing secret.
const ETC_ENTRIES: &[&str] = &[
    "alternatives",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "os-release",
    "protocols",
    "services",
    "terminfo",
];

/// Host devices bound into `/dev`.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom"];

const SYSTEM_ATTRS: u64 = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;

/// The prepared steps of a jail's root.
#[derive(Debug)]
pub(crate) struct NsPlan {
    pub(crate) trees: Vec<TreeSource>,
    pub(crate) ops: Vec<RootOp>,
    pub(crate) base: CString,
    pub(crate) hostname: Vec<u8>,
}

fn cs(s: impl Into<Vec<u8>>) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a path"))
}

struct Builder {
    trees: Vec<TreeSource>,
    ops: Vec<RootOp>,
}

impl Builder {
    fn mkdir(&mut self, path: &str, mode: libc::mode_t) -> io::Result<()> {
        self.ops.push(RootOp::Mkdir {
            path: cs(path)?,
            mode,
        });
        Ok(())
    }

    fn symlink(&mut self, target: &str, path: &str) -> io::Result<()> {
        self.ops.push(RootOp::Symlink {
            target: cs(target)?,
            path: cs(path)?,
        });
        Ok(())
    }

    fn write(&mut self, path: &str, data: String) -> io::Result<()> {
        self.ops.push(RootOp::Write {
            path: cs(path)?,
            data: data.into_bytes(),
        });
        Ok(())
    }

    fn mount(
        &mut self,
        fstype: &str,
        path: &str,
        flags: libc::c_ulong,
        data: &str,
    ) -> io::Result<()> {
        self.ops.push(RootOp::Mount {
            source: cs(fstype)?,
            path: cs(path)?,
            fstype: cs(fstype)?,
            flags,
            data: cs(data)?,
        });
        Ok(())
    }

    /// Mirrors host path `/{rel}` at `rel`: a symlink stays a symlink, a
    /// directory or file is bound with `attrs`. Missing paths are skipped.
    fn mirror(&mut self, rel: &str, attrs: u64) -> io::Result<()> {
        let host = Path::new("/").join(rel);
        let Ok(meta) = std::fs::symlink_metadata(&host) else {
            return Ok(());
        };
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&host)?;
            let Some(target) = target.to_str() else {
                return Ok(());
            };
            return self.symlink(target, rel);
        }
        if meta.is_dir() {
            self.mkdir(rel, 0o755)?;
        } else if meta.is_file() || meta.file_type_is_device() {
            self.ops.push(RootOp::Touch { path: cs(rel)? });
        } else {
            return Ok(());
        }
        let tree = self.trees.len();
        let Some(host) = host.to_str() else {
            return Ok(());
        };
        self.trees.push(TreeSource {
            path: cs(host)?,
            attr_set: attrs,
        });
        self.ops.push(RootOp::Attach {
            tree,
            path: cs(rel)?,
        });
        Ok(())
    }
}

trait DeviceType {
    fn file_type_is_device(&self) -> bool;
}

impl DeviceType for std::fs::Metadata {
    fn file_type_is_device(&self) -> bool {
        use std::os::unix::fs::FileTypeExt;
        let t = self.file_type();
        t.is_char_device() || t.is_block_device()
    }
}

/// Builds the plan for `config` from this host's layout.
pub(crate) fn build(config: &JailConfig) -> io::Result<NsPlan> {
    let mut b = Builder {
        trees: Vec::new(),
        ops: Vec::new(),
    };
    for dir in SYSTEM_DIRS {
        b.mirror(dir, SYSTEM_ATTRS)?;
    }

    b.mkdir("etc", 0o755)?;
    for entry in ETC_ENTRIES {
        b.mirror(&format!("etc/{entry}"), SYSTEM_ATTRS)?;
    }
    let host = &config.hostname;
    let id = SANDBOX_UID;
    b.write(
        "etc/passwd",
        format!(
            "root:x:0:0:root:/root:/usr/sbin/nologin\nsandbox:x:{id}:{id}:sandbox:{WORKSPACE_DIR}:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
        ),
    )?;
    b.write(
        "etc/group",
        format!("root:x:0:\nsandbox:x:{id}:\nnogroup:x:65534:\n"),
    )?;
    b.write("etc/hostname", format!("{host}\n"))?;
    b.write(
        "etc/hosts",
        format!("127.0.0.1 localhost\n::1 localhost\n127.0.1.1 {host}\n"),
    )?;
    b.write(
        "etc/nsswitch.conf",
        "passwd: files\ngroup: files\nshadow: files\nhosts: files\n".into(),
    )?;
    b.write("etc/resolv.conf", String::new())?;

    let tmpfs_flags = libc::MS_NOSUID | libc::MS_NODEV;
    b.mkdir("dev", 0o755)?;
    b.mount(
        "tmpfs",
        "dev",
        libc::MS_NOSUID | libc::MS_NOEXEC,
        "mode=0755,size=64k",
    )?;
    for dev in DEVICES {
        b.mirror(&format!("dev/{dev}"), MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC)?;
    }
    b.symlink("/proc/self/fd", "dev/fd")?;
    b.symlink("/proc/self/fd/0", "dev/stdin")?;
    b.symlink("/proc/self/fd/1", "dev/stdout")?;
    b.symlink("/proc/self/fd/2", "dev/stderr")?;
    b.mkdir("dev/shm", 0o755)?;
    b.mount(
        "tmpfs",
        "dev/shm",
        tmpfs_flags,
        &format!("mode=1777,size={}", config.tmp_bytes),
    )?;
    b.ops.push(RootOp::SetAttr {
        path: cs("dev")?,
        set: MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC,
    });

    b.mkdir("proc", 0o555)?;
    b.mount(
        "proc",
        "proc",
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        "",
    )?;

    b.mkdir("tmp", 0o1777)?;
    b.mount(
        "tmpfs",
        "tmp",
        tmpfs_flags,
        &format!("mode=1777,size={}", config.tmp_bytes),
    )?;
    b.mkdir("var", 0o755)?;
    b.symlink("/tmp", "var/tmp")?;

    let ws = WORKSPACE_DIR.trim_start_matches('/');
    b.mkdir(ws, 0o755)?;
    b.ops.push(RootOp::AttachWorkspace { path: cs(ws)? });

    if b.trees.len() > crate::sys::MAX_TREES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "too many bind mounts",
        ));
    }
    Ok(NsPlan {
        trees: b.trees,
        ops: b.ops,
        base: cs("/tmp")?,
        hostname: host.as_bytes().to_vec(),
    })
}

/// `MOUNT_ATTR_*` flags of the workspace mount.
pub(crate) const WORKSPACE_ATTRS: u64 = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
