//! Errors of the HTTP API: a stable code, a message, a status.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sandbay_core::{Error, ErrorCode};
use serde::Serialize;

/// An error reply: `{"code": "...", "message": "..."}` with an HTTP status.
///
/// Codes are the core's stable [`ErrorCode`]s (`not_found`, `invalid_path`,
/// ...) plus the service's own: `unauthorized`, `forbidden`,
/// `rate_limited`, `payload_too_large`, `limit_reached`, `not_acceptable`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ApiError {
    /// HTTP status of the reply.
    #[serde(skip)]
    pub status: StatusCode,
    /// Stable machine code.
    pub code: String,
    /// What happened, for people and models; never a host path.
    pub message: String,
    /// Seconds to wait before trying again (429 replies).
    #[serde(skip)]
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code: code.to_owned(),
            message: message.into(),
            retry_after: None,
        }
    }

    /// 401: no credentials, or credentials that are not valid.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 404 for a session the caller does not have (whether or not
    /// another user has one of that name).
    pub fn no_session(id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no session {id:?}; create it with PUT /v1/sessions/{id}"),
        )
    }

    /// 400 for a request that is not well formed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_argument", message)
    }

    /// 429 with a `Retry-After`.
    pub fn rate_limited(message: impl Into<String>, retry_after: u64) -> Self {
        ApiError {
            retry_after: Some(retry_after),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
        }
    }
}

/// The HTTP status of a core error code.
pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::InvalidPath | ErrorCode::InvalidArgument => StatusCode::BAD_REQUEST,
        ErrorCode::IsDirectory | ErrorCode::NotADirectory => StatusCode::CONFLICT,
        ErrorCode::NoMatch | ErrorCode::AmbiguousMatch => StatusCode::CONFLICT,
        ErrorCode::BinaryFile => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::PermissionDenied => StatusCode::FORBIDDEN,
        ErrorCode::TooLarge | ErrorCode::QuotaExceeded => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::Timeout => StatusCode::GATEWAY_TIMEOUT,
        ErrorCode::Unsupported => StatusCode::NOT_IMPLEMENTED,
        ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        // Codes added after this build map to a server error.
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let code = e.code();
        ApiError::new(status_of(code), code.as_str(), e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(&self)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
