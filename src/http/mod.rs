//! The HTTP API (API.md) on tide: the route table, request-body limits, JSON
//! errors. The only module that names tide; handlers are thin and call the
//! engine.

mod error;
mod jobs;
mod queues;
mod stream;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures_lite::AsyncReadExt;
use serde::de::DeserializeOwned;
use tide::{Body, Request, Response, StatusCode};

use crate::api::{ErrorCode, Health};
use crate::engine::Engine;

pub use error::ApiError;

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
}

/// A handler's outcome before it becomes a response.
type Reply = Result<Response, ApiError>;

/// Builds the application: every route of API.md that exists so far.
pub fn app(state: AppState) -> tide::Server<AppState> {
    let mut app = tide::with_state(state);
    app.with(tide::utils::After(json_for_bare_errors));
    app.at("/healthz").get(|_| async {
        Ok(json(
            StatusCode::Ok,
            &Health {
                status: "ok".into(),
            },
        ))
    });
    app.at("/readyz").get(readyz);
    app.at("/v1/jobs")
        .post(handle(jobs::submit))
        .get(handle(jobs::list));
    app.at("/v1/jobs/:id")
        .get(handle(jobs::get))
        .delete(handle(jobs::remove));
    app.at("/v1/jobs/batch").post(handle(jobs::submit_batch));
    app.at("/v1/uploads")
        .post(handle_limited(Limit::Upload, jobs::upload));
    app.at("/v1/events").get(handle(jobs::events));
    app.at("/v1/queues").get(handle(queues::list));
    app.at("/v1/queues/:name").patch(handle(queues::patch));
    app.at("/v1/jobs/:id/cancel").post(handle(jobs::cancel));
    app.at("/v1/jobs/:id/retry").post(handle(jobs::retry));
    app.at("/v1/jobs/:id/output").get(handle(jobs::output));
    app
}

/// Serves the API on an already bound listener until the future is dropped.
///
/// Our own accept loop rather than tide's `listen`: tide leaves Nagle's
/// algorithm on, and async-h1 writes a response's head and body separately,
/// so every keep-alive request waited ~40 ms for the client's delayed ACK
/// (measured: 23 submissions/s from one client before, see
/// docs/benchmarks.md). Each connection gets `TCP_NODELAY`.
pub async fn serve(state: AppState, listener: std::net::TcpListener) -> std::io::Result<()> {
    let listener = async_std::net::TcpListener::from(listener);
    let app = app(state);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                // Out of file descriptors and the like: log, back off, go on.
                tracing::warn!(error = %e, "accept failed");
                async_io::Timer::after(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        crate::rt::spawn(async move {
            let local = stream.local_addr().ok();
            let served = async_h1::accept(stream, |mut req| async {
                req.set_local_addr(local);
                req.set_peer_addr(Some(peer));
                app.respond(req).await
            })
            .await;
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}

/// The address a std listener is bound to (for `jobq.addr`).
pub fn bound_addr(listener: &std::net::TcpListener) -> std::io::Result<SocketAddr> {
    listener.local_addr()
}

/// A request's body, read in full by [`handle`] before the handler runs.
#[derive(Clone, Debug, Default)]
struct RequestBody(Vec<u8>);

/// Adapts a handler returning [`Reply`] to tide, so errors always become the
/// JSON error body.
///
/// The body is read here, in full and before any answer, for every route.
/// async-h1 discards an unread body after the response through a buffered
/// reader that can swallow the next request on a kept-alive connection; a
/// body we read ourselves never reaches that path. A body over the limit is
/// answered 413 with `Connection: close`, since its bytes are still coming.
fn handle<F, Fut>(f: F) -> impl tide::Endpoint<AppState>
where
    F: Fn(Request<AppState>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Reply> + Send + 'static,
{
    handle_limited(Limit::Body, f)
}

/// Which body limit a route has.
#[derive(Clone, Copy)]
enum Limit {
    /// `max_body`: JSON requests.
    Body,
    /// `max_upload`: stdin uploads.
    Upload,
}

/// [`handle`] with the body limit of `limit`.
fn handle_limited<F, Fut>(limit: Limit, f: F) -> impl tide::Endpoint<AppState>
where
    F: Fn(Request<AppState>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Reply> + Send + 'static,
{
    move |mut req: Request<AppState>| {
        let f = f.clone();
        async move {
            let max = match limit {
                Limit::Body => req.state().max_body,
                Limit::Upload => req.state().max_upload,
            };
            match read_body(&mut req, max).await {
                Ok(body) => {
                    req.set_ext(RequestBody(body));
                    Ok(f(req).await.unwrap_or_else(ApiError::into_response))
                }
                Err(e) => {
                    let mut res = e.into_response();
                    res.insert_header("Connection", "close");
                    Ok(res)
                }
            }
        }
    }
}

/// The body [`handle`] read.
fn body(req: &Request<AppState>) -> &[u8] {
    req.ext::<RequestBody>().map_or(&[], |b| b.0.as_slice())
}

async fn readyz(req: Request<AppState>) -> tide::Result {
    let state = req.state();
    Ok(if state.engine.is_stopping() {
        json(
            StatusCode::ServiceUnavailable,
            &Health {
                status: "shutting down".into(),
            },
        )
    } else if state.ready.load(Ordering::SeqCst) {
        json(
            StatusCode::Ok,
            &Health {
                status: "ok".into(),
            },
        )
    } else {
        json(
            StatusCode::ServiceUnavailable,
            &Health {
                status: "recovering".into(),
            },
        )
    })
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
