//! `POST /v1/jobs/batch` and `jobq submit --batch FILE`: many jobs, all or
//! nothing, in request order; a bad spec is named by its index (HTTP) or
//! its line (CLI) and nothing is created.

use std::process::Output;

use serde_json::{json, Value};

use crate::support::{assert_error, exit_code, TestDaemon};

fn ids_of(body: &Value) -> Vec<String> {
    body["jobs"]
        .as_array()
        .unwrap_or_else(|| panic!("no jobs array: {body}"))
        .iter()
        .map(|j| j["id"].as_str().expect("an id").to_owned())
        .collect()
}

#[test]
fn a_batch_creates_every_job_in_order() {
    let d = TestDaemon::start();
    let (status, body) = d.post_json(
        "/v1/jobs/batch",
        &json!({ "jobs": [
            { "command": ["echo", "one"], "name": "one" },
            { "shell": "echo two", "name": "two", "queue": "other" },
            { "command": ["echo", "three"], "name": "three", "priority": 3 },
        ]}),
    );
    assert_eq!(status, 201, "{body}");
    let names: Vec<&str> = body["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| j["name"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(names, ["one", "two", "three"], "{body}");
    assert_eq!(body["jobs"][1]["queue"], "other", "{body}");
    assert_eq!(body["jobs"][2]["priority"], 3, "{body}");
    let ids = ids_of(&body);
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "ids are time-sortable, in request order");
    for (id, word) in ids.iter().zip(["one", "two", "three"]) {
        let job = d.wait_terminal(id);
        assert_eq!(job.state.as_str(), "succeeded", "{job:?}");
        assert_eq!(d.output(id, "stdout"), format!("{word}\n").as_bytes());
    }
}

#[test]
fn one_bad_spec_refuses_the_whole_batch() {
    let d = TestDaemon::start();
    let (status, body) = d.post_json(
        "/v1/jobs/batch",
        &json!({ "jobs": [
            { "command": ["true"] },
            { "command": [] },
            { "command": ["true"] },
        ]}),
    );
    assert_error(status, &body, 400, "invalid_field", Some("jobs[1].command"));
    let (status, body) = d.post_json(
        "/v1/jobs/batch",
        &json!({ "jobs": [
            { "command": ["true"] },
            { "command": ["true"] },
            { "command": ["true"], "timeout": "never" },
        ]}),
    );
    assert_error(status, &body, 400, "invalid_field", Some("jobs[2].timeout"));
    // Only the daemon can tell an unknown `after`; still nothing is made.
    let unknown = uuid::Uuid::now_v7().to_string();
    let (status, body) = d.post_json(
        "/v1/jobs/batch",
        &json!({ "jobs": [{ "command": ["true"] }, { "command": ["true"], "after": [unknown] }] }),
    );
    assert_error(status, &body, 400, "invalid_field", Some("jobs[1].after"));
    let (status, body) = d.post_json("/v1/jobs/batch", &json!({ "jobs": [] }));
    assert_error(status, &body, 400, "invalid_field", Some("jobs"));
    // A spec as an array of its fields in order (serde's other form of a
    // struct) is not a spec.
    let (status, body) = d.post_json(
        "/v1/jobs/batch",
        &json!({ "jobs": [{ "command": ["true"] }, [["true"]]] }),
    );
    assert_error(status, &body, 400, "invalid_field", Some("jobs[1]"));
    assert_eq!(d.job_count(), 0, "a refused batch created jobs");
}

#[test]
fn a_batch_without_jobs_names_the_missing_field() {
    let d = TestDaemon::start();
    let (status, body) = d.post_json("/v1/jobs/batch", &json!({}));
    assert_error(status, &body, 400, "invalid_field", Some("jobs"));
}

// ---- jobq submit --batch ----

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn cli_batch_submits_every_line_and_prints_the_ids_in_order() {
    let d = TestDaemon::start();
    let file = d.path("jobs.jsonl");
    std::fs::write(
        &file,
        "{\"command\": [\"echo\", \"a\"]}\n\n{\"shell\": \"echo b\", \"queue\": \"q2\"}\n{\"command\": [\"echo\", \"c\"], \"priority\": 5}\n",
    )
    .unwrap();
    let out = d.cli(&["submit", "--batch", file.to_str().unwrap()]);
    assert_eq!(exit_code(&out), 0, "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    let ids: Vec<&str> = text.lines().collect();
    assert_eq!(ids.len(), 3, "one id per job line: {text:?}");
    for (id, word) in ids.iter().zip(["a", "b", "c"]) {
        let job = d.wait_terminal(id);
        assert_eq!(job.state.as_str(), "succeeded", "{job:?}");
        assert_eq!(d.output(id, "stdout"), format!("{word}\n").as_bytes());
    }
    assert_eq!(d.job(ids[1]).queue, "q2");
    assert_eq!(d.job(ids[2]).priority, 5);
}

#[test]
fn cli_batch_names_a_bad_line_and_submits_nothing() {
    let d = TestDaemon::start();
    let unknown = uuid::Uuid::now_v7().to_string();
    let refused_by_daemon = format!(
        "{{\"command\": [\"true\"], \"after\": [\"{unknown}\"]}}\n{{\"command\": [\"true\"]}}\n"
    );
    let cases = [
        // Not JSON.
        ("{\"command\": [\"true\"]}\n{\"command\": [\"true\"\n{\"command\": [\"true\"]}\n", 2),
        // JSON, but not a valid spec.
        ("{\"command\": [\"true\"]}\n{\"command\": [\"true\"]}\n{\"command\": [\"true\"], \"retries\": -1}\n", 3),
        // Valid as far as the client can tell; the daemon refuses it.
        (refused_by_daemon.as_str(), 1),
    ];
    for (text, line) in cases {
        let file = d.path("bad.jsonl");
        std::fs::write(&file, text).unwrap();
        let out = d.cli(&["submit", "--batch", file.to_str().unwrap()]);
        assert_eq!(exit_code(&out), 2, "{text}: {out:?}");
        let err = stderr(&out);
        assert!(
            err.starts_with("jobq:") && err.contains(&format!("line {line}")),
            "the error names line {line}: {err}\n(file: {text})"
        );
        assert!(out.stdout.is_empty(), "{out:?}");
        assert_eq!(d.job_count(), 0, "{text}: a refused batch created jobs");
    }
}
