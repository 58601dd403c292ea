//! `delay` and `run_at`: a job is `scheduled` until it is due, then runs;
//! a due time that passed while the daemon was down is due at once after
//! the restart; bad times are refused naming the field.

use jiff::{SignedDuration, Timestamp};
use serde_json::json;

use crate::support::{assert_error, wait_for, TestDaemon};

#[test]
fn a_delayed_job_is_scheduled_until_due_then_runs() {
    let d = TestDaemon::start();
    let job = d.submit(json!({ "command": ["true"], "delay": "1s" }));
    assert_eq!(job.state.as_str(), "scheduled", "{job:?}");
    let run_at = job.run_at.expect("a delayed job has a run_at");
    let ahead = run_at.duration_since(job.created_at);
    assert!(
        ahead >= SignedDuration::from_millis(950) && ahead <= SignedDuration::from_millis(1500),
        "run_at should be about created_at + 1s, is {ahead:?} after it: {job:?}"
    );
    assert_eq!(job.started_at, None, "{job:?}");

    let job = d.wait_terminal(&job.id);
    assert_eq!(job.state.as_str(), "succeeded", "{job:?}");
    let started = job.started_at.expect("it ran");
    assert!(
        started >= run_at,
        "started {started} before run_at {run_at}"
    );
}

#[test]
fn a_run_at_in_the_past_runs_at_once() {
    let d = TestDaemon::start();
    // Whole seconds, so the stored time can be compared exactly.
    let past = Timestamp::from_second(Timestamp::now().as_second() - 3600).unwrap();
    let job = d.submit(json!({ "command": ["true"], "run_at": past.to_string() }));
    let job = d.wait_terminal(&job.id);
    assert_eq!(job.state.as_str(), "succeeded", "{job:?}");
    assert_eq!(job.run_at, Some(past), "run_at is kept as given: {job:?}");
    assert!(job.started_at.is_some_and(|s| s >= past), "{job:?}");
}

#[test]
fn a_due_time_passed_while_the_daemon_was_down_runs_right_after_the_restart() {
    let mut d = TestDaemon::start();
    let job = d.submit(json!({ "command": ["true"], "delay": "3s" }));
    assert_eq!(job.state.as_str(), "scheduled", "{job:?}");
    d.kill9();
    let run_at = job.run_at.expect("a delayed job has a run_at");
    wait_for("the delayed job's due time to pass", || {
        Timestamp::now() > run_at
    });

    d.restart();
    let job = d.wait_terminal(&job.id);
    assert_eq!(job.state.as_str(), "succeeded", "{job:?}");
    assert_eq!(job.attempt, 1, "{job:?}");
    assert!(job.started_at.is_some_and(|s| s >= run_at), "{job:?}");
}

#[test]
fn bad_delays_and_run_ats_are_refused_naming_the_field() {
    let d = TestDaemon::start();
    let soon = (Timestamp::now() + SignedDuration::from_secs(60)).to_string();
    let cases = [
        (json!({ "command": ["true"], "delay": "soon" }), "delay"),
        (json!({ "command": ["true"], "delay": -1 }), "delay"),
        (
            json!({ "command": ["true"], "run_at": "yesterday" }),
            "run_at",
        ),
        (json!({ "command": ["true"], "run_at": 12 }), "run_at"),
    ];
    for (spec, field) in &cases {
        let (status, body) = d.post_json("/v1/jobs", spec);
        assert_error(status, &body, 400, "invalid_field", Some(field));
    }
    // Both at once: either field may be the one named.
    let spec = json!({ "command": ["true"], "delay": "1s", "run_at": soon });
    let (status, body) = d.post_json("/v1/jobs", &spec);
    assert_error(status, &body, 400, "invalid_field", None);
    let field = body["error"]["field"].as_str().unwrap_or_default();
    assert!(
        field == "delay" || field == "run_at",
        "run_at with delay: the field should be run_at or delay: {body}"
    );
    assert_eq!(d.job_count(), 0, "refused specs created jobs");
}
