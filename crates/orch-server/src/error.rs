//! Why the service could not start or go on ([`ServeError`], rendered by the
//! binary), and why a request was refused ([`ApiError`], rendered here, in
//! one place, as `{"error": …}` with its status).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use orch_lang::diagnostic::FileReport;
use orch_store::StoreError;

/// Exit statuses of `orch serve`.
pub mod exit {
    /// Stopped by a signal after draining.
    pub const OK: u8 = 0;
    /// Invalid pipeline, bad usage, an address that cannot be bound, an
    /// unusable store or token.
    pub const USAGE: u8 = 2;
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The validator's findings: the service does not start.
    #[error("the pipeline is invalid; the service was not started")]
    Invalid(Box<FileReport>),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(String),
}

impl ServeError {
    pub fn exit_code(&self) -> u8 {
        exit::USAGE
    }
}

/// A refused request: its status and what to say.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    pub(crate) fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, message)
    }

    pub(crate) fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token (Authorization: Bearer TOKEN)",
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        tracing::error!(error = %e, "store error");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

/// A JSON response with `status`.
pub(crate) fn json(status: StatusCode, value: &serde_json::Value) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json(self.status, &serde_json::json!({ "error": self.message }))
    }
}
