//! Removing what a crashed process left behind.

use bollard::models::ContainerSummaryStateEnum;
use sandbay_core::Result;

use crate::client::DockerClient;
use crate::labels::{self, Liveness};

/// Whose objects [`reap_orphans`] removes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ReapScope {
    /// Objects whose owning process on this machine is gone, and stopped
    /// containers. Safe to run at any time, from any process.
    #[default]
    Orphans,
    /// Also objects whose owner cannot be checked (another machine sharing
    /// the daemon, an earlier boot) and those of other live processes:
    /// for the start-up of the only service that owns sandboxes on a daemon.
    AllButMine,
    /// Everything that matches, this process's own sandboxes included
    /// (test clean-up, shutting a service down).
    All,
}

/// Which sandbay containers and volumes [`reap_orphans`] removes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReapOptions {
    /// Only objects carrying this extra `key=value` label (a test or a
    /// tenant); all sandbay objects when `None`.
    pub label: Option<(String, String)>,
    /// Whose objects to remove.
    pub scope: ReapScope,
    /// The base of bind-mounted workspaces
    /// ([`crate::DockerConfig::workspace_base`]): when set, workspace
    /// directories (`<base>/<owner>/<sandbox id>`) whose sandbox has no
    /// container any more are removed too.
    pub workspace_base: Option<std::path::PathBuf>,
    /// A workspace directory younger than this is kept (its container may
    /// be in the making). Default 60 s.
    pub min_age: std::time::Duration,
}

impl Default for ReapOptions {
    fn default() -> Self {
        ReapOptions {
            label: None,
            scope: ReapScope::default(),
            workspace_base: None,
            min_age: std::time::Duration::from_secs(60),
        }
    }
}

impl ReapOptions {
    /// Restricts reaping to objects with this label.
    pub fn with_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.label = Some((key.into(), value.into()));
        self
    }

    /// Sets whose objects are removed.
    pub fn with_scope(mut self, scope: ReapScope) -> Self {
        self.scope = scope;
        self
    }

    /// Also removes orphaned workspace directories below `base`, older
    /// than `min_age`.
    pub fn with_workspace_base(
        mut self,
        base: impl Into<std::path::PathBuf>,
        min_age: std::time::Duration,
    ) -> Self {
        self.workspace_base = Some(base.into());
        self.min_age = min_age;
        self
    }
}

/// What [`reap_orphans`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReapReport {
    /// Containers removed.
    pub containers: usize,
    /// Volumes removed.
    pub volumes: usize,
    /// Bind-mounted workspace directories removed.
    pub workspaces: usize,
}

fn should_reap(
    labels: Option<&std::collections::HashMap<String, String>>,
    running: bool,
    scope: ReapScope,
) -> bool {
    let process = labels.and_then(|l| l.get(labels::PROCESS));
    match (scope, process.map(|p| labels::liveness(p))) {
        (ReapScope::All, _) => true,
        (_, Some(Liveness::Me)) => false,
        (_, Some(Liveness::Dead)) => true,
        (ReapScope::AllButMine, _) => true,
        (ReapScope::Orphans, _) => !running,
    }
}

