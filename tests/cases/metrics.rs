//! `GET /metrics`: the exposition parses, and its counters, gauges and
//! histograms move as jobs run.

use serde_json::json;

use crate::support::TestDaemon;

/// One scrape, parsed.
struct Scrape(prometheus_parse::Scrape);

impl Scrape {
    fn take(d: &TestDaemon) -> Scrape {
        let reply = d.get("/metrics");
        assert_eq!(reply.status, 200);
        let content_type = reply.content_type.clone().unwrap_or_default();
        assert!(
            content_type.starts_with("application/openmetrics-text"),
            "{content_type}"
        );
        let text = String::from_utf8(reply.body).expect("UTF-8 exposition");
        assert!(
            text.ends_with("# EOF\n"),
            "an OpenMetrics exposition ends with # EOF"
        );
        let lines = text.lines().map(|l| Ok(l.to_owned()));
        Scrape(prometheus_parse::Scrape::parse(lines).expect("a parsable exposition"))
    }

    /// The value of `metric` for the samples with all of `labels` (summed
    /// over the others); 0 when there is none.
    fn value(&self, metric: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .samples
            .iter()
            .filter(|s| s.metric == metric)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match &s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => *v,
                other => panic!("{metric} is not a number: {other:?}"),
            })
            .sum()
    }

    /// True when some sample of `metric` exists.
    fn has(&self, metric: &str) -> bool {
        self.0.samples.iter().any(|s| s.metric == metric)
    }
}

#[test]
fn counters_gauges_and_histograms_move_as_jobs_run() {
    let d = TestDaemon::start();
    let before = Scrape::take(&d);
    for metric in [
        "jobq_build_info",
        "jobq_workers",
        "jobq_store_flush_seconds",
    ] {
        assert!(before.has(metric), "{metric} is missing");
    }
    assert_eq!(
        before.value("jobq_jobs_submitted_total", &[("queue", "m")]),
        0.0
    );

    let ids: Vec<String> = ["echo 12345", "echo 12345", "echo 12345", "exit 3"]
        .iter()
        .map(|line| d.submit(json!({ "shell": line, "queue": "m" })).id)
        .collect();
    for id in &ids {
        d.wait_terminal(id);
    }
    let gate = d.gate();
    let running = d.submit(json!({ "shell": gate.shell(), "queue": "m" }));
    d.wait_running(&running.id);
    let after = Scrape::take(&d);

    let m = [("queue", "m")];
    assert_eq!(after.value("jobq_jobs_submitted_total", &m), 5.0);
    let finished = |state| {
        after.value(
            "jobq_jobs_finished_total",
            &[("queue", "m"), ("state", state)],
        )
    };
    assert_eq!((finished("succeeded"), finished("failed")), (3.0, 1.0));
    let jobs = |state| after.value("jobq_jobs", &[("queue", "m"), ("state", state)]);
    assert_eq!(
        (jobs("succeeded"), jobs("failed"), jobs("running")),
        (3.0, 1.0, 1.0)
    );
    assert_eq!(after.value("jobq_workers_busy", &[]), 1.0);
    assert_eq!(after.value("jobq_job_duration_seconds_count", &m), 4.0);
    assert!(after.value("jobq_job_duration_seconds_sum", &m) > 0.0);
    assert_eq!(after.value("jobq_queue_wait_seconds_count", &m), 5.0);
    // On PostgreSQL a submission is a commit of the database, not a flush
    // of the node's own store (docs/operations.md).
    if crate::support::test_store() == crate::support::TestStore::Sled {
        assert!(
            after.value("jobq_store_flush_seconds_count", &[])
                > before.value("jobq_store_flush_seconds_count", &[]),
            "submissions are fsynced"
        );
    }
    let stdout = [("stream", "stdout")];
    assert_eq!(
        after.value("jobq_output_bytes_total", &stdout)
            - before.value("jobq_output_bytes_total", &stdout),
        18.0,
        "three times \"12345\\n\""
    );
    let submits = [("route", "/v1/jobs"), ("status", "201")];
    assert_eq!(
        after.value("jobq_http_requests_total", &submits)
            - before.value("jobq_http_requests_total", &submits),
        5.0
    );
    let by_id = [("route", "/v1/jobs/:id")];
    assert!(after.value("jobq_http_request_duration_seconds_count", &by_id) > 0.0);
    // A path no route has is counted under one name, not by its path.
    d.get("/no/such/path");
    let third = Scrape::take(&d);
    assert!(
        third.value(
            "jobq_http_requests_total",
            &[("route", "unmatched"), ("status", "404")]
        ) >= 1.0
    );
    assert!(!third
        .0
        .samples
        .iter()
        .any(|s| s.labels.get("route") == Some("/no/such/path")));
    gate.open();
}

/// The example alert rules name only metrics the daemon has (promtool
/// checks their syntax in `.ci/run`; this checks they would fire).
#[test]
fn the_example_alerts_name_real_metrics() {
    let rules = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/alerts.yml"),
    )
    .unwrap();
    let d = TestDaemon::start();
    let job = d.submit(json!({ "command": ["true"] }));
    d.wait_terminal(&job.id);
    let scrape = Scrape::take(&d);
    let names = regex::Regex::new(r"\bjobq_[a-z_]+").unwrap();
    let mut checked = 0;
    for name in names.find_iter(&rules).map(|m| m.as_str()) {
        let base = name.strip_suffix("_bucket").unwrap_or(name);
        assert!(
            scrape.has(base) || scrape.has(&format!("{base}_total")),
            "docs/alerts.yml names {name}, which /metrics does not have"
        );
        checked += 1;
    }
    assert!(checked >= 8, "{checked} metric names in the rules");
}
