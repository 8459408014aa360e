//! File operations inside the container (the workspace is a Docker
//! volume): each operation is one script run through the executor, so a
//! file operation costs about as much as a command through the agent.
//!
//! Reads stream through a channel into the shared windowing and grep code
//! of `sandbay-core`, so memory stays bounded and results are the same
//! bytes as on every other backend.

use std::io::{BufRead, BufReader, Read};
use std::sync::Arc;
use std::time::Duration;

use sandbay_core::text::{GlobMatcher, GrepPlan, apply_edit, finish_glob, is_text, window_lines};
use sandbay_core::{
    DirEntry, EditOutcome, EditRequest, EntryKind, Error, GlobOutput, GlobRequest, GrepOutput,
    GrepRequest, Limits, ReadRequest, Result, TextWindow, VPath,
};
use tokio::sync::mpsc;

use super::scripts::{self, code};
use crate::exec::{Command, Executor, Outcome, Sink, Status};

/// The workspace of a sandbox whose files live in the container.
#[derive(Debug)]
pub(crate) struct ContainerFiles {
    exec: Arc<Executor>,
    limits: Limits,
    timeout: Duration,
    max_download: u64,
}

/// Workspace-relative form of a virtual path (`""` for the root).
fn rel(path: &VPath) -> &str {
    &path.as_str()[1..]
}

/// Maps a script's exit code to an error about `path`.
fn script_error(path: &VPath, status: i32, stderr: &[u8], limit: u64) -> Error {
    let path = path.clone();
    match status {
        code::NOT_FOUND => Error::NotFound { path },
        code::IS_DIR => Error::IsDirectory { path },
        code::NOT_DIR => Error::NotADirectory { path },
        code::ESCAPE => Error::escape(&path),
        code::ACCESS => Error::PermissionDenied {
            path,
            reason: "access refused".into(),
        },
        code::SPECIAL => Error::PermissionDenied {
            path,
            reason: "not a regular file".into(),
        },
        code::ROOT => Error::PermissionDenied {
            path,
            reason: "the workspace root cannot be changed this way".into(),
        },
        code::TOO_LARGE => Error::TooLarge {
            what: path.to_string(),
            size: String::from_utf8_lossy(stderr).trim().parse().unwrap_or(0),
            limit,
        },
        code::LOOP => Error::PermissionDenied {
            path,
            reason: "too many levels of symbolic links".into(),
        },
        _ => Error::Io {
            path: Some(path),
            kind: std::io::ErrorKind::Other,
        },
    }
}

