//! Removing what a crashed process left behind.

use bollard::models::ContainerSummaryStateEnum;
use sandbay_core::Result;

use crate::client::DockerClient;
use crate::labels::{self, Liveness};

/// Which sandbay containers and volumes [`reap_orphans`] removes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReapOptions {
    /// Only objects carrying this extra `key=value` label (a test or a
    /// tenant); all sandbay objects when `None`.
    pub label: Option<(String, String)>,
    /// Also remove objects whose owner cannot be checked (another machine
    /// sharing the daemon, an earlier boot) and those of live processes
    /// other than this one. Use at the start-up of the only service that
    /// owns sandboxes on a daemon.
    pub include_unknown: bool,
}

impl ReapOptions {
    /// Restricts reaping to objects with this label.
    pub fn with_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.label = Some((key.into(), value.into()));
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

fn should_reap(labels: Option<&std::collections::HashMap<String, String>>, running: bool, include_unknown: bool) -> bool {
    let process = labels.and_then(|l| l.get(labels::PROCESS));
    match process.map(|p| labels::liveness(p)) {
        Some(Liveness::Me) => false,
        Some(Liveness::Dead) => true,
        Some(Liveness::Alive) | Some(Liveness::Unknown) | None => include_unknown || !running,
    }
}

/// Removes sandbay-labelled containers whose owning process is gone (and
/// stopped ones), then sandbay volumes no live owner uses.
///
/// Sandboxes of this process and of other live processes on this machine
/// are kept, unless [`ReapOptions::include_unknown`] says otherwise.
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
        if !should_reap(c.labels.as_ref(), running, options.include_unknown) {
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
        if !should_reap(Some(&labels), true, options.include_unknown) {
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
