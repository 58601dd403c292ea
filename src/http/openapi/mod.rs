//! The OpenAPI 3.1 document served at `GET /v1/openapi.json`.
//!
//! The schemas come from the API's own types (`utoipa::ToSchema`, which
//! reads their serde attributes), so a field cannot be added to a type and
//! forgotten in the document. The operations are [`OPERATIONS`], one per
//! route of the route table; a test checks the two list the same routes,
//! and that every error code the API has is documented somewhere.

mod rules;

use std::borrow::Cow;
use std::sync::LazyLock;

use serde_json::{json, Map, Value};
use utoipa::openapi::schema::Schema;
use utoipa::openapi::RefOr;
use utoipa::{OpenApi, PartialSchema, ToSchema};

use super::routes::Access;
use crate::api::{
    BatchRequest, BatchResponse, BulkRequest, BulkResponse, DurationArg, ErrorBody, ErrorCode,
    ErrorDetail, Health, JobList, JobRequest, JobView, NodeList, NodeView, QueueList, QueuePatch,
    QueueView, ScheduleList, SchedulePatch, ScheduleRequest, ScheduleView, Upload, Whoami,
};
use crate::resources::{LimitsArg, SizeArg, Usage};

/// The component schemas, from the types.
#[derive(OpenApi)]
#[openapi(components(schemas(
    JobRequest,
    JobView,
    crate::api::AttemptView,
    JobList,
    BatchRequest,
    BatchResponse,
    BulkRequest,
    BulkResponse,
    QueueList,
    QueueView,
    QueuePatch,
    ScheduleRequest,
    ScheduleView,
    ScheduleList,
    SchedulePatch,
    crate::schedule::Overlap,
    crate::schedule::Missed,
    Upload,
    Health,
    Whoami,
    NodeList,
    NodeView,
    ErrorBody,
    ErrorDetail,
    ErrorCode,
    LimitsArg,
    Usage,
    crate::job::FailReason,
    crate::job::StateName,
    DurationArg,
    SizeArg
)))]
struct Components;

impl PartialSchema for DurationArg {
    fn schema() -> RefOr<Schema> {
        serde_json::from_value(rules::duration(false)).unwrap_or_default()
    }
}

impl ToSchema for DurationArg {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Duration")
    }
}

impl PartialSchema for SizeArg {
    fn schema() -> RefOr<Schema> {
        serde_json::from_value(rules::size()).unwrap_or_default()
    }
}

impl ToSchema for SizeArg {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Size")
    }
}

