//! Handlers of `/v1/jobs…`: one small function per endpoint, each parsing
//! its input, calling the engine and shaping the answer.

use std::time::Duration;

use jiff::Timestamp;
use tide::{Body, Request, Response, StatusCode};

use super::body::BodyReader;
use super::routes::principal;
use super::stream::{self, Encoding};
use super::{
    body, from_object, json, parse_json, parse_object, path_param, ApiError, AppState, Reply,
};
use crate::api::{
    parse_duration, BatchRequest, BatchResponse, ErrorCode, JobList, JobRef, JobRequest, JobView,
    Upload, MAX_BATCH,
};
use crate::auth::Principal;
use crate::engine::ListQuery;
use crate::events::EventFilter;
use crate::job::{JobId, StateName};
use crate::output::Resume;
use crate::store::StreamFilter;

/// Default page size of `GET /v1/jobs` (docs/api.md).
const DEFAULT_LIMIT: usize = 100;
/// Largest page size (docs/api.md).
const MAX_LIMIT: usize = 1000;
/// Longest long-poll (`GET /v1/jobs/{id}?wait=`): long enough to be cheap,
/// short enough that proxies and clients do not time the request out.
const MAX_WAIT: Duration = Duration::from_secs(300);
/// Most output bytes one plain read returns; read on with `offset`.
const MAX_OUTPUT_READ: usize = 256 * 1024 * 1024;

/// The job the path names, by id or number.
async fn job_id(req: &Request<AppState>) -> Result<JobId, ApiError> {
    let raw = path_param(req, "id")?;
    let r: JobRef = raw
        .parse()
        .map_err(|e| ApiError::not_found(format!("no job {raw:?}: {e}")))?;
    Ok(req.state().engine.resolve(&r).await?)
}

/// `request` with each job number in `after` replaced by that job's id.
async fn resolve_after(
    engine: &crate::engine::Engine,
    request: &mut JobRequest,
) -> Result<(), ApiError> {
    for entry in &mut request.after {
        match entry.parse::<JobRef>() {
            Ok(r @ JobRef::Number(_)) => {
                let id = engine
                    .resolve(&r)
                    .await
                    .map_err(|e| ApiError::field("after", e.to_string()))?;
                *entry = id.to_string();
            }
            // As the path takes it: spaces around, any form of UUID.
            Ok(JobRef::Id(id)) => *entry = id.to_string(),
            Err(_) => {}
        }
    }
    Ok(())
}

/// Query parameters as pairs, refusing any not in `known`.
pub(super) fn query(
    req: &Request<AppState>,
    known: &[&str],
) -> Result<Vec<(String, String)>, ApiError> {
    let pairs: Vec<(String, String)> = req
        .url()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if let Some((k, _)) = pairs.iter().find(|(k, _)| !known.contains(&k.as_str())) {
        return Err(ApiError::field(
            k.clone(),
            format!("unknown query parameter {k:?}; known: {}", known.join(", ")),
        ));
    }
    Ok(pairs)
}

/// A job as `principal` may see it: `env` values only for its owner and
/// admins.
fn view(principal: &Principal, job: &crate::job::Job) -> JobView {
    let view = JobView::from(job);
    if principal.may_see_env_of(&job.owner) {
        view
    } else {
        view.with_env_hidden()
    }
}

pub(super) fn job_json(
    status: StatusCode,
    job: &crate::job::Job,
    principal: &Principal,
) -> Response {
    json(status, &view(principal, job))
}

/// `POST /v1/jobs`: 201 with a new job, or 200 with the job that holds
/// the idempotency key.
pub async fn submit(req: Request<AppState>) -> Reply {
    query(&req, &[])?;
    let mut request: JobRequest = parse_json(body(&req))?;
    let engine = &req.state().engine;
    resolve_after(engine, &mut request).await?;
    let (spec, stdin) = request.validate(Timestamp::now(), engine.default_backoff())?;
    let principal = principal(&req);
    let submitted = engine.submit(spec, stdin, principal).await?;
    let status = if submitted.created {
        StatusCode::Created
    } else {
        StatusCode::Ok
    };
    let mut res = job_json(status, &submitted.job, principal);
    res.insert_header("Location", format!("/v1/jobs/{}", submitted.job.id));
    Ok(res)
}

