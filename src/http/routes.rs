//! The route table: every route of the API with the role it needs, and the
//! handler it runs. The app is built from this table alone, so a route
//! cannot be added without saying who may call it; the tests walk
//! [`routes`] to check each one refuses what it must.

use std::sync::LazyLock;

use tide::http::Method;
use tide::{Endpoint, Request, Response, StatusCode};

use super::{
    access, bulk, dashboard, jobs, queues, read_body, schedules, ApiError, AppState, Reply,
};
use crate::api::{Health, Whoami};

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without a token: health checks.
    Public,
    /// The `read` role and above.
    Read,
    /// The `submit` role and above; what it acts on may be checked again
    /// against the job's owner.
    Submit,
    /// Only `admin`.
    Admin,
}

/// One route, as the tests see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// `GET`, `POST`, …
    pub method: &'static str,
    /// tide's pattern: `/v1/jobs/:id/cancel`.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
}

/// Which body limit a route has.
#[derive(Clone, Copy, Debug)]
enum Limit {
    /// `max_body`: JSON requests.
    Body,
    /// `max_upload`: stdin uploads, which the handler streams to disk
    /// itself (the body is not read into memory first).
    Upload,
}

/// One line of the table: the route, and its handler behind the check of
/// that route's access (one value, so the two cannot disagree).
fn entry<F, Fut>(
    method: &'static str,
    path: &'static str,
    access: Access,
    limit: Limit,
    f: F,
) -> (Route, Box<dyn Endpoint<AppState>>)
where
    F: Fn(Request<AppState>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Reply> + Send + 'static,
{
    let route = Route {
        method,
        path,
        access,
    };
    (route, endpoint(access, limit, f))
}

/// Every route and its handler.
#[rustfmt::skip]
fn table() -> Vec<(Route, Box<dyn Endpoint<AppState>>)> {
    use Access::*;
    use Limit::*;
    vec![
        entry("GET", "/healthz", Public, Body, healthz),
        entry("GET", "/readyz", Public, Body, readyz),
        entry("GET", "/metrics", Read, Body, metrics),
        entry("GET", "/v1/openapi.json", Public, Body, openapi),
        entry("GET", "/", Public, Body, dashboard::index),
        entry("GET", "/ui/:file", Public, Body, dashboard::asset),
        entry("GET", "/v1/whoami", Read, Body, whoami),
        entry("GET", "/v1/nodes", Read, Body, nodes),
        entry("POST", "/v1/jobs", Submit, Body, jobs::submit),
        entry("GET", "/v1/jobs", Read, Body, jobs::list),
        entry("POST", "/v1/jobs/batch", Submit, Body, jobs::submit_batch),
        entry("POST", "/v1/jobs/clean", Submit, Body, bulk::clean),
        entry("POST", "/v1/jobs/cancel", Submit, Body, bulk::cancel),
        entry("POST", "/v1/jobs/retry", Submit, Body, bulk::retry),
        entry("GET", "/v1/jobs/:id", Read, Body, jobs::get),
        entry("DELETE", "/v1/jobs/:id", Submit, Body, jobs::remove),
        entry("POST", "/v1/jobs/:id/cancel", Submit, Body, jobs::cancel),
        entry("POST", "/v1/jobs/:id/retry", Submit, Body, jobs::retry),
        entry("GET", "/v1/jobs/:id/output", Read, Body, jobs::output),
        entry("POST", "/v1/uploads", Submit, Upload, jobs::upload),
        entry("GET", "/v1/events", Read, Body, jobs::events),
        entry("GET", "/v1/queues", Read, Body, queues::list),
        entry("PATCH", "/v1/queues/:name", Admin, Body, queues::patch),
        entry("DELETE", "/v1/queues/:name", Admin, Body, queues::remove),
        entry("GET", "/v1/schedules", Read, Body, schedules::list),
        entry("PUT", "/v1/schedules/:name", Submit, Body, schedules::put),
        entry("GET", "/v1/schedules/:name", Read, Body, schedules::get),
        entry("PATCH", "/v1/schedules/:name", Submit, Body, schedules::patch),
        entry("DELETE", "/v1/schedules/:name", Submit, Body, schedules::remove),
        entry("POST", "/v1/schedules/:name/run", Submit, Body, schedules::run),
    ]
}

impl Route {
    /// True when a request's `path` has this route's shape (a `:name`
    /// segment matches any one segment).
    fn fits(&self, path: &str) -> bool {
        let mut want = self.path.trim_end_matches('/').split('/');
        let mut have = path.trim_end_matches('/').split('/');
        loop {
            match (want.next(), have.next()) {
                (None, None) => return true,
                (Some(p), Some(s)) if p.starts_with(':') || p == s => {}
                _ => return false,
            }
        }
    }
}

/// The route table without its handlers, built once.
static ROUTES: LazyLock<Vec<Route>> =
    LazyLock::new(|| table().into_iter().map(|(route, _)| route).collect());

/// The methods the route table has for `path` (a request's path, matched
/// against the patterns), for a 405's `Allow` header. A path that a pattern
/// without parameters names (`/v1/jobs/batch`) is that resource only, not
/// also a job id: `/v1/jobs/:id`'s methods are not its.
pub(super) fn allowed_methods(path: &str) -> Vec<&'static str> {
    let fitting: Vec<&Route> = ROUTES.iter().filter(|route| route.fits(path)).collect();
    let exact = fitting.iter().any(|route| !route.path.contains(':'));
    let mut methods: Vec<&'static str> = fitting
        .iter()
        .filter(|route| !exact || !route.path.contains(':'))
        .map(|route| route.method)
        .collect();
    methods.sort_unstable();
    methods.dedup();
    methods
}

