//! The OpenAPI 3.1 document of the API (`GET /v1/openapi.json`), made
//! from the handlers' annotations (utoipa), so it lists exactly the routes
//! the router serves.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::ApiError;
use crate::routes::{
    AdminSession, Batch, BatchCall, BatchOutputs, ExecBody, ExecReply, ListedEntry, Listing, Ready,
    SessionList, ToolList,
};
use crate::sessions::SessionInfo;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "an API key (`sbk_...`, from `sandbay keys add`) or a JWT from the application's login",
                    ))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "sandbay",
        description = "Isolated workspaces for AI agents: one per user and session. Every /v1 route acts on the caller's own sessions; MCP over streamable HTTP is served at /v1/sessions/{id}/mcp and /v1/mcp?session={id}.",
    ),
    paths(
        crate::routes::ready,
        crate::routes::metrics,
        crate::routes::admin_sessions,
        crate::routes::admin_evict,
        crate::routes::admin_drain,
        crate::routes::list_sessions,
        crate::routes::create_session,
        crate::routes::get_session,
        crate::routes::delete_session,
        crate::routes::list_tools,
        crate::routes::call_tool,
        crate::routes::call_batch,
        crate::routes::get_root,
        crate::routes::get_file,
        crate::routes::put_file,
        crate::routes::delete_file,
        crate::routes::exec,
    ),
    components(schemas(
        ApiError, Ready, AdminSession, SessionInfo, SessionList, ToolList, Batch, BatchCall,
        BatchOutputs, Listing, ListedEntry, ExecBody, ExecReply
    )),
    modifiers(&Bearer),
)]
pub(crate) struct ApiDoc;

/// The document as JSON.
pub(crate) fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}
