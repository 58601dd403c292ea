//! Automatic retries: `retries` extra attempts after a failed one, spaced
//! by `backoff` doubling each time (±25% jitter, capped by `max_backoff`),
//! `scheduled` in between; every attempt recorded in `attempts`; a
//! cancelled job is never retried.

use std::time::Duration;

use jiff::Timestamp;
use jobq::api::JobView;
use jobq::job::FailReason;
use serde_json::json;

use crate::support::{assert_error, assert_holds, wait_for, TestDaemon, HOLD_WINDOW};

/// Slack below the jittered lower bound of a retry's spacing: timestamps
/// are taken in different places of the daemon (and may be rounded), so
/// two of them can disagree by a little.
const SPACING_EPSILON: Duration = Duration::from_millis(20);

/// Slack above the jittered upper bound: process start, the shell's own
/// run and a loaded machine (the suite runs in parallel) all add to the
/// time between two starts; only the lower bound is tight.
const SPACING_SLACK: Duration = Duration::from_millis(500);

/// The started_at of every attempt in `job.attempts`, oldest first.
fn attempt_starts(job: &JobView) -> Vec<Timestamp> {
    job.attempts
        .iter()
        .map(|a| {
            a.started_at
                .unwrap_or_else(|| panic!("attempt {} has no started_at: {job:?}", a.attempt))
        })
        .collect()
}

/// Asserts that attempt `n + 1` started between 0.75 and 1.25 times
/// `expected` after attempt `n` (with [`SPACING_EPSILON`] below and
/// [`SPACING_SLACK`] above).
#[track_caller]
fn assert_spacing(job: &JobView, n: usize, expected: Duration) {
    let starts = attempt_starts(job);
    let gap = starts[n].duration_since(starts[n - 1]);
    let gap = Duration::try_from(gap)
        .unwrap_or_else(|_| panic!("attempt {} started before attempt {n}: {job:?}", n + 1));
    let low = expected.mul_f64(0.75).saturating_sub(SPACING_EPSILON);
    let high = expected.mul_f64(1.25) + SPACING_SLACK;
    assert!(
        gap >= low && gap <= high,
        "attempt {} started {gap:?} after attempt {n}; expected {expected:?} ±25% \
         (allowed {low:?}..={high:?}): {job:?}",
        n + 1
    );
}

#[test]
fn a_failing_job_is_retried_with_doubling_backoff_then_fails() {
    let d = TestDaemon::start();
    let job = d.submit(json!({ "shell": "exit 1", "retries": 2, "backoff": "200ms" }));
    let job = d.wait_terminal(&job.id);
    assert_eq!(job.state.as_str(), "failed", "{job:?}");
    assert_eq!(job.reason, Some(FailReason::Exit), "{job:?}");
    assert_eq!(job.exit_code, Some(1), "{job:?}");
    assert_eq!(job.attempt, 3, "{job:?}");
    assert_eq!(job.attempts.len(), 3, "{job:?}");
    for (i, a) in job.attempts.iter().enumerate() {
        assert_eq!(a.attempt as usize, i + 1, "{job:?}");
        assert_eq!(a.reason, Some(FailReason::Exit), "{job:?}");
        assert_eq!(a.exit_code, Some(1), "{job:?}");
        assert!(!a.cancelled, "{job:?}");
    }
    assert_spacing(&job, 1, Duration::from_millis(200));
    assert_spacing(&job, 2, Duration::from_millis(400));
}

