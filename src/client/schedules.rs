//! The client's calls of `/v1/schedules…`.

use super::{percent_encode, Call, Client, ClientError, Reply};
use crate::api::{JobView, ScheduleList, SchedulePatch, ScheduleRequest, ScheduleView};

/// `/v1/schedules/{name}` plus `rest`.
fn schedule_path(name: &str, rest: &str) -> String {
    format!("/v1/schedules/{}{rest}", percent_encode(name))
}

impl Client {
    /// `PUT /v1/schedules/{name}`: the schedule as stored (201 new, 200
    /// replaced).
    pub fn put_schedule(
        &self,
        name: &str,
        request: &ScheduleRequest,
    ) -> Result<Reply<ScheduleView>, ClientError> {
        let call = Call::new(ureq::http::Method::PUT, schedule_path(name, "")).json(request);
        let resp = self.send(call)?;
        self.expect_json(resp, &[200, 201])
    }

    /// `GET /v1/schedules`: every schedule.
    pub fn schedules(&self) -> Result<Reply<ScheduleList>, ClientError> {
        let resp = self.send(Call::get("/v1/schedules"))?;
        self.expect_json(resp, &[200])
    }

    /// `GET /v1/schedules/{name}`: one schedule.
    pub fn schedule(&self, name: &str) -> Result<Reply<ScheduleView>, ClientError> {
        let resp = self.send(Call::get(schedule_path(name, "")))?;
        self.expect_json(resp, &[200])
    }

    /// `PATCH /v1/schedules/{name}`: pauses or resumes it.
    pub fn pause_schedule(
        &self,
        name: &str,
        paused: bool,
    ) -> Result<Reply<ScheduleView>, ClientError> {
        let patch = SchedulePatch {
            paused: Some(paused),
        };
        let call = Call::new(ureq::http::Method::PATCH, schedule_path(name, "")).json(&patch);
        let resp = self.send(call)?;
        self.expect_json(resp, &[200])
    }

    /// `DELETE /v1/schedules/{name}`: forgets it (its jobs stay).
    pub fn remove_schedule(&self, name: &str) -> Result<(), ClientError> {
        let call = Call::new(ureq::http::Method::DELETE, schedule_path(name, ""));
        let resp = self.send(call)?;
        match resp.status().as_u16() {
            200 | 204 => Ok(()),
            other => Err(self.protocol(format!("status {other}, expected 204"))),
        }
    }

    /// `POST /v1/schedules/{name}/run`: the job it started now.
    pub fn run_schedule(&self, name: &str) -> Result<Reply<JobView>, ClientError> {
        let resp = self.send(Call::post(schedule_path(name, "/run")))?;
        self.expect_json(resp, &[201])
    }
}
