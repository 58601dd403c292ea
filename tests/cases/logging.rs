//! The daemon's log at the default level: one line per job transition,
//! with the job's id, number, queue, attempt, state and exit; never its
//! command, env values or stdin.

use serde_json::json;

use crate::support::{wait_for, TestDaemon};

#[test]
fn each_transition_is_one_info_line_without_secrets() {
    let d = TestDaemon::start();
    let job = d.submit(json!({
        "shell": "echo the-command-line; exit 3",
        "env": { "SECRET_VALUE": "hunter2-hunter2" },
        "stdin": "stdin-secret",
        "queue": "logged",
    }));
    d.wait_terminal(&job.id);
    let mut lines = Vec::new();
    wait_for("the failed line in the log", || {
        lines = d
            .stderr_all()
            .lines()
            .filter(|l| l.contains(&format!("job={}", job.id)))
            .map(str::to_owned)
            .collect();
        lines.iter().any(|l| l.contains("state=failed"))
    });
    let states: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.split("state=").nth(1)?.split_whitespace().next())
        .collect();
    assert_eq!(states, ["queued", "running", "failed"], "{lines:#?}");
    for line in &lines {
        assert!(line.contains(" INFO "), "{line}");
        assert!(line.contains(&format!("number={}", job.number)), "{line}");
        assert!(
            line.contains("queue=logged") && line.contains("attempt=1"),
            "{line}"
        );
    }
    let failed = lines.last().unwrap();
    assert!(
        failed.contains("exit_code=3") && failed.contains("exit=3"),
        "{failed}"
    );
    let log = d.stderr_all();
    for secret in ["hunter2-hunter2", "stdin-secret", "the-command-line"] {
        assert!(!log.contains(secret), "the log shows {secret:?}:\n{log}");
    }
}
