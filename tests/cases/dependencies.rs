//! `after`: a job is `waiting` until every job it names succeeded; if one
//! fails or is cancelled it fails with reason `dependency`, and so do the
//! jobs waiting for it in turn. Unknown or malformed ids are refused. Long
//! chains run in order; a fan-out/fan-in runs its sink last.

use jobq::job::FailReason;
use serde_json::json;

use crate::support::{assert_error, TestDaemon};

#[test]
fn a_dependent_waits_until_its_dependency_succeeds() {
    let d = TestDaemon::start();
    let gate = d.gate();
    let a = d.submit_shell(&gate.shell());
    let b = d.submit(json!({ "command": ["true"], "after": [a.id] }));
    assert_eq!(b.state.as_str(), "waiting", "{b:?}");
    assert_eq!(b.after, vec![a.id.clone()], "{b:?}");
    d.wait_running(&a.id);
    assert_eq!(d.state(&b.id), "waiting", "A has not succeeded yet");

    gate.open();
    let a = d.wait_terminal(&a.id);
    let b = d.wait_terminal(&b.id);
    assert_eq!(a.state.as_str(), "succeeded", "{a:?}");
    assert_eq!(b.state.as_str(), "succeeded", "{b:?}");
    assert!(
        b.started_at.expect("b ran") >= a.finished_at.expect("a ended"),
        "b started before a ended: {a:?} {b:?}"
    );
}

#[test]
fn a_failed_dependency_fails_its_dependents_transitively() {
    let d = TestDaemon::start();
    let gate = d.gate();
    let a = d.submit_shell(&format!("{}; exit 1", gate.shell()));
    let b = d.submit(json!({ "command": ["true"], "after": [a.id] }));
    let c = d.submit(json!({ "command": ["true"], "after": [b.id] }));
    assert_eq!(c.state.as_str(), "waiting", "{c:?}");
    gate.open();
    assert_eq!(d.wait_terminal(&a.id).reason, Some(FailReason::Exit));
    for id in [&b.id, &c.id] {
        let job = d.wait_terminal(id);
        assert_eq!(job.state.as_str(), "failed", "{job:?}");
        assert_eq!(job.reason, Some(FailReason::Dependency), "{job:?}");
        assert_eq!(job.started_at, None, "it never ran: {job:?}");
        assert_eq!(job.attempt, 1, "{job:?}");
    }
}

#[test]
fn a_cancelled_dependency_fails_its_dependents() {
    let d = TestDaemon::start();
    let gate = d.gate();
    let a = d.submit_shell(&gate.shell());
    let b = d.submit(json!({ "command": ["true"], "after": [a.id] }));
    d.wait_running(&a.id);
    let (status, body) = d.post_empty(&format!("/v1/jobs/{}/cancel", a.id));
    assert_eq!(status, 200, "{body}");
    let b = d.wait_terminal(&b.id);
    assert_eq!(b.state.as_str(), "failed", "{b:?}");
    assert_eq!(b.reason, Some(FailReason::Dependency), "{b:?}");
    assert_eq!(b.started_at, None, "{b:?}");
}

#[test]
fn naming_finished_jobs_runs_at_once_or_fails_at_once() {
    let d = TestDaemon::start();
    let ok = d.submit_shell("true");
    let bad = d.submit_shell("exit 1");
    d.wait_terminal(&ok.id);
    d.wait_terminal(&bad.id);

    let runs = d.submit(json!({ "command": ["true"], "after": [ok.id] }));
    assert_ne!(runs.state.as_str(), "waiting", "{runs:?}");
    let runs = d.wait_terminal(&runs.id);
    assert_eq!(runs.state.as_str(), "succeeded", "{runs:?}");

    let (status, body) = d.post_json(
        "/v1/jobs",
        &json!({ "command": ["true"], "after": [ok.id, bad.id] }),
    );
    assert_eq!(
        status, 201,
        "the job exists even though it never runs: {body}"
    );
    assert_eq!(body["state"], "failed", "{body}");
    assert_eq!(body["reason"], "dependency", "{body}");
    assert_eq!(body["started_at"], serde_json::Value::Null, "{body}");
    let id = body["id"].as_str().expect("an id");
    assert_eq!(d.job(id).state.as_str(), "failed");
}

