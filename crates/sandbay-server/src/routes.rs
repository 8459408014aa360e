//! The HTTP routes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post, put};
use axum::{Json, Router};
use base64::Engine;
use sandbay_core::{Backend, EntryKind, ExecRequest, VPath};
use sandbay_middleware::{ToolName, ToolOutput};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::auth::{Caller, KeyStore};
use crate::config::ServerLimits;
use crate::error::ApiError;
use crate::sessions::{SessionInfo, Sessions};

/// What every handler shares.
#[derive(Debug)]
pub(crate) struct App {
    pub(crate) sessions: Sessions,
    pub(crate) metrics: crate::metrics::Metrics,
    /// Set by `POST /v1/admin/drain`: no new session is made.
    draining: std::sync::atomic::AtomicBool,
    pub(crate) mcp: crate::mcp::McpServices,
    pub(crate) keys: KeyStore,
    pub(crate) limits: ServerLimits,
    pub(crate) connections: crate::config::ConnectionLimits,
    permits: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl App {
    pub(crate) fn new(
        sessions: Sessions,
        keys: KeyStore,
        limits: ServerLimits,
        connections: crate::config::ConnectionLimits,
    ) -> App {
        App {
            sessions,
            metrics: crate::metrics::Metrics::default(),
            draining: std::sync::atomic::AtomicBool::new(false),
            mcp: crate::mcp::McpServices::new(limits.mcp_sessions_per_user),
            keys,
            limits,
            connections,
            permits: Mutex::default(),
        }
    }

    /// Refuses new sessions while the server drains.
    pub(crate) fn check_not_draining(&self) -> Result<(), ApiError> {
        if self.draining.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the server is draining: no new sessions",
            ));
        }
        Ok(())
    }

    /// A place among the user's requests in progress, if one is free.
    fn permit(&self, user: &str) -> Option<OwnedSemaphorePermit> {
        let semaphore = self
            .permits
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(user.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(self.limits.concurrent_per_user)))
            .clone();
        semaphore.try_acquire_owned().ok()
    }
}

pub(crate) type AppState = State<Arc<App>>;

/// The router of the whole API, over `app`.
pub(crate) fn router(app: Arc<App>) -> Router {
    let body_limit = app.limits.body_bytes;
    let v1 = Router::new()
        .route("/sessions", get(list_sessions))
        .route(
            "/sessions/{id}",
            put(create_session).get(get_session).delete(delete_session),
        )
        .route("/tools", get(list_tools))
        .route("/sessions/{id}/tools", post(call_batch))
        .route("/sessions/{id}/tools/{name}", post(call_tool))
        .route("/sessions/{id}/files", get(get_root))
        .route("/sessions/{id}/files/", get(get_root))
        .route(
            "/sessions/{id}/files/{*path}",
            get(get_file).put(put_file).delete(delete_file),
        )
        .route("/sessions/{id}/exec", post(exec))
        .route("/sessions/{id}/mcp", any(crate::mcp::session_mcp))
        .route("/mcp", any(crate::mcp::default_mcp))
        .route("/admin/sessions", get(admin_sessions))
        .route("/admin/evict", post(admin_evict))
        .route("/admin/drain", post(admin_drain))
        .route_layer(middleware::from_fn_with_state(app.clone(), authenticate))
        .fallback(not_found);
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/v1/openapi.json",
            get(|| async { Json(crate::openapi::document()) }),
        )
        .route("/readyz", get(ready))
        .route(
            "/metrics",
            get(metrics).route_layer(middleware::from_fn_with_state(app.clone(), authenticate)),
        )
        .nest("/v1", v1)
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            app.clone(),
            crate::metrics::record,
        ))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(app)
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Ready {
    ready: bool,
    sessions: usize,
    live: usize,
    isolation: &'static str,
}

#[utoipa::path(get, path = "/readyz", tag = "health", responses((status = 200, description = "ready", body = Ready), (status = 503, description = "draining", body = Ready)))]
pub(crate) async fn ready(State(app): AppState) -> (StatusCode, Json<Ready>) {
    let draining = app.draining.load(std::sync::atomic::Ordering::Relaxed);
    let status = if draining {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (
        status,
        Json(Ready {
            ready: !draining,
            sessions: app.sessions.total(),
            live: app.sessions.live_count(),
            isolation: app.sessions.isolation().as_str(),
        }),
    )
}

/// The admin key's caller.
pub(crate) struct Admin;

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        match parts.extensions.get::<Caller>() {
            Some(Caller::Admin) => Ok(Admin),
            Some(Caller::User(_)) => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this route needs the admin key",
            )),
            None => Err(ApiError::unauthorized("no credentials")),
        }
    }
}

