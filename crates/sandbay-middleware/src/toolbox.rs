//! [`Toolbox`]: the tools bound to one workspace.

use std::sync::Arc;

use serde_json::Value;

use sandbay_core::{Backend, Error, Sandbox, VPath};

use crate::config::ToolConfig;
use crate::output::ToolOutput;
use crate::spec::{ToolName, ToolSpec};

/// The agent tools bound to one workspace.
///
/// Cheap to clone (the backend and config are shared). Build it over a
/// [`Backend`] for the file tools, or over a [`Sandbox`] to offer
/// `execute` too.
///
/// ```
/// # async fn demo(backend: std::sync::Arc<dyn sandbay_core::Backend>) {
/// use sandbay_middleware::Toolbox;
/// use serde_json::json;
///
/// let tools = Toolbox::new(backend);
/// let specs = tools.specs(); // hand these to the model
/// let out = tools.call("read_file", json!({"file_path": "/notes.md"})).await;
/// println!("{} (error: {})", out.text, out.is_error);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Toolbox {
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) sandbox: Option<Arc<dyn Sandbox>>,
    pub(crate) config: Arc<ToolConfig>,
    pub(crate) in_flight: Arc<crate::batch::InFlight>,
    /// Held while an oversized result is saved (see `rotate`).
    pub(crate) saves: Arc<futures_util::lock::Mutex<()>>,
}

impl Toolbox {
    /// The file tools over `backend`; `execute` is not offered.
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        Toolbox {
            backend,
            sandbox: None,
            config: Arc::new(ToolConfig::default()),
            in_flight: Arc::default(),
            saves: Arc::default(),
        }
    }

    /// The file tools and `execute` over `sandbox`.
    pub fn with_sandbox(sandbox: Arc<dyn Sandbox>) -> Self {
        // `Arc<dyn Sandbox>` is itself a `Backend` (sandbay-core forwards
        // the trait through `Arc`), which avoids trait upcasting.
        let backend: Arc<dyn Backend> = Arc::new(Arc::clone(&sandbox));
        Toolbox {
            backend,
            sandbox: Some(sandbox),
            config: Arc::new(ToolConfig::default()),
            in_flight: Arc::default(),
            saves: Arc::default(),
        }
    }

    /// Replaces the limits and defaults.
    pub fn with_config(mut self, config: ToolConfig) -> Self {
        self.config = Arc::new(config);
        self
    }

    /// The limits and defaults in force.
    pub fn config(&self) -> &ToolConfig {
        &self.config
    }

    /// The workspace the tools work on.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// The tools offered: all of [`ToolName::ALL`], without `execute`
    /// unless built over a sandbox.
    pub fn tools(&self) -> Vec<ToolName> {
        ToolName::ALL
            .into_iter()
            .filter(|t| *t != ToolName::Execute || self.sandbox.is_some())
            .collect()
    }

    /// The specs of the offered tools (plain JSON Schemas).
    pub fn specs(&self) -> Vec<ToolSpec> {
        self.tools()
            .into_iter()
            .map(|t| t.spec(&self.config))
            .collect()
    }

    /// The specs of the offered tools for strict function calling (see
    /// [`ToolName::strict_spec`]).
    pub fn strict_specs(&self) -> Vec<ToolSpec> {
        self.tools()
            .into_iter()
            .map(|t| t.strict_spec(&self.config))
            .collect()
    }

    /// Runs one tool call. Never panics on any input: bad arguments,
    /// unknown tools and backend failures all come back as an error
    /// output.
    pub async fn call(&self, name: &str, args: Value) -> ToolOutput {
        let out = match ToolName::parse(name) {
            Some(tool) => self.call_tool(tool, args).await,
            None => ToolOutput::error(&Error::invalid_argument(format!(
                "unknown tool `{name}`; the tools are: {}",
                self.tools()
                    .iter()
                    .map(|t| t.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        };
        tracing::debug!(
            tool = name,
            is_error = out.is_error,
            bytes = out.text.len(),
            "tool call"
        );
        out
    }

    /// Runs one call of a known tool.
    pub async fn call_tool(&self, tool: ToolName, args: Value) -> ToolOutput {
        match crate::tools::run(self, tool, args).await {
            Ok(text) => ToolOutput::ok(text),
            Err(failed) => ToolOutput::error_with_hint(&failed.error, failed.hint),
        }
    }
}

/// A failed call: the error and an optional hint line.
#[derive(Debug)]
pub(crate) struct Failed {
    pub(crate) error: Error,
    pub(crate) hint: Option<String>,
}

impl From<Error> for Failed {
    fn from(error: Error) -> Self {
        Failed { error, hint: None }
    }
}

impl From<sandbay_core::PathError> for Failed {
    fn from(error: sandbay_core::PathError) -> Self {
        Failed {
            error: error.into(),
            hint: None,
        }
    }
}

/// Parses a required path argument.
pub(crate) fn path_arg(raw: &str) -> Result<VPath, Failed> {
    Ok(VPath::parse(raw)?)
}

/// Parses an optional directory argument: missing or empty means `/`.
pub(crate) fn dir_arg(raw: Option<&str>) -> Result<VPath, Failed> {
    match raw {
        None | Some("") => Ok(VPath::root()),
        Some(raw) => path_arg(raw),
    }
}
