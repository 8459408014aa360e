//! [`McpServer`]: the rmcp handler over a [`Toolbox`].

use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
    ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler, ServiceExt};
use serde_json::Value;

use sandbay_middleware::{ToolName, ToolOutput, Toolbox};

use crate::error::ServeError;

/// An MCP server exposing the tools of one [`Toolbox`].
///
/// `tools/list` gives the toolbox's specs (plain JSON Schemas) with
/// annotations (read-only, destructive, idempotent); `tools/call` runs
/// [`Toolbox::call_guarded`] and returns its text as one text content
/// block, with `isError` set for failures. An unknown tool name is a
/// JSON-RPC `invalid params` error, as the MCP specification asks.
#[derive(Debug, Clone)]
pub struct McpServer {
    toolbox: Toolbox,
    tools: Arc<Vec<Tool>>,
}

impl McpServer {
    /// A server for the tools of `toolbox`.
    pub fn new(toolbox: Toolbox) -> Self {
        let tools = toolbox
            .tools()
            .into_iter()
            .map(|t| mcp_tool(&toolbox, t))
            .collect();
        McpServer {
            toolbox,
            tools: Arc::new(tools),
        }
    }

    /// The toolbox behind the server.
    pub fn toolbox(&self) -> &Toolbox {
        &self.toolbox
    }

    /// The tools as MCP tool definitions.
    pub fn tools(&self) -> &[Tool] {
        &self.tools
    }

    /// Serves one client over this process's standard input and output
    /// until the client closes the connection.
    ///
    /// Nothing else may write to standard output meanwhile; send logs to
    /// standard error.
    ///
    /// # Errors
    ///
    /// [`ServeError`] if the session cannot start or ends abnormally.
    pub async fn serve_stdio(self) -> Result<(), ServeError> {
        let (stdin, stdout) = rmcp::transport::stdio();
        self.serve(stdin, stdout).await
    }

    /// Serves one client over any byte stream pair (a pipe, a socket, an
    /// in-memory duplex in tests) until it closes.
    ///
    /// # Errors
    ///
    /// [`ServeError`] if the session cannot start or ends abnormally.
    pub async fn serve<R, W>(self, read: R, write: W) -> Result<(), ServeError>
    where
        R: tokio::io::AsyncRead + Send + Unpin + 'static,
        W: tokio::io::AsyncWrite + Send + Unpin + 'static,
    {
        let backend = self.toolbox.backend().name();
        tracing::info!(backend, tools = self.tools.len(), "MCP server starting");
        let running = ServiceExt::serve(self, (read, write))
            .await
            .map_err(|e| ServeError::Initialize(e.to_string()))?;
        let reason = running
            .waiting()
            .await
            .map_err(|e| ServeError::Stopped(e.to_string()))?;
        tracing::info!(?reason, "MCP session ended");
        Ok(())
    }

    fn instructions(&self) -> String {
        let shell = if self.toolbox.tools().contains(&ToolName::Execute) {
            " Use execute for running programs, not for reading or searching files."
        } else {
            ""
        };
        format!(
            "Tools for one sandbay workspace ({} backend). Paths are absolute paths inside the workspace, \
starting at /. Read a file before editing it; use grep and glob to search.{shell}",
            self.toolbox.backend().name()
        )
    }
}

/// The MCP definition of one tool: name, description, input schema and
/// behaviour hints.
fn mcp_tool(toolbox: &Toolbox, tool: ToolName) -> Tool {
    let spec = tool.spec(toolbox.config());
    let schema = match spec.parameters {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    let (title, read_only, destructive, idempotent) = match tool {
        ToolName::Ls => ("List a directory", true, false, true),
        ToolName::ReadFile => ("Read a file", true, false, true),
        ToolName::WriteFile => ("Write a file", false, true, true),
        ToolName::EditFile => ("Edit a file", false, true, false),
        ToolName::Delete => ("Delete a file or directory", false, true, true),
        ToolName::Glob => ("Find files by pattern", true, false, true),
        ToolName::Grep => ("Search file contents", true, false, true),
        ToolName::Execute => ("Run a shell command", false, true, false),
    };
    let mut annotations = ToolAnnotations::with_title(title).read_only(read_only);
    if !read_only {
        annotations = annotations.destructive(destructive).idempotent(idempotent);
    }
    if tool != ToolName::Execute {
        annotations = annotations.open_world(false);
    }
    Tool::new(spec.name, spec.description, Arc::new(schema))
        .with_title(title)
        .with_annotations(annotations)
}

/// The MCP result of a tool output: one text block, `isError` on failure.
pub fn call_result(out: ToolOutput) -> CallToolResult {
    let content = vec![ContentBlock::text(out.text)];
    if out.is_error {
        CallToolResult::error(content)
    } else {
        CallToolResult::success(content)
    }
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("sandbay", env!("CARGO_PKG_VERSION")))
            .with_instructions(self.instructions())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(self.tools.to_vec()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let name = request.name.as_ref();
        if ToolName::parse(name).is_none() {
            let known: Vec<&str> = self.tools.iter().map(|t| t.name.as_ref()).collect();
            return Err(McpError::invalid_params(
                format!("unknown tool `{name}`; the tools are: {}", known.join(", ")),
                None,
            ));
        }
        let args = request.arguments.map(Value::Object).unwrap_or(Value::Null);
        let out = self.toolbox.call_guarded(name, args).await;
        Ok(call_result(out).into())
    }
}
