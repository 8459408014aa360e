//! MCP over streamable HTTP: each sandbay session has its own MCP
//! service (rmcp's `StreamableHttpService` over `sandbay_mcp::McpServer`),
//! reached only through the routes of its owner.
//!
//! The MCP sessions of one user, over all their sandbay sessions, are
//! capped (`limits.mcp_sessions_per_user`): a new one beyond is `429
//! limit_reached`. An MCP session counts until its client deletes it or
//! it has been idle for [`IDLE`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{Query, Request};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_core::Stream;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::session::{ServerSseMessage, SessionId};
use rmcp::transport::streamable_http_server::{
    RestoreOutcome, SessionManager, StreamableHttpServerConfig, StreamableHttpService,
};
use sandbay_mcp::McpServer;
use sandbay_middleware::Toolbox;
use serde::Deserialize;

use crate::error::ApiError;
use crate::routes::{AppState, Params, User};
use crate::sessions::Live;

/// An MCP session unused for this long ends (and stops counting).
pub(crate) const IDLE: Duration = Duration::from_secs(300);

type Service = StreamableHttpService<McpServer, Counted>;
/// A sandbay session's MCP service, its session manager, and the live
/// session its tools run on: held, so that an eviction cannot give the
/// user a second jail while MCP sessions still run on the first.
type Entry = (Service, Arc<Counted>, Arc<Live>);

/// The MCP services of the sessions that have been reached over MCP.
pub(crate) struct McpServices {
    services: Mutex<HashMap<(String, String), Entry>>,
    per_user: usize,
}

impl std::fmt::Debug for McpServices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpServices").finish_non_exhaustive()
    }
}

impl McpServices {
    /// No services yet; at most `per_user` MCP sessions per user.
    pub(crate) fn new(per_user: usize) -> Self {
        McpServices {
            services: Mutex::default(),
            per_user,
        }
    }

    fn get(&self, user: &str, id: &str, live: &Arc<Live>) -> Service {
        let mut services = self.services.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (user.to_owned(), id.to_owned());
        // the session's compute was replaced (it broke): a new service
        if services
            .get(&key)
            .is_some_and(|(_, _, held)| !Arc::ptr_eq(held, live))
        {
            services.remove(&key);
        }
        services
            .entry(key)
            .or_insert_with(|| {
                let toolbox: Toolbox = live.toolbox.clone();
                // Every request already carries the user's bearer key, which
                // a page of another origin cannot add: the Host allowlist
                // against DNS rebinding is not needed, and it would refuse
                // a server behind a proxy.
                let config = StreamableHttpServerConfig::default().disable_allowed_hosts();
                let manager = Arc::new(Counted::new());
                let service = StreamableHttpService::new(
                    move || Ok(McpServer::new(toolbox.clone())),
                    Arc::clone(&manager),
                    config,
                );
                (service, manager, Arc::clone(live))
            })
            .0
            .clone()
    }

    /// Lets go of the services without a live MCP session, and with them
    /// their hold on the sessions' compute (for an eviction).
    pub(crate) async fn forget_idle(&self) -> usize {
        let entries: Vec<((String, String), Arc<Counted>)> = self
            .services
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(k, (_, m, _))| (k.clone(), Arc::clone(m)))
            .collect();
        let mut forgotten = 0;
        for (key, manager) in entries {
            if manager.live().await == 0 {
                let mut services = self.services.lock().unwrap_or_else(PoisonError::into_inner);
                if services
                    .get(&key)
                    .is_some_and(|(_, m, _)| Arc::ptr_eq(m, &manager))
                {
                    services.remove(&key);
                    forgotten += 1;
                }
            }
        }
        forgotten
    }

    /// MCP sessions the user holds now, over all their sandbay sessions.
    async fn held_by(&self, user: &str) -> usize {
        let managers: Vec<Arc<Counted>> = self
            .services
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|((u, _), _)| u == user)
            .map(|(_, (_, m, _))| Arc::clone(m))
            .collect();
        let mut held = 0;
        for manager in managers {
            held += manager.live().await;
        }
        held
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
    let service = app.mcp.get(user, id, &live);
    // a POST without a session id starts a new MCP session
    let opens =
        request.method() == Method::POST && !request.headers().contains_key("mcp-session-id");
    if opens {
        let held = app.mcp.held_by(user).await;
        if held >= app.mcp.per_user {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "limit_reached",
                format!(
                    "you hold {held} MCP sessions, the most one user may; end one (DELETE with its Mcp-Session-Id) or let it idle out"
                ),
            ));
        }
    }
    let ends = request.method() == Method::DELETE;
    let response = service.handle(request).await.into_response();
    // rmcp answers an ended session with 202 Accepted; the session is gone
    // by then, so say so the way MCP clients expect (200 or 204)
    if ends && response.status() == StatusCode::ACCEPTED {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    Ok(response)
}

/// rmcp's in-memory session manager, with each session's last use, so
/// that the sessions a user holds can be counted and idle ones end.
pub(crate) struct Counted {
    inner: LocalSessionManager,
    used: Mutex<HashMap<SessionId, Instant>>,
}

impl Counted {
    fn new() -> Self {
        let mut inner = LocalSessionManager::default();
        inner.session_config.keep_alive = Some(IDLE);
        Counted {
            inner,
            used: Mutex::default(),
        }
    }

    fn touch(&self, id: &SessionId) {
        self.used
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.clone(), Instant::now());
    }

    /// Ends the sessions idle for [`IDLE`]; the number left.
    async fn live(&self) -> usize {
        let idle: Vec<SessionId> = {
            let mut used = self.used.lock().unwrap_or_else(PoisonError::into_inner);
            let idle: Vec<SessionId> = used
                .iter()
                .filter(|(_, at)| at.elapsed() >= IDLE)
                .map(|(id, _)| id.clone())
                .collect();
            for id in &idle {
                used.remove(id);
            }
            idle
        };
        for id in idle {
            let _ = self.inner.close_session(&id).await;
        }
        self.used
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

impl SessionManager for Counted {
    type Error = <LocalSessionManager as SessionManager>::Error;
    type Transport = <LocalSessionManager as SessionManager>::Transport;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        let (id, transport) = self.inner.create_session().await?;
        self.touch(&id);
        Ok((id, transport))
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        self.touch(id);
        self.inner.initialize_session(id, message).await
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        self.inner.has_session(id).await
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        self.used
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
        self.inner.close_session(id).await
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.touch(id);
        self.inner.create_stream(id, message).await
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), Self::Error> {
        self.touch(id);
        self.inner.accept_message(id, message).await
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.touch(id);
        self.inner.create_standalone_stream(id).await
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.touch(id);
        self.inner.resume(id, last_event_id).await
    }

    async fn restore_session(
        &self,
        id: SessionId,
    ) -> Result<RestoreOutcome<Self::Transport>, Self::Error> {
        self.inner.restore_session(id).await
    }
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
