//! The HTTP API (docs/api.md) on tide: the listeners ([`listen`]), the route
//! table ([`mod@routes`]), who may call what (`access.rs`), request-body limits
//! and JSON errors. The only module that names tide; handlers are thin and
//! call the engine.

mod access;
pub mod activated;
mod body;
mod bulk;
pub mod capacity;
pub mod conn;
mod dashboard;
mod error;
#[cfg(test)]
mod fuzz;
mod http10;
mod jobs;
pub mod listen;
pub mod openapi;
mod queues;
pub mod routes;
mod schedules;
mod stream;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use tide::{Body, Request, Response, StatusCode};

use body::{body, from_object, parse_json, parse_object, read_body};

use crate::api::ErrorCode;
use crate::auth::Authority;
use crate::engine::Engine;

pub use access::BrowserPolicy;
pub use error::ApiError;
pub use listen::{bind, serve, BindError, Listener, SocketFile};
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
    /// Streamed responses open (followers, event subscribers).
    pub streams: Arc<capacity::Capacity>,
    /// Uploads in progress.
    pub uploads: Arc<capacity::Capacity>,
}

/// A handler's outcome before it becomes a response.
type Reply = Result<Response, ApiError>;

/// Builds the application: the browser guard over every route of the
/// table.
pub fn app(state: AppState) -> tide::Server<AppState> {
    let mut app = tide::with_state(state);
    app.with(count_requests);
    app.with(bare_errors);
    app.with(access::browser_guard);
    routes::add_all(&mut app);
    app
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

/// Counts each request by route and status and times it to its answer's
/// head (`jobq_http_requests_total`, `jobq_http_request_duration_seconds`).
/// Outermost, so refusals of the browser guard and tide's 404s count too.
fn count_requests<'a>(
    req: Request<AppState>,
    next: tide::Next<'a, AppState>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = tide::Result> + Send + 'a>> {
    Box::pin(async move {
        let route = routes::route_name(req.method().as_ref(), req.url().path());
        let started = std::time::Instant::now();
        let res = next.run(req).await;
        let metrics = crate::metrics::metrics();
        metrics
            .http_requests
            .get_or_create(&crate::metrics::RouteStatus {
                route: route.to_owned(),
                status: res.status().into(),
            })
            .inc();
        metrics
            .http_duration
            .get_or_create(&crate::metrics::RouteLabel {
                route: route.to_owned(),
            })
            .observe(started.elapsed().as_secs_f64());
        Ok(res)
    })
}

/// tide answers unknown routes and methods with an empty body; give them the
/// JSON error body like every other error, and a 405 its `Allow` header.
fn bare_errors<'a>(
    req: Request<AppState>,
    next: tide::Next<'a, AppState>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = tide::Result> + Send + 'a>> {
    Box::pin(async move {
        let path = req.url().path().to_owned();
        let method = req.method().to_string();
        // tide would hand `GET /v1/jobs/batch` to `GET /v1/jobs/:id`.
        // HEAD is tide's GET; OPTIONS (a preflight) is the browser policy's.
        let named = !matches!(method.as_str(), "HEAD" | "OPTIONS")
            && routes::is_named(&path)
            && !routes::allowed_methods(&path).contains(&method.as_str());
        let res = if named {
            Response::new(StatusCode::MethodNotAllowed)
        } else {
            next.run(req).await
        };
        let bare = res.is_empty().unwrap_or(false)
            || res.len().is_none() && res.status().is_client_error();
        let mut res = match res.status() {
            StatusCode::NotFound if bare => ApiError::not_found("no such route").into_response(),
            StatusCode::MethodNotAllowed if bare || named => {
                let (allowed, message) = routes::method_refusal(&path, &method).unwrap_or_default();
                let mut res = ApiError::new(
                    StatusCode::MethodNotAllowed,
                    ErrorCode::MethodNotAllowed,
                    message,
                )
                .into_response();
                res.insert_header("Allow", allowed);
                res
            }
            _ => return Ok(res),
        };
        // These routes never read a body; closing spares the next request
        // the discard path described at [`routes`].
        res.insert_header("Connection", "close");
        Ok(res)
    })
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
