//! `GET /v1/events`: Server-Sent Events of job state changes, filtered by
//! job or queue; with `job=`, the first event is the job's current state.

use serde_json::{json, Value};

use crate::support::{assert_error, SseReader, TestDaemon};

/// The next `job` event's data, failing the test when the stream ends or
/// sends another kind of event.
#[track_caller]
fn next_job_event(events: &mut SseReader, seen: &[Value]) -> Value {
    let e = events
        .next_event()
        .unwrap_or_else(|| panic!("the event stream ended after {seen:?}"));
    assert_eq!(e.event, "job", "unexpected event {e:?} after {seen:?}");
    e.json()
}

/// `job` events until one shows the job `id` in a terminal state.
#[track_caller]
fn events_until_end(events: &mut SseReader, id: &str) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let e = next_job_event(events, &seen);
        let end = e["id"] == id
            && ["succeeded", "failed", "cancelled"].contains(&e["state"].as_str().unwrap_or(""));
        seen.push(e);
        if end {
            return seen;
        }
    }
}

fn states(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["state"].as_str().unwrap_or("<no state>"))
        .collect()
}

#[test]
fn a_job_stream_starts_with_the_current_state_then_shows_each_transition() {
    let d = TestDaemon::builder().workers(1).start();
    let gate = d.gate();
    let blocker = d.submit_shell(&gate.shell());
    d.wait_running(&blocker.id);
    let job = d.submit(json!({ "shell": "exit 0", "queue": "evq" }));
    assert_eq!(d.state(&job.id), "queued");

    let mut events = d.events(&format!("job={}", job.id));
    let first = next_job_event(&mut events, &[]);
    assert_eq!(first["id"], job.id.as_str(), "{first}");
    assert_eq!(
        first["state"], "queued",
        "the first event is the current state"
    );
    gate.open();
    let mut all = vec![first];
    all.extend(events_until_end(&mut events, &job.id));
    assert_eq!(
        states(&all),
        ["queued", "running", "succeeded"],
        "transitions in order: {all:?}"
    );
    for e in &all {
        assert_eq!(e["id"], job.id.as_str(), "only this job's events: {e}");
        assert_eq!(e["queue"], "evq", "{e}");
        assert_eq!(e["attempt"], 1, "{e}");
        assert!(
            e["at"]
                .as_str()
                .is_some_and(|t| t.parse::<jiff::Timestamp>().is_ok()),
            "`at` is an RFC 3339 time: {e}"
        );
    }
    let end = all.last().expect("events");
    assert_eq!(end["exit_code"], 0, "{end}");
    assert_eq!(end["exit"], 0, "{end}");
    assert_eq!(end["signal"], Value::Null, "{end}");
    assert_eq!(end["reason"], Value::Null, "{end}");
}

#[test]
fn a_job_stream_of_an_ended_job_starts_with_its_end() {
    let d = TestDaemon::start();
    let job = d.submit_shell("exit 7");
    d.wait_terminal(&job.id);
    let mut events = d.events(&format!("job={}", job.id));
    let first = next_job_event(&mut events, &[]);
    assert_eq!(first["id"], job.id.as_str(), "{first}");
    assert_eq!(first["state"], "failed", "{first}");
    assert_eq!(first["reason"], "exit", "{first}");
    assert_eq!(first["exit_code"], 7, "{first}");
    assert_eq!(first["exit"], 7, "{first}");
}

#[test]
fn a_queue_filter_shows_only_that_queues_jobs() {
    let d = TestDaemon::start();
    let mut events = d.events("queue=watched");
    // Another queue's whole life happens first: none of it may show.
    let other = d.submit(json!({ "shell": "true", "queue": "other" }));
    d.wait_terminal(&other.id);
    let job = d.submit(json!({ "shell": "true", "queue": "watched" }));
    let seen = events_until_end(&mut events, &job.id);
    for e in &seen {
        assert_eq!(e["queue"], "watched", "an event of another queue: {e}");
        assert_eq!(e["id"], job.id.as_str(), "{e}");
    }
    assert_eq!(
        states(&seen),
        ["queued", "running", "succeeded"],
        "the watched job's transitions from its submission: {seen:?}"
    );
}

/// While another run is in flight, a short job's start is recorded together
/// with its end (one write instead of two): it must still be announced, and
/// before the end, and the record must keep when the run started.
#[test]
fn a_busy_pool_announces_every_start_before_its_end() {
    let d = TestDaemon::builder().workers(2).start();
    let gate = d.gate();
    let blocker = d.submit_shell(&gate.shell());
    d.wait_running(&blocker.id);
    let mut events = d.events("queue=busy");
    let ids: Vec<String> = (0..20)
        .map(|_| d.submit(json!({ "command": ["true"], "queue": "busy" })).id)
        .collect();
    let mut seen = Vec::new();
    while ids.iter().any(|id| {
        !seen
            .iter()
            .any(|e: &Value| e["id"] == id.as_str() && e["state"] == "succeeded")
    }) {
        let e = next_job_event(&mut events, &seen);
        seen.push(e);
    }
    for id in &ids {
        let mine: Vec<Value> = seen
            .iter()
            .filter(|e| e["id"] == id.as_str())
            .cloned()
            .collect();
        assert_eq!(
            states(&mine),
            ["queued", "running", "succeeded"],
            "job {id}'s transitions in order: {mine:?}"
        );
        let (_, record) = d.get_json(&format!("/v1/jobs/{id}"));
        assert!(
            record["started_at"]
                .as_str()
                .is_some_and(|t| t <= record["finished_at"].as_str().unwrap_or("")),
            "the record keeps when the run started: {record}"
        );
    }
    gate.open();
    d.wait_terminal(&blocker.id);
}

/// A start not recorded at once (another run is in flight) is recorded
/// while the job still runs: listings show it `running`, with its pid.
#[test]
fn a_long_job_on_a_busy_pool_shows_as_running() {
    let d = TestDaemon::builder().workers(2).start();
    let gate = d.gate();
    let first = d.submit_shell(&gate.shell());
    d.wait_running(&first.id);
    let second = d.submit_shell(&gate.shell());
    let running = d.wait_running(&second.id);
    assert!(running.pid.is_some_and(|p| p > 0), "{running:?}");
    let (_, page) = d.get_json("/v1/jobs?state=running");
    let listed: Vec<&str> = page["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .filter_map(|j| j["id"].as_str())
        .collect();
    assert!(
        listed.contains(&second.id.as_str()) && listed.contains(&first.id.as_str()),
        "both runs listed as running: {page}"
    );
    gate.open();
    d.wait_terminal(&second.id);
}

#[test]
fn bad_event_filters_are_rejected() {
    let d = TestDaemon::start();
    let (status, body) = d.get_json("/v1/events?job=not-a-uuid");
    assert_error(status, &body, 400, "invalid_field", Some("job"));
    let (status, body) = d.get_json("/v1/events?job=0192f1c4-8a6e-7c3b-9d1e-3f5a7b9c1d2e");
    assert_error(status, &body, 404, "not_found", None);
    let (status, body) = d.get_json("/v1/events?queue=Not%20A%20Queue");
    assert_error(status, &body, 400, "invalid_field", Some("queue"));
    let (status, body) = d.get_json("/v1/events?state=running");
    assert_error(status, &body, 400, "invalid_field", Some("state"));
}
