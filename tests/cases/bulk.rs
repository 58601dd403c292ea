//! Bulk actions: `POST /v1/jobs/clean|cancel|retry` and `jobq clean`,
//! `cancel --queue|--all-queued`, `retry --failed`: one request for every
//! matching job, paged inside the daemon, scoped to the caller's own jobs
//! for a `submit` token.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::auth::{bearer, tokens, ADMIN, CI, OTHER};
use crate::support::{assert_error, assert_ok, exit_code, stderr, stdout, TestDaemon};

/// `POST /v1/jobs/{action}` with `body` (and `token`, if any).
fn bulk(d: &TestDaemon, action: &str, body: Value, token: Option<&str>) -> (u16, Value) {
    let auth = token.map(bearer).unwrap_or_default();
    let bytes = serde_json::to_vec(&body).unwrap();
    let reply = d.send(
        "POST",
        &format!("/v1/jobs/{action}"),
        &[("Authorization", auth.as_str())],
        Some(("application/json", &bytes)),
    );
    (reply.status, reply.json())
}

fn ids(d: &TestDaemon, query: &str) -> BTreeSet<String> {
    d.list_all(query).into_iter().map(|j| j.id).collect()
}

#[test]
fn clean_removes_only_matching_finished_jobs_and_their_output() {
    let d = TestDaemon::start();
    let ok_a = d.submit(json!({ "shell": "echo a", "queue": "a" }));
    let bad_a = d.submit(json!({ "shell": "exit 3", "queue": "a" }));
    let ok_b = d.submit(json!({ "shell": "echo b", "queue": "b" }));
    for job in [&ok_a, &bad_a, &ok_b] {
        d.wait_terminal(&job.id);
    }
    let gate = d.gate();
    let running = d.submit_shell(&gate.shell());
    d.wait_running(&running.id);
    let later = d.submit(json!({ "command": ["true"], "delay": "1h" }));

    let out = d.cli(&["clean", "--state", "succeeded", "--queue", "a"]);
    assert_ok(&out);
    assert_eq!(stdout(&out), "removed 1 job\n");
    let (status, _) = d.get_json(&format!("/v1/jobs/{}", ok_a.id));
    assert_eq!(status, 404);
    let (status, _) = d.get_bytes(&format!("/v1/jobs/{}/output", ok_a.id));
    assert_eq!(status, 404, "the output went with the job");

    let out = d.cli(&["clean", "--older-than", "1h"]);
    assert_ok(&out);
    assert_eq!(stdout(&out), "removed 0 jobs\n", "every job ended just now");

    let out = d.cli(&["clean", "--json"]);
    assert_ok(&out);
    let answer: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(answer, json!({ "count": 2 }));
    assert_eq!(
        ids(&d, ""),
        BTreeSet::from([running.id.clone(), later.id.clone()]),
        "jobs that have not ended are never cleaned"
    );
    gate.open();
}

#[test]
fn cancel_a_queue_or_everything_not_started() {
    let d = TestDaemon::start();
    d.patch_queue("held", json!({ "paused": true }));
    let held: BTreeSet<String> = (0..3)
        .map(|_| d.submit(json!({ "command": ["true"], "queue": "held" })).id)
        .collect();
    let gate = d.gate();
    let running = d.submit(json!({ "shell": gate.shell(), "queue": "work" }));
    d.wait_running(&running.id);
    let scheduled = d.submit(json!({ "command": ["true"], "queue": "work", "delay": "1h" }));

    // Not started, in one queue: the running job of another goes on.
    let out = d.cli(&["cancel", "--all-queued", "--queue", "held"]);
    assert_ok(&out);
    assert_eq!(stdout(&out), "cancelled 3 jobs\n");
    assert_eq!(ids(&d, "state=cancelled&"), held);
    assert_eq!(d.state(&running.id), "running");
    assert_eq!(d.state(&scheduled.id), "scheduled");

    // A whole queue: the running job too, and the answer comes once it ended.
    let out = d.cli(&["cancel", "--queue", "work"]);
    assert_ok(&out);
    assert_eq!(stdout(&out), "cancelled 2 jobs\n");
    assert_eq!(d.state(&running.id), "cancelled", "ended before the answer");
    assert_eq!(d.state(&scheduled.id), "cancelled");
    let out = d.cli(&["cancel", "--queue", "work"]);
    assert_eq!(stdout(&out), "cancelled 0 jobs\n");
}

#[test]
fn retry_every_failed_job_of_a_queue() {
    let d = TestDaemon::start();
    let failed: BTreeSet<String> = (0..2)
        .map(|_| d.submit(json!({ "command": ["false"], "queue": "q" })).id)
        .collect();
    let ok = d.submit(json!({ "command": ["true"], "queue": "q" }));
    let elsewhere = d.submit(json!({ "command": ["false"], "queue": "other" }));
    for id in failed.iter().chain([&ok.id, &elsewhere.id]) {
        d.wait_terminal(id);
    }
    let out = d.cli(&["retry", "--failed", "--queue", "q"]);
    assert_ok(&out);
    assert_eq!(stdout(&out), "retried 2 jobs\n");
    for id in &failed {
        let job = d.wait_job(id, "its retry ended", |j| j.attempt == 2 && j.is_terminal());
        assert_eq!(job.state.as_str(), "failed", "{job:?}");
    }
    assert_eq!(d.job(&ok.id).attempt, 1);
    assert_eq!(d.job(&elsewhere.id).attempt, 1);
}

