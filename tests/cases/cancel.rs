//! `POST /v1/jobs/{id}/cancel`: a queued job never starts; a running job's
//! whole process group dies, SIGKILL following SIGTERM after the grace.

use crate::support::{assert_error, wait_for, TestDaemon};

#[test]
fn a_cancelled_queued_job_never_starts() {
    let d = TestDaemon::builder().workers(1).start();
    let gate = d.gate();
    let blocker = d.submit_shell(&gate.shell());
    d.wait_running(&blocker.id);

    let marker = d.path("marker");
    let victim = d.submit_shell(&format!("touch '{}'", marker.display()));
    assert_eq!(victim.state.as_str(), "queued");
    let (status, body) = d.post_empty(&format!("/v1/jobs/{}/cancel", victim.id));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "cancelled", "{body}");

    // A job queued after the victim: once it has run, the victim's turn has
    // come and gone.
    let after = d.submit_shell("true");
    gate.open();
    let after = d.wait_terminal(&after.id);
    assert_eq!(after.state.as_str(), "succeeded", "{after:?}");
    assert!(!marker.exists(), "the cancelled job ran");
    let victim = d.job(&victim.id);
    assert_eq!(victim.state.as_str(), "cancelled", "{victim:?}");
    assert_eq!(victim.started_at, None, "{victim:?}");
    assert!(victim.finished_at.is_some(), "{victim:?}");
}

#[test]
fn cancelling_a_running_job_kills_its_whole_process_group() {
    let d = TestDaemon::start();
    let job = d.submit_shell("sleep 100 & sleep 100");
    let running = d.wait_running(&job.id);
    let pgid = running.pid.expect("a running job has a pid");
    // The shell and its background sleep (the shell may exec the second).
    wait_for(&format!("two processes in group {pgid}"), || {
        TestDaemon::job_processes(pgid, &job.id).len() >= 2
    });

    let (status, body) = d.post_empty(&format!("/v1/jobs/{}/cancel", job.id));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "cancelled", "{body}");
    wait_for(&format!("process group {pgid} to be empty"), || {
        TestDaemon::job_processes(pgid, &job.id).is_empty()
    });
    let job = d.wait_terminal(&job.id);
    assert_eq!(job.state.as_str(), "cancelled", "{job:?}");
    assert!(
        job.started_at.is_some() && job.finished_at.is_some(),
        "{job:?}"
    );
    assert_eq!(job.pid, None, "{job:?}");
}

#[test]
fn a_job_ignoring_sigterm_is_killed_after_the_grace() {
    let d = TestDaemon::builder()
        .config_toml("kill_grace = \"1s\"\n")
        .start();
    let job = d.submit_shell("trap '' TERM; echo ready; sleep 100");
    let running = d.wait_running(&job.id);
    let pgid = running.pid.expect("a running job has a pid");
    // Cancel only once the trap is set, or SIGTERM alone would do.
    wait_for("the job to print ready", || {
        d.output(&job.id, "stdout") == b"ready\n"
    });

    let (status, body) = d.post_empty(&format!("/v1/jobs/{}/cancel", job.id));
    assert_eq!(status, 200, "{body}");
    wait_for(&format!("process group {pgid} to be empty"), || {
        TestDaemon::job_processes(pgid, &job.id).is_empty()
    });
    let job = d.wait_terminal(&job.id);
    assert_eq!(job.state.as_str(), "cancelled", "{job:?}");
}

#[test]
fn cancelling_a_finished_job_is_a_conflict() {
    let d = TestDaemon::start();
    let job = d.submit_shell("true");
    d.wait_terminal(&job.id);
    let (status, body) = d.post_empty(&format!("/v1/jobs/{}/cancel", job.id));
    assert_error(status, &body, 409, "conflict", None);
    assert_eq!(d.job(&job.id).state.as_str(), "succeeded");
}

#[test]
fn cancelling_an_unknown_job_is_not_found() {
    let d = TestDaemon::start();
    let (status, body) = d.post_empty("/v1/jobs/0192f1c4-8a6e-7c3b-9d1e-3f5a7b9c1d2e/cancel");
    assert_error(status, &body, 404, "not_found", None);
}

/// A run that ends for a reason of its own while a cancel is on its way (here
/// its timeout, whose SIGTERM it ignores, came first) must not leave the
/// cancel waiting out the job's retries: the retry is cancelled. Before,
/// `POST …/cancel` answered only when the last retry had ended (an hour
/// here); schemathesis found it as a cancel that timed out.
#[test]
fn a_cancel_that_meets_a_timeout_also_cancels_the_retry() {
    let d = TestDaemon::builder()
        .config_toml("kill_grace = \"3s\"\n")
        .start();
    let job = d.submit(serde_json::json!({
        "shell": "trap '' TERM; sleep 60",
        "timeout": "1s", "retries": 3, "backoff": "1h",
    }));
    d.wait_running(&job.id);
    // Past the timeout: its SIGTERM was ignored, SIGKILL comes at 1 s + 3 s.
    std::thread::sleep(std::time::Duration::from_millis(1800));
    // Before the fix this answered no sooner than the last retry's end:
    // the test client gives up after 30 s.
    let (status, body) = d.post_empty(&format!("/v1/jobs/{}/cancel", job.id));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "cancelled", "{body}");
    let job = d.job(&job.id);
    assert_eq!(job.state.as_str(), "cancelled", "{job:?}");
    assert_eq!(job.attempts.len(), 1, "a retry ran: {job:?}");
}
