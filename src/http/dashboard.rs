//! The web dashboard at `GET /`: static files built into the binary, so the
//! daemon needs nothing installed beside it and works offline. The page is
//! a client of the API like any other: it reads and acts through `/v1/…`
//! with the token the user gives it, so it can do nothing its token may not.
//!
//! Every answer carries a strict `Content-Security-Policy`: scripts, styles
//! and connections only from the daemon itself, no inline script, no
//! frames. The scripts insert every value from a job as text, never as
//! markup (`dashboard/dom.js`).

use tide::{Request, Response, StatusCode};

use super::{ApiError, AppState, Reply};
use crate::api::ErrorCode;

/// One file of the dashboard.
struct Asset {
    /// Its name under `/ui/`.
    name: &'static str,
    /// Its `Content-Type`.
    mime: &'static str,
    /// Its bytes.
    body: &'static str,
}

/// What the page may load and run: only the daemon's own files and API.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
frame-ancestors 'none'";

const JS: &str = "text/javascript; charset=utf-8";

/// The files under `/ui/`.
const ASSETS: &[Asset] = &[
    Asset {
        name: "app.css",
        mime: "text/css; charset=utf-8",
        body: include_str!("dashboard/app.css"),
    },
    Asset {
        name: "main.js",
        mime: JS,
        body: include_str!("dashboard/main.js"),
    },
    Asset {
        name: "api.js",
        mime: JS,
        body: include_str!("dashboard/api.js"),
    },
    Asset {
        name: "dom.js",
        mime: JS,
        body: include_str!("dashboard/dom.js"),
    },
    Asset {
        name: "overview.js",
        mime: JS,
        body: include_str!("dashboard/overview.js"),
    },
    Asset {
        name: "jobs.js",
        mime: JS,
        body: include_str!("dashboard/jobs.js"),
    },
    Asset {
        name: "job.js",
        mime: JS,
        body: include_str!("dashboard/job.js"),
    },
    Asset {
        name: "submit.js",
        mime: JS,
        body: include_str!("dashboard/submit.js"),
    },
    Asset {
        name: "schedules.js",
        mime: JS,
        body: include_str!("dashboard/schedules.js"),
    },
];

/// An answer with the headers every dashboard file carries.
fn file(mime: &str, body: &'static str) -> Response {
    let mut res = Response::new(StatusCode::Ok);
    res.set_body(body);
    res.insert_header("Content-Type", mime);
    res.insert_header("Content-Security-Policy", CSP);
    res.insert_header("X-Content-Type-Options", "nosniff");
    res.insert_header("Referrer-Policy", "no-referrer");
    res.insert_header("X-Frame-Options", "DENY");
    // Small, and they change with the binary: always asked again, so an
    // upgrade never mixes old and new files.
    res.insert_header("Cache-Control", "no-cache");
    res
}

/// `GET /`: the dashboard's page.
pub(super) async fn index(_req: Request<AppState>) -> Reply {
    Ok(file(
        "text/html; charset=utf-8",
        include_str!("dashboard/index.html"),
    ))
}

/// `GET /ui/{file}`: one of the dashboard's scripts or its style sheet.
pub(super) async fn asset(req: Request<AppState>) -> Reply {
    let name = req.param("file").unwrap_or_default();
    ASSETS
        .iter()
        .find(|a| a.name == name)
        .map(|a| file(a.mime, a.body))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NotFound,
                ErrorCode::NotFound,
                format!("the dashboard has no file {name:?}"),
            )
        })
}
