//! The tools as [`rig`](https://docs.rs/rig-core/0.44) tools (feature `rig`).
//!
//! rig-core 0.44 defines tools, messages and models; the agent loop is the
//! caller's (or a companion runtime's). [`Toolbox::rig_tools`] gives each
//! tool as a [`DynamicTool`] (definition plus handler) for any rig
//! registry, and [`Toolbox::answer_rig_calls`] answers the tool calls of
//! one model turn through [`Toolbox::call_batch`], so parallel calls get
//! the same-path guard.
//!
//! The texts are the toolbox's own: a failed call becomes a
//! [`ToolExecutionError`] whose model-visible output is the exact
//! `Error: ...` text, and a tool result with `is_error` set.
//!
//! ```no_run
//! # async fn demo(toolbox: sandbay_middleware::Toolbox,
//! #               model: rig_core::DynModel<rig_core::operation::Completion>)
//! #               -> Result<(), rig_core::ProviderError> {
//! use rig_core::completion::CompletionRequest;
//!
//! let mut request = CompletionRequest::new("Fix the typo in /README.md");
//! request.tools = toolbox.rig_definitions();
//! loop {
//!     let response = model.call(request.clone()).await?;
//!     request.chat_history.extend(response.message());
//!     if response.tool_calls().next().is_none() {
//!         break; // the model answered in text
//!     }
//!     request.chat_history.push(toolbox.answer_rig_calls(response.tool_calls()).await);
//! }
//! # Ok(()) }
//! ```

use rig_core::completion::ToolDefinition;
use rig_core::message::{Message, ToolCall, ToolResultContent};
use rig_core::tool::{DynamicTool, ToolErrorKind, ToolExecutionError, ToolOutput as RigOutput};

use sandbay_core::ErrorCode;

use crate::output::ToolOutput;
use crate::spec::ToolName;
use crate::toolbox::Toolbox;

/// The rig error kind closest to a sandbay error code.
fn kind(code: Option<ErrorCode>) -> ToolErrorKind {
    match code {
        Some(ErrorCode::InvalidPath | ErrorCode::InvalidArgument) => ToolErrorKind::InvalidArgs,
        Some(ErrorCode::NotFound) => ToolErrorKind::NotFound,
        Some(ErrorCode::PermissionDenied) => ToolErrorKind::PermissionDenied,
        Some(ErrorCode::Timeout) => ToolErrorKind::Timeout,
        _ => ToolErrorKind::Other,
    }
}

/// A toolbox output as a rig result: the text, or an error carrying it.
fn to_rig(out: ToolOutput) -> Result<RigOutput, ToolExecutionError> {
    if out.is_error {
        let mut error = ToolExecutionError::new(kind(out.code), out.text.clone())
            .with_model_output(RigOutput::text(out.text));
        if let Some(code) = out.code {
            error = error.with_code(code.as_str());
        }
        Err(error)
    } else {
        Ok(RigOutput::text(out.text))
    }
}

fn rig_name(tool: ToolName) -> rig_core::message::ToolName {
    rig_core::message::ToolName::new(tool.as_str())
        .unwrap_or_else(|_| unreachable!("tool names are never empty"))
}

impl Toolbox {
    /// The definitions (name, description, JSON Schema) of the offered
    /// tools, for a rig `CompletionRequest`'s `tools`.
    pub fn rig_definitions(&self) -> Vec<ToolDefinition> {
        self.specs()
            .into_iter()
            .zip(self.tools())
            .map(|(spec, tool)| ToolDefinition {
                name: rig_name(tool),
                description: spec.description,
                parameters: spec.parameters,
            })
            .collect()
    }

    /// The offered tools as rig [`DynamicTool`]s, each calling this
    /// toolbox.
    pub fn rig_tools(&self) -> Vec<DynamicTool> {
        self.rig_definitions()
            .into_iter()
            .zip(self.tools())
            .map(|(def, tool)| {
                let toolbox = self.clone();
                DynamicTool::new(def.name, def.description, def.parameters, move |args| {
                    let toolbox = toolbox.clone();
                    Box::pin(async move { to_rig(toolbox.call(tool.as_str(), args).await) })
                })
            })
            .collect()
    }

    /// Runs the tool calls of one model turn as a batch and returns the
    /// user message that answers them, results in call order, failures
    /// marked `is_error`.
    pub async fn answer_rig_calls<'a>(
        &self,
        calls: impl IntoIterator<Item = &'a ToolCall>,
    ) -> Message {
        let calls: Vec<&ToolCall> = calls.into_iter().collect();
        let batch = calls
            .iter()
            .map(|c| {
                (
                    c.function.name.as_str().to_owned(),
                    serde_json::Value::Object(c.function.arguments.clone()),
                )
            })
            .collect();
        let outputs = self.call_batch(batch).await;
        let results = calls
            .into_iter()
            .zip(outputs)
            .map(|(call, out)| {
                let content = vec![ToolResultContent::text(out.text)];
                if out.is_error {
                    call.error_result(content)
                } else {
                    call.result(content)
                }
            })
            .collect();
        Message::tool_results(results)
    }
}