/// `POST /v1/jobs/batch`: `{"jobs": [spec…]}`, all or nothing, one flush.
pub async fn submit_batch(req: Request<AppState>) -> Reply {
    query(&req, &[])?;
    let value = parse_object(body(&req))?;
    // serde would also take a spec as an array of its fields in order.
    let items = value.get("jobs").and_then(|j| j.as_array());
    if let Some(i) = items.and_then(|items| items.iter().position(|j| !j.is_object())) {
        return Err(ApiError::field(
            format!("jobs[{i}]"),
            "must be a JSON object (one job spec {...})",
        ));
    }
    let batch: BatchRequest = from_object(value)?;
    if batch.jobs.is_empty() {
        return Err(ApiError::field("jobs", "must hold at least one job spec"));
    }
    if batch.jobs.len() > MAX_BATCH {
        return Err(ApiError::field(
            "jobs",
            format!("at most {MAX_BATCH} jobs per batch"),
        ));
    }
    let engine = &req.state().engine;
    let now = Timestamp::now();
    let mut specs = Vec::with_capacity(batch.jobs.len());
    for (i, mut r) in batch.jobs.into_iter().enumerate() {
        resolve_after(engine, &mut r).await.map_err(|e| {
            ApiError::field(
                format!("jobs[{i}].after"),
                format!("jobs[{i}].after: {}", e.message),
            )
        })?;
        specs.push(r.validate(now, engine.default_backoff()).map_err(|e| {
            ApiError::field(format!("jobs[{i}].{}", e.field), format!("jobs[{i}].{}", e))
        })?);
    }
    let principal = principal(&req);
    let submitted = engine.submit_all(specs, principal).await?;
    Ok(json(
        StatusCode::Created,
        &BatchResponse {
            jobs: submitted.iter().map(|s| view(principal, &s.job)).collect(),
        },
    ))
}

/// `GET /v1/jobs`.
pub async fn list(req: Request<AppState>) -> Reply {
    let mut q = ListQuery {
        limit: DEFAULT_LIMIT,
        ..ListQuery::default()
    };
    for (k, v) in query(
        &req,
        &[
            "state", "queue", "label", "owner", "name", "limit", "cursor",
        ],
    )? {
        match k.as_str() {
            "state" => {
                for name in v.split(',').filter(|s| !s.is_empty()) {
                    q.states.push(
                        name.parse::<StateName>()
                            .map_err(|e| ApiError::field("state", e))?,
                    );
                }
            }
            "queue" => {
                if !crate::api::is_valid_queue_name(&v) {
                    return Err(ApiError::field(
                        "queue",
                        format!("{v:?} is not a queue name: use 1 to 64 of a-z 0-9 _ . -"),
                    ));
                }
                q.queue = Some(v)
            }
            "name" => {
                if v.is_empty() {
                    return Err(ApiError::field("name", "must not be empty"));
                }
                q.name = Some(v);
            }
            "owner" => {
                if v.is_empty() {
                    return Err(ApiError::field(
                        "owner",
                        "must name an owner: token:NAME, unix:USER or anonymous",
                    ));
                }
                q.owner = Some(v);
            }
            "label" => {
                let (key, value) = v
                    .split_once(':')
                    .ok_or_else(|| ApiError::field("label", format!("{v:?} is not key:value")))?;
                q.labels.push((key.to_owned(), value.to_owned()));
            }
            "limit" => {
                q.limit = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        ApiError::field(
                            "limit",
                            format!("{v:?} is not a number from 1 to {MAX_LIMIT}"),
                        )
                    })?;
            }
            "cursor" => {
                q.before = Some(v.parse().map_err(|_| {
                    ApiError::field(
                        "cursor",
                        format!("{v:?} is not a cursor from a previous page"),
                    )
                })?);
            }
            _ => unreachable!("query() refuses unknown parameters"),
        }
    }
    let page = req.state().engine.list(&q).await?;
    let principal = principal(&req);
    Ok(json(
        StatusCode::Ok,
        &JobList {
            jobs: page.jobs.iter().map(|job| view(principal, job)).collect(),
            next_cursor: page.next.map(|id| id.to_string()),
        },
    ))
}

