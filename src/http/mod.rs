//! The HTTP API (API.md) on tide: the listeners ([`listen`]), the route
//! table ([`mod@routes`]), who may call what (`access.rs`), request-body limits
//! and JSON errors. The only module that names tide; handlers are thin and
//! call the engine.

mod access;
mod bulk;
mod error;
mod jobs;
pub mod listen;
mod queues;
pub mod routes;
mod stream;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use futures_lite::AsyncReadExt;
use serde::de::DeserializeOwned;
use tide::{Body, Request, Response, StatusCode};

use crate::api::ErrorCode;
use crate::auth::Authority;
use crate::engine::Engine;

pub use access::BrowserPolicy;
pub use error::ApiError;
pub use listen::{bind, serve, BindError, Listener};
pub use routes::{routes, Access, Route};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The job engine.
    pub engine: Engine,
    /// Largest accepted request body, in bytes.
    pub max_body: u64,
    /// Largest accepted upload (`POST /v1/uploads`), in bytes.
    pub max_upload: u64,
    /// Set once the store is open and recovery is done (`/readyz`).
    pub ready: Arc<AtomicBool>,
    /// Turns requests into principals.
    pub authority: Arc<Authority>,
    /// What a browser's request may say about where it comes from.
    pub browser: Arc<BrowserPolicy>,
}

/// A handler's outcome before it becomes a response.
type Reply = Result<Response, ApiError>;

/// Builds the application: the browser guard over every route of the
/// table.
pub fn app(state: AppState) -> tide::Server<AppState> {
    let mut app = tide::with_state(state);
    app.with(tide::utils::After(json_for_bare_errors));
    app.with(access::browser_guard);
    routes::add_all(&mut app);
    app
}

/// The body the endpoint read before the handler ran.
fn body(req: &Request<AppState>) -> &[u8] {
    req.ext::<routes::RequestBody>()
        .map_or(&[], |b| b.0.as_slice())
}

/// The path segment `name`, percent-decoded (tide gives it raw), so a name
/// is checked and echoed as the client meant it.
fn path_param(req: &Request<AppState>, name: &str) -> Result<String, ApiError> {
    let raw = req.param(name).unwrap_or_default();
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| ApiError::field(name, format!("{raw:?} is not UTF-8 once decoded")))
}

/// tide answers unknown routes and methods with an empty body; give them the
/// JSON error body like every other error.
async fn json_for_bare_errors(res: Response) -> tide::Result {
    let bare =
        res.is_empty().unwrap_or(false) || res.len().is_none() && res.status().is_client_error();
    let mut res = match res.status() {
        StatusCode::NotFound if bare => ApiError::not_found("no such route").into_response(),
        StatusCode::MethodNotAllowed if bare => ApiError::new(
            StatusCode::MethodNotAllowed,
            ErrorCode::InvalidField,
            "method not allowed on this route",
        )
        .into_response(),
        _ => return Ok(res),
    };
    // These routes never read a body; closing spares the next request the
    // discard path described at [`handle`].
    res.insert_header("Connection", "close");
    Ok(res)
}

/// A JSON response.
fn json(status: StatusCode, value: &impl serde::Serialize) -> Response {
    let mut res = Response::new(status);
    match Body::from_json(value) {
        Ok(body) => res.set_body(body),
        Err(e) => {
            return ApiError::new(
                StatusCode::InternalServerError,
                ErrorCode::Internal,
                e.to_string(),
            )
            .into_response()
        }
    }
    res
}

/// Reads the body, refusing more than `max_body` bytes with 413.
async fn read_body(req: &mut Request<AppState>, max: u64) -> Result<Vec<u8>, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PayloadTooLarge,
            ErrorCode::PayloadTooLarge,
            format!("the request body is larger than the limit of {max} bytes (config max_body, or max_upload for uploads)"),
        )
    };
    if req.len().is_some_and(|len| len as u64 > max) {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    req.take_body()
        .take(max + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::BadRequest,
                ErrorCode::InvalidJson,
                format!("cannot read the body: {e}"),
            )
        })?;
    if bytes.len() as u64 > max {
        return Err(too_large());
    }
    Ok(bytes)
}

/// Parses a JSON body into `T`, naming the field at fault on error.
fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    from_object(parse_object(bytes)?)
}

/// Parses a JSON body that must be an object.
fn parse_object(bytes: &[u8]) -> Result<serde_json::Value, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BadRequest,
            ErrorCode::InvalidJson,
            format!("the body is not valid JSON: {e}"),
        )
    })?;
    if !value.is_object() {
        return Err(ApiError::new(
            StatusCode::BadRequest,
            ErrorCode::InvalidJson,
            "the body must be a JSON object",
        ));
    }
    Ok(value)
}

/// Turns a parsed body into `T`, naming the field at fault on error.
fn from_object<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        // serde names an unknown or missing field only in its message.
        let unknown = ["unknown field `", "missing field `"]
            .iter()
            .find_map(|prefix| message.strip_prefix(prefix))
            .and_then(|rest| rest.split('`').next())
            .map(str::to_owned);
        // serde_path_to_error already ends the path with an unknown field's
        // name in some versions and not in others; name it exactly once.
        let field = match (unknown, path.as_str()) {
            (Some(name), ".") => name,
            (Some(name), p) if p == name || p.ends_with(&format!(".{name}")) => p.to_owned(),
            (Some(name), parent) => format!("{parent}.{name}"),
            (None, path) => path.to_owned(),
        };
        ApiError::field(field.clone(), format!("{field}: {message}"))
    })
}
