//! The wire types of `/v1/schedules…`, and the check of a schedule as a
//! user sends it ([`ScheduleRequest::validate`]).

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{FieldError, JobRequest, HIDDEN};
use crate::job::StateName;
use crate::schedule::{Missed, Overlap, TimeTable};

/// The body of `PUT /v1/schedules/{name}`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleRequest {
    /// 5 fields (minute hour day-of-month month day-of-week), 6 with a
    /// leading seconds field, or `@hourly`, `@daily`, `@weekly`,
    /// `@monthly`, `@yearly`.
    pub cron: String,
    /// The IANA time zone `cron` is read in [default: UTC].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// The spec of each fire's job, as `POST /v1/jobs` takes it (without
    /// `run_at`, `delay`, `after`, `idempotency_key` or `stdin_upload`).
    pub job: JobRequest,
    /// When a fire comes while the previous job is not terminal [default:
    /// allow].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap: Option<Overlap>,
    /// Fires that fell while the daemon was down [default: run_once].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missed: Option<Missed>,
    /// Stored, but not firing until resumed [default: false].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
}

/// A [`ScheduleRequest`] that passed its checks.
#[derive(Clone, Debug)]
pub struct CheckedSchedule {
    /// The expression, as given.
    pub cron: String,
    /// The time zone's name.
    pub timezone: String,
    /// Both, read.
    pub table: TimeTable,
    /// The job spec, as given.
    pub job: JobRequest,
    /// The job spec as `POST /v1/jobs` reads it (what the daemon's limits
    /// are checked against).
    pub spec: crate::job::JobSpec,
    /// See [`Overlap`].
    pub overlap: Overlap,
    /// See [`Missed`].
    pub missed: Missed,
    /// Whether it is stored paused.
    pub paused: bool,
}

/// Prefixes a job-spec field error with `job.`, as the request nests it.
pub fn in_job(e: FieldError) -> FieldError {
    FieldError::new(format!("job.{}", e.field), e.message)
}

impl ScheduleRequest {
    /// Checks every field: the expression and the time zone, and the job
    /// spec as `POST /v1/jobs` would (with `now` and `default_backoff` as
    /// there), less the fields a recurring job cannot have.
    pub fn validate(
        self,
        now: Timestamp,
        default_backoff: std::time::Duration,
    ) -> Result<CheckedSchedule, FieldError> {
        let timezone = self.timezone.unwrap_or_else(|| "UTC".to_owned());
        let table = TimeTable::parse(&self.cron, &timezone)?;
        let job = &self.job;
        let refuse = |field: &str, why: &str| Err(FieldError::new(format!("job.{field}"), why));
        if job.run_at.is_some() {
            return refuse(
                "run_at",
                "a schedule's job runs at each fire time; leave `run_at` out",
            );
        }
        if job.delay.is_some() {
            return refuse("delay", "a schedule's job runs at each fire time; leave `delay` out (move the fire in `cron`)");
        }
        if !job.after.is_empty() {
            return refuse("after", "a schedule's job cannot wait for other jobs: each fire's job would wait for the same ones");
        }
        if job.idempotency_key.is_some() {
            return refuse(
                "idempotency_key",
                "each fire's job gets its own key, schedule:<name>:<fire time>; leave it out",
            );
        }
        if job.stdin_upload.is_some() {
            return refuse(
                "stdin_upload",
                "an upload feeds one job only; give a schedule's job its stdin inline with `stdin`",
            );
        }
        let (spec, _) = self
            .job
            .clone()
            .validate(now, default_backoff)
            .map_err(in_job)?;
        Ok(CheckedSchedule {
            cron: self.cron.trim().to_owned(),
            timezone,
            table,
            job: self.job,
            spec,
            overlap: self.overlap.unwrap_or_default(),
            missed: self.missed.unwrap_or_default(),
            paused: self.paused.unwrap_or(false),
        })
    }
}

/// The body of `PATCH /v1/schedules/{name}`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SchedulePatch {
    /// Pause (no fires) or resume (the next fire from now on).
    pub paused: Option<bool>,
}

/// A schedule as every endpoint returns it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScheduleView {
    /// Its name.
    pub name: String,
    /// The cron expression.
    pub cron: String,
    /// The IANA time zone it is read in.
    pub timezone: String,
    /// Each fire's job spec (`env` values hidden from all but its owner
    /// and admins).
    pub job: JobRequest,
    /// See `PUT`.
    pub overlap: Overlap,
    /// See `PUT`.
    pub missed: Missed,
    /// True while it does not fire.
    pub paused: bool,
    /// Its creator, who owns its jobs.
    pub owner: String,
    /// The user its jobs run as.
    pub user: String,
    /// When it was created.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// When it was last replaced, paused or resumed.
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
    /// Its next fire; `null` while paused.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_run_at: Option<Timestamp>,
    /// The fire time of its last job.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_run_at: Option<Timestamp>,
    /// Its last job's id.
    pub last_job: Option<String>,
    /// That job's number (`null` once it was removed).
    pub last_job_number: Option<u64>,
    /// That job's state now (`null` once it was removed).
    pub last_job_state: Option<StateName>,
    /// Fires that made no job (`forbid` while the previous one ran, or
    /// missed fires with `missed = "skip"`).
    pub skipped: u64,
    /// Why its last fire made no job, when the daemon could not make one.
    pub last_error: Option<String>,
}

impl ScheduleView {
    /// The view with the job's `env` values replaced by [`HIDDEN`].
    pub fn with_env_hidden(mut self) -> ScheduleView {
        for value in self.job.env.values_mut() {
            *value = HIDDEN.to_owned();
        }
        if self.job.stdin.is_some() {
            self.job.stdin = Some(HIDDEN.to_owned());
        }
        self
    }
}

/// The body of `GET /v1/schedules`.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScheduleList {
    /// Every schedule, by name.
    pub schedules: Vec<ScheduleView>,
}

impl ScheduleView {
    /// The view of `schedule`, whose last job has this number and state
    /// (if it still exists).
    pub fn of(schedule: &crate::schedule::Schedule, last: Option<(u64, StateName)>) -> Self {
        ScheduleView {
            name: schedule.name.clone(),
            cron: schedule.cron.clone(),
            timezone: schedule.timezone.clone(),
            job: schedule.job.clone(),
            overlap: schedule.overlap,
            missed: schedule.missed,
            paused: schedule.paused,
            owner: schedule.owner.clone(),
            user: schedule.run_as.user.clone(),
            created_at: schedule.created_at,
            updated_at: schedule.updated_at,
            next_run_at: schedule.next_run_at,
            last_run_at: schedule.last_run_at,
            last_job: schedule.last_job.map(|id| id.to_string()),
            last_job_number: last.map(|(n, _)| n),
            last_job_state: last.map(|(_, s)| s),
            skipped: schedule.skipped,
            last_error: schedule.last_error.clone(),
        }
    }
}
