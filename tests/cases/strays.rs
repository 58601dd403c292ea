//! A job cannot leave processes behind: what left its process group
//! (`setsid`) is found by the `JOBQ_JOB_ID` it carries and killed when the
//! job is cancelled, times out, or ends.

use jobq::job::FailReason;
use serde_json::json;

use crate::support::{wait_for, TestDaemon};

/// A job that starts `setsid sleep 300` in the background (out of its
/// process group), says so on stdout, then runs `rest`.
fn escaping(rest: &str) -> String {
    format!("setsid sleep 300 </dev/null >/dev/null 2>&1 & echo escaped; {rest}")
}

fn wait_escaped(d: &TestDaemon, id: &str) {
    wait_for("the job's escapee to start", || {
        String::from_utf8_lossy(&d.output(id, "stdout")).contains("escaped")
            && TestDaemon::carrying(id).len() >= 2
    });
}

#[test]
fn a_setsid_child_of_a_cancelled_job_is_killed() {
    let d = TestDaemon::start();
    let job = d.submit_shell(&escaping("sleep 100"));
    wait_escaped(&d, &job.id);
    let (status, _) = d.post_empty(&format!("/v1/jobs/{}/cancel", job.id));
    assert_eq!(status, 200);
    assert_eq!(d.wait_terminal(&job.id).state.as_str(), "cancelled");
    wait_for("the escapee of the cancelled job to be killed", || {
        TestDaemon::carrying(&job.id).is_empty()
    });
}

#[test]
fn a_setsid_child_of_a_timed_out_job_is_killed() {
    let d = TestDaemon::start();
    let job = d.submit(json!({ "shell": escaping("sleep 100"), "timeout": "2s" }));
    wait_escaped(&d, &job.id);
    let done = d.wait_terminal(&job.id);
    assert_eq!(done.reason, Some(FailReason::Timeout), "{done:?}");
    wait_for("the escapee of the timed-out job to be killed", || {
        TestDaemon::carrying(&job.id).is_empty()
    });
}

#[test]
fn a_setsid_child_of_a_job_that_exited_is_killed() {
    let d = TestDaemon::start();
    let job = d.submit_shell(&escaping("sleep 1"));
    wait_escaped(&d, &job.id);
    assert_eq!(d.wait_terminal(&job.id).state.as_str(), "succeeded");
    wait_for("the escapee of the ended job to be killed", || {
        TestDaemon::carrying(&job.id).is_empty()
    });
    // A running job's own processes are left alone by the sweep.
    let running = d.submit_shell(&escaping("sleep 30"));
    wait_escaped(&d, &running.id);
    let other = d.submit_shell("true");
    d.wait_terminal(&other.id);
    std::thread::sleep(std::time::Duration::from_secs(4));
    assert_eq!(d.state(&running.id), "running");
    assert!(TestDaemon::carrying(&running.id).len() >= 2);
}
