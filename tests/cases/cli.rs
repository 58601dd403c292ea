//! The `jobq` client commands against a real daemon: what they print and
//! how they exit (README and `jobq --help`).

use jobq::api::JobView;

use crate::support::{assert_ok, exit_code, jobq_command, run_bounded, stderr, stdout, TestDaemon};

/// `jobq submit ARGS` → the new job's id, checking stdout holds only it.
fn submit_id(d: &TestDaemon, args: &[&str]) -> String {
    let mut all = vec!["submit"];
    all.extend_from_slice(args);
    let out = d.cli(&all);
    assert_ok(&out);
    let text = stdout(&out);
    let id = text.strip_suffix('\n').unwrap_or(&text);
    assert!(
        uuid::Uuid::parse_str(id).is_ok(),
        "submit prints the new job's id alone on stdout, printed {text:?}"
    );
    id.to_owned()
}

#[test]
fn submit_prints_only_the_id() {
    let d = TestDaemon::start();
    let id = submit_id(&d, &["--", "echo", "hi"]);
    let job = d.wait_terminal(&id);
    assert_eq!(job.state.as_str(), "succeeded", "{job:?}");
    assert_eq!(job.command, Some(vec!["echo".into(), "hi".into()]));
    assert_eq!(d.output(&id, "stdout"), b"hi\n");
}

#[test]
fn submit_passes_options_through() {
    let d = TestDaemon::start();
    let id = submit_id(
        &d,
        &[
            "--queue",
            "batch",
            "--priority",
            "7",
            "--env",
            "FOO=bar",
            "--name",
            "tagged",
            "--label",
            "k=v",
            "--shell",
            "printf %s \"$FOO\"",
        ],
    );
    let job = d.wait_terminal(&id);
    assert_eq!(job.queue, "batch");
    assert_eq!(job.priority, 7);
    assert_eq!(job.name.as_deref(), Some("tagged"));
    assert_eq!(job.labels.get("k").map(String::as_str), Some("v"));
    assert_eq!(job.shell.as_deref(), Some("printf %s \"$FOO\""));
    assert_eq!(job.state.as_str(), "succeeded", "{job:?}");
    assert_eq!(d.output(&id, "stdout"), b"bar");
}

#[test]
fn submit_json_prints_the_job() {
    let d = TestDaemon::start();
    let out = d.cli(&["submit", "--json", "--", "echo", "hi"]);
    assert_ok(&out);
    let job: JobView = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("submit --json prints a job ({e}): {}", stdout(&out)));
    assert_eq!(job.command, Some(vec!["echo".into(), "hi".into()]));
    assert_eq!(d.job(&job.id).id, job.id);
}

#[test]
fn submit_wait_exits_with_the_jobs_code() {
    let d = TestDaemon::start();
    let out = d.cli(&["submit", "--wait", "--", "sh", "-c", "exit 7"]);
    assert_eq!(exit_code(&out), 7, "stderr: {}", stderr(&out));
    let out = d.cli(&["submit", "--wait", "--", "true"]);
    assert_eq!(exit_code(&out), 0, "stderr: {}", stderr(&out));
    let out = d.cli(&["submit", "--wait", "--", "sh", "-c", "kill -9 $$"]);
    assert_eq!(exit_code(&out), 128 + 9, "stderr: {}", stderr(&out));
}

