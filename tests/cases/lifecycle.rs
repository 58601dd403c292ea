//! After a job ends: retry runs it again, delete forgets it; both refuse a
//! job that has not ended.

use crate::support::{assert_error, TestDaemon};

#[test]
fn retrying_a_finished_job_runs_it_again_as_attempt_two() {
    let d = TestDaemon::start();
    let runs = d.path("runs");
    let job = d.submit_shell(&format!("echo run >> '{}'; exit 4", runs.display()));
    let first = d.wait_terminal(&job.id);
    assert_eq!(first.state.as_str(), "failed", "{first:?}");
    assert_eq!(first.attempt, 1);

    let (status, body) = d.post_empty(&format!("/v1/jobs/{}/retry", job.id));
    assert_eq!(status, 200, "{body}");
    let state = body["state"].as_str().unwrap_or_default();
    assert!(
        state == "queued" || state == "running",
        "retry answered {body}"
    );
    assert_eq!(body["attempt"], 2, "{body}");

    let second = d.wait_terminal(&job.id);
    assert_eq!(second.state.as_str(), "failed", "{second:?}");
    assert_eq!(second.attempt, 2);
    assert_eq!(second.exit_code, Some(4));
    assert!(second.finished_at.is_some());
    assert_eq!(std::fs::read_to_string(&runs).unwrap(), "run\nrun\n");
}

#[test]
fn retrying_an_unfinished_job_is_a_conflict() {
    let d = TestDaemon::start();
    let gate = d.gate();
    let job = d.submit_shell(&gate.shell());
    d.wait_running(&job.id);
    let (status, body) = d.post_empty(&format!("/v1/jobs/{}/retry", job.id));
    assert_error(status, &body, 409, "conflict", None);
    let job = d.job(&job.id);
    assert_eq!(job.state.as_str(), "running");
    assert_eq!(job.attempt, 1);
}

#[test]
fn deleting_a_finished_job_forgets_it_and_its_output() {
    let d = TestDaemon::start();
    let job = d.submit_shell("echo bye");
    d.wait_terminal(&job.id);
    let other = d.submit_shell("true");

    let (status, body) = d.delete(&format!("/v1/jobs/{}", job.id));
    assert_eq!(status, 204, "{body}");
    let (status, body) = d.get_json(&format!("/v1/jobs/{}", job.id));
    assert_error(status, &body, 404, "not_found", None);
    let (status, body) = d.get_json(&format!("/v1/jobs/{}/output", job.id));
    assert_error(status, &body, 404, "not_found", None);
    let ids = d.all_job_ids();
    assert!(!ids.contains(&job.id), "a deleted job is still listed");
    assert!(ids.contains(&other.id), "deleting one job lost another");
    let (status, body) = d.delete(&format!("/v1/jobs/{}", job.id));
    assert_error(status, &body, 404, "not_found", None);
}

#[test]
fn deleting_a_running_job_is_a_conflict() {
    let d = TestDaemon::start();
    let gate = d.gate();
    let job = d.submit_shell(&gate.shell());
    d.wait_running(&job.id);
    let (status, body) = d.delete(&format!("/v1/jobs/{}", job.id));
    assert_error(status, &body, 409, "conflict", None);
    assert_eq!(d.job(&job.id).state.as_str(), "running");
    gate.open();
    let job = d.wait_terminal(&job.id);
    assert_eq!(job.state.as_str(), "succeeded", "{job:?}");
}