/// `GET /v1/jobs/{id}`; with `?wait=D`, answers once the job is terminal or
/// after D, whichever comes first (a long poll for `jobq wait`).
pub async fn get(req: Request<AppState>) -> Reply {
    let id = job_id(&req).await?;
    let mut wait = None;
    for (k, v) in query(&req, &["wait"])? {
        if k == "wait" {
            let d = parse_duration(&v).map_err(|e| ApiError::field("wait", e))?;
            if d > MAX_WAIT {
                return Err(ApiError::field(
                    "wait",
                    "at most 5m; ask again to wait longer",
                ));
            }
            wait = Some(d);
        }
    }
    let engine = &req.state().engine;
    let job = match wait {
        Some(d) => engine.wait(&id, d).await?,
        None => engine.get(&id).await?,
    };
    Ok(job_json(StatusCode::Ok, &job, principal(&req)))
}

/// `POST /v1/jobs/{id}/cancel`.
pub async fn cancel(req: Request<AppState>) -> Reply {
    query(&req, &[])?;
    let id = job_id(&req).await?;
    let principal = principal(&req);
    let job = req.state().engine.cancel(&id, principal).await?;
    Ok(job_json(StatusCode::Ok, &job, principal))
}

/// `POST /v1/jobs/{id}/retry`.
pub async fn retry(req: Request<AppState>) -> Reply {
    query(&req, &[])?;
    let id = job_id(&req).await?;
    let principal = principal(&req);
    let job = req.state().engine.retry(&id, principal).await?;
    Ok(job_json(StatusCode::Ok, &job, principal))
}

/// `DELETE /v1/jobs/{id}`.
pub async fn remove(req: Request<AppState>) -> Reply {
    query(&req, &[])?;
    let id = job_id(&req).await?;
    req.state().engine.remove(&id, principal(&req)).await?;
    Ok(Response::new(StatusCode::NoContent))
}

/// `GET /v1/jobs/{id}/output`: the bytes so far; with `follow=true` kept
/// open until the job is terminal; with `Accept: text/event-stream`, SSE
/// (resumable with `Last-Event-ID`).
pub async fn output(req: Request<AppState>) -> Reply {
    let id = job_id(&req).await?;
    let mut filter = StreamFilter::All;
    let mut offset = 0u64;
    let mut attempt = None;
    let mut follow = false;
    for (k, v) in query(&req, &["stream", "offset", "attempt", "follow"])? {
        match k.as_str() {
            "stream" => {
                filter = match v.as_str() {
                    "stdout" => StreamFilter::Stdout,
                    "stderr" => StreamFilter::Stderr,
                    "all" => StreamFilter::All,
                    _ => {
                        return Err(ApiError::field(
                            "stream",
                            format!("{v:?} is not one of stdout, stderr, all"),
                        ))
                    }
                }
            }
            "offset" => {
                offset = v.parse().map_err(|_| {
                    ApiError::field("offset", format!("{v:?} is not a byte offset ≥ 0"))
                })?
            }
            "attempt" => {
                attempt = Some(v.parse().ok().filter(|a| *a >= 1).ok_or_else(|| {
                    ApiError::field("attempt", format!("{v:?} is not an attempt number ≥ 1"))
                })?)
            }
            "follow" => {
                follow = match v.as_str() {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => {
                        return Err(ApiError::field(
                            "follow",
                            format!("{v:?} is not true or false"),
                        ))
                    }
                }
            }
            _ => unreachable!("query() refuses unknown parameters"),
        }
    }
    let sse = req
        .header("Accept")
        .is_some_and(|a| a.as_str().contains("text/event-stream"));
    if let Some(last) = req.header("Last-Event-ID") {
        let last = last.as_str().trim();
        let bad = || {
            ApiError::field(
                "Last-Event-ID",
                format!("{last:?} is not an event id of this stream (attempt:position)"),
            )
        };
        let (a, p) = last.split_once(':').ok_or_else(bad)?;
        attempt = Some(a.parse().map_err(|_| bad())?);
        offset = p.parse().map_err(|_| bad())?;
    }
    let engine = &req.state().engine;
    let job = engine.get(&id).await?;
    if let Some(a) = attempt {
        if a > job.attempt {
            return Err(ApiError::field(
                "attempt",
                format!(
                    "job {id} has no attempt {a} yet; its attempts are 1 to {}",
                    job.attempt
                ),
            ));
        }
    }
    if sse || follow {
        let encoding = if sse { Encoding::Sse } else { Encoding::Raw };
        let from = Resume { offset, attempt };
        let held = stream::Held::take(&req)?;
        return Ok(stream::follow_output(
            engine.clone(),
            id,
            filter,
            from,
            encoding,
            held,
        ));
    }
    let bytes = engine
        .read_output(
            &id,
            attempt.unwrap_or(job.attempt),
            filter,
            offset,
            MAX_OUTPUT_READ,
        )
        .await?;
    let mut res = Response::new(StatusCode::Ok);
    res.set_body(Body::from_bytes(bytes));
    res.set_content_type("application/octet-stream");
    Ok(res)
}

