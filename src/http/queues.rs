//! Handlers of `/v1/queues…`.

use tide::{Request, StatusCode};

use super::{body, json, parse_json, path_param, ApiError, AppState, Reply};
use crate::api::QueueList;
use crate::api::{QueuePatch, MAX_CONCURRENCY};

/// `GET /v1/queues`.
pub async fn list(req: Request<AppState>) -> Reply {
    let queues = req.state().engine.queues().await?;
    Ok(json(StatusCode::Ok, &QueueList { queues }))
}

/// `PATCH /v1/queues/{name}`: `{"concurrency": N}` and/or `{"paused": bool}`;
/// `"create": true` to make a queue nothing names yet (alone, it makes one
/// with the configured limits).
pub async fn patch(req: Request<AppState>) -> Reply {
    let name = path_param(&req, "name")?;
    let patch: QueuePatch = parse_json(body(&req))?;
    if patch.concurrency.is_none() && patch.paused.is_none() && !patch.create {
        return Err(ApiError::field(
            "concurrency",
            "give `concurrency` and/or `paused`",
        ));
    }
    if patch.concurrency == Some(Some(0)) {
        return Err(ApiError::field(
            "concurrency",
            "must be at least 1 (pause the queue to stop it, or null for the configured limit)",
        ));
    }
    if let Some(Some(n)) = patch.concurrency {
        if n > MAX_CONCURRENCY {
            return Err(ApiError::field(
                "concurrency",
                format!("{n} is too large: must be at most {MAX_CONCURRENCY}"),
            ));
        }
    }
    let view = req.state().engine.patch_queue(&name, patch).await?;
    Ok(json(StatusCode::Ok, &view))
}

/// `DELETE /v1/queues/{name}`: forgets an empty queue's settings; 204.
pub async fn remove(req: Request<AppState>) -> Reply {
    let name = path_param(&req, "name")?;
    req.state().engine.remove_queue(&name).await?;
    Ok(tide::Response::new(StatusCode::NoContent))
}
