//! A job that cannot be started fails with reason `spawn` and a sentence
//! saying why, and the daemon goes on serving.

use std::os::unix::fs::PermissionsExt;

use jobq::api::JobView;
use jobq::job::FailReason;
use serde_json::json;

use crate::support::TestDaemon;

#[track_caller]
fn assert_spawn_failure(job: &JobView) {
    assert_eq!(job.state.as_str(), "failed", "{job:?}");
    assert_eq!(job.reason, Some(FailReason::Spawn), "{job:?}");
    assert!(
        job.error.as_deref().is_some_and(|e| !e.trim().is_empty()),
        "a spawn failure says why in `error`: {job:?}"
    );
    assert_eq!(job.exit_code, None, "{job:?}");
    assert_eq!(job.pid, None, "{job:?}");
    assert!(job.finished_at.is_some(), "{job:?}");
}

#[track_caller]
fn assert_still_serving(d: &TestDaemon) {
    assert_eq!(d.get("/healthz").status, 200);
    let job = d.submit_shell("echo still here");
    let job = d.wait_terminal(&job.id);
    assert_eq!(job.state.as_str(), "succeeded", "{job:?}");
    assert_eq!(d.output(&job.id, "stdout"), b"still here\n");
}

#[test]
fn a_missing_program_fails_to_spawn() {
    let d = TestDaemon::start();
    let job = d.submit(json!({ "command": ["/nonexistent/x"] }));
    let job = d.wait_terminal(&job.id);
    assert_spawn_failure(&job);
    assert_still_serving(&d);
}

#[test]
fn a_program_not_on_path_fails_to_spawn() {
    let d = TestDaemon::start();
    let job = d.submit(json!({ "command": ["jobq-test-no-such-program"] }));
    let job = d.wait_terminal(&job.id);
    assert_spawn_failure(&job);
    assert_still_serving(&d);
}

#[test]
fn a_non_executable_file_fails_to_spawn() {
    let d = TestDaemon::start();
    let file = d.path("not-executable");
    std::fs::write(&file, "#!/bin/sh\necho should not run\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let job = d.submit(json!({ "command": [file.to_str().unwrap()] }));
    let job = d.wait_terminal(&job.id);
    assert_spawn_failure(&job);
    assert_still_serving(&d);
}

#[test]
fn a_cwd_removed_before_the_job_starts_fails_to_spawn() {
    let d = TestDaemon::builder().workers(1).start();
    let gate = d.gate();
    let blocker = d.submit_shell(&gate.shell());
    d.wait_running(&blocker.id);

    let dir = d.path("doomed-cwd");
    std::fs::create_dir(&dir).unwrap();
    let job = d.submit(json!({ "command": ["true"], "cwd": dir.to_str().unwrap() }));
    std::fs::remove_dir(&dir).unwrap();
    gate.open();
    let job = d.wait_terminal(&job.id);
    assert_spawn_failure(&job);
    assert_still_serving(&d);
}
