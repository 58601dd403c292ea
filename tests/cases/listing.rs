//! `GET /v1/jobs`: newest first, cursor pagination that visits every job
//! exactly once, and the `state`, `queue` and `label` filters.

use std::collections::BTreeSet;

use jobq::api::JobList;
use serde_json::json;

use crate::support::{encode, TestDaemon};

fn page(d: &TestDaemon, path: &str) -> JobList {
    let (status, body) = d.get_json(path);
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_value(body.clone())
        .unwrap_or_else(|e| panic!("GET {path}: not a job list ({e}): {body}"))
}

#[test]
fn pages_walk_every_job_once_newest_first() {
    let d = TestDaemon::start();
    let submitted: Vec<String> = (0..25)
        .map(|i| {
            d.submit(json!({ "command": ["true"], "name": format!("job-{i}") }))
                .id
        })
        .collect();
    let newest_first: Vec<String> = submitted.iter().rev().cloned().collect();

    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut path = "/v1/jobs?limit=10".to_owned();
    loop {
        let p = page(&d, &path);
        sizes.push(p.jobs.len());
        seen.extend(p.jobs.into_iter().map(|j| j.id));
        match p.next_cursor {
            Some(c) => path = format!("/v1/jobs?limit=10&cursor={}", encode(&c)),
            None => break,
        }
        assert!(sizes.len() <= 10, "pagination does not end: {sizes:?}");
    }
    assert_eq!(
        seen, newest_first,
        "pages of 10 should list every job once, newest first"
    );
    assert_eq!(&sizes[..3], [10, 10, 5], "page sizes {sizes:?}");
    assert!(
        sizes.len() == 3 || sizes[3..].iter().all(|&n| n == 0),
        "page sizes {sizes:?}"
    );

    let all = page(&d, "/v1/jobs");
    assert_eq!(
        all.jobs.iter().map(|j| j.id.clone()).collect::<Vec<_>>(),
        newest_first
    );
    assert_eq!(
        all.next_cursor, None,
        "25 jobs fit the default limit of 100"
    );
    for pair in all.jobs.windows(2) {
        assert!(
            pair[0].created_at >= pair[1].created_at,
            "not newest first: {pair:?}"
        );
    }
}

#[test]
fn filters_by_state_queue_and_label() {
    let d = TestDaemon::builder().workers(1).start();
    let mut succeeded = BTreeSet::new();
    let mut failed = BTreeSet::new();
    let mut other_queue = BTreeSet::new();
    let mut team_a = BTreeSet::new();
    for i in 0..12 {
        let ok = i % 3 != 0;
        let queue = if i % 4 == 0 { "other" } else { "default" };
        let team = if i % 2 == 0 { "a" } else { "b" };
        let job = d.submit(json!({
            "command": [if ok { "true" } else { "false" }],
            "queue": queue,
            "labels": { "team": team, "n": i.to_string() },
        }));
        if ok { &mut succeeded } else { &mut failed }.insert(job.id.clone());
        if queue == "other" {
            other_queue.insert(job.id.clone());
        }
        if team == "a" {
            team_a.insert(job.id.clone());
        }
    }
    for id in succeeded.iter().chain(&failed) {
        d.wait_terminal(id);
    }
    // One job in each of the other states the foundation has: the blocker
    // holds the only worker, so the next job stays queued.
    let gate = d.gate();
    let running = d.submit_shell(&gate.shell());
    d.wait_running(&running.id);
    let queued = d.submit_shell("true");
    let cancelled = d.submit_shell("true");
    let (status, body) = d.post_empty(&format!("/v1/jobs/{}/cancel", cancelled.id));
    assert_eq!(status, 200, "{body}");

    let ids =
        |query: &str| -> BTreeSet<String> { d.list_all(query).into_iter().map(|j| j.id).collect() };
    assert_eq!(ids("state=succeeded&"), succeeded);
    assert_eq!(ids("state=failed&"), failed);
    let done: BTreeSet<String> = succeeded.union(&failed).cloned().collect();
    assert_eq!(ids("state=succeeded,failed&"), done);
    assert_eq!(ids("state=running&"), BTreeSet::from([running.id.clone()]));
    assert_eq!(ids("state=queued&"), BTreeSet::from([queued.id.clone()]));
    assert_eq!(
        ids("state=cancelled&"),
        BTreeSet::from([cancelled.id.clone()])
    );
    assert_eq!(ids("state=waiting,scheduled&"), BTreeSet::new());
    assert_eq!(ids("queue=other&"), other_queue);
    assert_eq!(ids("queue=nothing-here&"), BTreeSet::new());
    assert_eq!(ids("label=team:a&"), team_a);
    assert_eq!(ids("label=n:7&").len(), 1);
    assert_eq!(ids("label=team:c&"), BTreeSet::new());
    let other_and_a: BTreeSet<String> = other_queue.intersection(&team_a).cloned().collect();
    assert!(!other_and_a.is_empty());
    assert_eq!(
        ids("queue=other&label=team:a&"),
        other_and_a,
        "filters combine"
    );
    let failed_other: BTreeSet<String> = failed.intersection(&other_queue).cloned().collect();
    assert_eq!(
        ids("state=failed&queue=other&"),
        failed_other,
        "filters combine"
    );
    gate.open();
}

