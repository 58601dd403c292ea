//! The one mapping from errors to HTTP status and JSON body
//! (`{"error": {"code", "message", "field"}}`, docs/api.md).

use tide::{Body, Response, StatusCode};

use crate::api::{ErrorBody, ErrorCode, ErrorDetail, FieldError};
use crate::engine::EngineError;
use crate::store::StoreError;

/// An error on its way to the client.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// docs/api.md's code.
    pub code: ErrorCode,
    /// A sentence for people.
    pub message: String,
    /// The field at fault, if one is.
    pub field: Option<String>,
}

impl ApiError {
    /// An error with no field.
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    /// 400 `invalid_field` naming `field`.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BadRequest,
            code: ErrorCode::InvalidField,
            message: message.into(),
            field: Some(field.into()),
        }
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NotFound, ErrorCode::NotFound, message)
    }

    /// The response carrying this error.
    pub fn into_response(self) -> Response {
        if self.status == StatusCode::InternalServerError {
            tracing::error!(status = %self.status, message = %self.message, "request failed");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                field: self.field,
            },
        };
        let mut res = Response::new(self.status);
        res.set_body(Body::from_json(&body).unwrap_or_else(|_| Body::from_string(String::new())));
        res
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> ApiError {
        ApiError::field(e.field.clone(), e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            // The write may not be on disk: say so, and that it may be retried.
            StoreError::Flush(_)
            | StoreError::Io { .. }
            | StoreError::File { .. }
            | StoreError::Reopening => ApiError::new(
                StatusCode::ServiceUnavailable,
                ErrorCode::Unavailable,
                format!("{e}; the request may not have been saved, retry later"),
            ),
            other => ApiError::new(
                StatusCode::InternalServerError,
                ErrorCode::Internal,
                other.to_string(),
            ),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> ApiError {
        match e {
            EngineError::NotFound(_)
            | EngineError::NoNumber(_)
            | EngineError::NoQueue(_)
            | EngineError::NoSchedule(_) => ApiError::not_found(e.to_string()),
            EngineError::QueueInUse { .. } => {
                ApiError::new(StatusCode::Conflict, ErrorCode::Conflict, e.to_string())
            }
            EngineError::Conflict(c) => {
                ApiError::new(StatusCode::Conflict, ErrorCode::Conflict, c.to_string())
            }
            EngineError::Invalid(f) => f.into(),
            EngineError::Forbidden(message) => {
                ApiError::new(StatusCode::Forbidden, ErrorCode::Forbidden, message)
            }
            EngineError::QueueFull { .. } => ApiError::new(
                StatusCode::TooManyRequests,
                ErrorCode::QueueFull,
                e.to_string(),
            ),
            EngineError::ShuttingDown | EngineError::Recovering | EngineError::CancelPending(_) => {
                ApiError::new(
                    StatusCode::ServiceUnavailable,
                    ErrorCode::Unavailable,
                    e.to_string(),
                )
            }
            EngineError::Store(s) => s.into(),
            EngineError::Cluster(e) => ApiError::new(
                StatusCode::ServiceUnavailable,
                ErrorCode::Unavailable,
                format!("{e}; the request may not have been saved, retry later"),
            ),
            EngineError::LocalFile { .. } => ApiError::new(
                StatusCode::ServiceUnavailable,
                ErrorCode::Unavailable,
                format!("{e}; the request was not saved, retry later"),
            ),
            EngineError::NotInCluster(_) => ApiError::new(
                StatusCode::NotImplemented,
                ErrorCode::NotImplemented,
                e.to_string(),
            ),
        }
    }
}
