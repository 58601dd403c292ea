//! Handlers of `/v1/schedules…`: each parses its input, calls the engine
//! and shapes the answer.

use jiff::Timestamp;
use tide::{Request, Response, StatusCode};

use super::jobs::{job_json, query};
use super::routes::principal;
use super::{
    body, from_object, json, parse_json, parse_object, path_param, ApiError, AppState, Reply,
};
use crate::api::{ScheduleList, SchedulePatch, ScheduleRequest, ScheduleView};
use crate::auth::Principal;
use crate::engine::Engine;
use crate::schedule::Schedule;

/// A schedule as `principal` may see it: the job's `env` values and
/// `stdin` only for its owner and admins.
async fn view(engine: &Engine, principal: &Principal, schedule: &Schedule) -> ScheduleView {
    let view = ScheduleView::of(schedule, engine.last_job(schedule).await);
    if principal.may_see_env_of(&schedule.owner) {
        view
    } else {
        view.with_env_hidden()
    }
}

/// `PUT /v1/schedules/{name}`: 201 with a new schedule, 200 with a
/// replaced one.
pub async fn put(req: Request<AppState>) -> Reply {
    query(&req, &[])?;
    let name = path_param(&req, "name")?;
    let value = parse_object(body(&req))?;
    // serde would also read the spec from an array of its fields.
    if value.get("job").is_some_and(|j| !j.is_object()) {
        return Err(ApiError::field(
            "job",
            "must be a JSON object (a job spec {...})",
        ));
    }
    let request: ScheduleRequest = from_object(value)?;
    let engine = &req.state().engine;
    let checked = request.validate(Timestamp::now(), engine.default_backoff())?;
    let principal = principal(&req);
    let (schedule, created) = engine.put_schedule(&name, checked, principal).await?;
    let status = if created {
        StatusCode::Created
    } else {
        StatusCode::Ok
    };
    let mut res = json(status, &view(engine, principal, &schedule).await);
    res.insert_header("Location", format!("/v1/schedules/{name}"));
    Ok(res)
}

/// `GET /v1/schedules`.
pub async fn list(req: Request<AppState>) -> Reply {
    query(&req, &[])?;
    let engine = &req.state().engine;
    let principal = principal(&req);
    let mut schedules = Vec::new();
    for s in &engine.schedules().await? {
        schedules.push(view(engine, principal, s).await);
    }
    Ok(json(StatusCode::Ok, &ScheduleList { schedules }))
}

/// `GET /v1/schedules/{name}`.
pub async fn get(req: Request<AppState>) -> Reply {
    query(&req, &[])?;
    let name = path_param(&req, "name")?;
    let engine = &req.state().engine;
    let schedule = engine.schedule(&name).await?;
    Ok(json(
        StatusCode::Ok,
        &view(engine, principal(&req), &schedule).await,
    ))
}

/// `PATCH /v1/schedules/{name}`: `{"paused": bool}`.
pub async fn patch(req: Request<AppState>) -> Reply {
    query(&req, &[])?;
    let name = path_param(&req, "name")?;
    let patch: SchedulePatch = parse_json(body(&req))?;
    let Some(paused) = patch.paused else {
        return Err(ApiError::field("paused", "give `paused`: true or false"));
    };
    let engine = &req.state().engine;
    let principal = principal(&req);
    let schedule = engine.pause_schedule(&name, paused, principal).await?;
    Ok(json(
        StatusCode::Ok,
        &view(engine, principal, &schedule).await,
    ))
}

/// `DELETE /v1/schedules/{name}`: 204; its jobs stay.
pub async fn remove(req: Request<AppState>) -> Reply {
    query(&req, &[])?;
    let name = path_param(&req, "name")?;
    req.state()
        .engine
        .remove_schedule(&name, principal(&req))
        .await?;
    Ok(Response::new(StatusCode::NoContent))
}

/// `POST /v1/schedules/{name}/run`: 201 with the job it started.
pub async fn run(req: Request<AppState>) -> Reply {
    query(&req, &[])?;
    let name = path_param(&req, "name")?;
    let principal = principal(&req);
    let job = req.state().engine.run_schedule(&name, principal).await?;
    let mut res = job_json(StatusCode::Created, &job, principal);
    res.insert_header("Location", format!("/v1/jobs/{}", job.id));
    Ok(res)
}