#[utoipa::path(get, path = "/metrics", tag = "admin", security(("bearer" = [])), responses((status = 200, description = "Prometheus text", content_type = "application/openmetrics-text"), (status = 401, body = ApiError), (status = 403, body = ApiError)))]
pub(crate) async fn metrics(State(app): AppState, _: Admin) -> Response {
    let text = app
        .metrics
        .render(app.sessions.total(), app.sessions.live_count());
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct AdminSession {
    user: String,
    id: String,
    loaded: bool,
}

#[utoipa::path(get, path = "/v1/admin/sessions", tag = "admin", security(("bearer" = [])), responses((status = 200, description = "every user's sessions: {\"sessions\": [{user, id, loaded}]}"), (status = 403, body = ApiError)))]
pub(crate) async fn admin_sessions(
    State(app): AppState,
    _: Admin,
) -> Result<Json<Value>, ApiError> {
    let sessions: Vec<AdminSession> = app
        .sessions
        .all()?
        .into_iter()
        .map(|(user, info)| AdminSession {
            user,
            id: info.id,
            loaded: info.loaded,
        })
        .collect();
    Ok(Json(serde_json::json!({ "sessions": sessions })))
}

#[utoipa::path(post, path = "/v1/admin/evict", tag = "admin", security(("bearer" = [])), responses((status = 200, description = "{\"evicted\": N}: compute ended, files kept"), (status = 403, body = ApiError)))]
pub(crate) async fn admin_evict(State(app): AppState, _: Admin) -> Result<Json<Value>, ApiError> {
    // MCP services that no MCP session uses let go of their compute first
    app.mcp.forget_idle().await;
    let unloaded = app.sessions.evict_idle().await?;
    app.metrics.evicted(unloaded);
    Ok(Json(serde_json::json!({ "evicted": unloaded })))
}

#[utoipa::path(post, path = "/v1/admin/drain", tag = "admin", security(("bearer" = [])), responses((status = 200, description = "{\"draining\": true}"), (status = 403, body = ApiError)))]
pub(crate) async fn admin_drain(State(app): AppState, _: Admin) -> Json<Value> {
    app.draining
        .store(true, std::sync::atomic::Ordering::Relaxed);
    app.sessions.flush().await.ok();
    Json(serde_json::json!({ "draining": true }))
}

/// Authenticates, and holds one of the user's places for the request:
/// until its response body has been sent or dropped, so a streamed reply
/// (command output, MCP) holds its place for as long as it lasts.
async fn authenticate(State(app): AppState, mut request: Request, next: Next) -> Response {
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let caller = match app.keys.authenticate(header) {
        Ok(caller) => caller,
        Err(e) => return e.into_response(),
    };
    let permit = match &caller {
        Caller::User(user) => match app.permit(user) {
            Some(p) => Some(p),
            None => {
                return ApiError::rate_limited(
                    format!(
                        "you have {} requests in progress, the most at once; retry when one ends",
                        app.limits.concurrent_per_user
                    ),
                    1,
                )
                .into_response();
            }
        },
        Caller::Admin => None,
    };
    request.extensions_mut().insert(caller);
    let response = next.run(request).await;
    match permit {
        Some(permit) => response.map(|body| {
            axum::body::Body::new(HoldingBody {
                inner: body,
                _permit: permit,
            })
        }),
        None => response,
    }
}

/// A response body that holds a place among the user's requests in
/// progress until it is sent or dropped.
struct HoldingBody {
    inner: axum::body::Body,
    _permit: OwnedSemaphorePermit,
}

impl http_body::Body for HoldingBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The user a user route acts for.
pub(crate) struct User(pub(crate) String);

impl<S: Send + Sync> FromRequestParts<S> for User {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        match parts.extensions.get::<Caller>() {
            Some(Caller::User(user)) => Ok(User(user.clone())),
            Some(Caller::Admin) => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "the admin key acts on admin routes only; use a user's key",
            )),
            None => Err(ApiError::unauthorized("no credentials")),
        }
    }
}

/// Path parameters, with JSON errors.
pub(crate) struct Params<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Params(p.0))
            .map_err(|e: PathRejection| {
                ApiError::bad_request(format!("bad path: {}", e.body_text()))
            })
    }
}

