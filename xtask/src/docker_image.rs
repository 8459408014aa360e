//! `cargo xtask docker-image`: builds the local test image
//! `sandbay/busybox:test` without a registry.
//!
//! The root filesystem is made in memory as a tar stream (the `tar`
//! crate, so ownership is exact without needing root): Debian's static
//! busybox with a link for every applet, `/tmp`, a `/workspace` owned by
//! the sandbox uid, and `/etc/passwd` and `/etc/group` naming that uid.
//! The stream is piped into `docker import`. The image carries a label with
//! a digest of the stream, so a second run with the same inputs does
//! nothing.

use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// The image reference the Docker tests and benchmarks use.
pub(crate) const IMAGE: &str = "sandbay/busybox:test";
/// The uid and gid of the unprivileged sandbox user in the image.
pub(crate) const SANDBOX_UID: u64 = 10001;
/// Where Debian's `busybox-static` installs the binary.
const BUSYBOX: &str = "/bin/busybox";
/// Label holding the digest of the root filesystem stream.
const DIGEST_LABEL: &str = "sandbay.rootfs-digest";
/// Bump when the layout below changes in a way the digest cannot see.
const LAYOUT_VERSION: &str = "1";

/// Builds `sandbay/busybox:test` unless an image with the same root
/// filesystem digest is already present.
pub(crate) fn build_test_image() -> Result<(), String> {
    let busybox = std::fs::read(BUSYBOX).map_err(|e| {
        format!("cannot read {BUSYBOX} ({e}); install it with `apt-get install busybox-static`")
    })?;
    if has_interpreter(&busybox) {
        return Err(format!(
            "{BUSYBOX} is dynamically linked; install Debian's `busybox-static` package"
        ));
    }
    let applets = applet_paths()?;
    let rootfs = rootfs_tar(&busybox, &applets).map_err(|e| format!("building the rootfs: {e}"))?;
    let digest = digest(&rootfs);
    if current_digest().as_deref() == Some(digest.as_str()) {
        println!("{IMAGE} is up to date (rootfs {digest})");
        return Ok(());
    }
    import(&rootfs, &digest)?;
    println!(
        "built {IMAGE} (rootfs {digest}, {} applets, {} KiB)",
        applets.len(),
        rootfs.len() / 1024
    );
    Ok(())
}

/// Whether an ELF file asks for a dynamic loader (a `PT_INTERP` header).
fn has_interpreter(elf: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    let u16_at = |o: usize| elf.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| {
        elf.get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |o: usize| {
        elf.get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
    };
    if elf.get(..4) != Some(b"\x7fELF") || elf.get(4) != Some(&2) {
        return true; // not a 64-bit ELF: treat as unusable
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return true;
    };
    (0..phnum as usize).any(|i| {
        let at = phoff as usize + i * phentsize as usize;
        u32_at(at) == Some(PT_INTERP)
    })
}

/// The applet paths busybox reports, e.g. `usr/bin/awk`.
fn applet_paths() -> Result<BTreeSet<String>, String> {
    let out = Command::new(BUSYBOX)
        .arg("--list-full")
        .output()
        .map_err(|e| format!("running {BUSYBOX} --list-full: {e}"))?;
    if !out.status.success() {
        return Err(format!("{BUSYBOX} --list-full failed"));
    }
    let list = String::from_utf8_lossy(&out.stdout);
    let mut paths: BTreeSet<String> = list
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.contains(".."))
        .map(str::to_string)
        .collect();
    paths.remove("bin/busybox");
    Ok(paths)
}

fn header(kind: tar::EntryType, path: &str, mode: u32, uid: u64, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(uid);
    h.set_gid(uid);
    h.set_size(size);
    h.set_mtime(0);
    // paths are short ASCII constants or busybox applet names
    let _ = h.set_path(path);
    h
}