/// Removes sandbay-labelled containers whose owning process is gone (and
/// stopped ones), then sandbay volumes no live owner uses.
///
/// Sandboxes of this process and of other live processes on this machine
/// are kept, unless [`ReapOptions::scope`] says otherwise.
///
/// # Errors
/// `unavailable` when the daemon cannot be reached.
pub async fn reap_orphans(client: &DockerClient, options: &ReapOptions) -> Result<ReapReport> {
    let mut filter: Vec<(&str, &str)> = vec![(labels::MANAGED, "true")];
    if let Some((k, v)) = &options.label {
        filter.push((k, v));
    }
    let mut report = ReapReport::default();
    for c in client.list_containers(&filter).await? {
        let running = c.state == Some(ContainerSummaryStateEnum::RUNNING);
        if !should_reap(c.labels.as_ref(), running, options.scope) {
            continue;
        }
        if let Some(id) = &c.id {
            client.remove_container(id).await?;
            report.containers += 1;
            tracing::info!(container = %id, "removed orphaned sandbox container");
        }
    }
    for (name, labels) in client.list_volumes(&filter).await? {
        // a volume has no running state: its owner decides
        if !should_reap(Some(&labels), true, options.scope) {
            continue;
        }
        match client.remove_volume(&name).await {
            Ok(()) => {
                report.volumes += 1;
                tracing::info!(volume = %name, "removed orphaned sandbox volume");
            }
            // still in use by a container we kept
            Err(crate::client::ApiError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(base) = &options.workspace_base {
        let live: std::collections::HashSet<String> = client
            .list_containers(&[(labels::MANAGED, "true")])
            .await?
            .into_iter()
            .filter_map(|c| c.labels?.get(labels::SANDBOX).cloned())
            .collect();
        let (base, min_age) = (base.clone(), options.min_age);
        let removed = tokio::task::spawn_blocking(move || orphan_dirs(&base, &live, min_age))
            .await
            .unwrap_or(0);
        report.workspaces = removed;
    }
    Ok(report)
}

/// Whether a directory name is a sandbox id (12 lowercase hex digits).
fn is_sandbox_id(name: &str) -> bool {
    name.len() == 12
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Removes `<base>/<owner>/<id>` directories whose id is not in `live`
/// and that are older than `min_age`; returns how many.
fn orphan_dirs(
    base: &std::path::Path,
    live: &std::collections::HashSet<String>,
    min_age: std::time::Duration,
) -> usize {
    let mut removed = 0;
    let Ok(owners) = std::fs::read_dir(base) else {
        return 0;
    };
    for owner in owners.flatten() {
        // never follow a symlink planted in the base
        if !owner.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let Ok(sessions) = std::fs::read_dir(owner.path()) else {
            continue;
        };
        for session in sessions.flatten() {
            let name = session.file_name();
            let Some(name) = name.to_str() else { continue };
            if !is_sandbox_id(name) || live.contains(name) {
                continue;
            }
            let Ok(meta) = session.metadata() else {
                continue;
            };
            let old_enough = meta
                .modified()
                .ok()
                .and_then(|m| m.elapsed().ok())
                .is_some_and(|age| age >= min_age);
            if meta.is_dir() && old_enough && std::fs::remove_dir_all(session.path()).is_ok() {
                removed += 1;
                tracing::info!(sandbox = name, "removed an orphaned workspace directory");
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn owned_by(process: &str) -> HashMap<String, String> {
        HashMap::from([(labels::PROCESS.to_string(), process.to_string())])
    }

    #[test]
    fn sandbox_ids() {
        assert!(is_sandbox_id("0123456789ab"));
        assert!(!is_sandbox_id("0123456789AB"));
        assert!(!is_sandbox_id("alice"));
        assert!(!is_sandbox_id("0123456789abc"));
    }

    #[test]
    fn orphan_directories() {
        let base = tempfile::tempdir().unwrap();
        let owner = base.path().join("alice");
        for id in ["aaaaaaaaaaaa", "bbbbbbbbbbbb", "not-a-sandbox"] {
            std::fs::create_dir_all(owner.join(id).join("sub")).unwrap();
        }
        let live = std::collections::HashSet::from(["bbbbbbbbbbbb".to_string()]);
        // too young: kept
        assert_eq!(
            orphan_dirs(base.path(), &live, std::time::Duration::from_secs(3600)),
            0
        );
        assert_eq!(
            orphan_dirs(base.path(), &live, std::time::Duration::ZERO),
            1
        );
        assert!(!owner.join("aaaaaaaaaaaa").exists());
        assert!(owner.join("bbbbbbbbbbbb").exists());
        assert!(owner.join("not-a-sandbox").exists());
    }

    #[test]
    fn scopes() {
        let me = owned_by(&labels::process_identity());
        let unknown = owned_by("another-boot:1:1");
        let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
        let dead = owned_by(&format!("{}:4294967294:1", boot.trim()));
        use ReapScope::*;
        assert!(!should_reap(Some(&me), true, Orphans));
        assert!(!should_reap(Some(&me), true, AllButMine));
        assert!(should_reap(Some(&me), true, All));
        assert!(should_reap(Some(&dead), true, Orphans));
        assert!(!should_reap(Some(&unknown), true, Orphans));
        assert!(should_reap(Some(&unknown), false, Orphans));
        assert!(should_reap(Some(&unknown), true, AllButMine));
        assert!(!should_reap(None, true, Orphans));
    }
}
