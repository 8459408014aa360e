//! File calls ([`sandbay_agent::file`]): the agent serves them itself,
//! with `sandbay-fs`'s backend over a `cap_std` handle of `/workspace`,
//! on threads that act as the sandbox user on the file system.
//!
//! Those threads belong to one small runtime. When each starts it drops
//! every supplementary group and sets its *filesystem* uid and gid to the
//! sandbox user's (all three are per thread in the kernel; the raw
//! `setgroups` system call is used because the C library's wrapper would
//! change every thread of the agent). A filesystem uid other than 0 also
//! takes every file capability out of the thread's effective set
//! (`CHOWN`, `DAC_OVERRIDE`, `FOWNER`, ...), so each permission check is
//! exactly the one a command of the sandbox user meets: a file operation
//! can never reach more than a command could. A thread whose identity
//! cannot be checked stops the agent rather than act as root.
//!
//! The fs backend resolves every path beneath its handle
//! (`openat2(RESOLVE_BENEATH)`): no symlink leads out of `/workspace`.
//! The handle is opened on the first call and again whenever
//! `/workspace` has become another directory (a workspace bind-mounted
//! onto the running container).

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::sync::{Mutex, OnceLock, PoisonError};

use sandbay_agent::Event;
use sandbay_agent::file::{self, FileAnswer, FileCall, MAX_BODY};
use sandbay_core::{Backend, EntryKind, Error, Result};
use sandbay_fs::FsBackend;

/// The workspace the calls act on.
const WORKSPACE: &str = "/workspace";

/// A call whose pieces are still coming.
#[derive(Default)]
struct Pending {
    body: Vec<u8>,
    /// Bytes received, counted on after the body was dropped for being
    /// too large.
    size: usize,
}

static PENDING: Mutex<Option<HashMap<u32, Pending>>> = Mutex::new(None);

/// The file threads, made on the first call.
static RUNTIME: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> = OnceLock::new();

/// The backend over the current `/workspace`, with its device and inode.
static ROOT: Mutex<Option<((u64, u64), FsBackend)>> = Mutex::new(None);

/// Takes one piece of call `id`; runs the call when it is complete.
pub(crate) fn piece(id: u32, body: Vec<u8>, last: bool, uid: u32, gid: u32) {
    let complete = {
        let mut g = PENDING.lock().unwrap_or_else(PoisonError::into_inner);
        let map = g.get_or_insert_with(HashMap::new);
        let p = map.entry(id).or_default();
        p.size = p.size.saturating_add(body.len());
        if p.size <= MAX_BODY {
            p.body.extend_from_slice(&body);
        } else {
            p.body = Vec::new();
        }
        if last { map.remove(&id) } else { None }
    };
    let Some(pending) = complete else {
        return;
    };
    if pending.size > MAX_BODY {
        return answer(
            id,
            &Err(Error::TooLarge {
                what: "the file operation".into(),
                size: pending.size as u64,
                limit: MAX_BODY as u64,
            }),
        );
    }
    let call = match FileCall::decode(&pending.body) {
        Ok(c) => c,
        Err(e) => return answer(id, &Err(Error::invalid_argument(e.to_string()))),
    };
    drop(pending);
    match RUNTIME.get_or_init(|| runtime(uid, gid)) {
        Ok(rt) => {
            rt.spawn(async move {
                let result = serve(call).await;
                answer(id, &result);
            });
        }
        Err(why) => answer(
            id,
            &Err(Error::Unavailable {
                message: format!("the agent's file threads did not start ({why})"),
            }),
        ),
    }
}

/// Sends the answer to call `id`.
fn answer(id: u32, result: &Result<FileAnswer>) {
    let body = file::encode_answer(result);
    for (piece, last) in file::chunks(&body) {
        crate::send(&Event::File {
            id,
            body: piece.to_vec(),
            last,
        });
    }
}