/// For a 405 of `method` on `path`: the methods it takes (`Allow`) and the
/// sentence saying so; `None` when no route has the path (a 404).
pub(super) fn method_refusal(path: &str, method: &str) -> Option<(String, String)> {
    let allowed = allowed_methods(path).join(", ");
    if allowed.is_empty() {
        return None;
    }
    let message = format!("{path} does not take {method}; it takes {allowed}");
    Some((allowed, message))
}

/// True when a route's pattern without parameters is `path` itself
/// (`/v1/jobs/batch`), which is then no job id whatever the method.
pub(super) fn is_named(path: &str) -> bool {
    let path = path.trim_end_matches('/');
    ROUTES
        .iter()
        .any(|route| !route.path.contains(':') && route.path == path)
}

/// The pattern of the route `method path` is served by (`/v1/jobs/:id`),
/// for metrics; `unmatched` when none is (a 404 or a 405): the label's
/// values stay a closed set, whatever paths clients send.
pub(super) fn route_name(method: &str, path: &str) -> &'static str {
    ROUTES
        .iter()
        .find(|route| route.method == method && route.fits(path))
        .map_or("unmatched", |route| route.path)
}

/// Every route with the role it needs.
pub fn routes() -> Vec<Route> {
    ROUTES.clone()
}

/// Adds every route of the table to `app`.
pub(super) fn add_all(app: &mut tide::Server<AppState>) {
    for (route, endpoint) in table() {
        let method: Method = route
            .method
            .parse()
            .expect("the table's methods are HTTP methods");
        app.at(route.path).method(method, endpoint);
    }
}

/// A request's principal, set by [`endpoint`] before the handler runs.
pub(super) fn principal(req: &Request<AppState>) -> &crate::auth::Principal {
    &req.ext::<Caller>()
        .expect("every endpoint authorizes before its handler runs")
        .0
}

/// The principal [`endpoint`] found, kept in the request for the handler.
struct Caller(crate::auth::Principal);

/// A request's body, read in full by [`endpoint`] before the handler runs.
#[derive(Clone, Debug, Default)]
pub(super) struct RequestBody(pub Vec<u8>);

/// Adapts a handler returning [`Reply`] to tide: checks the caller's role
/// for `access`, reads the body within `limit`, and turns errors into the
/// JSON error body.
///
/// The caller is checked before the body is read: a request that may not
/// be made costs no upload. The body is read here, in full and before any
/// answer, for every route: async-h1 discards an unread body after the
/// response through a buffered reader that can swallow the next request on
/// a kept-alive connection; a body we read ourselves never reaches that
/// path. A refusal before the body is read, or a body over the limit, is
/// `GET /metrics`: the Prometheus text exposition (OpenMetrics), with the
/// per-state job gauges as the store counts them now.
async fn metrics(req: Request<AppState>) -> Reply {
    let engine = &req.state().engine;
    let pulse = engine.pulse().await?;
    let counts = engine.job_counts().await?;
    let text = crate::metrics::metrics().encode(&counts, pulse.running, engine.limits());
    let mut res = Response::new(StatusCode::Ok);
    res.set_body(text);
    res.set_content_type("application/openmetrics-text; version=1.0.0; charset=utf-8");
    Ok(res)
}

