//! Bad input is refused with docs/api.md's error body, naming the field at
//! fault, and creates nothing.
//!
//! The tables check every case and report all failures at once, so one
//! wrong answer does not hide the others.

use serde_json::{json, Value};

use crate::support::{assert_error, TestDaemon};

/// One request that must be refused.
struct Case {
    /// What the case is about, for the failure message.
    what: &'static str,
    /// The raw body sent with `Content-Type: application/json`.
    body: Vec<u8>,
    /// The expected error.
    code: &'static str,
    /// The expected `error.field`, when one field is at fault.
    field: Option<&'static str>,
}

fn case(what: &'static str, body: Value, field: &'static str) -> Case {
    Case {
        what,
        body: serde_json::to_vec(&body).unwrap(),
        code: "invalid_field",
        field: Some(field),
    }
}

/// Checks an error reply, returning what is wrong instead of panicking.
fn check_error(
    what: &str,
    status: u16,
    body: &Value,
    want_status: u16,
    code: &str,
    field: Option<&str>,
) -> Result<(), String> {
    let mut wrong = Vec::new();
    if status != want_status {
        wrong.push(format!("status {status}, want {want_status}"));
    }
    if body["error"]["code"] != code {
        wrong.push(format!(
            "error.code {}, want {code:?}",
            body["error"]["code"]
        ));
    }
    let has_message = body["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty());
    if !has_message {
        wrong.push("no error.message".to_owned());
    }
    // Messages say what is expected in words, not in Rust's types.
    let message = body["error"]["message"].as_str().unwrap_or_default();
    for rust in [
        "i32",
        "u32",
        "u64",
        "usize",
        "a sequence",
        "a map",
        "parsable",
        "variant",
    ] {
        if message.contains(rust) {
            wrong.push(format!("error.message names {rust:?}"));
        }
    }
    if let Some(field) = field {
        if body["error"]["field"] != field {
            wrong.push(format!(
                "error.field {}, want {field:?}",
                body["error"]["field"]
            ));
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(format!("{what}: {}; body: {body}", wrong.join(", ")))
    }
}

fn report(failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} case(s) wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn bad_job_specs_are_refused_and_create_nothing() {
    let d = TestDaemon::start();
    let existing = d.submit_shell("true");
    let missing_dir = d.path("no-such-dir");
    let cases = vec![
        Case {
            what: "malformed JSON",
            body: br#"{"command": ["echo""#.to_vec(),
            code: "invalid_json",
            field: None,
        },
        Case {
            what: "not JSON at all",
            body: b"command=echo".to_vec(),
            code: "invalid_json",
            field: None,
        },
        case(
            "unknown field",
            json!({ "command": ["true"], "bogus": 1 }),
            "bogus",
        ),
        case(
            "priority of the wrong type",
            json!({ "command": ["true"], "priority": "high" }),
            "priority",
        ),
        case("command as a string", json!({ "command": "ls" }), "command"),
        case(
            "env of the wrong type",
            json!({ "command": ["true"], "env": ["A=b"] }),
            "env",
        ),
        case(
            "both command and shell",
            json!({ "command": ["true"], "shell": "true" }),
            "command",
        ),
        case(
            "neither command nor shell",
            json!({ "queue": "default" }),
            "command",
        ),
        case("an empty argv", json!({ "command": [] }), "command"),
        case("an empty shell line", json!({ "shell": "" }), "shell"),
        case(
            "a queue name with a slash",
            json!({ "command": ["true"], "queue": "a/b" }),
            "queue",
        ),
        case(
            "a 300-character queue name",
            json!({ "command": ["true"], "queue": "q".repeat(300) }),
            "queue",
        ),
        case(
            "an upper-case queue name",
            json!({ "command": ["true"], "queue": "Default" }),
            "queue",
        ),
        case(
            "a cwd that does not exist",
            json!({ "command": ["true"], "cwd": missing_dir.to_str().unwrap() }),
            "cwd",
        ),
        case(
            "a relative cwd",
            json!({ "command": ["true"], "cwd": "tmp" }),
            "cwd",
        ),
        case(
            "negative retries",
            json!({ "command": ["true"], "retries": -1 }),
            "retries",
        ),
        case(
            "a timeout that is not a duration",
            json!({ "command": ["true"], "timeout": "soon" }),
            "timeout",
        ),
        case(
            "both run_at and delay",
            json!({ "command": ["true"], "delay": "1s", "run_at": "2030-01-01T00:00:00Z" }),
            "delay",
        ),
        case(
            "an after id that is not an id",
            json!({ "command": ["true"], "after": ["nope"] }),
            "after",
        ),
        Case {
            what: "a key given twice (the last would win)",
            body: br#"{"shell": "true", "shell": "false"}"#.to_vec(),
            code: "invalid_json",
            field: None,
        },
        Case {
            what: "a key given twice in env",
            body: br#"{"shell": "true", "env": {"A": "1", "A": "2"}}"#.to_vec(),
            code: "invalid_json",
            field: None,
        },
        case(
            "a priority out of range",
            json!({ "command": ["true"], "priority": 10_000_000_000u64 }),
            "priority",
        ),
        case(
            "a fractional retry count",
            json!({ "command": ["true"], "retries": 1.5 }),
            "retries",
        ),
        case(
            "labels as a list",
            json!({ "command": ["true"], "labels": ["a"] }),
            "labels",
        ),
        case(
            "after as a string",
            json!({ "command": ["true"], "after": "x" }),
            "after",
        ),
        case(
            "run_at that is not a time",
            json!({ "command": ["true"], "run_at": "tomorrow" }),
            "run_at",
        ),
    ];
    let mut failures = Vec::new();
    for c in &cases {
        let reply = d.post_raw("/v1/jobs", "application/json", &c.body);
        let body = reply.json();
        if let Err(e) = check_error(c.what, reply.status, &body, 400, c.code, c.field) {
            failures.push(e);
        }
    }
    let ids = d.all_job_ids();
    if ids.len() != 1 || !ids.contains(&existing.id) {
        failures.push(format!(
            "refused requests created jobs: the daemon lists {ids:?}"
        ));
    }
    report(failures);
}

#[test]
fn a_body_over_max_body_is_refused() {
    let d = TestDaemon::builder()
        .config_toml("max_body = \"2KiB\"\n")
        .start();
    let big = "x".repeat(4096);
    let request = serde_json::to_vec(&json!({ "command": ["cat"], "stdin": big })).unwrap();
    let reply = d.post_raw_alone("/v1/jobs", "application/json", &request);
    let (status, body) = (reply.status, reply.json());
    assert_error(status, &body, 413, "payload_too_large", None);
    assert_eq!(d.job_count(), 0, "a refused body created a job");
    // Just under the limit is fine: the limit is the configured one.
    let small = "x".repeat(1024);
    let job = d.submit(json!({ "command": ["cat"], "stdin": small }));
    let job = d.wait_terminal(&job.id);
    assert_eq!(job.state.as_str(), "succeeded", "{job:?}");
    assert_eq!(d.output(&job.id, "stdout").len(), 1024);
}

#[test]
fn unknown_or_malformed_job_ids() {
    let d = TestDaemon::start();
    let (status, body) = d.get_json("/v1/jobs/0192f1c4-8a6e-7c3b-9d1e-3f5a7b9c1d2e");
    assert_error(status, &body, 404, "not_found", None);

    let (status, body) = d.get_json("/v1/jobs/not-a-uuid");
    assert!(
        status == 400 || status == 404,
        "GET /v1/jobs/not-a-uuid: {status} {body}"
    );
    let code = body["error"]["code"].as_str().unwrap_or_default();
    assert!(
        code == "invalid_field" || code == "not_found",
        "GET /v1/jobs/not-a-uuid: a JSON error, got {status} {body}"
    );

    for (method, path) in [
        (
            "POST",
            "/v1/jobs/0192f1c4-8a6e-7c3b-9d1e-3f5a7b9c1d2e/retry",
        ),
        ("DELETE", "/v1/jobs/0192f1c4-8a6e-7c3b-9d1e-3f5a7b9c1d2e"),
    ] {
        let (status, body) = if method == "POST" {
            d.post_empty(path)
        } else {
            d.delete(path)
        };
        assert_error(status, &body, 404, "not_found", None);
    }
}

#[test]
fn bad_listing_queries_are_refused() {
    let d = TestDaemon::start();
    d.submit_shell("true");
    let cases = [
        ("limit=0", Some("limit")),
        ("limit=5000", Some("limit")),
        ("limit=ten", Some("limit")),
        ("state=bogus", Some("state")),
        ("state=succeeded,bogus", Some("state")),
        ("cursor=not-a-cursor", None),
    ];
    let mut failures = Vec::new();
    for (query, field) in cases {
        let (status, body) = d.get_json(&format!("/v1/jobs?{query}"));
        if let Err(e) = check_error(query, status, &body, 400, "invalid_field", field) {
            failures.push(e);
        }
        if query.starts_with("cursor") {
            // Where the error names a field, it must be the cursor.
            let f = &body["error"]["field"];
            if !f.is_null() && f != "cursor" {
                failures.push(format!("{query}: error.field {f}, want \"cursor\" or none"));
            }
        }
    }
    report(failures);
}

#[test]
fn messages_say_what_is_expected_with_an_example() {
    let d = TestDaemon::start();
    for (path, body, want) in [
        (
            "/v1/jobs",
            json!({ "shell": "true", "retries": -1 }),
            "retries: must be ≥ 0, not -1",
        ),
        (
            "/v1/jobs",
            json!({ "shell": "true", "priority": "high" }),
            "such as 10",
        ),
        (
            "/v1/jobs",
            json!({ "shell": "true", "run_at": "tomorrow" }),
            "such as 2030-01-02T15:04:05Z",
        ),
        ("/v1/jobs", json!({ "shell": 1 }), "expected a string"),
    ] {
        let (status, reply) = d.post_json(path, &body);
        assert_eq!(status, 400, "{reply}");
        let message = reply["error"]["message"].as_str().unwrap();
        assert!(message.contains(want), "{body}: {message}");
    }
    let (status, reply) = d.patch_json("/v1/queues/default", &json!({ "concurrency": -1 }));
    assert_eq!(status, 400, "{reply}");
    let message = reply["error"]["message"].as_str().unwrap();
    assert!(message.contains("must be ≥ 0"), "{message}");
    let reply = d.post_raw(
        "/v1/jobs",
        "application/json",
        br#"{"shell":"true","shell":"false"}"#,
    );
    let message = reply.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("\"shell\" appears twice"), "{message}");
    assert_eq!(d.job_count(), 0);
}
