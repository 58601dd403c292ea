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

/// Reads one `Name:\tvalue` line of a /proc status dump.
fn status_field<'a>(status: &'a str, name: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {name} in {status}"))
        .trim()
}

#[test]
fn a_job_leads_its_own_group_with_default_signals_and_none_blocked() {
    let d = TestDaemon::start();
    let job = d.submit(json!({ "command": ["cat", "/proc/self/status"] }));
    let job = d.wait_terminal(&job.id);
    assert_eq!(job.state.as_str(), "succeeded", "{job:?}");
    let out = String::from_utf8(d.output(&job.id, "stdout")).unwrap();
    let pid = status_field(&out, "Pid");
    assert_eq!(status_field(&out, "NSpgid"), pid, "the job leads its group");
    assert_eq!(status_field(&out, "PPid"), d.pid().to_string(), "{out}");
    let blocked = u64::from_str_radix(status_field(&out, "SigBlk"), 16).unwrap();
    assert_eq!(blocked, 0, "no signal is blocked in a job: {out}");
    let ignored = u64::from_str_radix(status_field(&out, "SigIgn"), 16).unwrap();
    let sigpipe = 1 << (libc::SIGPIPE - 1);
    assert_eq!(
        ignored & sigpipe,
        0,
        "SIGPIPE is back to its default: {out}"
    );

    // Which a pipeline relies on: `yes` dies of SIGPIPE quietly.
    let job = d.submit_shell("yes | head -n 1");
    let job = d.wait_terminal(&job.id);
    assert_eq!(job.state.as_str(), "succeeded", "{job:?}");
    assert_eq!(d.output(&job.id, "stderr"), b"", "{job:?}");
}

#[test]
fn a_program_is_looked_up_on_the_jobs_own_path() {
    let d = TestDaemon::start();
    let empty = d.path("bin-empty");
    let bin = d.path("bin");
    std::fs::create_dir(&empty).unwrap();
    std::fs::create_dir(&bin).unwrap();
    let script = bin.join("jobq-test-hello");
    std::fs::write(&script, "#!/bin/sh\necho hello from PATH\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}:/usr/bin:/bin", empty.display(), bin.display());
    let job = d.submit(json!({ "command": ["jobq-test-hello"], "env": { "PATH": path } }));
    let job = d.wait_terminal(&job.id);
    assert_eq!(job.state.as_str(), "succeeded", "{job:?}");
    assert_eq!(d.output(&job.id, "stdout"), b"hello from PATH\n");

    // Without it on PATH, the same name is not found, and the error says so.
    let job = d.submit(json!({ "command": ["jobq-test-hello"] }));
    let job = d.wait_terminal(&job.id);
    assert_spawn_failure(&job);
    let error = job.error.unwrap_or_default();
    assert!(error.contains("No such file or directory"), "{error}");
}
