//! The sandbay service: one isolated workspace per user and session,
//! over HTTP.
//!
//! A [`Server`] holds every user's sessions and serves them through an
//! [`axum::Router`] ([`Server::router`]) that an application can nest in
//! its own, or run itself ([`Server::serve`]; `sandbay serve` on the
//! command line).
//!
//! * **Tenancy**: every request carries `Authorization: Bearer <key>`; a
//!   key belongs to one user ([`auth`]), and every route acts on the
//!   caller's own sessions: no route takes a user id. Another user's
//!   session is a 404, exactly like one that does not exist.
//! * **Storage and compute**: a session's files are a durable state
//!   workspace under the data directory (written behind within a bounded
//!   window, see `sandbay_state::StateStore`), a host directory
//!   ([`BackendChoice::Fs`]) or a container ([`BackendChoice::Docker`]);
//!   its commands run in its user's local jail, made on first use and
//!   shared by the user's sessions (or in the container). Commands can
//!   stream their output as server-sent events.
//! * **Limits**: per-user caps on sessions, on requests in progress (a
//!   streamed reply holds its place until it ends), on MCP sessions and on
//!   searches at once (429 with `Retry-After`), a global session cap, a
//!   body limit (413), a maximum command time ([`ServerLimits`]); before
//!   any credentials, a cap on open connections and a time limit for a
//!   request's headers ([`ConnectionLimits`]).
//! * **Errors** are JSON, `{"code", "message"}`, with the core's stable
//!   codes mapped to HTTP statuses ([`error::status_of`]).
//!
//! ```no_run
//! # async fn run() -> Result<(), String> {
//! use sandbay_server::{Server, ServerConfig};
//! let server = Server::open(ServerConfig::default()).await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:7878").await.map_err(|e| e.to_string())?;
//! server.serve(listener, std::future::pending()).await.map_err(|e| e.to_string())?;
//! # Ok(()) }
//! ```
//!
//! # Routes
//!
//! | route | what |
//! |---|---|
//! | `GET /healthz`, `GET /readyz` | liveness; readiness with counts (no auth; 503 while draining) |
//! | `GET /metrics` | Prometheus text (admin key) |
//! | `GET /v1/openapi.json` | the OpenAPI 3.1 document (no auth) |
//! | `GET /v1/admin/sessions` | every user's sessions (admin key) |
//! | `POST /v1/admin/evict` | end the compute of idle sessions; files stay (admin key) |
//! | `POST /v1/admin/drain` | refuse new sessions, write everything (admin key) |
//! | `PUT /v1/sessions/{id}` | get or create a session (201 created, 200 existing) |
//! | `GET /v1/sessions`, `GET /v1/sessions/{id}` | the caller's sessions |
//! | `DELETE /v1/sessions/{id}` | delete a session and its files for good |
//! | `GET /v1/tools` | the agent tools' JSON Schemas |
//! | `POST /v1/sessions/{id}/tools/{name}` | one tool call: JSON arguments in, `ToolOutput` out |
//! | `POST /v1/sessions/{id}/tools` | a turn of parallel calls, `{"calls": [{"name", "arguments"}]}` |
//! | `GET/PUT/DELETE /v1/sessions/{id}/files/{path}` | raw bytes, binary safe; a directory GETs as a JSON listing |
//! | `POST /v1/sessions/{id}/exec` | run a command: `{"command", "timeout", "stdin", "workdir", "env"}`; with `Accept: text/event-stream` its output streams |
//! | `/v1/sessions/{id}/mcp` | MCP over streamable HTTP for that session |
//! | `/v1/mcp?session={id}` | the same, the session made on first use (default id `default`) |
//!
//! # Dependencies
//!
//! * `axum` (with `tokio`): the router, extractors and server-sent events;
//! * `hyper`, `hyper-util`, `http-body`: the connection loop under the
//!   router (axum's own `serve` has no header-read timeout and no
//!   connection cap) and the response body that holds a user's place;
//! * `futures-core`: the `Stream` trait the event stream implements;
//! * `sha2`, `subtle`, `getrandom`, `base64`: key digests, constant-time
//!   comparison, new keys;
//! * `jsonwebtoken` (RustCrypto backend, no C): bearer JWTs;
//! * `toml`: the configuration file;
//! * `prometheus-client`: the `/metrics` exposition;
//! * `utoipa`: the OpenAPI document, made from the handlers;
//! * `sandbay-state`, `sandbay-fs`, `sandbay-exec`, `sandbay-middleware`:
//!   the workspaces, the jail, the agent tools;
//! * `sandbay-docker`, `sandbay-pool`: the containers of the `docker`
//!   backend and their registry.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod auth;
mod config;
mod conn;
pub mod error;
mod mcp;
mod metrics;
mod offload;
mod openapi;
mod routes;
mod sessions;
mod sse;