/// answered with `Connection: close`, since its bytes may still be coming.
fn endpoint<F, Fut>(access: Access, limit: Limit, f: F) -> Box<dyn Endpoint<AppState>>
where
    F: Fn(Request<AppState>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Reply> + Send + 'static,
{
    let closing = |e: ApiError| {
        let unauthorized = e.status == StatusCode::Unauthorized;
        let mut res = e.into_response();
        res.insert_header("Connection", "close");
        if unauthorized {
            res.insert_header("WWW-Authenticate", "Bearer");
        }
        Ok(res)
    };
    Box::new(move |mut req: Request<AppState>| {
        let f = f.clone();
        async move {
            if access != Access::Public {
                match access::authorize(&req, access) {
                    Ok(principal) => {
                        req.set_ext(Caller(principal));
                    }
                    Err(e) => return closing(e),
                }
            }
            let max = match limit {
                Limit::Body => req.state().max_body,
                Limit::Upload => {
                    return match f(req).await {
                        Ok(res) => Ok(res),
                        // The body may be partly unread: close.
                        Err(e) => closing(e),
                    };
                }
            };
            match read_body(&mut req, max).await {
                Ok(body) => {
                    req.set_ext(RequestBody(body));
                    Ok(f(req).await.unwrap_or_else(ApiError::into_response))
                }
                Err(e) => closing(e),
            }
        }
    })
}

/// `GET /v1/openapi.json`: the OpenAPI document of every route.
async fn openapi(_req: Request<AppState>) -> Reply {
    Ok(super::json(StatusCode::Ok, &*super::openapi::DOCUMENT))
}

/// `GET /v1/whoami`: the caller's principal, role and the user its jobs
/// run as.
async fn whoami(req: Request<AppState>) -> Reply {
    jobs::query(&req, &[])?;
    let p = principal(&req);
    Ok(super::json(
        StatusCode::Ok,
        &Whoami {
            principal: p.owner(),
            role: p.role.as_str().to_owned(),
            user: p.runs_as.user.clone(),
        },
    ))
}

/// `GET /v1/nodes`: the daemons sharing the store.
async fn nodes(req: Request<AppState>) -> Reply {
    jobs::query(&req, &[])?;
    let nodes = req.state().engine.nodes().await?;
    Ok(super::json(
        StatusCode::Ok,
        &crate::api::NodeList {
            nodes: nodes
                .into_iter()
                .map(|n| crate::api::NodeView {
                    name: n.name,
                    state: n.state.as_str().to_owned(),
                    last_seen: n.last_seen,
                    running: n.running,
                    workers: n.workers,
                })
                .collect(),
        },
    ))
}

async fn healthz(_req: Request<AppState>) -> Reply {
    Ok(super::json(
        StatusCode::Ok,
        &Health {
            status: "ok".into(),
        },
    ))
}

async fn readyz(req: Request<AppState>) -> Reply {
    let state = req.state();
    let (status, text) = if state.engine.is_stopping() {
        (StatusCode::ServiceUnavailable, "shutting down")
    } else if state.ready.load(std::sync::atomic::Ordering::SeqCst) {
        (StatusCode::Ok, "ok")
    } else {
        (StatusCode::ServiceUnavailable, "recovering")
    };
    let res: Response = super::json(
        status,
        &Health {
            status: text.into(),
        },
    );
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::allowed_methods;

    #[test]
    fn a_named_resource_is_not_also_a_job_id() {
        assert_eq!(allowed_methods("/v1/jobs/batch"), ["POST"]);
        assert_eq!(allowed_methods("/v1/jobs/cancel"), ["POST"]);
        assert_eq!(allowed_methods("/v1/jobs/12"), ["DELETE", "GET"]);
        assert_eq!(allowed_methods("/v1/jobs"), ["GET", "POST"]);
        assert!(allowed_methods("/v2/nothing").is_empty());
        assert_eq!(allowed_methods("/"), ["GET"]);
        assert_eq!(allowed_methods("/ui/main.js"), ["GET"]);
    }
}