/// The root filesystem as an uncompressed tar stream.
fn rootfs_tar(busybox: &[u8], applets: &BTreeSet<String>) -> std::io::Result<Vec<u8>> {
    use tar::EntryType as T;
    let mut b = tar::Builder::new(Vec::new());
    let dir = |b: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32, uid: u64| {
        let mut h = header(T::Directory, path, mode, uid, 0);
        h.set_cksum();
        b.append(&h, std::io::empty())
    };
    let mut dirs: BTreeSet<String> = ["bin", "sbin", "usr", "usr/bin", "usr/sbin"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for a in applets {
        if let Some(parent) = Path::new(a).parent().and_then(Path::to_str)
            && !parent.is_empty()
        {
            dirs.insert(parent.to_string());
        }
    }
    for d in ["dev", "etc", "proc", "sys", "root"] {
        dirs.insert(d.to_string());
    }
    for d in &dirs {
        let mode = if d == "root" { 0o700 } else { 0o755 };
        dir(&mut b, &format!("{d}/"), mode, 0)?;
    }
    dir(&mut b, "tmp/", 0o1777, 0)?;
    dir(&mut b, "workspace/", 0o755, SANDBOX_UID)?;

    let mut h = header(T::Regular, "bin/busybox", 0o755, 0, busybox.len() as u64);
    h.set_cksum();
    b.append(&h, busybox)?;
    for a in applets {
        let mut h = header(T::Symlink, a, 0o777, 0, 0);
        h.set_link_name("/bin/busybox")?;
        h.set_cksum();
        b.append(&h, std::io::empty())?;
    }
    let uid = SANDBOX_UID;
    let files = [
        (
            "etc/passwd",
            format!(
                "root:x:0:0:root:/root:/bin/sh\n\
                 sandbox:x:{uid}:{uid}:sandbox:/workspace:/bin/sh\n\
                 nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
            ),
        ),
        (
            "etc/group",
            format!("root:x:0:\nsandbox:x:{uid}:\nnogroup:x:65534:\n"),
        ),
        ("etc/sandbay-image", format!("layout {LAYOUT_VERSION}\n")),
    ];
    for (path, text) in files {
        let mut h = header(T::Regular, path, 0o644, 0, text.len() as u64);
        h.set_cksum();
        b.append(&h, text.as_bytes())?;
    }
    b.into_inner()
}

fn digest(bytes: &[u8]) -> String {
    // Two SipHash passes with different prefixes: 128 bits, enough to tell
    // builds apart (this is a cache key, not a security check).
    let mut out = String::new();
    for salt in [0u8, 1] {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        salt.hash(&mut h);
        bytes.hash(&mut h);
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

/// The digest label of the present image, if any.
fn current_digest() -> Option<String> {
    let out = Command::new("docker")
        .args([
            "image",
            "inspect",
            "--format",
            &format!("{{{{index .Config.Labels \"{DIGEST_LABEL}\"}}}}"),
            IMAGE,
        ])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn import(rootfs: &[u8], digest: &str) -> Result<(), String> {
    let mut child = Command::new("docker")
        .args([
            "import",
            "--change",
            &format!("LABEL {DIGEST_LABEL}={digest} sandbay.managed-image=true"),
            "--change",
            "WORKDIR /workspace",
            "--change",
            &format!("USER {SANDBOX_UID}:{SANDBOX_UID}"),
            "--change",
            "ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/workspace",
            "--change",
            r#"CMD ["sleep", "2147483647"]"#,
            "-",
            IMAGE,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("running `docker import` ({e}); is docker installed?"))?;
    let mut stdin = child.stdin.take().ok_or("no stdin for docker import")?;
    let written = stdin.write_all(rootfs);
    drop(stdin);
    let status = child
        .wait()
        .map_err(|e| format!("waiting for docker import: {e}"))?;
    written.map_err(|e| format!("writing the rootfs to docker import: {e}"))?;
    if !status.success() {
        return Err(format!(
            "`docker import` failed ({status}); is the daemon running (`docker info`)?"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rootfs_has_the_layout() {
        let applets: BTreeSet<String> = ["bin/sh", "usr/bin/awk"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let bytes = rootfs_tar(b"\x7fELF", &applets).unwrap();
        let mut archive = tar::Archive::new(bytes.as_slice());
        let mut seen = std::collections::BTreeMap::new();
        for e in archive.entries().unwrap() {
            let e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            seen.insert(
                path,
                (e.header().uid().unwrap(), e.header().mode().unwrap()),
            );
        }
        assert_eq!(seen["workspace/"].0, SANDBOX_UID);
        assert_eq!(seen["tmp/"].1, 0o1777);
        assert!(seen.contains_key("bin/sh"));
        assert!(seen.contains_key("usr/bin/awk"));
        assert!(seen.contains_key("etc/passwd"));
        // deterministic: the same inputs give the same digest
        assert_eq!(
            digest(&rootfs_tar(b"x", &applets).unwrap()),
            digest(&rootfs_tar(b"x", &applets).unwrap())
        );
    }

    #[test]
    fn detects_dynamic_binaries() {
        assert!(has_interpreter(b"not an elf"));
        // this test binary is linked against the system libc
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert!(has_interpreter(&me));
        if let Ok(bytes) = std::fs::read(BUSYBOX) {
            // Debian's busybox-static has no interpreter.
            assert!(!has_interpreter(&bytes));
        }
    }
}