/// A JSON body, with JSON errors (400 malformed or wrong types, 413 too
/// large, 415 not JSON).
pub(crate) struct Body<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(JsonRejection::BytesRejection(e)) => Err(bytes_error(e)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "invalid_argument",
                "send the body as JSON with `Content-Type: application/json`",
            )),
            Err(e) => Err(ApiError::bad_request(e.body_text())),
        }
    }
}

fn bytes_error(e: BytesRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "the request body is larger than this server accepts",
        )
    } else {
        ApiError::bad_request(e.body_text())
    }
}

/// A raw body, with JSON errors.
pub(crate) struct Raw(Bytes);

impl<S: Send + Sync> FromRequest<S> for Raw {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        Bytes::from_request(request, state)
            .await
            .map(Raw)
            .map_err(bytes_error)
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct SessionList {
    sessions: Vec<SessionInfo>,
}

#[utoipa::path(get, path = "/v1/sessions", tag = "sessions", security(("bearer" = [])), responses((status = 200, body = SessionList), (status = 401, body = ApiError)))]
pub(crate) async fn list_sessions(
    State(app): AppState,
    User(user): User,
) -> Result<Json<SessionList>, ApiError> {
    Ok(Json(SessionList {
        sessions: app.sessions.list(&user)?,
    }))
}

#[utoipa::path(put, path = "/v1/sessions/{id}", tag = "sessions", security(("bearer" = [])), params(("id" = String, Path, description = "session id: 1 to 64 of A-Z a-z 0-9 . _ -")), responses((status = 201, description = "created", body = SessionInfo), (status = 200, description = "it existed", body = SessionInfo), (status = 400, body = ApiError), (status = 429, body = ApiError), (status = 503, body = ApiError)))]
pub(crate) async fn create_session(
    State(app): AppState,
    User(user): User,
    Params(id): Params<String>,
) -> Result<Response, ApiError> {
    if !app.sessions.exists(&user, &id) {
        app.check_not_draining()?;
    }
    let created = app.sessions.create(&user, &id).await?;
    let info = app.sessions.info(&user, &id)?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(info)).into_response())
}

#[utoipa::path(get, path = "/v1/sessions/{id}", tag = "sessions", security(("bearer" = [])), params(("id" = String, Path)), responses((status = 200, body = SessionInfo), (status = 404, body = ApiError)))]
pub(crate) async fn get_session(
    State(app): AppState,
    User(user): User,
    Params(id): Params<String>,
) -> Result<Json<SessionInfo>, ApiError> {
    Ok(Json(app.sessions.info(&user, &id)?))
}