#[test]
fn list_show_and_logs() {
    let d = TestDaemon::start();
    let id = submit_id(
        &d,
        &[
            "--name",
            "cli-show",
            "--",
            "sh",
            "-c",
            "printf 'out\\n\\tbytes'; printf 'err\\n' >&2",
        ],
    );
    d.wait_terminal(&id);

    let out = d.cli(&["list"]);
    assert_ok(&out);
    assert!(!stdout(&out).trim().is_empty(), "list printed nothing");
    let out = d.cli(&["list", "--json"]);
    assert_ok(&out);
    assert!(
        stdout(&out).contains(&id),
        "list --json lacks {id}: {}",
        stdout(&out)
    );

    let out = d.cli(&["show", &id]);
    assert_ok(&out);
    let text = stdout(&out);
    assert!(
        text.contains(&id) && text.contains("succeeded"),
        "show: {text}"
    );

    let out = d.cli(&["show", &id, "--json"]);
    assert_ok(&out);
    let job: JobView = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("show --json prints a job ({e}): {}", stdout(&out)));
    assert_eq!(job, d.job(&id));

    let out = d.cli(&["logs", &id, "--stdout"]);
    assert_ok(&out);
    assert_eq!(out.stdout, b"out\n\tbytes", "logs prints the exact bytes");
    let out = d.cli(&["logs", &id, "--stderr"]);
    assert_ok(&out);
    assert_eq!(out.stdout, b"err\n");
    let out = d.cli(&["logs", &id]);
    assert_ok(&out);
    assert_eq!(
        out.stdout.len(),
        b"out\n\tbyteserr\n".len(),
        "logs prints both streams"
    );
}

#[test]
fn wait_exits_with_the_jobs_code() {
    let d = TestDaemon::start();
    let gate = d.gate();
    let id = submit_id(&d, &["--shell", &format!("{}; exit 5", gate.shell())]);
    let out = std::thread::scope(|s| {
        let waiter = s.spawn(|| d.cli(&["wait", &id]));
        gate.open();
        waiter.join().expect("wait thread")
    });
    assert_eq!(exit_code(&out), 5, "stderr: {}", stderr(&out));
    let out = d.cli(&["wait", &id]);
    assert_eq!(
        exit_code(&out),
        5,
        "waiting for a finished job, stderr: {}",
        stderr(&out)
    );
}

#[test]
fn cancel_retry_and_rm() {
    let d = TestDaemon::start();
    let gate = d.gate();
    let id = submit_id(&d, &["--shell", &gate.shell()]);
    d.wait_running(&id);
    let out = d.cli(&["cancel", &id]);
    assert_ok(&out);
    let job = d.wait_terminal(&id);
    assert_eq!(job.state.as_str(), "cancelled", "{job:?}");

    gate.open();
    let out = d.cli(&["retry", &id]);
    assert_ok(&out);
    let job = d.wait_terminal(&id);
    assert_eq!(job.attempt, 2, "{job:?}");
    assert_eq!(job.state.as_str(), "succeeded", "{job:?}");

    let out = d.cli(&["rm", &id]);
    assert_ok(&out);
    assert_eq!(d.get(&format!("/v1/jobs/{id}")).status, 404);
}

#[test]
fn a_bad_flag_exits_2() {
    let d = TestDaemon::start();
    let out = d.cli(&["submit", "--no-such-flag", "--", "true"]);
    assert_eq!(exit_code(&out), 2, "stderr: {}", stderr(&out));
    assert_eq!(d.job_count(), 0, "a refused command line submitted a job");
}

