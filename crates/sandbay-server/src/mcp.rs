//! MCP over streamable HTTP: each sandbay session has its own MCP
//! service (rmcp's `StreamableHttpService` over `sandbay_mcp::McpServer`),
//! reached only through the routes of its owner.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{Query, Request};
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use sandbay_mcp::McpServer;
use sandbay_middleware::Toolbox;
use serde::Deserialize;

use crate::error::ApiError;
use crate::routes::{AppState, Params, User};

type Service = StreamableHttpService<McpServer, LocalSessionManager>;

/// The MCP services of the sessions that have been reached over MCP.
#[derive(Default)]
pub(crate) struct McpServices {
    services: Mutex<HashMap<(String, String), Service>>,
}

impl std::fmt::Debug for McpServices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpServices").finish_non_exhaustive()
    }
}

impl McpServices {
    fn get(&self, user: &str, id: &str, toolbox: &Toolbox) -> Service {
        let mut services = self.services.lock().unwrap_or_else(PoisonError::into_inner);
        services
            .entry((user.to_owned(), id.to_owned()))
            .or_insert_with(|| {
                let toolbox = toolbox.clone();
                // Every request already carries the user's bearer key, which
                // a page of another origin cannot add: the Host allowlist
                // against DNS rebinding is not needed, and it would refuse
                // a server behind a proxy.
                let config = StreamableHttpServerConfig::default().disable_allowed_hosts();
                StreamableHttpService::new(
                    move || Ok(McpServer::new(toolbox.clone())),
                    Arc::new(LocalSessionManager::default()),
                    config,
                )
            })
            .clone()
    }

    /// Forgets a session's MCP service (the session was deleted).
    pub(crate) fn remove(&self, user: &str, id: &str) {
        self.services
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(user.to_owned(), id.to_owned()));
    }
}

async fn serve(
    app: &AppState,
    user: &str,
    id: &str,
    request: Request,
) -> Result<Response, ApiError> {
    let live = app.sessions.live(user, id).await?;
    let service = app.mcp.get(user, id, &live.toolbox);
    Ok(service.handle(request).await.into_response())
}

/// `/v1/sessions/{id}/mcp`: the MCP endpoint of an existing session.
pub(crate) async fn session_mcp(
    app: AppState,
    User(user): User,
    Params(id): Params<String>,
    request: Request,
) -> Result<Response, ApiError> {
    serve(&app, &user, &id, request).await
}

#[derive(Deserialize)]
pub(crate) struct Which {
    session: Option<String>,
}

/// `/v1/mcp?session={id}`: the MCP endpoint of a session, made on first
/// use (`default` when no id is given).
pub(crate) async fn default_mcp(
    app: AppState,
    User(user): User,
    Query(which): Query<Which>,
    request: Request,
) -> Result<Response, ApiError> {
    let id = which.session.unwrap_or_else(|| "default".to_owned());
    if !app.sessions.exists(&user, &id) {
        app.check_not_draining()?;
        app.sessions.create(&user, &id).await?;
    }
    serve(&app, &user, &id, request).await
}
