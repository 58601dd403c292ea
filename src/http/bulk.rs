//! Handlers of the bulk actions, `POST /v1/jobs/clean|cancel|retry`: the
//! body selects jobs by state, queue, owner and age; the answer counts what
//! was done. A `submit` principal's selection is narrowed to its own jobs.

use jiff::Timestamp;
use tide::{Request, StatusCode};

use super::jobs::query;
use super::routes::principal;
use super::{body, json, parse_json, ApiError, AppState, Reply};
use crate::api::{is_valid_queue_name, BulkRequest, BulkResponse, ErrorCode};
use crate::auth::{Principal, Role};
use crate::engine::Selection;
use crate::job::StateName;

/// One bulk action: what it is called and which states it applies to.
#[derive(Clone, Copy, Debug)]
enum Action {
    /// Forget finished jobs.
    Clean,
    /// Cancel jobs that have not ended.
    Cancel,
    /// Run finished jobs again.
    Retry,
}

impl Action {
    /// Its name in messages.
    fn name(self) -> &'static str {
        match self {
            Action::Clean => "clean",
            Action::Cancel => "cancel",
            Action::Retry => "retry",
        }
    }

    /// True for a state the action may take a job from.
    fn applies_to(self, state: StateName) -> bool {
        match self {
            Action::Clean | Action::Retry => state.is_terminal(),
            Action::Cancel => !state.is_terminal(),
        }
    }
}

/// `POST /v1/jobs/clean`: forgets the finished jobs selected (default:
/// every terminal state) and their output.
pub async fn clean(req: Request<AppState>) -> Reply {
    let selection = selection(&req, Action::Clean)?;
    let count = req.state().engine.clean(&selection).await?;
    Ok(json(StatusCode::Ok, &BulkResponse { count }))
}

/// `POST /v1/jobs/cancel`: cancels the selected jobs that have not ended;
/// answers once every one is terminal.
pub async fn cancel(req: Request<AppState>) -> Reply {
    let selection = selection(&req, Action::Cancel)?;
    let count = req.state().engine.cancel_all(&selection).await?;
    Ok(json(StatusCode::Ok, &BulkResponse { count }))
}

/// `POST /v1/jobs/retry`: queues the selected finished jobs again.
pub async fn retry(req: Request<AppState>) -> Reply {
    let selection = selection(&req, Action::Retry)?;
    let count = req.state().engine.retry_all(&selection).await?;
    Ok(json(StatusCode::Ok, &BulkResponse { count }))
}

/// The request's selection, checked for `action` and narrowed to the
/// principal's own jobs when it may act on no others.
fn selection(req: &Request<AppState>, action: Action) -> Result<Selection, ApiError> {
    query(req, &[])?;
    let request: BulkRequest = parse_json(body(req))?;
    if let Some(bad) = request.state.iter().find(|s| !action.applies_to(**s)) {
        let allowed: Vec<&str> = StateName::ALL
            .iter()
            .filter(|s| action.applies_to(**s))
            .map(|s| s.as_str())
            .collect();
        return Err(ApiError::field(
            "state",
            format!(
                "{} applies to jobs that are {}, not {bad}",
                action.name(),
                allowed.join(", ")
            ),
        ));
    }
    // Cancelling or retrying every job at once is rarely meant: say which.
    if !matches!(action, Action::Clean) && request.state.is_empty() && request.queue.is_none() {
        return Err(ApiError::field(
            "state",
            format!(
                "{} needs `state` or `queue` to say which jobs",
                action.name()
            ),
        ));
    }
    if let Some(queue) = &request.queue {
        if !is_valid_queue_name(queue) {
            return Err(ApiError::field(
                "queue",
                format!("{queue:?} is not a queue name: use 1 to 64 of a-z 0-9 _ . -"),
            ));
        }
    }
    let before = match request.older_than {
        None => None,
        Some(age) => {
            let age = jiff::SignedDuration::try_from(age.0)
                .map_err(|_| ApiError::field("older_than", "is too long"))?;
            Some(
                Timestamp::now()
                    .checked_sub(age)
                    .map_err(|_| ApiError::field("older_than", "is too long"))?,
            )
        }
    };
    let states = if request.state.is_empty() {
        StateName::ALL
            .iter()
            .copied()
            .filter(|s| action.applies_to(*s))
            .collect()
    } else {
        request.state
    };
    Ok(Selection {
        states,
        queue: request.queue,
        before,
        owner: owner(principal(req), request.owner, action)?,
    })
}

/// The owner filter: as asked for an admin; a `submit` principal's own
/// jobs, and a 403 if it asked for another's.
fn owner(
    principal: &Principal,
    asked: Option<String>,
    action: Action,
) -> Result<Option<String>, ApiError> {
    if principal.role == Role::Admin {
        return Ok(asked);
    }
    let own = principal.owner();
    match asked {
        Some(other) if other != own => Err(ApiError::new(
            StatusCode::Forbidden,
            ErrorCode::Forbidden,
            format!(
                "{own} may {} only its own jobs, not those of {other} (the admin role may act on any)",
                action.name()
            ),
        )),
        _ => Ok(Some(own)),
    }
}