/// `GET /v1/events`: SSE of job state changes; filters `job`, `queue`.
pub async fn events(req: Request<AppState>) -> Reply {
    let mut filter = EventFilter::default();
    for (k, v) in query(&req, &["job", "queue"])? {
        match k.as_str() {
            "job" => {
                let r: JobRef = v.parse().map_err(|e| ApiError::field("job", e))?;
                let id = req.state().engine.resolve(&r).await?;
                req.state().engine.get(&id).await?;
                filter.job = Some(id);
            }
            "queue" => {
                if !crate::api::is_valid_queue_name(&v) {
                    return Err(ApiError::field(
                        "queue",
                        format!("{v:?} is not a queue name"),
                    ));
                }
                filter.queue = Some(v);
            }
            _ => unreachable!("query() refuses unknown parameters"),
        }
    }
    let held = stream::Held::take(&req)?;
    Ok(stream::events(req.state().engine.clone(), filter, held))
}

/// `POST /v1/uploads`: keeps the body (any bytes, up to `max_upload`) for a
/// job's `stdin_upload`. The body goes to a file a piece at a time, so an
/// upload of any size holds [`UPLOAD_PIECE`] of memory; at most
/// `max_uploads` are taken at once (503 past it).
pub async fn upload(mut req: Request<AppState>) -> Reply {
    query(&req, &[])?;
    let state = req.state().clone();
    let _slot = state.uploads.take().ok_or_else(|| {
        ApiError::new(
            StatusCode::ServiceUnavailable,
            ErrorCode::Unavailable,
            state.uploads.refusal(),
        )
    })?;
    let mut body = BodyReader::new(&mut req, state.max_upload)?;
    let mut file = state.engine.begin_upload()?;
    let mut buf = vec![0u8; UPLOAD_PIECE];
    loop {
        let n = body.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        let written;
        (file, buf, written) = blocking::unblock(move || {
            let written = file.write(&buf[..n]);
            (file, buf, written)
        })
        .await;
        written.map_err(|e| {
            ApiError::new(
                StatusCode::ServiceUnavailable,
                ErrorCode::Unavailable,
                format!("cannot store the upload: {e}"),
            )
        })?;
    }
    let bytes = body.got;
    let id = state.engine.finish_upload(file, bytes).await?;
    let mut res = json(
        StatusCode::Created,
        &Upload {
            upload: id.to_string(),
            bytes,
        },
    );
    res.insert_header("Location", format!("/v1/uploads/{id}"));
    Ok(res)
}

/// Bytes of an upload read and written at a time.
const UPLOAD_PIECE: usize = 256 * 1024;