/// A blocking reader over chunks sent through a channel.
struct ChannelReader {
    rx: mpsc::Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pos >= self.chunk.len() {
            match self.rx.blocking_recv() {
                Some(c) => {
                    self.chunk = c;
                    self.pos = 0;
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Reads `CAT_MANY` framing: calls `each(index, Ok(bytes) | Err(status))`
/// per file until it returns `false` or the stream ends.
fn read_many<R: BufRead>(
    mut reader: R,
    mut each: impl FnMut(usize, std::result::Result<Vec<u8>, i32>) -> bool,
) {
    use base64::Engine;
    let engine = base64::engine::general_purpose::STANDARD;
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).unwrap_or(0) == 0 {
            return;
        }
        let text = String::from_utf8_lossy(&line);
        let mut parts = text.trim_end().split(' ');
        let (Some("F"), Some(i), Some(st)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let (Ok(index), Ok(status)) = (i.parse::<usize>(), st.parse::<i32>()) else {
            continue;
        };
        if status != 0 {
            if !each(index, Err(status)) {
                return;
            }
            continue;
        }
        let mut encoded = Vec::new();
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == b".\n" {
                break;
            }
            encoded.extend(line.iter().filter(|b| !b.is_ascii_whitespace()));
        }
        let item = engine.decode(&encoded).map_err(|_| code::IO);
        if !each(index, item) {
            return;
        }
    }
}

impl ContainerFiles {
    /// Empties the workspace through the agent (every name, as the
    /// sandbox user), and checks it is empty.
    pub(crate) async fn clear_all(&self) -> Result<()> {
        self.exec
            .agent
            .clear(
                &[crate::config::WORKSPACE],
                std::time::Duration::from_secs(120),
            )
            .await
    }

    pub(crate) fn new(
        exec: Arc<Executor>,
        limits: Limits,
        timeout: Duration,
        max_download: u64,
    ) -> ContainerFiles {
        ContainerFiles {
            exec,
            limits,
            timeout,
            max_download,
        }
    }

    async fn run(
        &self,
        op: &str,
        args: &[&str],
        stdin: Vec<u8>,
        sink: Sink,
        limit: usize,
    ) -> Result<Outcome> {
        let mut command = Command::script(scripts::script(op, args), self.timeout, limit);
        command.stdin = stdin;
        command.stdout = sink;
        let outcome = self.exec.run(command).await?;
        match outcome.status {
            Status::Exit(_) => Ok(outcome),
            Status::TimedOut => Err(Error::Timeout {
                after: self.timeout,
            }),
            Status::NoFork => Err(crate::exec::no_fork()),
            Status::NoDir | Status::Other(_) => Err(Error::Unavailable {
                message: "the sandbox workspace is not reachable".into(),
            }),
        }
    }

    /// Runs a script whose only failure mode is an exit code about `path`.
    async fn simple(
        &self,
        op: &str,
        path: &VPath,
        extra: &[&str],
        limit: usize,
    ) -> Result<Vec<u8>> {
        let mut args = vec![rel(path)];
        args.extend_from_slice(extra);
        let out = self
            .run(op, &args, Vec::new(), Sink::Capture, limit)
            .await?;
        match out.status {
            Status::Exit(0) => Ok(out.stdout),
            Status::Exit(c) => Err(script_error(path, c, &out.stderr, 0)),
            // run() passes on exits only; anything else is an i/o failure
            _ => Err(script_error(path, code::IO, &[], 0)),
        }
    }

    pub(crate) async fn stat(&self, path: &VPath) -> Result<DirEntry> {
        let out = self.simple(scripts::STAT, path, &[], 4096).await?;
        let text = String::from_utf8_lossy(&out);
        let (kind, size) = parse_mode_size(text.trim()).ok_or_else(|| Error::Io {
            path: Some(path.clone()),
            kind: std::io::ErrorKind::InvalidData,
        })?;
        Ok(DirEntry {
            path: path.clone(),
            kind,
            size: if kind == EntryKind::Dir { 0 } else { size },
        })
    }

    pub(crate) async fn ls(&self, path: &VPath) -> Result<Vec<DirEntry>> {
        let out = self.simple(scripts::LS, path, &[], usize::MAX).await?;
        let mut entries = Vec::new();
        for record in out.split_inclusive(|&b| b == b'\n') {
            let Some(record) = record.strip_suffix(b"//\n") else {
                continue;
            };
            let text = String::from_utf8_lossy(record);
            let mut parts = text.splitn(3, ' ');
            let (Some(mode), Some(size), Some(full)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let Some((kind, size)) = parse_mode_size(&format!("{mode} {size}")) else {
                continue;
            };
            let name = full.rsplit('/').next().unwrap_or("");
            // a name that is no valid virtual path component is skipped
            let Ok(child) = VPath::parse(&format!("{}/{name}", path.as_str())) else {
                continue;
            };
            if child.parent().as_ref() != Some(path) || std::str::from_utf8(record).is_err() {
                continue;
            }
            entries.push(DirEntry {
                path: child,
                kind,
                size: if kind == EntryKind::Dir { 0 } else { size },
            });
        }
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(entries)
    }

    pub(crate) async fn read(&self, path: &VPath, request: ReadRequest) -> Result<TextWindow> {
        let (tx, rx) = mpsc::channel(16);
        let max = self.limits.max_window_bytes;
        let p = path.clone();
        let window = tokio::task::spawn_blocking(move || {
            let reader = ChannelReader {
                rx,
                chunk: Vec::new(),
                pos: 0,
            };
            window_lines(
                &p,
                BufReader::with_capacity(64 * 1024, reader),
                request,
                max,
            )
        });
        let out = self
            .run(
                scripts::CAT,
                &[rel(path)],
                Vec::new(),
                Sink::Stream(tx),
                64 * 1024,
            )
            .await;
        let window = window.await.map_err(|_| Error::Io {
            path: Some(path.clone()),
            kind: std::io::ErrorKind::Other,
        })?;
        match out?.status {
            Status::Exit(0) => window,
            Status::Exit(c) => Err(script_error(path, c, &[], 0)),
            // run() passes on exits only; anything else is an i/o failure
            _ => Err(script_error(path, code::IO, &[], 0)),
        }
    }

    /// Whole-file bytes, refusing files over `limit`.
    async fn bytes(&self, path: &VPath, limit: u64) -> Result<Vec<u8>> {
        let cap = usize::try_from(limit)
            .unwrap_or(usize::MAX)
            .saturating_add(1);
        let out = self
            .run(
                scripts::CAT_LIMITED,
                &[rel(path), &limit.to_string()],
                Vec::new(),
                Sink::Capture,
                cap,
            )
            .await?;
        match out.status {
            Status::Exit(0) if out.truncated || out.stdout.len() as u64 > limit => {
                Err(Error::TooLarge {
                    what: path.to_string(),
                    size: out.stdout.len() as u64,
                    limit,
                })
            }
            Status::Exit(0) => Ok(out.stdout),
            Status::Exit(c) => Err(script_error(path, c, &out.stderr, limit)),
            // run() passes on exits only; anything else is an i/o failure
            _ => Err(script_error(path, code::IO, &[], 0)),
        }
    }

    pub(crate) async fn write(&self, path: &VPath, content: &[u8]) -> Result<()> {
        self.upload(vec![(path.clone(), content.to_vec())])
            .await
            .pop()
            .unwrap_or(Ok(()))
    }

    pub(crate) async fn edit(&self, path: &VPath, request: &EditRequest) -> Result<EditOutcome> {
        if request.old.is_empty() {
            // same check and message as every backend, before any I/O
            apply_edit(path, "", request, self.limits.max_text_file_bytes)?;
        }
        let bytes = self.bytes(path, self.limits.max_text_file_bytes).await?;
        if !is_text(&bytes) {
            return Err(Error::BinaryFile { path: path.clone() });
        }
        let content =
            String::from_utf8(bytes).map_err(|_| Error::BinaryFile { path: path.clone() })?;
        let (new, replacements) =
            apply_edit(path, &content, request, self.limits.max_text_file_bytes)?;
        self.write(path, new.as_bytes()).await?;
        Ok(EditOutcome { replacements })
    }

    pub(crate) async fn delete(&self, path: &VPath) -> Result<()> {
        if path.is_root() {
            return Err(script_error(path, code::ROOT, &[], 0));
        }
        self.simple(scripts::DELETE, path, &[], 4096)
            .await
            .map(|_| ())
    }

    /// Regular files below `base` (or `base` itself when it is a file and
    /// `dir_only` is not set), optionally only those up to `limit` bytes.
    async fn files_below(
        &self,
        base: &VPath,
        limit: Option<u64>,
        dir_only: bool,
    ) -> Result<Vec<VPath>> {
        let limit = limit.map(|l| l.to_string()).unwrap_or_default();
        let mode = if dir_only { "d" } else { "" };
        let out = self
            .simple(scripts::FIND_FILES, base, &[&limit, mode], usize::MAX)
            .await?;
        let mut records = out.split(|&b| b == 0);
        let resolved = records.next().unwrap_or_default().to_vec();
        let mut prefix = resolved.clone();
        prefix.push(b'/');
        let mut paths = Vec::new();
        for record in records {
            if record.is_empty() {
                continue;
            }
            if record == resolved.as_slice() {
                paths.push(base.clone());
                continue;
            }
            let Some(relative) = record.strip_prefix(prefix.as_slice()) else {
                continue;
            };
            let Ok(relative) = std::str::from_utf8(relative) else {
                continue;
            };
            if let Ok(p) = VPath::parse(&format!("{}/{relative}", base.as_str())) {
                paths.push(p);
            }
        }
        Ok(paths)
    }

    pub(crate) async fn glob(&self, request: &GlobRequest) -> Result<GlobOutput> {
        let matcher = GlobMatcher::new(&request.pattern)?;
        let files = self.files_below(&request.path, None, true).await?;
        let found = files
            .into_iter()
            .filter(|p| matcher.is_match(&request.path, p))
            .collect();
        Ok(finish_glob(found, request.limit))
    }

    pub(crate) async fn grep(&self, request: &GrepRequest) -> Result<GrepOutput> {
        let plan = GrepPlan::new(request)?;
        let mut files: Vec<VPath> = self
            .files_below(&request.path, Some(self.limits.max_text_file_bytes), false)
            .await?
            .into_iter()
            .filter(|p| plan.wants(p))
            .collect();
        files.sort();
        files.dedup();
        if files.is_empty() {
            return Ok(plan.start().finish());
        }
        let list: String = files.iter().map(|p| format!("{}\n", rel(p))).collect();
        let (tx, rx) = mpsc::channel(16);
        let search = tokio::task::spawn_blocking(move || {
            let reader = ChannelReader {
                rx,
                chunk: Vec::new(),
                pos: 0,
            };
            let mut search = plan.start();
            read_many(BufReader::with_capacity(64 * 1024, reader), |i, item| {
                if let (Some(path), Ok(bytes)) = (files.get(i), item) {
                    search.file(path, &bytes);
                }
                !search.is_done()
            });
            search.finish()
        });
        let out = self
            .run(
                scripts::CAT_MANY,
                &[],
                list.into_bytes(),
                Sink::Stream(tx),
                64 * 1024,
            )
            .await;
        let found = search.await.map_err(|_| Error::Io {
            path: Some(request.path.clone()),
            kind: std::io::ErrorKind::Other,
        })?;
        out?;
        Ok(found)
    }

    pub(crate) async fn upload(&self, files: Vec<(VPath, Vec<u8>)>) -> Vec<Result<()>> {
        if files.is_empty() {
            return Vec::new();
        }
        let total: usize = files
            .iter()
            .map(|(p, b)| p.as_str().len() + b.len() + 24)
            .sum();
        let mut stdin = Vec::with_capacity(total);
        for (path, bytes) in &files {
            stdin.extend_from_slice(rel(path).as_bytes());
            stdin.push(b'\n');
            stdin.extend_from_slice(bytes.len().to_string().as_bytes());
            stdin.push(b'\n');
            stdin.extend_from_slice(bytes);
        }
        let out = match self
            .run(scripts::PUT_MANY, &[], stdin, Sink::Capture, 1 << 20)
            .await
        {
            Ok(out) => out,
            Err(e) => return files.iter().map(|_| Err(clone_error(&e))).collect(),
        };
        let mut results: Vec<Option<Result<()>>> = files.iter().map(|_| None).collect();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let mut parts = line.split(' ');
            let (Some(Ok(i)), Some(Ok(st))) = (
                parts.next().map(str::parse::<usize>),
                parts.next().map(str::parse::<i32>),
            ) else {
                continue;
            };
            let free: u64 = parts.next().and_then(|f| f.parse().ok()).unwrap_or(0);
            if let (Some(slot), Some((path, bytes))) = (results.get_mut(i), files.get(i)) {
                *slot = Some(match st {
                    0 => Ok(()),
                    code::TOO_LARGE => Err(Error::TooLarge {
                        what: format!("{path} (the workspace is full)"),
                        size: bytes.len() as u64,
                        limit: free,
                    }),
                    st => Err(script_error(path, st, &[], 0)),
                });
            }
        }
        results
            .into_iter()
            .zip(&files)
            .map(|(r, (path, _))| {
                r.unwrap_or_else(|| {
                    Err(Error::Io {
                        path: Some(path.clone()),
                        kind: std::io::ErrorKind::Interrupted,
                    })
                })
            })
            .collect()
    }

    pub(crate) async fn download(&self, paths: &[VPath]) -> Vec<Result<Vec<u8>>> {
        if let [path] = paths {
            return vec![self.bytes(path, self.max_download).await];
        }
        if paths.is_empty() {
            return Vec::new();
        }
        let list: String = paths.iter().map(|p| format!("{}\n", rel(p))).collect();
        let per_file = self.max_download.saturating_mul(4) / 3 + 1024;
        let cap =
            usize::try_from(per_file.saturating_mul(paths.len() as u64)).unwrap_or(usize::MAX);
        let out = match self
            .run(
                scripts::CAT_MANY,
                &[],
                list.into_bytes(),
                Sink::Capture,
                cap,
            )
            .await
        {
            Ok(out) => out,
            Err(e) => return paths.iter().map(|_| Err(clone_error(&e))).collect(),
        };
        let mut results: Vec<Option<Result<Vec<u8>>>> = paths.iter().map(|_| None).collect();
        read_many(out.stdout.as_slice(), |i, item| {
            if let (Some(slot), Some(path)) = (results.get_mut(i), paths.get(i)) {
                *slot = Some(match item {
                    Ok(bytes) if bytes.len() as u64 > self.max_download => Err(Error::TooLarge {
                        what: path.to_string(),
                        size: bytes.len() as u64,
                        limit: self.max_download,
                    }),
                    Ok(bytes) => Ok(bytes),
                    Err(st) => Err(script_error(path, st, &[], 0)),
                });
            }
            true
        });
        results
            .into_iter()
            .zip(paths)
            .map(|(r, path)| {
                r.unwrap_or_else(|| {
                    Err(if out.truncated {
                        Error::TooLarge {
                            what: "the download batch".into(),
                            size: out.stdout.len() as u64,
                            limit: cap as u64,
                        }
                    } else {
                        Error::Io {
                            path: Some(path.clone()),
                            kind: std::io::ErrorKind::Interrupted,
                        }
                    })
                })
            })
            .collect()
    }
}

/// `Error` is not `Clone`; batch failures repeat the same category.
pub(crate) fn clone_error(e: &Error) -> Error {
    match e {
        Error::Unavailable { message } => Error::Unavailable {
            message: message.clone(),
        },
        Error::Timeout { after } => Error::Timeout { after: *after },
        other => Error::Unavailable {
            message: other.to_string(),
        },
    }
}

/// Parses `<mode hex> <size>` into a kind and a size.
fn parse_mode_size(text: &str) -> Option<(EntryKind, u64)> {
    let (mode, size) = text.split_once(' ')?;
    let mode = u32::from_str_radix(mode, 16).ok()?;
    let size = size.trim().parse().ok()?;
    let kind = match mode & 0o170000 {
        0o100000 => EntryKind::File,
        0o040000 => EntryKind::Dir,
        0o120000 => EntryKind::Symlink,
        _ => EntryKind::Other,
    };
    Some((kind, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert_eq!(parse_mode_size("81a4 12"), Some((EntryKind::File, 12)));
        assert_eq!(parse_mode_size("41ed 4096"), Some((EntryKind::Dir, 4096)));
        assert_eq!(parse_mode_size("a1ff 5"), Some((EntryKind::Symlink, 5)));
        assert_eq!(parse_mode_size("11a4 0"), Some((EntryKind::Other, 0)));
        assert_eq!(parse_mode_size("zz 1"), None);
    }

    #[test]
    fn many_framing() {
        let stream = b"F 0 0\naGVs\nbG8=\n\n.\nF 1 10\nF 2 0\n\n.\n";
        let mut got = Vec::new();
        read_many(&stream[..], |i, item| {
            got.push((i, item));
            true
        });
        assert_eq!(
            got,
            vec![(0, Ok(b"hello".to_vec())), (1, Err(10)), (2, Ok(vec![]))]
        );
    }
}
