//! Short job references: every job has a `number` (its submission
//! sequence), accepted wherever the API and the CLI take an id.

use serde_json::json;

use crate::support::{assert_error, assert_ok, exit_code, stderr, stdout, TestDaemon};

#[test]
fn numbers_count_up_and_name_the_job_everywhere() {
    let d = TestDaemon::start();
    let first = d.submit(json!({ "shell": "echo one" }));
    let second = d.submit(json!({ "shell": "echo two", "name": "two" }));
    assert!(first.number >= 1, "{first:?}");
    assert_eq!(
        second.number,
        first.number + 1,
        "numbers follow submissions"
    );
    d.wait_terminal(&first.id);
    d.wait_terminal(&second.id);

    // The API: the job, its output, its events.
    let (status, body) = d.get_json(&format!("/v1/jobs/{}", second.number));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], second.id.as_str());
    assert_eq!(body["number"], second.number);
    let (status, out) = d.get_bytes(&format!("/v1/jobs/{}/output?stream=stdout", first.number));
    assert_eq!(status, 200);
    assert_eq!(out, b"one\n");
    let (status, list) = d.get_json("/v1/jobs");
    assert_eq!(status, 200);
    assert!(list["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .all(|j| j["number"].as_u64() > Some(0)));

    // `after` takes a number and stores the id it names.
    let child = d.submit(json!({ "command": ["true"], "after": [first.number.to_string()] }));
    assert_eq!(child.after, vec![first.id.clone()]);
    let (status, body) = d.post_json(
        "/v1/jobs/batch",
        &json!({ "jobs": [{ "command": ["true"], "after": [second.number.to_string()] }] }),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["jobs"][0]["after"][0], second.id.as_str());

    // The CLI.
    let out = d.cli(&["show", &second.number.to_string()]);
    assert_ok(&out);
    assert!(stdout(&out).contains(&second.id), "{}", stdout(&out));
    let number_line = stdout(&out)
        .lines()
        .find_map(|l| l.strip_prefix("number:").map(|v| v.trim().to_owned()));
    assert_eq!(
        number_line,
        Some(second.number.to_string()),
        "{}",
        stdout(&out)
    );
    let out = d.cli(&["logs", &first.number.to_string()]);
    assert_ok(&out);
    assert_eq!(stdout(&out), "one\n");
    let out = d.cli(&["rm", &first.number.to_string()]);
    assert_ok(&out);
    let (status, _) = d.get_json(&format!("/v1/jobs/{}", first.id));
    assert_eq!(status, 404, "rm by number removed the job");
}

#[test]
fn numbers_survive_a_restart_and_are_not_reused() {
    let mut d = TestDaemon::start();
    let a = d.submit(json!({ "command": ["true"] }));
    d.wait_terminal(&a.id);
    let (status, _) = d.delete(&format!("/v1/jobs/{}", a.id));
    assert_eq!(status, 204);
    let b = d.submit(json!({ "command": ["true"] }));
    assert_eq!(
        b.number,
        a.number + 1,
        "the removed newest number is not reused"
    );
    d.wait_terminal(&b.id);
    d.restart();
    let (status, body) = d.get_json(&format!("/v1/jobs/{}", b.number));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], b.id.as_str());
    let c = d.submit(json!({ "command": ["true"] }));
    assert_eq!(
        c.number,
        b.number + 1,
        "numbers stay short across a restart"
    );
    let (status, body) = d.get_json(&format!("/v1/jobs/{}", a.number));
    assert_error(status, &body, 404, "not_found", None);
}

#[test]
fn unknown_and_malformed_references_are_refused() {
    let d = TestDaemon::start();
    let job = d.submit(json!({ "command": ["true"] }));
    for bad in ["0", "99999", "18446744073709551616", "12abc", "-3"] {
        let (status, body) = d.get_json(&format!("/v1/jobs/{bad}"));
        assert_error(status, &body, 404, "not_found", None);
        let (status, body) = d.post_empty(&format!("/v1/jobs/{bad}/cancel"));
        assert_error(status, &body, 404, "not_found", None);
    }
    let (status, body) = d.post_json(
        "/v1/jobs",
        &json!({ "command": ["true"], "after": ["99999"] }),
    );
    assert_error(status, &body, 400, "invalid_field", Some("after"));
    let (status, body) = d.get_json("/v1/events?job=99999");
    assert_error(status, &body, 404, "not_found", None);
    let out = d.cli(&["show", "12abc"]);
    assert_eq!(exit_code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not a job id or number"),
        "{}",
        stderr(&out)
    );
    assert_eq!(d.job_count(), 1, "refused requests added jobs");
    assert_ne!(
        d.state(&job.id),
        "cancelled",
        "a refused cancel cancelled a job"
    );
}
