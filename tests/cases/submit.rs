//! Submit → run → output → exit: argv and shell jobs, how they end, and the
//! environment a job runs in (env, cwd, stdin).

use jobq::api::JobView;
use jobq::job::FailReason;
use serde_json::json;

use crate::support::{job_from, TestDaemon};

fn assert_ran(job: &JobView) {
    let started = job
        .started_at
        .unwrap_or_else(|| panic!("started_at unset: {job:?}"));
    let finished = job
        .finished_at
        .unwrap_or_else(|| panic!("finished_at unset: {job:?}"));
    assert!(started <= finished, "started after it finished: {job:?}");
    assert!(
        job.created_at <= started,
        "started before it was created: {job:?}"
    );
    assert_eq!(job.pid, None, "a finished job has no pid: {job:?}");
}

#[test]
fn argv_job_runs_and_its_output_is_kept() {
    let d = TestDaemon::start();
    let reply = d.post(
        "/v1/jobs",
        &json!({ "command": ["echo", "hello", "world"] }),
    );
    assert_eq!(reply.status, 201, "{:?}", reply.json());
    let job = job_from(&reply.json());
    let location = reply.location.expect("201 carries a Location header");
    assert!(
        location.ends_with(&format!("/v1/jobs/{}", job.id)),
        "Location: {location}"
    );
    assert_eq!(
        job.command,
        Some(vec!["echo".into(), "hello".into(), "world".into()])
    );
    assert_eq!(job.shell, None);
    assert_eq!(job.attempt, 1);
    assert_eq!(job.queue, "default");
    assert_eq!(job.priority, 0);

    let job = d.wait_terminal(&job.id);
    assert_eq!(job.state.as_str(), "succeeded", "{job:?}");
    assert_eq!(job.exit_code, Some(0));
    assert_eq!(job.signal, None);
    assert_eq!(job.reason, None);
    assert_ran(&job);

    let reply = d.get(&format!("/v1/jobs/{}/output", job.id));
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, b"hello world\n");
    let ct = reply.content_type.unwrap_or_default();
    assert!(
        ct.starts_with("application/octet-stream"),
        "Content-Type: {ct}"
    );
}

#[test]
fn argv_is_not_interpreted_by_a_shell() {
    let d = TestDaemon::start();
    let job = d.submit(json!({ "command": ["echo", "$HOME", "a;b", "*"] }));
    let job = d.wait_terminal(&job.id);
    assert_eq!(job.state.as_str(), "succeeded", "{job:?}");
    assert_eq!(d.output(&job.id, "all"), b"$HOME a;b *\n");
}

#[test]
fn shell_job_runs_under_sh() {
    let d = TestDaemon::start();
    let job = d.submit_shell("x=3; echo $((x * 2)) | sed s/6/six/; echo two");
    assert_eq!(
        job.shell.as_deref(),
        Some("x=3; echo $((x * 2)) | sed s/6/six/; echo two")
    );
    assert_eq!(job.command, None);
    let job = d.wait_terminal(&job.id);
    assert_eq!(job.state.as_str(), "succeeded", "{job:?}");
    assert_eq!(job.exit_code, Some(0));
    assert_ran(&job);
    assert_eq!(d.output(&job.id, "all"), b"six\ntwo\n");
}

#[test]
fn nonzero_exit_fails_with_reason_exit() {
    let d = TestDaemon::start();
    let job = d.submit_shell("echo partial; exit 3");
    let job = d.wait_terminal(&job.id);
    assert_eq!(job.state.as_str(), "failed", "{job:?}");
    assert_eq!(job.reason, Some(FailReason::Exit));
    assert_eq!(job.exit_code, Some(3));
    assert_eq!(job.signal, None);
    assert_ran(&job);
    assert_eq!(d.output(&job.id, "all"), b"partial\n");
}

#[test]
fn death_by_signal_fails_with_reason_signal() {
    let d = TestDaemon::start();
    let job = d.submit_shell("kill -9 $$");
    let job = d.wait_terminal(&job.id);
    assert_eq!(job.state.as_str(), "failed", "{job:?}");
    assert_eq!(job.reason, Some(FailReason::Signal));
    assert_eq!(job.signal.as_deref(), Some("SIGKILL"));
    assert_eq!(job.exit_code, None, "no exit code without a normal exit");
    assert_ran(&job);
}

#[test]
fn env_is_added_to_the_jobs_environment() {
    let d = TestDaemon::start();
    let job = d.submit(json!({
        "shell": "printf '%s|%s|%s' \"$FOO\" \"$SPACED\" \"${PATH:+path-kept}\"",
        "env": { "FOO": "bar", "SPACED": "a b  c" },
    }));
    assert_eq!(job.env.get("FOO").map(String::as_str), Some("bar"));
    let job = d.wait_terminal(&job.id);
    assert_eq!(job.state.as_str(), "succeeded", "{job:?}");
    assert_eq!(d.output(&job.id, "stdout"), b"bar|a b  c|path-kept");
}

#[test]
fn cwd_sets_the_working_directory() {
    let d = TestDaemon::start();
    let dir = d.path("cwd");
    std::fs::create_dir(&dir).unwrap();
    let dir = dir.canonicalize().unwrap();
    let job = d.submit(json!({ "command": ["pwd", "-P"], "cwd": dir.to_str().unwrap() }));
    assert_eq!(job.cwd.as_deref(), dir.to_str());
    let job = d.wait_terminal(&job.id);
    assert_eq!(job.state.as_str(), "succeeded", "{job:?}");
    assert_eq!(
        String::from_utf8_lossy(&d.output(&job.id, "stdout")),
        format!("{}\n", dir.display())
    );
}

#[test]
fn default_cwd_is_the_data_dirs_work_directory() {
    let d = TestDaemon::start();
    let job = d.submit(json!({ "command": ["pwd", "-P"] }));
    let job = d.wait_terminal(&job.id);
    assert_eq!(job.state.as_str(), "succeeded", "{job:?}");
    let work = d
        .data_dir()
        .join("work")
        .canonicalize()
        .expect("<data_dir>/work exists");
    assert_eq!(
        String::from_utf8_lossy(&d.output(&job.id, "stdout")),
        format!("{}\n", work.display())
    );
}

#[test]
fn stdin_is_fed_to_the_job() {
    let d = TestDaemon::start();
    let text = "line one\nline two with ünïcode\nno newline at the end";
    let job = d.submit(json!({ "command": ["cat"], "stdin": text }));
    assert_eq!(job.stdin_bytes, Some(text.len() as u64));
    let job = d.wait_terminal(&job.id);
    assert_eq!(job.state.as_str(), "succeeded", "{job:?}");
    assert_eq!(d.output(&job.id, "stdout"), text.as_bytes());
}

#[test]
fn without_stdin_the_job_reads_end_of_file() {
    // A job reading stdin must not hang waiting for input nobody sends.
    let d = TestDaemon::start();
    let job = d.submit(json!({ "shell": "cat; echo done" }));
    let job = d.wait_terminal(&job.id);
    assert_eq!(job.state.as_str(), "succeeded", "{job:?}");
    assert_eq!(d.output(&job.id, "stdout"), b"done\n");
}
