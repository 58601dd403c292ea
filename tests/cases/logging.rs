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

#[test]
fn log_format_json_writes_one_object_per_line() {
    let d = TestDaemon::builder()
        .config_toml("log_format = \"json\"\n")
        .start();
    let job = d.submit(json!({ "command": ["true"] }));
    d.wait_terminal(&job.id);
    let mut lines = Vec::new();
    wait_for("the succeeded line", || {
        lines = d
            .stderr_all()
            .lines()
            .filter(|l| !l.starts_with("==="))
            .map(str::to_owned)
            .collect();
        lines.iter().any(|l| l.contains("succeeded"))
    });
    let objects: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let ended = objects
        .iter()
        .find(|o| o["fields"]["state"] == "succeeded")
        .unwrap_or_else(|| panic!("{objects:#?}"));
    assert_eq!(ended["level"], "INFO");
    assert_eq!(ended["target"], "jobq::jobs");
    assert_eq!(ended["fields"]["job"], job.id.as_str());
    assert_eq!(ended["fields"]["number"], job.number);
    assert!(ended["timestamp"].is_string());
}
