//! The output budget: a result over [`ToolConfig::max_output_bytes`] is
//! saved into the workspace and the model gets a preview and the path.

use sha2::{Digest, Sha256};

use sandbay_core::VPath;

use crate::config::ToolConfig;
use crate::format::{count, cut_line, line_count};
use crate::spec::ToolName;
use crate::toolbox::Toolbox;

/// Where a result of `tool` with this text is saved: the name is derived
/// from the content, so the same result always lands in the same file
/// and saving it twice is harmless.
pub(crate) fn result_path(config: &ToolConfig, tool: ToolName, text: &str) -> VPath {
    let digest = Sha256::digest(text.as_bytes());
    let id: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    let name = format!("{}-{id}.txt", tool.as_str());
    config
        .results_dir
        .child(&name)
        .unwrap_or_else(|| config.results_dir.clone())
}

/// Returns `text` if it fits the budget; otherwise saves it (deleting the
/// oldest saved results past [`crate::rotate::MAX_SAVED_RESULTS`]) and
/// returns a preview with the path.
pub(crate) async fn fit(tb: &Toolbox, tool: ToolName, text: String) -> String {
    let (backend, config) = (&*tb.backend, &*tb.config);
    if text.len() <= config.max_output_bytes {
        return text;
    }
    let path = result_path(config, tool, &text);
    // one save at a time per toolbox, so the index of saved results
    // stays whole
    let _saving = tb.saves.lock().await;
    let saved = backend.write(&path, &text).await;
    if saved.is_ok() {
        crate::rotate::after_save(backend, &config.results_dir, &path).await;
    }
    let lines: Vec<&str> = text.lines().collect();
    let head = config.preview_head_lines;
    let tail = config.preview_tail_lines;
    let chars = (config.max_output_bytes / (2 * (head + tail).max(1)))
        .clamp(80, config.max_line_chars.max(80));
    match saved {
        Ok(()) => {
            let mut out = format!(
                "[This result is {} in {}, over the {}-byte limit for one reply. \
It was saved whole to {path}: read it in parts with read_file (offset and limit) or search it with grep, \
or narrow this call.]",
                count(text.len(), "byte", "bytes"),
                count(line_count(&text), "line", "lines"),
                config.max_output_bytes,
            );
            if lines.len() <= head + tail {
                for line in &lines {
                    out.push('\n');
                    out.push_str(&cut_line(line, chars, false));
                }
            } else {
                for line in &lines[..head] {
                    out.push('\n');
                    out.push_str(&cut_line(line, chars, false));
                }
                out.push_str(&format!(
                    "\n[... {} not shown ...]",
                    count(lines.len() - head - tail, "line", "lines")
                ));
                for line in &lines[lines.len() - tail..] {
                    out.push('\n');
                    out.push_str(&cut_line(line, chars, false));
                }
            }
            out
        }
        Err(err) => {
            tracing::warn!(tool = tool.as_str(), error = %err, "could not save an oversized tool result");
            let mut out = format!(
                "[This result is {}, over the {}-byte limit for one reply, and saving it to {path} failed ({err}). \
Only its first lines are shown; narrow this call.]",
                count(text.len(), "byte", "bytes"),
                config.max_output_bytes,
            );
            for line in lines.iter().take(head) {
                out.push('\n');
                out.push_str(&cut_line(line, chars, false));
            }
            out
        }
    }
}
