//! Which sessions exist, for backends whose storage cannot list them by
//! id (their directory names are encoded): a JSON file under the data
//! directory, written atomically (temporary file, `fsync`, `rename`) on
//! every create and delete.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::Key;
use crate::error::ApiError;

/// The sessions of one backend, in memory and in `path`.
#[derive(Debug)]
pub(crate) struct SessionIndex {
    path: PathBuf,
    keys: Mutex<BTreeSet<Key>>,
}

impl SessionIndex {
    /// Reads `data/<name>` (a missing file is an empty index); `what`
    /// names the backend in errors.
    pub(crate) fn open(data: &Path, name: &str, what: &str) -> Result<Self, String> {
        std::fs::create_dir_all(data)
            .map_err(|e| format!("cannot create the data directory: {e}"))?;
        let path = data.join(name);
        let keys = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<BTreeSet<Key>>(&bytes)
                .map_err(|e| format!("the {what} session index is damaged: {e}"))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeSet::new(),
            Err(e) => return Err(format!("cannot read the {what} session index: {e}")),
        };
        Ok(SessionIndex {
            path,
            keys: Mutex::new(keys),
        })
    }

    /// The sessions, locked.
    pub(crate) fn keys(&self) -> MutexGuard<'_, BTreeSet<Key>> {
        self.keys.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// All sessions.
    pub(crate) fn all(&self) -> Vec<Key> {
        self.keys().iter().cloned().collect()
    }

    /// The session ids of `user`.
    pub(crate) fn of_user(&self, user: &str) -> Vec<String> {
        self.keys()
            .iter()
            .filter(|(u, _)| u == user)
            .map(|(_, id)| id.clone())
            .collect()
    }

    /// Whether `user` has session `id`.
    pub(crate) fn contains(&self, user: &str, id: &str) -> bool {
        self.keys().contains(&(user.to_owned(), id.to_owned()))
    }

    /// Adds a session and writes the index.
    pub(crate) async fn insert(&self, user: &str, id: &str) -> Result<(), ApiError> {
        self.keys().insert((user.to_owned(), id.to_owned()));
        self.save().await
    }

    /// Removes a session and writes the index.
    pub(crate) async fn remove(&self, user: &str, id: &str) -> Result<(), ApiError> {
        self.keys().remove(&(user.to_owned(), id.to_owned()));
        self.save().await
    }

    /// Writes the index atomically (temporary file, fsync, rename).
    async fn save(&self) -> Result<(), ApiError> {
        let bytes = serde_json::to_vec(&*self.keys()).unwrap_or_default();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let tmp = path.with_extension("json.tmp");
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            // users and their session ids: for this process's account only
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut f = options.open(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        })
        .await
        .map_err(|_| unavailable("writing the session index failed"))?
        .map_err(|e| unavailable(&format!("cannot write the session index ({})", e.kind())))
    }
}

fn unavailable(message: &str) -> ApiError {
    ApiError::from(sandbay_core::Error::Unavailable {
        message: message.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[tokio::test]
    async fn the_index_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let index = SessionIndex::open(dir.path(), "fs-sessions.json", "fs").unwrap();
        index.insert("alice", "secret-project").await.unwrap();
        let meta = std::fs::metadata(dir.path().join("fs-sessions.json")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert!(
            SessionIndex::open(dir.path(), "fs-sessions.json", "fs")
                .unwrap()
                .contains("alice", "secret-project")
        );
    }
}