#[utoipa::path(delete, path = "/v1/sessions/{id}", tag = "sessions", security(("bearer" = [])), params(("id" = String, Path)), responses((status = 204, description = "deleted with its files"), (status = 404, body = ApiError)))]
pub(crate) async fn delete_session(
    State(app): AppState,
    User(user): User,
    Params(id): Params<String>,
) -> Result<StatusCode, ApiError> {
    app.sessions.delete(&user, &id).await?;
    app.mcp.remove(&user, &id);
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ToolList {
    /// name, description and JSON Schema of each tool
    #[schema(value_type = Vec<Object>)]
    tools: Vec<sandbay_middleware::ToolSpec>,
}

#[utoipa::path(get, path = "/v1/tools", tag = "tools", security(("bearer" = [])), responses((status = 200, body = ToolList)))]
pub(crate) async fn list_tools(State(app): AppState, User(_): User) -> Json<ToolList> {
    let config = sandbay_middleware::ToolConfig {
        default_timeout: Duration::from_secs(app.limits.exec_timeout_default_secs),
        max_timeout: Duration::from_secs(app.limits.exec_timeout_max_secs),
        ..sandbay_middleware::ToolConfig::default()
    };
    let execute = app.sessions.isolation() != sandbay_core::Isolation::None;
    Json(ToolList {
        tools: ToolName::ALL
            .into_iter()
            .filter(|t| *t != ToolName::Execute || execute)
            .map(|t| t.spec(&config))
            .collect(),
    })
}

#[utoipa::path(post, path = "/v1/sessions/{id}/tools/{name}", tag = "tools", security(("bearer" = [])), params(("id" = String, Path), ("name" = String, Path, description = "ls, read_file, write_file, edit_file, delete, glob, grep, execute")), request_body(content = Object, description = "the tool's arguments, per its JSON Schema"), responses((status = 200, description = "{\"text\", \"is_error\", \"code\"?}"), (status = 404, body = ApiError)))]
pub(crate) async fn call_tool(
    State(app): AppState,
    User(user): User,
    Params((id, name)): Params<(String, String)>,
    Body(args): Body<Value>,
) -> Result<Json<ToolOutput>, ApiError> {
    let live = app.sessions.live(&user, &id).await?;
    if !live.toolbox.tools().iter().any(|t| t.as_str() == name) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no tool {name:?}; GET /v1/tools lists them"),
        ));
    }
    Ok(Json(live.toolbox.call_guarded(&name, args).await))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BatchCall {
    name: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    arguments: Value,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Batch {
    calls: Vec<BatchCall>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct BatchOutputs {
    /// `{"text", "is_error", "code"?}` per call, in order
    #[schema(value_type = Vec<Object>)]
    outputs: Vec<ToolOutput>,
}

/// Most calls in one batch.
const MAX_BATCH: usize = 64;

#[utoipa::path(post, path = "/v1/sessions/{id}/tools", tag = "tools", security(("bearer" = [])), params(("id" = String, Path)), request_body = Batch, responses((status = 200, body = BatchOutputs), (status = 400, body = ApiError), (status = 404, body = ApiError)))]
pub(crate) async fn call_batch(
    State(app): AppState,
    User(user): User,
    Params(id): Params<String>,
    Body(batch): Body<Batch>,
) -> Result<Json<BatchOutputs>, ApiError> {
    if batch.calls.len() > MAX_BATCH {
        return Err(ApiError::bad_request(format!(
            "a batch holds at most {MAX_BATCH} calls"
        )));
    }
    let live = app.sessions.live(&user, &id).await?;
    let calls = batch
        .calls
        .into_iter()
        .map(|c| (c.name, c.arguments))
        .collect();
    Ok(Json(BatchOutputs {
        outputs: live.toolbox.call_batch(calls).await,
    }))
}

fn vpath(path: &str) -> Result<VPath, ApiError> {
    VPath::parse(&format!("/{path}")).map_err(|e| ApiError::from(sandbay_core::Error::from(e)))
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Listing {
    path: String,
    entries: Vec<ListedEntry>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ListedEntry {
    path: String,
    /// `file`, `dir` or `symlink`
    #[schema(value_type = String)]
    kind: EntryKind,
    size: u64,
}

#[utoipa::path(get, path = "/v1/sessions/{id}/files", tag = "files", security(("bearer" = [])), params(("id" = String, Path)), responses((status = 200, body = Listing), (status = 404, body = ApiError)))]
pub(crate) async fn get_root(
    state: AppState,
    user: User,
    Params(id): Params<String>,
) -> Result<Response, ApiError> {
    get_file(state, user, Params((id, String::new()))).await
}

#[utoipa::path(get, path = "/v1/sessions/{id}/files/{path}", tag = "files", security(("bearer" = [])), params(("id" = String, Path), ("path" = String, Path, description = "a workspace path")), responses((status = 200, description = "the file's bytes, or a directory's listing as JSON", content_type = "application/octet-stream"), (status = 400, body = ApiError), (status = 404, body = ApiError)))]
pub(crate) async fn get_file(
    State(app): AppState,
    User(user): User,
    Params((id, path)): Params<(String, String)>,
) -> Result<Response, ApiError> {
    let backend = app.sessions.files(&user, &id).await?;
    let path = vpath(&path)?;
    let entry = backend.stat(&path).await?;
    if entry.kind == EntryKind::Dir {
        let entries = backend.ls(&path).await?;
        return Ok(Json(Listing {
            path: path.to_string(),
            entries: entries
                .into_iter()
                .map(|e| ListedEntry {
                    path: e.path.to_string(),
                    kind: e.kind,
                    size: e.size,
                })
                .collect(),
        })
        .into_response());
    }
    let bytes = backend
        .download(std::slice::from_ref(&path))
        .await
        .pop()
        .unwrap_or_else(|| Err(sandbay_core::Error::NotFound { path: path.clone() }))?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
}

#[utoipa::path(put, path = "/v1/sessions/{id}/files/{path}", tag = "files", security(("bearer" = [])), params(("id" = String, Path), ("path" = String, Path)), request_body(content = Vec<u8>, content_type = "application/octet-stream"), responses((status = 204, description = "written, parents made"), (status = 400, body = ApiError), (status = 404, body = ApiError), (status = 413, body = ApiError)))]
pub(crate) async fn put_file(
    State(app): AppState,
    User(user): User,
    Params((id, path)): Params<(String, String)>,
    Raw(bytes): Raw,
) -> Result<StatusCode, ApiError> {
    let backend = app.sessions.files(&user, &id).await?;
    let path = vpath(&path)?;
    backend
        .upload(vec![(path.clone(), bytes.to_vec())])
        .await
        .pop()
        .unwrap_or(Err(sandbay_core::Error::NotFound { path }))?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/v1/sessions/{id}/files/{path}", tag = "files", security(("bearer" = [])), params(("id" = String, Path), ("path" = String, Path)), responses((status = 204, description = "deleted"), (status = 404, body = ApiError)))]
pub(crate) async fn delete_file(
    State(app): AppState,
    User(user): User,
    Params((id, path)): Params<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let backend = app.sessions.files(&user, &id).await?;
    backend.delete(&vpath(&path)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The body of `POST .../exec`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExecBody {
    command: String,
    /// Seconds; the server's default when absent, its maximum at most.
    #[serde(default)]
    timeout: Option<u64>,
    /// Text for standard input.
    #[serde(default)]
    stdin: Option<String>,
    /// Working directory inside the workspace.
    #[serde(default)]
    workdir: Option<String>,
    #[serde(default)]
    env: std::collections::BTreeMap<String, String>,
}

/// The reply of `POST .../exec`.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ExecReply {
    stdout: String,
    stderr: String,
    /// Standard output as base64, when it is not UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    stdout_base64: Option<String>,
    /// Standard error as base64, when it is not UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    stderr_base64: Option<String>,
    exit_code: Option<i32>,
    timed_out: bool,
    truncated: bool,
    duration_ms: u64,
    notes: Vec<String>,
}

fn text_and_base64(bytes: Vec<u8>) -> (String, Option<String>) {
    match String::from_utf8(bytes) {
        Ok(text) => (text, None),
        Err(e) => {
            let bytes = e.into_bytes();
            (
                String::from_utf8_lossy(&bytes).into_owned(),
                Some(base64::engine::general_purpose::STANDARD.encode(&bytes)),
            )
        }
    }
}

#[utoipa::path(post, path = "/v1/sessions/{id}/exec", tag = "commands", security(("bearer" = [])), params(("id" = String, Path)), request_body = ExecBody, responses((status = 200, description = "the command's result as JSON; with `Accept: text/event-stream`, its output as server-sent events while it runs: `stdout` and `stderr` events (`{\"text\"}` or `{\"base64\"}`), then `exit` (`{\"exit_code\", \"timed_out\", \"truncated\", \"duration_ms\", \"notes\"}`) or `error` (`{\"code\", \"message\"}`), with `: keep-alive` comments while quiet; closing the connection ends the command", content((ExecReply = "application/json"), (String = "text/event-stream"))), (status = 404, body = ApiError), (status = 501, body = ApiError), (status = 503, body = ApiError)))]
pub(crate) async fn exec(
    State(app): AppState,
    User(user): User,
    Params(id): Params<String>,
    headers: axum::http::HeaderMap,
    Body(body): Body<ExecBody>,
) -> Result<Response, ApiError> {
    let live = app.sessions.live(&user, &id).await?;
    let Some(sandbox) = &live.sandbox else {
        return Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "unsupported",
            "commands cannot run here: this host gives no jail level",
        ));
    };
    let limits = &app.limits;
    let timeout = body
        .timeout
        .unwrap_or(limits.exec_timeout_default_secs)
        .min(limits.exec_timeout_max_secs);
    let mut request = ExecRequest::new(body.command).timeout(Duration::from_secs(timeout));
    request.stdin = body.stdin.map(String::into_bytes).unwrap_or_default();
    request.env = body.env;
    request.workdir = body.workdir.as_deref().map(vpath).transpose()?;
    if crate::sse::wants_events(&headers) {
        let stream = sandbox.execute_stream(request).await?;
        let keep_alive = Duration::from_millis(limits.sse_keepalive_ms.max(1));
        return Ok(crate::sse::response(stream, keep_alive));
    }
    let out = sandbox.execute(request).await?;
    let (stdout, stdout_base64) = text_and_base64(out.stdout);
    let (stderr, stderr_base64) = text_and_base64(out.stderr);
    Ok(Json(ExecReply {
        stdout,
        stderr,
        stdout_base64,
        stderr_base64,
        exit_code: out.exit_code,
        timed_out: out.timed_out,
        truncated: out.truncated,
        duration_ms: u64::try_from(out.duration.as_millis()).unwrap_or(u64::MAX),
        notes: out.notes,
    })
    .into_response())
}