#[test]
fn bad_values_say_what_is_expected_in_words() {
    let d = TestDaemon::start();
    for (args, want) in [
        (
            &["submit", "--retries", "-1", "--", "true"][..],
            "must be ≥ 0",
        ),
        (
            &["submit", "--priority", "high", "--", "true"][..],
            "not a whole number",
        ),
        (
            &["submit", "--priority", "99999999999", "--", "true"][..],
            "at most 2147483647",
        ),
        (
            &["submit", "--delay", "-5", "--", "true"][..],
            "not a duration ≥ 0",
        ),
        (
            &["submit", "--timeout", "soon", "--", "true"][..],
            "such as \"10s\"",
        ),
        (
            &["submit", "--at", "tomorrow", "--", "true"][..],
            "2030-01-02T15:04:05Z",
        ),
        (&["submit", "--env", "=x", "--", "true"][..], "K=V"),
        (&["logs", "--attempt", "0", "1"][..], "must be ≥ 1"),
        (&["wait", "--timeout", "-1", "1"][..], "not a duration ≥ 0"),
        (&["show", "not-an-id"][..], "not a job id or number"),
    ] {
        let out = d.cli(args);
        let err = stderr(&out);
        assert_eq!(exit_code(&out), 2, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        for bad in ["-- -", "i32", "u32", "usize", "parsable"] {
            assert!(!err.contains(bad), "{args:?} says {bad:?}: {err}");
        }
    }
    for (args, want) in [
        (&["serve", "--workers", "-1"][..], "must be ≥ 1"),
        (&["serve", "--workers", "0"][..], "must be ≥ 1"),
        (
            &["serve", "--server", "http://127.0.0.1:1"][..],
            "client option",
        ),
        (
            &["--token", "abcdefghijklmnopqrstu", "serve"][..],
            "client option",
        ),
    ] {
        let out = run_bounded(jobq_command(args), "jobq serve");
        assert_eq!(exit_code(&out), 2, "{args:?}");
        assert!(stderr(&out).contains(want), "{args:?}: {}", stderr(&out));
    }
    assert_eq!(d.job_count(), 0);
}

#[test]
fn showing_an_unknown_job_exits_2_with_one_line() {
    let d = TestDaemon::start();
    let out = d.cli(&["show", "0192f1c4-8a6e-7c3b-9d1e-3f5a7b9c1d2e"]);
    assert_eq!(exit_code(&out), 2, "stderr: {}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "one line on stderr: {err:?}");
    assert!(err.starts_with("jobq:"), "stderr: {err:?}");
    assert!(out.stdout.is_empty(), "stdout: {}", stdout(&out));
}

#[test]
fn an_unreachable_server_exits_3_with_one_line() {
    let out = run_bounded(
        jobq_command(&["list", "--server", "http://127.0.0.1:1"]),
        "jobq list against a closed port",
    );
    assert_eq!(exit_code(&out), 3, "stderr: {}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(
        err.lines().count(),
        1,
        "exactly one line on stderr: {err:?}"
    );
    assert!(err.starts_with("jobq: cannot reach"), "stderr: {err:?}");
}

#[test]
fn a_job_runs_where_it_was_submitted_with_variables_copied_from_here() {
    let d = TestDaemon::start();
    let here = tempfile::tempdir().unwrap();
    let mut cmd = d.cli_command(&[
        "submit",
        "--wait",
        "--env",
        "JOBQ_TEST_COPIED",
        "--shell",
        "pwd; echo $JOBQ_TEST_COPIED",
    ]);
    cmd.current_dir(here.path())
        .env("JOBQ_TEST_COPIED", "from-here");
    let out = run_bounded(cmd, "jobq submit --wait in a directory");
    assert_eq!(
        exit_code(&out),
        0,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let want = format!(
        "{}\nfrom-here\n",
        here.path().canonicalize().unwrap().display()
    );
    assert_eq!(String::from_utf8_lossy(&d.output(&id, "stdout")), want);

    // A variable that is not set here is an error, and nothing is submitted.
    let before = d.job_count();
    let mut cmd = d.cli_command(&["submit", "--env", "JOBQ_TEST_SURELY_UNSET", "--", "true"]);
    cmd.env_remove("JOBQ_TEST_SURELY_UNSET");
    let out = run_bounded(cmd, "jobq submit --env of an unset variable");
    assert_eq!(exit_code(&out), 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not set here"));
    assert_eq!(d.job_count(), before);

    // --inherit-env sends everything (and stores it with the job).
    let mut cmd = d.cli_command(&["submit", "-E", "--json", "--", "true"]);
    cmd.env("JOBQ_TEST_INHERITED", "yes");
    let out = run_bounded(cmd, "jobq submit -E");
    let job: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(job["env"]["JOBQ_TEST_INHERITED"], "yes", "{job}");
}