#[test]
fn a_job_failing_once_is_scheduled_then_succeeds_on_its_retry() {
    let d = TestDaemon::start();
    let marker = d.path("failed-once");
    let job = d.submit(json!({
        "shell": format!("test -f '{0}' || {{ touch '{0}'; exit 1; }}", marker.display()),
        "retries": 2,
        "backoff": "500ms",
    }));
    let between = d.wait_job(&job.id, "to wait for its retry (or end)", |j| {
        j.state.as_str() == "scheduled" || j.is_terminal()
    });
    assert_eq!(
        between.state.as_str(),
        "scheduled",
        "between attempts a job is scheduled: {between:?}"
    );
    assert_eq!(between.attempts.len(), 1, "{between:?}");
    assert_eq!(
        between.attempts[0].reason,
        Some(FailReason::Exit),
        "{between:?}"
    );
    let due = between.run_at.expect("a scheduled retry has a run_at");
    assert!(
        due > between.attempts[0].finished_at,
        "the retry is due after the failed attempt ended: {between:?}"
    );

    let job = d.wait_terminal(&job.id);
    assert_eq!(job.state.as_str(), "succeeded", "{job:?}");
    assert_eq!(job.attempt, 2, "{job:?}");
    assert_eq!(job.exit_code, Some(0), "{job:?}");
    assert_eq!(job.reason, None, "{job:?}");
    assert_eq!(job.attempts.len(), 2, "{job:?}");
    assert_eq!(job.attempts[1].exit_code, Some(0), "{job:?}");
    assert!(
        job.started_at.is_some_and(|s| s >= due),
        "the retry started before it was due: {job:?}"
    );
}

#[test]
fn a_cancelled_job_is_not_retried() {
    let d = TestDaemon::start();
    let gate = d.gate();
    let starts = d.path("starts");
    let job = d.submit(json!({
        "shell": format!("echo start >> '{}'; {}", starts.display(), gate.shell()),
        "retries": 3,
        "backoff": "100ms",
    }));
    d.wait_running(&job.id);
    // Cancel once the shell has written its line, so the count below is
    // of runs, not of how far a run got.
    wait_for("the job to write its start line", || {
        std::fs::read_to_string(&starts).is_ok_and(|t| t == "start\n")
    });
    let (status, body) = d.post_empty(&format!("/v1/jobs/{}/cancel", job.id));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "cancelled", "{body}");
    // A retry would be due after 75–125ms; watch well past that.
    assert_holds("the cancelled job stays cancelled", HOLD_WINDOW / 2, || {
        let j = d.job(&job.id);
        j.state.as_str() == "cancelled" && j.attempt == 1
    });
    let text = std::fs::read_to_string(&starts).unwrap();
    assert_eq!(text, "start\n", "the cancelled job ran again");
}

#[test]
fn max_backoff_caps_the_retry_delay() {
    let d = TestDaemon::builder()
        .config_toml("max_backoff = \"300ms\"\n")
        .start();
    let job = d.submit(json!({ "shell": "exit 1", "retries": 1, "backoff": "10s" }));
    let job = d.wait_terminal(&job.id);
    assert_eq!(job.state.as_str(), "failed", "{job:?}");
    assert_eq!(job.attempt, 2, "{job:?}");
    // The cap applies after the jitter: the delay is exactly 300ms.
    let starts = attempt_starts(&job);
    let gap = Duration::try_from(starts[1].duration_since(starts[0])).expect("in order");
    let cap = Duration::from_millis(300);
    assert!(
        gap >= cap.saturating_sub(SPACING_EPSILON) && gap <= cap + SPACING_SLACK,
        "the retry came {gap:?} after the first attempt; max_backoff is {cap:?}: {job:?}"
    );
}

#[test]
fn bad_retries_are_refused() {
    let d = TestDaemon::start();
    for retries in [json!(-1), json!("2"), json!(1.5), json!(1001)] {
        let (status, body) = d.post_json(
            "/v1/jobs",
            &json!({ "command": ["true"], "retries": retries }),
        );
        assert_error(status, &body, 400, "invalid_field", Some("retries"));
    }
    let (status, body) = d.post_json(
        "/v1/jobs",
        &json!({ "command": ["true"], "retries": 1, "backoff": "later" }),
    );
    assert_error(status, &body, 400, "invalid_field", Some("backoff"));
    assert_eq!(d.job_count(), 0);
}