use std::future::Future;
use std::sync::Arc;

pub use auth::{Caller, KeyStore};
pub use config::{BackendChoice, ConnectionLimits, DockerSettings, ServerConfig, ServerLimits};
pub use error::ApiError;
pub use sessions::SessionInfo;

/// The service: the users' sessions, their keys, the limits.
#[derive(Debug, Clone)]
pub struct Server {
    app: Arc<routes::App>,
}

impl Server {
    /// Opens the data directory, loads the keys file (plus the admin key
    /// of the configuration) and probes how commands can run here.
    ///
    /// # Errors
    /// A data directory or keys file that cannot be used, as text for the
    /// operator.
    pub async fn open(config: ServerConfig) -> Result<Server, String> {
        let jwt = config
            .jwt
            .as_ref()
            .map(auth::JwtVerifier::new)
            .transpose()?;
        let keys = KeyStore::load(&config.keys_path())
            .map_err(|e| e.to_string())?
            .with_admin_key(config.admin_key.as_deref())
            .with_jwt(jwt);
        Self::open_with_keys(config, keys).await
    }

    /// Like [`Server::open`] with keys from the application instead of the
    /// keys file.
    ///
    /// # Errors
    /// As [`Server::open`].
    pub async fn open_with_keys(config: ServerConfig, keys: KeyStore) -> Result<Server, String> {
        let sessions = sessions::Sessions::open(&config).await?;
        tracing::info!(users_keys = keys.len(), data = %config.data.display(), "sandbay server ready");
        Ok(Server {
            app: Arc::new(routes::App::new(
                sessions,
                keys,
                config.limits,
                config.connections,
            )),
        })
    }

    /// The API as a router, to serve or to nest in an application's own.
    pub fn router(&self) -> axum::Router {
        routes::router(self.app.clone())
    }

    /// Serves the API on `listener` until `shutdown` completes, then
    /// finishes the requests in progress, ends every session's compute
    /// (containers included) and writes every change to disk
    /// ([`Server::shutdown`]).
    ///
    /// Before any credentials are read, connections are capped
    /// ([`ConnectionLimits::max_open`]; one beyond is closed unread) and
    /// each request's header block must arrive within
    /// [`ConnectionLimits::header_timeout_ms`].
    ///
    /// # Errors
    /// The last write to disk failed.
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let limits = self.app.connections.clone();
        conn::serve(listener, self.router(), &limits, self.app.clone(), shutdown).await;
        self.shutdown().await
    }

    /// Ends every session's compute (jails, containers: none is left)
    /// and writes every change to disk. The server still answers
    /// afterwards, opening sessions again on use.
    ///
    /// # Errors
    /// The first session that could not be written.
    pub async fn shutdown(&self) -> std::io::Result<()> {
        self.app
            .sessions
            .shutdown()
            .await
            .map_err(|e| std::io::Error::other(e.message))
    }

    /// Writes every change to disk.
    ///
    /// # Errors
    /// The first session that could not be written.
    pub async fn flush(&self) -> std::io::Result<()> {
        self.app
            .sessions
            .flush()
            .await
            .map_err(|e| std::io::Error::other(e.message))
    }
}