/// Makes the current thread act as `uid:gid` on the file system, with no
/// supplementary group; stops the agent when that cannot be checked.
fn become_user(uid: u32, gid: u32) {
    // SAFETY: per-thread credential calls with valid arguments.
    let ok = unsafe {
        libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>()) == 0 && {
            libc::setfsgid(gid);
            libc::setfsuid(uid);
            // an invalid id changes nothing and returns the current one
            libc::setfsgid(u32::MAX) as u32 == gid && libc::setfsuid(u32::MAX) as u32 == uid
        }
    };
    if !ok {
        crate::note(
            0,
            "a file thread cannot act as the sandbox user; the agent stops",
        );
        std::process::abort();
    }
}

fn runtime(uid: u32, gid: u32) -> std::result::Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(4)
        .thread_stack_size(1 << 20)
        .thread_name("sandbay-agent-files")
        .on_thread_start(move || become_user(uid, gid))
        .build()
        .map_err(|e| e.kind().to_string())
}

/// The backend over `/workspace`, opened again when it changed.
async fn backend() -> Result<FsBackend> {
    let meta = std::fs::metadata(WORKSPACE).map_err(|e| Error::Unavailable {
        message: format!("the workspace cannot be reached ({})", e.kind()),
    })?;
    let key = (meta.dev(), meta.ino());
    if let Some((k, fs)) = ROOT.lock().unwrap_or_else(PoisonError::into_inner).as_ref()
        && *k == key
    {
        return Ok(fs.clone());
    }
    let fs = FsBackend::new(sandbay_fs::open_root(WORKSPACE).await?);
    *ROOT.lock().unwrap_or_else(PoisonError::into_inner) = Some((key, fs.clone()));
    Ok(fs)
}

/// Runs one call.
async fn serve(call: FileCall) -> Result<FileAnswer> {
    let fs = backend().await?;
    Ok(match call {
        FileCall::Ls(p) => FileAnswer::Entries(fs.ls(&p).await?),
        FileCall::Stat(p) => FileAnswer::Entry(fs.stat(&p).await?),
        FileCall::Read(p, r) => FileAnswer::Window(fs.read(&p, r).await?),
        FileCall::Write(p, text) => {
            fs.write(&p, &text).await?;
            FileAnswer::Done
        }
        FileCall::Edit(p, r) => FileAnswer::Edited(fs.edit(&p, &r).await?),
        FileCall::Delete(p) => {
            fs.delete(&p).await?;
            FileAnswer::Done
        }
        FileCall::Grep(r) => FileAnswer::Grep(fs.grep(&r).await?),
        FileCall::Glob(r) => FileAnswer::Glob(fs.glob(&r).await?),
        FileCall::Upload(files) => FileAnswer::Uploaded(fs.upload(files).await),
        FileCall::Download { paths, max } => {
            FileAnswer::Downloaded(download(&fs, &paths, max).await)
        }
        FileCall::Clear => FileAnswer::Cleared(fs.clear().await?),
    })
}

/// Downloads, refusing files over `max` bytes before they are loaded
/// (the size of a regular file) and after (anything else).
async fn download(fs: &FsBackend, paths: &[sandbay_core::VPath], max: u64) -> Vec<Result<Vec<u8>>> {
    let too_large = |path: &sandbay_core::VPath, size: u64| Error::TooLarge {
        what: path.to_string(),
        size,
        limit: max,
    };
    let mut results: Vec<Option<Result<Vec<u8>>>> = Vec::with_capacity(paths.len());
    let mut wanted = Vec::new();
    for (i, path) in paths.iter().enumerate() {
        match fs.stat(path).await {
            Ok(e) if e.kind == EntryKind::File && e.size > max => {
                results.push(Some(Err(too_large(path, e.size))));
            }
            _ => {
                results.push(None);
                wanted.push(i);
            }
        }
    }
    let fetched = fs
        .download(&wanted.iter().map(|&i| paths[i].clone()).collect::<Vec<_>>())
        .await;
    for (i, r) in wanted.into_iter().zip(fetched) {
        results[i] = Some(match r {
            Ok(bytes) if bytes.len() as u64 > max => Err(too_large(&paths[i], bytes.len() as u64)),
            other => other,
        });
    }
    results
        .into_iter()
        .zip(paths)
        .map(|(r, path)| {
            r.unwrap_or_else(|| {
                Err(Error::Io {
                    path: Some(path.clone()),
                    kind: std::io::ErrorKind::Interrupted,
                })
            })
        })
        .collect()
}