#[test]
fn unknown_or_malformed_dependencies_are_refused() {
    let d = TestDaemon::start();
    let known = d.submit_shell("true");
    // A job cannot name itself: its id does not exist when it is submitted,
    // so a fresh id (as a self-reference would be) is simply unknown.
    let fresh = uuid::Uuid::now_v7().to_string();
    let (status, body) = d.post_json(
        "/v1/jobs",
        &json!({ "command": ["true"], "after": [known.id, fresh] }),
    );
    assert_error(status, &body, 400, "invalid_field", Some("after"));
    for bad in [
        json!(["nope"]),
        json!([""]),
        json!("not-a-list"),
        json!([42]),
    ] {
        let (status, body) = d.post_json("/v1/jobs", &json!({ "command": ["true"], "after": bad }));
        assert_error(status, &body, 400, "invalid_field", None);
        assert!(
            body["error"]["field"]
                .as_str()
                .is_some_and(|f| f.starts_with("after")),
            "after: {bad}: the field at fault is after: {body}"
        );
    }
    assert_eq!(d.job_count(), 1, "refused specs created jobs");
}

/// Jobs in the long chain: long enough that a dispatcher that scans every
/// waiting job per event, or recurses per link, shows it; short enough to
/// submit one by one in a few seconds.
const CHAIN: usize = 1000;

#[test]
fn a_long_chain_runs_in_order() {
    let d = TestDaemon::builder().workers(2).start();
    let log = d.path("chain");
    let mut previous: Option<String> = None;
    let mut ids = Vec::with_capacity(CHAIN);
    for i in 0..CHAIN {
        let mut spec = json!({ "shell": format!("echo {i} >> '{}'", log.display()) });
        if let Some(p) = &previous {
            spec["after"] = json!([p]);
        }
        let job = d.submit(spec);
        previous = Some(job.id.clone());
        ids.push(job.id);
    }
    let last = d.wait_terminal(ids.last().expect("a chain"));
    assert_eq!(last.state.as_str(), "succeeded", "{last:?}");
    let text = std::fs::read_to_string(&log).unwrap();
    let ran: Vec<usize> = text
        .lines()
        .map(|l| l.parse().unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    let want: Vec<usize> = (0..CHAIN).collect();
    assert_eq!(ran, want, "the chain ran out of order");
    assert!(
        d.list_all("state=succeeded&").len() == CHAIN,
        "every link succeeded"
    );
}

/// Jobs between the source and the sink of the fan-out/fan-in.
const FAN: usize = 200;

#[test]
fn a_fan_out_and_fan_in_runs_the_sink_last() {
    let d = TestDaemon::builder().workers(4).start();
    let log = d.path("fan");
    let gate = d.gate();
    let source = d.submit_shell(&format!(
        "{}; echo source >> '{}'",
        gate.shell(),
        log.display()
    ));
    // The middle jobs name an existing job, so they may go in one batch.
    let specs: Vec<_> = (0..FAN)
        .map(|i| json!({ "shell": format!("echo {i} >> '{}'", log.display()), "after": [source.id] }))
        .collect();
    let (status, body) = d.post_json("/v1/jobs/batch", &json!({ "jobs": specs }));
    assert_eq!(status, 201, "{body}");
    let middle: Vec<String> = body["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| j["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(middle.len(), FAN);
    assert!(
        body["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["state"] == "waiting"),
        "{body}"
    );
    let sink = d.submit(json!({
        "shell": format!("echo sink >> '{}'", log.display()),
        "after": middle,
    }));
    assert_eq!(sink.state.as_str(), "waiting", "{sink:?}");

    gate.open();
    let sink = d.wait_terminal(&sink.id);
    assert_eq!(sink.state.as_str(), "succeeded", "{sink:?}");
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), FAN + 2, "{text}");
    assert_eq!(lines[0], "source", "{text}");
    assert_eq!(lines[FAN + 1], "sink", "{text}");
    let mut seen: Vec<usize> = lines[1..=FAN].iter().map(|l| l.parse().unwrap()).collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..FAN).collect::<Vec<_>>(), "{text}");
}
