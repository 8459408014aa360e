//! Parallel tool calls, with a guard against two changes to one path.
//!
//! Models often emit several tool calls at once. Reads may run in any
//! order, but two calls that change the same path (or a path and a
//! directory above it) would race: the later write silently undoes the
//! earlier edit. In one batch the first such call runs and the others are
//! refused with a clear error, so the model repeats them afterwards.
//!
//! Callers that receive calls one by one but run them concurrently (an
//! MCP server) use [`Toolbox::call_guarded`], which applies the same rule
//! to the calls running at the same moment.

use std::sync::Mutex;

use futures_util::future::join_all;
use serde_json::Value;

use sandbay_core::{Error, VPath};

use crate::output::ToolOutput;
use crate::spec::ToolName;
use crate::toolbox::Toolbox;

/// The path a call would change, if it is a mutating call with a valid
/// path (a call with a bad path fails on its own).
fn target(name: &str, args: &Value) -> Option<(ToolName, VPath)> {
    let tool = ToolName::parse(name).filter(|t| t.is_mutating())?;
    let object = match args {
        Value::String(text) => serde_json::from_str::<Value>(text).ok()?,
        other => other.clone(),
    };
    let raw = object.get("file_path")?.as_str()?;
    Some((tool, VPath::parse(raw).ok()?))
}

fn overlaps(a: &VPath, b: &VPath) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// Mutating calls running right now through [`Toolbox::call_guarded`].
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    running: Mutex<Vec<(u64, ToolName, VPath)>>,
    next: std::sync::atomic::AtomicU64,
}

/// Removes its entry from [`InFlight`] when the call ends or is dropped.
struct Claim<'a> {
    set: &'a InFlight,
    id: u64,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        let mut running = self.set.running.lock().unwrap_or_else(|e| e.into_inner());
        running.retain(|(id, _, _)| *id != self.id);
    }
}

impl InFlight {
    /// Claims `path` for `tool`, or says which running call holds it.
    fn claim(&self, tool: ToolName, path: VPath) -> Result<Claim<'_>, (ToolName, VPath)> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, t, p)) = running.iter().find(|(_, _, p)| overlaps(&path, p)) {
            return Err((*t, p.clone()));
        }
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        running.push((id, tool, path));
        Ok(Claim { set: self, id })
    }
}

impl Toolbox {
    /// Runs one call, refusing a change to a path that another call
    /// started through this method (on this toolbox or a clone) is still
    /// changing.
    ///
    /// For callers that run calls concurrently as they arrive, such as an
    /// MCP server; non-mutating calls run as with [`Toolbox::call`].
    pub async fn call_guarded(&self, name: &str, args: Value) -> ToolOutput {
        let Some((tool, path)) = target(name, &args) else {
            return self.call(name, args).await;
        };
        match self.in_flight.claim(tool, path.clone()) {
            Ok(_claim) => self.call(name, args).await,
            Err((other_tool, other_path)) => ToolOutput::error(&Error::invalid_argument(format!(
                "another call that is still running ({other_tool} on {other_path}) already changes {path}; \
parallel changes to one path are refused so that none is lost. \
Repeat this {tool} call on its own once that one has finished"
            ))),
        }
    }

    /// Runs a batch of calls concurrently and returns one output per
    /// call, in order.
    ///
    /// When two calls would change the same path (`write_file`,
    /// `edit_file` or `delete` on one path, or on a path and a directory
    /// above it), the first one runs and the later ones are refused
    /// without touching anything.
    pub async fn call_batch(&self, calls: Vec<(String, Value)>) -> Vec<ToolOutput> {
        let mut claimed: Vec<(ToolName, VPath)> = Vec::new();
        let mut refused: Vec<Option<ToolOutput>> = Vec::with_capacity(calls.len());
        for (name, args) in &calls {
            let verdict = target(name, args).and_then(|(tool, path)| {
                match claimed.iter().find(|(_, other)| overlaps(&path, other)) {
                    Some((other_tool, other_path)) => Some(ToolOutput::error(
                        &Error::invalid_argument(format!(
                            "another call in this batch ({other_tool} on {other_path}) already changes {path}; \
parallel changes to one path are refused so that none is lost. \
Repeat this {tool} call on its own once that one has finished"
                        )),
                    )),
                    None => {
                        claimed.push((tool, path));
                        None
                    }
                }
            });
            refused.push(verdict);
        }
        let runs = calls
            .into_iter()
            .zip(refused)
            .map(|((name, args), verdict)| async move {
                match verdict {
                    Some(out) => out,
                    None => self.call(&name, args).await,
                }
            });
        join_all(runs).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn targets() {
        let t = target("edit_file", &json!({"file_path": "a/./b"})).unwrap();
        assert_eq!((t.0, t.1.as_str()), (ToolName::EditFile, "/a/b"));
        assert!(target("read_file", &json!({"file_path": "/a"})).is_none());
        assert!(target("delete", &json!({"file_path": "../x"})).is_none());
        assert!(target("write_file", &json!("{\"file_path\": \"/q\"}")).is_some());
        let a = VPath::parse("/src").unwrap();
        let b = VPath::parse("/src/a.rs").unwrap();
        let c = VPath::parse("/srcx").unwrap();
        assert!(overlaps(&a, &b) && overlaps(&b, &a) && !overlaps(&a, &c));
    }

    #[tokio::test]
    async fn running_changes_block_overlapping_ones() {
        let backend = std::sync::Arc::new(sandbay_state::StateBackend::default());
        let tb = Toolbox::new(backend);
        let dir = VPath::parse("/src").unwrap();
        let claim = tb.in_flight.claim(ToolName::Delete, dir.clone()).unwrap();
        assert!(tb.in_flight.claim(ToolName::Delete, dir.clone()).is_err());
        let out = tb
            .call_guarded("write_file", json!({"file_path": "/src/a", "content": "x"}))
            .await;
        assert_eq!(
            out.text,
            "Error: invalid argument: another call that is still running (delete on /src) already changes /src/a; \
parallel changes to one path are refused so that none is lost. Repeat this write_file call on its own once that one has finished"
        );
        // other paths and reads are not held up
        let out = tb
            .call_guarded("write_file", json!({"file_path": "/b", "content": "x"}))
            .await;
        assert_eq!(out.text, "Wrote 1 byte (1 line) to /b.");
        assert!(!tb.call_guarded("ls", json!({"path": "/"})).await.is_error);
        drop(claim);
        let out = tb
            .call_guarded("write_file", json!({"file_path": "/src/a", "content": "x"}))
            .await;
        assert_eq!(out.text, "Wrote 1 byte (1 line) to /src/a.");
        assert!(tb.in_flight.running.lock().unwrap().is_empty());
    }
}