#[test]
fn many_jobs_go_in_pages_of_one_request() {
    let d = TestDaemon::start();
    let specs: Vec<Value> = (0..2500)
        .map(|_| json!({ "command": ["true"], "delay": "1h", "queue": "many" }))
        .collect();
    for chunk in specs.chunks(1000) {
        let (status, body) = d.post_json("/v1/jobs/batch", &json!({ "jobs": chunk }));
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = bulk(&d, "cancel", json!({ "queue": "many" }), None);
    assert_eq!(
        (status, body.clone()),
        (200, json!({ "count": 2500 })),
        "{body}"
    );
    let (status, body) = bulk(&d, "clean", json!({ "state": ["cancelled"] }), None);
    assert_eq!(
        (status, body.clone()),
        (200, json!({ "count": 2500 })),
        "{body}"
    );
    assert_eq!(d.job_count(), 0);
}

#[test]
fn a_submit_token_acts_only_on_its_own_jobs() {
    let d = tokens().start();
    let submit_as = |token: &str, line: &str| -> String {
        let body = serde_json::to_vec(&json!({ "shell": line })).unwrap();
        let reply = d.send(
            "POST",
            "/v1/jobs",
            &[("Authorization", bearer(token).as_str())],
            Some(("application/json", &body)),
        );
        assert_eq!(reply.status, 201, "{}", reply.json());
        reply.json()["id"].as_str().unwrap().to_owned()
    };
    let mine = submit_as(CI, "exit 1");
    let theirs = submit_as(OTHER, "exit 1");
    d.wait_terminal(&mine);
    d.wait_terminal(&theirs);

    let (status, body) = bulk(&d, "clean", json!({ "owner": "token:other" }), Some(CI));
    assert_error(status, &body, 403, "forbidden", None);
    assert_eq!(d.job_count(), 2, "a refused clean removed jobs");
    let (status, body) = bulk(&d, "retry", json!({ "state": ["failed"] }), Some(CI));
    assert_eq!((status, body["count"].clone()), (200, json!(1)), "{body}");
    d.wait_job(&mine, "its retry ended", |j| {
        j.attempt == 2 && j.is_terminal()
    });
    assert_eq!(d.job(&theirs).attempt, 1, "another's job was retried");
    let (status, body) = bulk(&d, "clean", json!({}), Some(CI));
    assert_eq!((status, body["count"].clone()), (200, json!(1)), "{body}");
    assert_eq!(ids(&d, ""), BTreeSet::from([theirs.clone()]));
    // An admin may pick any owner.
    let (status, body) = bulk(&d, "clean", json!({ "owner": "token:other" }), Some(ADMIN));
    assert_eq!((status, body["count"].clone()), (200, json!(1)), "{body}");
    assert_eq!(d.job_count(), 0);
}

#[test]
fn bad_bulk_requests_are_refused_and_change_nothing() {
    let d = TestDaemon::start();
    let job = d.submit(json!({ "command": ["false"] }));
    d.wait_terminal(&job.id);
    let later = d.submit(json!({ "command": ["true"], "delay": "1h" }));
    for (action, body, field) in [
        ("clean", json!({ "state": ["running"] }), "state"),
        ("clean", json!({ "state": ["done"] }), "state[0]"),
        ("clean", json!({ "state": "failed" }), "state"),
        ("clean", json!({ "queue": "BAD" }), "queue"),
        ("clean", json!({ "older_than": "soon" }), "older_than"),
        ("clean", json!({ "colour": "red" }), "colour"),
        ("cancel", json!({}), "state"),
        ("cancel", json!({ "state": ["failed"] }), "state"),
        ("retry", json!({}), "state"),
        ("retry", json!({ "state": ["queued"] }), "state"),
    ] {
        let (status, reply) = bulk(&d, action, body, None);
        assert_error(status, &reply, 400, "invalid_field", Some(field));
    }
    let reply = d.post_raw("/v1/jobs/clean", "application/json", b"[1]");
    assert_error(reply.status, &reply.json(), 400, "invalid_json", None);
    assert_eq!(d.state(&job.id), "failed");
    assert_eq!(d.job(&job.id).attempt, 1);
    assert_eq!(d.state(&later.id), "scheduled");

    for (args, want) in [
        (&["clean", "--state", "running"][..], "have not ended"),
        (&["clean", "--older-than", "soon"][..], "duration"),
        (&["cancel"][..], "required"),
        (
            &["cancel", &job.id, "--queue", "q"][..],
            "cannot be used with",
        ),
        (&["retry", "--queue", "q"][..], "required"),
    ] {
        let out = d.cli(args);
        assert_eq!(exit_code(&out), 2, "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(want), "{args:?}: {}", stderr(&out));
    }
    assert_eq!(d.job_count(), 2);
}
