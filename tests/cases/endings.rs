//! How `submit --wait|--follow`, `wait` and `logs -f` say how a job ended:
//! a summary line on stderr (unless `--quiet`) and an exit code that tells
//! the process's own ending from the daemon's (docs/api.md's codes plus
//! src/exit_code.rs).

use serde_json::json;

use crate::support::{exit_code, stderr, stdout, TestDaemon};

/// The `jobq:` summary line of `stderr`, the last line that has one.
fn summary(err: &str) -> &str {
    err.lines()
        .rev()
        .find(|l| l.starts_with("jobq: job "))
        .unwrap_or_else(|| panic!("no summary line in {err:?}"))
}

#[test]
fn follow_of_a_command_that_cannot_start_says_why_and_exits_127() {
    let d = TestDaemon::start();
    let out = d.cli(&["submit", "--follow", "--", "no-such-command-here"]);
    let err = stderr(&out);
    assert_eq!(exit_code(&out), 127, "{err}");
    let line = summary(&err);
    assert!(line.contains("could not start"), "{line}");
    assert!(
        line.contains("no-such-command-here"),
        "the error names the command: {line}"
    );
    assert!(line.ends_with("exit 127"), "{line}");
    assert_eq!(stdout(&out), "", "no output, and nothing else on stdout");
}

#[test]
fn the_process_s_own_endings_keep_its_codes() {
    let d = TestDaemon::start();
    for (line, code, words) in [
        ("exit 7", 7, "failed with exit code 7"),
        ("kill -TERM $$", 143, "failed: killed by SIGTERM"),
        ("kill -KILL $$", 137, "failed: killed by SIGKILL"),
        ("true", 0, "succeeded"),
    ] {
        let out = d.cli(&["submit", "--wait", "--shell", line]);
        let err = stderr(&out);
        assert_eq!(exit_code(&out), code, "{line}: {err}");
        let s = summary(&err);
        assert!(s.ends_with(words), "{line}: {s}");
        // The id comes first on stdout (a script may want it while it waits).
        let printed = stdout(&out);
        assert!(uuid::Uuid::parse_str(printed.trim()).is_ok(), "{printed:?}");

        let out = d.cli(&["submit", "--follow", "--quiet", "--shell", line]);
        assert_eq!(exit_code(&out), code, "{line}");
        assert_eq!(stderr(&out), "", "--quiet: {line}");
    }
}

#[test]
fn timeout_dependency_and_cancel_have_codes_of_their_own() {
    let d = TestDaemon::start();
    let out = d.cli(&[
        "submit",
        "--wait",
        "--timeout",
        "200ms",
        "--",
        "sleep",
        "30",
    ]);
    let err = stderr(&out);
    assert_eq!(exit_code(&out), 124, "{err}");
    assert!(summary(&err).contains("timed out"), "{err}");

    let failed = d.submit(json!({ "command": ["false"] }));
    d.wait_terminal(&failed.id);
    let out = d.cli(&["submit", "--wait", "--after", &failed.id, "--", "true"]);
    let err = stderr(&out);
    assert_eq!(exit_code(&out), 125, "{err}");
    let s = summary(&err);
    assert!(s.contains("did not run") && s.contains(&failed.id), "{s}");

    // Cancelled while running: told apart from a job killed by SIGTERM.
    let gate = d.gate();
    let job = d.submit_shell(&gate.shell());
    d.wait_running(&job.id);
    let out = std::thread::scope(|s| {
        let waiter = s.spawn(|| d.cli(&["wait", &job.id]));
        let (status, body) = d.post_empty(&format!("/v1/jobs/{}/cancel", job.id));
        assert_eq!(status, 200, "{body}");
        waiter.join().expect("jobq wait")
    });
    let err = stderr(&out);
    assert_eq!(exit_code(&out), 123, "{err}");
    assert!(
        summary(&err).contains("was cancelled while it ran"),
        "{err}"
    );

    // Cancelled before it ran.
    let later = d.submit(json!({ "command": ["true"], "delay": "1h" }));
    d.post_empty(&format!("/v1/jobs/{}/cancel", later.id));
    let out = d.cli(&["wait", &later.id]);
    assert_eq!(exit_code(&out), 123, "{}", stderr(&out));
    assert!(summary(&stderr(&out)).ends_with("was cancelled; exit 123"));
}

#[test]
fn an_interrupted_job_exits_122() {
    let mut d = TestDaemon::builder()
        .config_toml("on_interrupted = \"fail\"\n")
        .start();
    let gate = d.gate();
    let job = d.submit_shell(&gate.shell());
    d.wait_running(&job.id);
    d.kill9();
    gate.open();
    d.restart();
    d.wait_terminal(&job.id);
    let out = d.cli(&["wait", &job.id]);
    let err = stderr(&out);
    assert_eq!(exit_code(&out), 122, "{err}");
    assert!(summary(&err).contains("was interrupted"), "{err}");
}

#[test]
fn wait_says_how_each_job_ended_and_logs_follow_too() {
    let d = TestDaemon::start();
    let ok = d.submit_shell("echo out; echo err >&2");
    let bad = d.submit_shell("exit 4");
    d.wait_terminal(&ok.id);
    d.wait_terminal(&bad.id);
    let out = d.cli(&["wait", &ok.id, &bad.id]);
    let err = stderr(&out);
    assert_eq!(exit_code(&out), 4, "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(lines[0].ends_with("succeeded"), "{err}");
    assert!(lines[1].ends_with("failed with exit code 4"), "{err}");
    let out = d.cli(&["wait", "-q", &ok.id, &bad.id]);
    assert_eq!(exit_code(&out), 4);
    assert_eq!(stderr(&out), "");

    // logs -f: the job's stderr, then the summary, on stderr.
    let out = d.cli(&["logs", "-f", &ok.id]);
    assert_eq!(exit_code(&out), 0);
    assert_eq!(stdout(&out), "out\n");
    let err = stderr(&out);
    assert!(err.starts_with("err\n"), "{err}");
    assert!(summary(&err).ends_with("succeeded"), "{err}");
    let out = d.cli(&["logs", "--quiet", &ok.id]);
    assert_eq!(
        exit_code(&out),
        2,
        "--quiet needs --follow: {}",
        stderr(&out)
    );
}
