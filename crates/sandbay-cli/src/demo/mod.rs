//! `sandbay demo`: the requirement's multi-user scenario, run live on
//! every backend available here, printed as one table.
//!
//! Users A and B, two sessions each, write the same path with different
//! content; each reads back, lists and greps. Where a backend can run
//! commands, probes check processes, `/tmp`, a bounded fork bomb, a
//! memory hog, the network and host files. Every cell is measured now,
//! and is a verdict only with evidence (see [`probes`]); otherwise it says
//! `not proven: <why>`. The footer says what each sandbox enforces, read
//! from its jail or from inside its container.
//!
//! Faults can be injected to check that: `SANDBAY_DEMO_LEVEL=limits` (a
//! level without namespaces), `SANDBAY_DEMO_PROBE_PATH=<empty dir>` (no
//! network probe tool), `SANDBAY_DEMO_DOCKER=0` (no Docker column).

mod probes;
mod restart;
mod table;
mod targets;

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use probes::Scenario;
pub(crate) use probes::Workspace;
use table::Table;

/// What [`Target::warm_start`] returns: the time to take a ready
/// workspace, when the target has a warm pool.
pub(crate) type WarmStart<'a> =
    Pin<Box<dyn Future<Output = Option<Result<Duration, String>>> + Send + 'a>>;

/// A backend the demo can open workspaces on.
pub(crate) trait Target: Send + Sync {
    /// Column title.
    fn name(&self) -> String;
    /// Opens (or creates) the workspace of `user`/`session`.
    fn open<'a>(
        &'a self,
        user: &'a str,
        session: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<Workspace, String>> + Send + 'a>>;
    /// Releases everything the target created.
    fn close(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async {})
    }
    /// How long taking a ready workspace from a warm pool takes, for
    /// targets whose workspaces are slow to make.
    fn warm_start(&self) -> WarmStart<'_> {
        Box::pin(async { None })
    }
    /// The "files after eviction and restart" cell, measured live on a
    /// store of the target's own kind.
    fn files_after_restart(&self) -> Pin<Box<dyn Future<Output = String> + Send + '_>>;
}

type Probe = for<'a> fn(&'a Scenario) -> Pin<Box<dyn Future<Output = String> + Send + 'a>>;

fn rows() -> Vec<(&'static str, Probe)> {
    vec![
        ("files: users A and B", |s| {
            Box::pin(probes::users_isolated(s))
        }),
        ("files: sessions 1 and 2", |s| {
            Box::pin(probes::sessions_isolated(s))
        }),
        ("ls and grep", |s| Box::pin(probes::listing_scoped(s))),
        ("path escapes", |s| Box::pin(probes::escapes(s))),
        ("file op latency", |s| Box::pin(probes::file_latency(&s.a1))),
        ("workspace start-up", |s| Box::pin(probes::startup(s))),
        ("commands", |s| {
            let cell = probes::command_level(&s.a1);
            Box::pin(async move { cell })
        }),
        ("processes (ps in A)", |s| Box::pin(probes::processes(s))),
        ("/tmp (rm in A)", |s| Box::pin(probes::tmp_shared(s))),
        ("fork bomb in A", |s| Box::pin(probes::fork_bomb(s))),
        ("memory hog in A (1 GiB)", |s| {
            Box::pin(probes::memory_hog(s))
        }),
        ("network (host 127.0.0.1)", |s| Box::pin(probes::network(s))),
        ("host files outside", |s| Box::pin(probes::host_files(s))),
        ("disk quota", |s| Box::pin(probes::disk_quota(s))),
    ]
}

/// The row measured on a store of its own rather than on the scenario.
const RESTART_ROW: &str = "files after eviction and restart";

async fn scenario(target: &dyn Target) -> Result<Scenario, String> {
    let mut opened = Vec::new();
    let mut open = async |user: &str, session: &str| {
        let start = Instant::now();
        let ws = target.open(user, session).await;
        opened.push(start.elapsed());
        ws
    };
    let (a1, a2) = (
        open("user-a", "session-1").await?,
        open("user-a", "session-2").await?,
    );
    let (b1, b2) = (
        open("user-b", "session-1").await?,
        open("user-b", "session-2").await?,
    );
    Ok(Scenario {
        a1,
        a2,
        b1,
        b2,
        opened,
        warm: target.warm_start().await,
    })
}

/// Runs the demo and returns the rendered table.
pub(crate) async fn run() -> Result<String, String> {
    let mut targets = targets::available().await;
    let mut table = Table::default();
    let probes = rows();
    let mut columns: Vec<Vec<String>> = Vec::new();
    let mut footer: Vec<String> = Vec::new();
    for (target, note) in &mut targets {
        let name = target.name();
        eprintln!(
            "demo: probing {name}{}",
            note.as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default()
        );
        table.columns.push(name.clone());
        let mut enforced = None;
        let cells: Vec<String> = match scenario(target.as_ref()).await {
            Err(e) => probes.iter().map(|_| format!("error: {e}")).collect(),
            Ok(s) => {
                enforced = probes::enforced(&s.a1).await;
                let mut cells = Vec::new();
                match probes::seed(&s).await {
                    Err(e) => cells.extend(probes.iter().map(|_| format!("error: {e}"))),
                    Ok(()) => {
                        for (_, probe) in &probes {
                            cells.push(probe(&s).await);
                        }
                    }
                }
                cells
            }
        };
        let mut cells = cells;
        cells.push(target.files_after_restart().await);
        target.close().await;
        columns.push(cells);
        if let Some(line) = enforced {
            footer.push(format!("{name}: {line}"));
        }
    }
    let labels = probes.iter().map(|(label, _)| *label).chain([RESTART_ROW]);
    for (i, label) in labels.enumerate() {
        table.rows.push((
            label.to_string(),
            columns.iter().map(|c| c[i].clone()).collect(),
        ));
    }
    let mut out = table.render();
    for (target, note) in &targets {
        if let Some(note) = note {
            out.push_str(&format!("\n{}: {note}", target.name()));
        }
    }
    for line in footer {
        out.push_str(&format!("\n{line}"));
    }
    Ok(out)
}
