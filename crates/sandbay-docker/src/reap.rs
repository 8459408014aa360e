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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReapOptions {
    /// Only objects carrying this extra `key=value` label (a test or a
    /// tenant); all sandbay objects when `None`.
    pub label: Option<(String, String)>,
    /// Whose objects to remove.
    pub scope: ReapScope,
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
}

/// What [`reap_orphans`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReapReport {
    /// Containers removed.
    pub containers: usize,
    /// Volumes removed.
    pub volumes: usize,
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
    Ok(report)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn owned_by(process: &str) -> HashMap<String, String> {
        HashMap::from([(labels::PROCESS.to_string(), process.to_string())])
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
