//! `timeout`: an attempt running past it fails with reason `timeout` and
//! its whole process group is gone; `jobq submit --wait` then exits 124,
//! like timeout(1).

use jobq::job::FailReason;
use serde_json::json;

use crate::support::{assert_error, exit_code, wait_for, TestDaemon};

#[test]
fn a_job_past_its_timeout_fails_and_its_process_group_is_gone() {
    let d = TestDaemon::start();
    let job = d.submit(json!({ "shell": "sleep 100 & sleep 100", "timeout": "500ms" }));
    assert_eq!(job.timeout.map(|t| t.0.as_millis()), Some(500), "{job:?}");
    let pgid = d
        .wait_running(&job.id)
        .pid
        .expect("a running job has a pid");
    // The shell and its background sleep (the shell may exec the second).
    // A daemon that kills only the leader leaves the other one behind.
    wait_for(&format!("two processes in group {pgid}"), || {
        TestDaemon::job_processes(pgid, &job.id).len() >= 2 || d.job(&job.id).is_terminal()
    });

    let job = d.wait_terminal(&job.id);
    assert_eq!(job.state.as_str(), "failed", "{job:?}");
    assert_eq!(job.reason, Some(FailReason::Timeout), "{job:?}");
    assert_eq!(job.pid, None, "{job:?}");
    wait_for(&format!("process group {pgid} to be empty"), || {
        TestDaemon::job_processes(pgid, &job.id).is_empty()
    });
}

#[test]
fn submit_wait_exits_124_on_a_timeout() {
    let d = TestDaemon::start();
    let out = d.cli(&[
        "submit",
        "--wait",
        "--timeout",
        "500ms",
        "--",
        "sleep",
        "10",
    ]);
    assert_eq!(
        exit_code(&out),
        124,
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let jobs = d.list_all("");
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].reason, Some(FailReason::Timeout), "{jobs:?}");
}

#[test]
fn a_zero_or_bad_timeout_is_refused() {
    let d = TestDaemon::start();
    for timeout in [json!(0), json!("0s"), json!(-1), json!("never")] {
        let (status, body) = d.post_json(
            "/v1/jobs",
            &json!({ "command": ["true"], "timeout": timeout }),
        );
        assert_error(status, &body, 400, "invalid_field", Some("timeout"));
    }
    assert_eq!(d.job_count(), 0);
}