#[test]
fn filtered_pages_walk_every_match_once() {
    let d = TestDaemon::start();
    let mut want = Vec::new();
    for i in 0..15 {
        let job = d
            .submit(json!({ "command": ["true"], "labels": { "pick": (i % 2 == 0).to_string() } }));
        if i % 2 == 0 {
            want.push(job.id);
        }
    }
    want.reverse();
    let mut seen = Vec::new();
    let mut path = "/v1/jobs?label=pick:true&limit=3".to_owned();
    for _ in 0..10 {
        let p = page(&d, &path);
        assert!(p.jobs.len() <= 3);
        seen.extend(p.jobs.into_iter().map(|j| j.id));
        match p.next_cursor {
            Some(c) => path = format!("/v1/jobs?label=pick:true&limit=3&cursor={}", encode(&c)),
            None => break,
        }
    }
    assert_eq!(seen, want);
}

/// A state or queue filter pages through its matches newest first, exactly
/// once, whether the daemon walks the records (many matches) or reads the
/// state indexes (few matches among many jobs): every state, a terminal
/// state among many terminal jobs (they share one index), and queues.
#[test]
fn state_filtered_pages_match_a_walk_of_every_job() {
    let d = TestDaemon::builder().workers(2).start();
    let (status, body) = d.patch_json(
        "/v1/queues/held",
        &json!({ "paused": true, "create": true }),
    );
    assert_eq!(status, 200, "{body}");
    let gate = d.gate();
    let running = d.submit_shell(&gate.shell());
    d.wait_running(&running.id);
    for i in 0..12 {
        let line = if i % 4 == 0 { "exit 3" } else { "true" };
        let job = d.submit(json!({ "shell": line, "queue": "done" }));
        d.wait_terminal(&job.id);
    }
    for _ in 0..30 {
        d.submit(json!({ "command": ["true"], "queue": "held" }));
    }
    for _ in 0..2 {
        d.submit(json!({ "command": ["true"], "delay": "1h" }));
        d.submit(json!({ "command": ["true"], "after": [running.id.clone()] }));
    }
    let every = d.list_all("");
    for (states, queue) in [
        ("running", None),
        ("failed", None),
        ("succeeded", None),
        ("queued", None),
        ("scheduled", None),
        ("waiting", None),
        ("failed,cancelled", None),
        ("running,scheduled,waiting", None),
        ("queued,failed", None),
        ("", Some("default")),
        ("", Some("done")),
        ("", Some("held")),
        ("queued", Some("held")),
        ("failed", Some("done")),
    ] {
        let want: Vec<String> = every
            .iter()
            .filter(|j| states.is_empty() || states.split(',').any(|s| s == j.state.as_str()))
            .filter(|j| queue.is_none_or(|q| q == j.queue))
            .map(|j| j.id.clone())
            .collect();
        let mut parts = Vec::new();
        if !states.is_empty() {
            parts.push(format!("state={states}"));
        }
        if let Some(q) = queue {
            parts.push(format!("queue={q}"));
        }
        let filter = parts.join("&");
        assert!(!want.is_empty(), "{filter} matches nothing to page through");
        let mut seen = Vec::new();
        let mut path = format!("/v1/jobs?{filter}&limit=2");
        for _ in 0..=want.len() {
            let p = page(&d, &path);
            assert!(p.jobs.len() <= 2, "{path}: {} jobs", p.jobs.len());
            seen.extend(p.jobs.into_iter().map(|j| j.id));
            match p.next_cursor {
                Some(c) => path = format!("/v1/jobs?{filter}&limit=2&cursor={}", encode(&c)),
                None => break,
            }
        }
        assert_eq!(seen, want, "{filter}: pages against a walk of every job");
    }
    gate.open();
}

#[test]
fn the_name_filter_matches_whole_names_and_bad_filters_are_refused() {
    let d = TestDaemon::start();
    let build = d.submit(json!({ "command": ["true"], "name": "build" }));
    d.submit(json!({ "command": ["true"], "name": "build-2" }));
    d.submit(json!({ "command": ["true"] }));
    let p = page(&d, "/v1/jobs?name=build");
    assert_eq!(
        p.jobs.iter().map(|j| j.id.clone()).collect::<Vec<_>>(),
        [build.id]
    );
    for (query, field) in [
        ("queue=no%20such%20queue", "queue"),
        ("queue=", "queue"),
        ("name=", "name"),
    ] {
        let (status, body) = d.get_json(&format!("/v1/jobs?{query}"));
        crate::support::assert_error(status, &body, 400, "invalid_field", Some(field));
    }
}
