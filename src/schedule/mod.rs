//! Recurring jobs: what the store keeps of a schedule, its timetable (a cron
//! expression in a time zone), and the choices a fire makes when the
//! previous job still runs ([`Overlap`]) or when fires fell while the
//! daemon was down ([`Missed`]). The engine fires schedules
//! (`engine/schedules.rs`); this module only describes them.

mod timetable;

pub use timetable::TimeTable;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::api::JobRequest;
use crate::auth::RunAs;
use crate::job::JobId;

/// What a fire does while the schedule's previous job is not terminal.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// Start another job beside it.
    #[default]
    Allow,
    /// Skip this fire.
    Forbid,
    /// Cancel the previous job, then start.
    Replace,
}

/// What happens at start to fires that fell while the daemon was down.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Missed {
    /// None of them runs.
    Skip,
    /// One job runs for all of them, at start (keyed by the latest).
    #[default]
    RunOnce,
}

/// A schedule as the store keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// Its name, `[a-z0-9_.-]{1,64}`.
    pub name: String,
    /// The cron expression, as given.
    pub cron: String,
    /// The IANA time zone the expression is read in.
    pub timezone: String,
    /// The spec of each fire's job, as given (checked as `POST /v1/jobs`
    /// would check it, when the schedule was stored).
    pub job: JobRequest,
    /// See [`Overlap`].
    pub overlap: Overlap,
    /// See [`Missed`].
    pub missed: Missed,
    /// True while it does not fire.
    pub paused: bool,
    /// The principal that created it, who owns its jobs.
    pub owner: String,
    /// The user its jobs run as, decided when it was created.
    pub run_as: RunAs,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was last replaced, paused or resumed.
    pub updated_at: Timestamp,
    /// The fire it waits for; `None` while paused (or when it has no
    /// next fire).
    pub next_run_at: Option<Timestamp>,
    /// The fire time of its last job (a `run` counts, at its moment).
    pub last_run_at: Option<Timestamp>,
    /// Its last job.
    pub last_job: Option<JobId>,
    /// Fires that made no job (`forbid` while the previous ran, or
    /// `missed = "skip"`).
    #[serde(default)]
    pub skipped: u64,
    /// Why its last fire made no job, when the daemon could not make one
    /// (its `cwd` is gone, the queue is full); cleared by the next job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl Schedule {
    /// Its timetable. Stored schedules were checked when they were
    /// stored, so this fails only for a damaged record (or a time zone the
    /// system's database has since dropped).
    pub fn timetable(&self) -> Result<TimeTable, crate::api::FieldError> {
        TimeTable::parse(&self.cron, &self.timezone)
    }
}

/// The idempotency key of the job of `name`'s fire at `at`: the same fire
/// can make one job only, whatever happens in between.
pub fn fire_key(name: &str, at: Timestamp) -> String {
    format!("schedule:{name}:{at}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fire_key_names_the_schedule_and_the_second() {
        let at: Timestamp = "2026-12-02T19:30:01Z".parse().unwrap();
        assert_eq!(fire_key("tick", at), "schedule:tick:2026-12-02T19:30:01Z");
    }
}
