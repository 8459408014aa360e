//! The on-disk form of one session: a versioned, checksummed snapshot,
//! written atomically.
//!
//! ```text
//! sandbay-state 1 <body length> <sha-256 of the body, hex>\n
//! <body: the session's Snapshot as JSON>
//! ```

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::LoadError;
use crate::snapshot::Snapshot;

/// The first word of every session file.
const MAGIC: &str = "sandbay-state";
/// The version of the file layout this build writes and reads.
pub const FILE_FORMAT: u32 = 1;
/// Longest header line read before giving up.
const MAX_HEADER: usize = 160;

/// The bytes of a session file holding `snapshot`.
pub(crate) fn encode(snapshot: &Snapshot) -> Vec<u8> {
    // A Snapshot holds strings, paths and numbers only: it always
    // serialises.
    let body = serde_json::to_vec(snapshot).unwrap_or_else(|_| b"{}".to_vec());
    let digest = hex(&Sha256::digest(&body));
    let mut out = format!("{MAGIC} {FILE_FORMAT} {} {digest}\n", body.len()).into_bytes();
    out.extend_from_slice(&body);
    out
}

/// The snapshot in a session file's bytes.
pub(crate) fn decode(bytes: &[u8]) -> Result<Snapshot, LoadError> {
    let corrupt = |reason: &str| LoadError::Corrupt {
        reason: reason.to_owned(),
    };
    let end = bytes
        .iter()
        .take(MAX_HEADER)
        .position(|&b| b == b'\n')
        .ok_or_else(|| corrupt("no header line"))?;
    let header = std::str::from_utf8(&bytes[..end]).map_err(|_| corrupt("header is not text"))?;
    let mut words = header.split(' ');
    if words.next() != Some(MAGIC) {
        return Err(corrupt("not a sandbay session file"));
    }
    let version: u32 = words
        .next()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| corrupt("no format version"))?;
    if version != FILE_FORMAT {
        return Err(LoadError::ForeignVersion { found: version });
    }
    let (Some(len), Some(digest), None) = (words.next(), words.next(), words.next()) else {
        return Err(corrupt("malformed header"));
    };
    let len: usize = len.parse().map_err(|_| corrupt("malformed length"))?;
    let body = &bytes[end + 1..];
    if body.len() != len {
        return Err(corrupt(if body.len() < len {
            "truncated"
        } else {
            "longer than its header says"
        }));
    }
    if hex(&Sha256::digest(body)) != digest {
        return Err(corrupt("checksum mismatch"));
    }
    let snapshot: Snapshot =
        serde_json::from_slice(body).map_err(|_| corrupt("body is not a snapshot"))?;
    Ok(snapshot)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Reads a session file; `Ok(None)` when there is none.
pub(crate) fn read(path: &Path) -> Result<Option<Snapshot>, LoadError> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(LoadError::Io(e.kind())),
    };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| LoadError::Io(e.kind()))?;
    decode(&bytes).map(Some)
}

/// Writes a session file atomically: a temporary file in the same
/// directory, written and fsynced, renamed over the old one, then the
/// directory fsynced. A crash leaves the old file or the new one, never
/// a mix.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no parent directory"))?;
    fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .suffix(".snap")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::SnapshotEntry;
    use sandbay_core::VPath;

    fn sample() -> Snapshot {
        Snapshot {
            format: crate::SNAPSHOT_FORMAT,
            entries: vec![
                SnapshotEntry::Dir {
                    path: VPath::parse("/d").unwrap(),
                },
                SnapshotEntry::file(VPath::parse("/d/a.txt").unwrap(), b"hi\n".to_vec()),
                SnapshotEntry::file(VPath::parse("/b.bin").unwrap(), vec![0, 255, 10]),
            ],
        }
    }

    #[test]
    fn round_trip() {
        let bytes = encode(&sample());
        assert!(bytes.starts_with(b"sandbay-state 1 "));
        assert_eq!(decode(&bytes).unwrap(), sample());
    }

    #[test]
    fn every_damage_is_a_typed_error() {
        let good = encode(&sample());
        let truncated = &good[..good.len() - 3];
        assert!(
            matches!(decode(truncated), Err(LoadError::Corrupt { reason }) if reason == "truncated")
        );
        let mut flipped = good.clone();
        let last = flipped.len() - 2;
        flipped[last] ^= 1;
        assert!(
            matches!(decode(&flipped), Err(LoadError::Corrupt { reason }) if reason == "checksum mismatch")
        );
        let foreign = String::from_utf8(good.clone()).unwrap().replacen(
            "sandbay-state 1 ",
            "sandbay-state 7 ",
            1,
        );
        assert!(matches!(
            decode(foreign.as_bytes()),
            Err(LoadError::ForeignVersion { found: 7 })
        ));
        for junk in [
            &b""[..],
            b"\n",
            b"garbage",
            b"sandbay-state x\n{}",
            &[0xff; 400],
        ] {
            assert!(
                matches!(decode(junk), Err(LoadError::Corrupt { .. })),
                "{junk:?}"
            );
        }
    }
}