/// What an operation's body is.
#[derive(Clone, Copy, Debug)]
pub enum Body {
    /// None.
    None,
    /// JSON of the named component schema.
    Json(&'static str),
    /// Any bytes.
    Bytes,
}

/// What a success answers with.
#[derive(Clone, Copy, Debug)]
pub enum Answer {
    /// JSON of the named component schema.
    Json(&'static str),
    /// No body.
    Empty,
    /// `application/octet-stream`, or Server-Sent Events with `Accept:
    /// text/event-stream` (job output).
    Output,
    /// Server-Sent Events only.
    Events,
    /// The Prometheus text exposition.
    Metrics,
    /// A file of the web dashboard (HTML, CSS or JavaScript).
    Page,
}

/// The schema of a parameter.
#[derive(Clone, Copy, Debug)]
pub enum Param {
    /// Spelled out, as JSON.
    Json(&'static str),
    /// `?wait=`: at most 5 minutes.
    Wait,
    /// A queue name.
    Queue,
    /// A job id or number.
    JobRef,
    /// A UUID (a cursor).
    Uuid,
}

/// A query parameter.
#[derive(Clone, Copy, Debug)]
pub struct Query {
    /// Its name.
    pub name: &'static str,
    /// Its schema.
    pub schema: Param,
    /// What it does.
    pub about: &'static str,
}

/// One documented operation.
#[derive(Clone, Copy, Debug)]
pub struct Operation {
    /// `GET`, `POST`, …
    pub method: &'static str,
    /// The route table's pattern (`/v1/jobs/:id`).
    pub path: &'static str,
    /// `operationId`.
    pub id: &'static str,
    /// One line.
    pub summary: &'static str,
    /// Its query parameters.
    pub query: &'static [Query],
    /// Its body.
    pub body: Body,
    /// Its successes: status and what it answers.
    pub ok: &'static [(u16, Answer)],
    /// Its errors besides those every operation can answer.
    pub errors: &'static [u16],
}

const NONEMPTY: Param = Param::Json(r#"{"type": "string", "minLength": 1}"#);
const BOOL: Param = Param::Json(r#"{"type": "boolean"}"#);

/// Errors any operation may answer: a bad request, a head or body too
/// large or slow, a missing or wrong token, a refused role, past a limit
/// of the daemon, a bug, a feature the daemon's store does not do yet (501,
/// on the PostgreSQL store only).
pub const COMMON_ERRORS: [u16; 9] = [400, 401, 403, 408, 413, 431, 500, 501, 503];

/// Every operation of the API.
#[rustfmt::skip]
pub const OPERATIONS: &[Operation] = &[
    Operation { method: "GET", path: "/healthz", id: "healthz", summary: "200 while the process serves", query: &[], body: Body::None, ok: &[(200, Answer::Json("Health"))], errors: &[] },
    Operation { method: "GET", path: "/readyz", id: "readyz", summary: "200 once the store is open and recovery done; 503 before and while draining", query: &[], body: Body::None, ok: &[(200, Answer::Json("Health"))], errors: &[] },
    Operation { method: "GET", path: "/metrics", id: "metrics", summary: "Prometheus metrics (OpenMetrics text)", query: &[], body: Body::None, ok: &[(200, Answer::Metrics)], errors: &[] },
    Operation { method: "GET", path: "/", id: "dashboard", summary: "the web dashboard's page", query: &[], body: Body::None, ok: &[(200, Answer::Page)], errors: &[] },
    Operation { method: "GET", path: "/ui/:file", id: "dashboardFile", summary: "a script or the style sheet of the web dashboard", query: &[], body: Body::None, ok: &[(200, Answer::Page)], errors: &[404] },
    Operation { method: "GET", path: "/v1/whoami", id: "whoami", summary: "who the daemon takes the caller for: principal, role, and the user its jobs run as", query: &[], body: Body::None, ok: &[(200, Answer::Json("Whoami"))], errors: &[] },
    Operation { method: "GET", path: "/v1/nodes", id: "listNodes", summary: "the daemons sharing this store: name, state, last heartbeat, running jobs, workers", query: &[], body: Body::None, ok: &[(200, Answer::Json("NodeList"))], errors: &[] },
    Operation { method: "GET", path: "/v1/openapi.json", id: "openapi", summary: "this document", query: &[], body: Body::None, ok: &[(200, Answer::Json("OpenApi"))], errors: &[] },
    Operation { method: "POST", path: "/v1/jobs", id: "submitJob", summary: "submit a job; 201 once durable, 200 with the existing job when its idempotency key matched", query: &[], body: Body::Json("JobRequest"), ok: &[(201, Answer::Json("JobView")), (200, Answer::Json("JobView"))], errors: &[404, 429] },
    Operation { method: "GET", path: "/v1/jobs", id: "listJobs", summary: "list jobs, newest first, a page at a time", query: &[
        Query { name: "state", schema: Param::Json(r#"{"type": "string", "pattern": "^((waiting|scheduled|queued|running|succeeded|failed|cancelled)?,)*(waiting|scheduled|queued|running|succeeded|failed|cancelled)?$"}"#), about: "comma-separated states" },
        Query { name: "queue", schema: Param::Queue, about: "only this queue's" },
        Query { name: "label", schema: Param::Json(r#"{"type": "string", "pattern": "^[^:]*:"}"#), about: "key:value" },
        Query { name: "owner", schema: NONEMPTY, about: "only this owner's" },
        Query { name: "name", schema: NONEMPTY, about: "only jobs of this name" },
        Query { name: "limit", schema: Param::Json(r#"{"type": "integer", "minimum": 1, "maximum": 1000}"#), about: "page size (default 100)" },
        Query { name: "cursor", schema: Param::Uuid, about: "next_cursor of the previous page" },
    ], body: Body::None, ok: &[(200, Answer::Json("JobList"))], errors: &[] },
    Operation { method: "POST", path: "/v1/jobs/batch", id: "submitJobs", summary: "submit several jobs, all or none", query: &[], body: Body::Json("BatchRequest"), ok: &[(201, Answer::Json("BatchResponse"))], errors: &[404, 429] },
    Operation { method: "POST", path: "/v1/jobs/clean", id: "cleanJobs", summary: "remove the terminal jobs the filters match", query: &[], body: Body::Json("CleanRequest"), ok: &[(200, Answer::Json("BulkResponse"))], errors: &[] },
    Operation { method: "POST", path: "/v1/jobs/cancel", id: "cancelJobs", summary: "cancel the jobs the filters match (a state or queue is needed)", query: &[], body: Body::Json("CancelRequest"), ok: &[(200, Answer::Json("BulkResponse"))], errors: &[] },
    Operation { method: "POST", path: "/v1/jobs/retry", id: "retryJobs", summary: "queue again the failed or cancelled jobs the filters match", query: &[], body: Body::Json("RetryRequest"), ok: &[(200, Answer::Json("BulkResponse"))], errors: &[] },
    Operation { method: "GET", path: "/v1/jobs/:id", id: "getJob", summary: "one job; with wait=D, once it is terminal or after D", query: &[
        Query { name: "wait", schema: Param::Wait, about: "long poll: at most 5m" },
    ], body: Body::None, ok: &[(200, Answer::Json("JobView"))], errors: &[404] },
    Operation { method: "DELETE", path: "/v1/jobs/:id", id: "deleteJob", summary: "remove a terminal job and its output", query: &[], body: Body::None, ok: &[(204, Answer::Empty)], errors: &[404, 409] },
    Operation { method: "POST", path: "/v1/jobs/:id/cancel", id: "cancelJob", summary: "cancel a job that has not ended", query: &[], body: Body::None, ok: &[(200, Answer::Json("JobView"))], errors: &[404, 409] },
    Operation { method: "POST", path: "/v1/jobs/:id/retry", id: "retryJob", summary: "run a failed or cancelled job again", query: &[], body: Body::None, ok: &[(200, Answer::Json("JobView"))], errors: &[404, 409] },
    Operation { method: "GET", path: "/v1/jobs/:id/output", id: "jobOutput", summary: "a job's output; follow=true streams it; Accept: text/event-stream for SSE", query: &[
        Query { name: "stream", schema: Param::Json(r#"{"type": "string", "enum": ["stdout", "stderr", "all"]}"#), about: "which stream (default all)" },
        Query { name: "offset", schema: Param::Json(r#"{"type": "integer", "minimum": 0, "maximum": 18446744073709551615}"#), about: "bytes of that stream to skip" },
        Query { name: "attempt", schema: Param::Json(r#"{"type": "integer", "minimum": 1, "maximum": 4294967295}"#), about: "which attempt (default the current)" },
        Query { name: "follow", schema: BOOL, about: "keep streaming until the job ends" },
    ], body: Body::None, ok: &[(200, Answer::Output)], errors: &[404] },
    Operation { method: "POST", path: "/v1/uploads", id: "upload", summary: "keep stdin bytes for a job's stdin_upload (any bytes, up to max_upload)", query: &[], body: Body::Bytes, ok: &[(201, Answer::Json("Upload"))], errors: &[] },
    Operation { method: "GET", path: "/v1/events", id: "events", summary: "Server-Sent Events of job state changes", query: &[
        Query { name: "job", schema: Param::JobRef, about: "only this job's (first event: its state now)" },
        Query { name: "queue", schema: Param::Queue, about: "only this queue's" },
    ], body: Body::None, ok: &[(200, Answer::Events)], errors: &[404] },
    Operation { method: "GET", path: "/v1/queues", id: "listQueues", summary: "every queue: limit, paused, counts by state", query: &[], body: Body::None, ok: &[(200, Answer::Json("QueueList"))], errors: &[] },
    Operation { method: "PATCH", path: "/v1/queues/:name", id: "patchQueue", summary: "set a queue's limit or pause it (admin)", query: &[], body: Body::Json("QueuePatch"), ok: &[(200, Answer::Json("QueueView"))], errors: &[404] },
    Operation { method: "DELETE", path: "/v1/queues/:name", id: "deleteQueue", summary: "forget a queue's stored settings (admin)", query: &[], body: Body::None, ok: &[(204, Answer::Empty)], errors: &[404, 409] },
    Operation { method: "GET", path: "/v1/schedules", id: "listSchedules", summary: "every schedule, by name", query: &[], body: Body::None, ok: &[(200, Answer::Json("ScheduleList"))], errors: &[] },
    Operation { method: "PUT", path: "/v1/schedules/:name", id: "putSchedule", summary: "create (201) or replace (200) a schedule", query: &[], body: Body::Json("ScheduleRequest"), ok: &[(201, Answer::Json("ScheduleView")), (200, Answer::Json("ScheduleView"))], errors: &[] },
    Operation { method: "GET", path: "/v1/schedules/:name", id: "getSchedule", summary: "one schedule, with its next and last fire", query: &[], body: Body::None, ok: &[(200, Answer::Json("ScheduleView"))], errors: &[404] },
    Operation { method: "PATCH", path: "/v1/schedules/:name", id: "patchSchedule", summary: "pause or resume a schedule", query: &[], body: Body::Json("SchedulePatch"), ok: &[(200, Answer::Json("ScheduleView"))], errors: &[404] },
    Operation { method: "DELETE", path: "/v1/schedules/:name", id: "deleteSchedule", summary: "forget a schedule (its jobs stay)", query: &[], body: Body::None, ok: &[(204, Answer::Empty)], errors: &[404] },
    Operation { method: "POST", path: "/v1/schedules/:name/run", id: "runSchedule", summary: "start one job of the schedule now, outside its timetable", query: &[], body: Body::None, ok: &[(201, Answer::Json("JobView"))], errors: &[404, 429] },
];

/// `/v1/jobs/:id` as OpenAPI writes it: `/v1/jobs/{id}`.
pub fn openapi_path(pattern: &str) -> String {
    pattern
        .split('/')
        .map(|seg| match seg.strip_prefix(':') {
            Some(name) => format!("{{{name}}}"),
            None => seg.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The schema a [`Param`] names or spells out.
fn param_schema(schema: Param) -> Value {
    match schema {
        Param::Json(json) => serde_json::from_str(json).unwrap_or_default(),
        Param::Wait => rules::wait(),
        Param::Queue => json!({ "type": "string", "pattern": rules::QUEUE_NAME }),
        Param::JobRef => rules::job_ref(),
        Param::Uuid => rules::uuid(),
    }
}

/// One Server-Sent Event of a stream: its `event` name, `data` and `id`.
fn sse_event(events: &[&str], data: &str, id: Value) -> Value {
    json!({
        "type": "object",
        "required": ["event", "data"],
        "properties": {
            "event": { "type": "string", "enum": events },
            "data": { "type": "string", "description": data },
            "id": id,
        },
    })
}

fn reference(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn content(answer: Answer) -> Option<Value> {
    Some(match answer {
        Answer::Empty => return None,
        Answer::Json("OpenApi") => {
            json!({ "application/json": { "schema": { "type": "object" } } })
        }
        Answer::Json(name) => json!({ "application/json": { "schema": reference(name) } }),
        Answer::Output => json!({
            "application/octet-stream": { "schema": { "type": "string", "format": "binary" } },
            "text/event-stream": { "schema": sse_event(
                &["attempt", "stdout", "stderr", "end"],
                "attempt: {\"attempt\": N}; stdout, stderr: the bytes in base64; end: the job's end as JSON",
                json!({ "type": "string", "pattern": "^[0-9]+:[0-9]+$", "description": "attempt:offset, for Last-Event-ID" }),
            ) },
        }),
        Answer::Events => json!({ "text/event-stream": { "schema": sse_event(
            &["job", "lagged"],
            "job: a JobEvent as JSON; lagged: {\"message\": …}, after which the stream ends",
            json!({ "type": "string" }),
        ) } }),
        Answer::Metrics => json!({
            "application/openmetrics-text": { "schema": { "type": "string" } },
        }),
        Answer::Page => json!({
            "text/html": { "schema": { "type": "string" } },
            "text/css": { "schema": { "type": "string" } },
            "text/javascript": { "schema": { "type": "string" } },
        }),
    })
}

fn error_response(status: u16) -> Value {
    let about = match status {
        400 => "a field, parameter or body is wrong (named in field)",
        401 => "no token or a wrong one, where one is needed",
        403 => "the token's role may not do this, or the job is another's",
        404 => "no such job, queue, schedule or upload",
        408 => "the request head or body came too slowly",
        409 => "the job's or queue's state forbids it",
        413 => "the body is over the limit",
        429 => "too many jobs are waiting to start",
        431 => "the request head is too large",
        503 => "not ready, shutting down, the store cannot write, or a limit of connections, streams or uploads is reached",
        _ => "a bug",
    };
    json!({
        "description": about,
        "content": { "application/json": { "schema": reference("ErrorBody") } },
    })
}

fn operation(op: &Operation, access: Access) -> Value {
    let mut parameters: Vec<Value> = op
        .path
        .split('/')
        .filter_map(|seg| seg.strip_prefix(':'))
        .map(|name| {
            json!({
                "name": name, "in": "path", "required": true,
                "schema": param_schema(match name {
                    "id" => Param::JobRef,
                    "file" => NONEMPTY,
                    _ => Param::Queue,
                }),
            })
        })
        .collect();
    parameters.extend(op.query.iter().map(|q| {
        json!({
            "name": q.name, "in": "query", "required": false, "description": q.about,
            "schema": param_schema(q.schema),
        })
    }));
    let mut responses = Map::new();
    for (status, answer) in op.ok {
        let mut r = json!({ "description": op.summary });
        if let Some(c) = content(*answer) {
            r["content"] = c;
        }
        responses.insert(status.to_string(), r);
    }
    for status in COMMON_ERRORS.iter().chain(op.errors) {
        responses.insert(status.to_string(), error_response(*status));
    }
    let mut out = json!({
        "operationId": op.id,
        "summary": op.summary,
        "parameters": parameters,
        "responses": responses,
    });
    out["security"] = match access {
        Access::Public => json!([]),
        _ => json!([{ "bearer": [] }]),
    };
    match op.body {
        Body::None => {}
        Body::Json(name) => {
            out["requestBody"] = json!({
                "required": true,
                "content": { "application/json": { "schema": reference(name) } },
            })
        }
        // An empty upload is an empty stdin.
        Body::Bytes => {
            out["requestBody"] = json!({
                "required": false,
                "content": { "application/octet-stream": { "schema": { "type": "string", "format": "binary" } } },
            })
        }
    }
    out
}

/// The access of the route `method` `path` (the route table's).
fn access_of(method: &str, path: &str) -> Access {
    super::routes::routes()
        .iter()
        .find(|r| r.method == method && r.path == path)
        .map_or(Access::Public, |r| r.access)
}

/// OpenAPI links from `PUT /v1/schedules/{name}` to the operations on the
/// schedule it made: the name it was put under names it there. For readers,
/// and for schemathesis's stateful phase, which then acts on schedules that
/// exist rather than on random names.
fn link_schedules(paths: &mut Map<String, Value>) {
    let links: Map<String, Value> = [
        "getSchedule",
        "patchSchedule",
        "runSchedule",
        "deleteSchedule",
    ]
    .iter()
    .map(|id| {
        let link = json!({ "operationId": id, "parameters": { "name": "$request.path.name" } });
        ((*id).to_owned(), link)
    })
    .collect();
    if let Some(responses) = paths
        .get_mut("/v1/schedules/{name}")
        .and_then(|item| item["put"]["responses"].as_object_mut())
    {
        for status in ["200", "201"] {
            if let Some(r) = responses.get_mut(status) {
                r["links"] = Value::Object(links.clone());
            }
        }
    }
}

/// The document, built once.
pub static DOCUMENT: LazyLock<Value> = LazyLock::new(build);

fn build() -> Value {
    let mut doc = serde_json::to_value(Components::openapi()).unwrap_or_default();
    rules::apply(&mut doc);
    doc["openapi"] = json!("3.1.0");
    doc["info"] = json!({
        "title": "jobq",
        "version": env!("CARGO_PKG_VERSION"),
        "description": "A job queue and subprocess orchestrator daemon. See docs/api.md.",
    });
    let mut paths = Map::new();
    for op in OPERATIONS {
        let item = paths
            .entry(openapi_path(op.path))
            .or_insert_with(|| json!({}));
        item[op.method.to_lowercase()] = operation(op, access_of(op.method, op.path));
    }
    link_schedules(&mut paths);
    doc["paths"] = Value::Object(paths);
    doc["components"]["securitySchemes"] = json!({
        "bearer": {
            "type": "http", "scheme": "bearer",
            "description": "a token of [[auth.tokens]]; a daemon without tokens also takes requests without one",
        }
    });
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented_and_every_documented_route_exists() {
        let mut routes: Vec<(String, String)> = super::super::routes::routes()
            .iter()
            .map(|r| (r.method.to_owned(), r.path.to_owned()))
            .collect();
        let mut documented: Vec<(String, String)> = OPERATIONS
            .iter()
            .map(|o| (o.method.to_owned(), o.path.to_owned()))
            .collect();
        routes.sort();
        documented.sort();
        assert_eq!(routes, documented);
        let paths = DOCUMENT["paths"].as_object().unwrap();
        for op in OPERATIONS {
            let item = &paths[&openapi_path(op.path)];
            assert!(
                item[op.method.to_lowercase()].is_object(),
                "{} {}",
                op.method,
                op.path
            );
        }
    }

    /// The statuses each code is answered with. A match, so that a new
    /// code cannot be added without saying where it is documented.
    fn statuses_of(code: ErrorCode) -> &'static [u16] {
        match code {
            ErrorCode::InvalidJson => &[400, 408],
            ErrorCode::InvalidField => &[400, 408, 431],
            ErrorCode::NotFound => &[404],
            ErrorCode::MethodNotAllowed => &[405],
            ErrorCode::Conflict => &[409],
            ErrorCode::Unauthorized => &[401],
            ErrorCode::Forbidden => &[403],
            ErrorCode::PayloadTooLarge => &[413],
            ErrorCode::QueueFull => &[429],
            ErrorCode::Unavailable => &[503],
            ErrorCode::NotImplemented => &[501],
            ErrorCode::Internal => &[500],
        }
    }

    #[test]
    fn every_error_code_is_documented_and_every_documented_status_is_used() {
        let all = [
            ErrorCode::InvalidJson,
            ErrorCode::InvalidField,
            ErrorCode::NotFound,
            ErrorCode::MethodNotAllowed,
            ErrorCode::Conflict,
            ErrorCode::Unauthorized,
            ErrorCode::Forbidden,
            ErrorCode::PayloadTooLarge,
            ErrorCode::QueueFull,
            ErrorCode::Unavailable,
            ErrorCode::NotImplemented,
            ErrorCode::Internal,
        ];
        let codes = DOCUMENT["components"]["schemas"]["ErrorCode"]["enum"]
            .as_array()
            .unwrap();
        assert_eq!(
            codes.len(),
            all.len(),
            "ErrorCode has a code the list above lacks"
        );
        let documented: std::collections::BTreeSet<u16> = OPERATIONS
            .iter()
            .flat_map(|op| COMMON_ERRORS.iter().chain(op.errors))
            .copied()
            .collect();
        let used: std::collections::BTreeSet<u16> =
            all.iter().flat_map(|c| statuses_of(*c)).copied().collect();
        for code in all {
            let name = serde_json::to_value(code).unwrap();
            assert!(codes.contains(&name), "{name} is not in the document");
        }
        // 405 is the answer to a method no route has, so no operation
        // documents it; every other status is documented and answered.
        let unrouted: std::collections::BTreeSet<u16> = [405].into();
        assert_eq!(
            documented,
            used.difference(&unrouted).copied().collect(),
            "a documented status no code answers, or a code's status no operation documents"
        );
    }

    #[test]
    fn every_schema_reference_resolves() {
        let doc = DOCUMENT.to_string();
        let schemas = DOCUMENT["components"]["schemas"].as_object().unwrap();
        for piece in doc.split("#/components/schemas/").skip(1) {
            let name = piece.split('"').next().unwrap();
            assert!(
                schemas.contains_key(name),
                "{name} is referenced but not defined"
            );
        }
    }
}
