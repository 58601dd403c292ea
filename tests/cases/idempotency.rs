//! `idempotency_key`: a repeated submission answers 200 with the first job
//! instead of creating one — also when many race, and after a crash — until
//! that job is deleted.

use std::sync::Barrier;

use serde_json::json;

use crate::support::TestDaemon;

#[test]
fn a_repeated_key_returns_the_first_job() {
    let d = TestDaemon::start();
    let spec = json!({ "command": ["true"], "idempotency_key": "nightly-2030-01-01" });
    let first = d.post("/v1/jobs", &spec);
    assert_eq!(first.status, 201, "{:?}", first.json());
    let first = first.json();
    let again = d.post("/v1/jobs", &spec);
    assert_eq!(
        again.status,
        200,
        "a repeated key is not a new job: {:?}",
        again.json()
    );
    assert_eq!(again.json()["id"], first["id"]);
    assert_eq!(
        again.location.as_deref(),
        Some(format!("/v1/jobs/{}", first["id"].as_str().unwrap()).as_str())
    );
    // Even with another spec: the key, not the spec, names the job.
    let (status, other) = d.post_json(
        "/v1/jobs",
        &json!({ "shell": "exit 1", "idempotency_key": "nightly-2030-01-01" }),
    );
    assert_eq!(status, 200, "{other}");
    assert_eq!(other["id"], first["id"]);
    // Another key is another job.
    let (status, _) = d.post_json(
        "/v1/jobs",
        &json!({ "command": ["true"], "idempotency_key": "nightly-2030-01-02" }),
    );
    assert_eq!(status, 201);
    assert_eq!(d.job_count(), 2);
}

/// Submissions racing with one key.
const RACERS: usize = 50;

#[test]
fn racing_submissions_with_one_key_create_one_job() {
    let d = TestDaemon::start();
    let spec = json!({ "command": ["true"], "idempotency_key": "race" });
    let barrier = Barrier::new(RACERS);
    let answers: Vec<(u16, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..RACERS)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    let (status, body) = d.post_json("/v1/jobs", &spec);
                    let id = body["id"]
                        .as_str()
                        .unwrap_or_else(|| panic!("{status}: {body}"))
                        .to_owned();
                    (status, id)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("racer"))
            .collect()
    });
    let created = answers.iter().filter(|(s, _)| *s == 201).count();
    let repeated = answers.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!((created, repeated), (1, RACERS - 1), "{answers:?}");
    let id = &answers[0].1;
    assert!(answers.iter().all(|(_, i)| i == id), "{answers:?}");
    assert_eq!(
        d.all_job_ids().into_iter().collect::<Vec<_>>(),
        vec![id.clone()]
    );
}

#[test]
fn a_key_survives_a_crash_and_is_freed_by_deleting_its_job() {
    let mut d = TestDaemon::start();
    let spec = json!({ "command": ["true"], "idempotency_key": "once" });
    let (status, first) = d.post_json("/v1/jobs", &spec);
    assert_eq!(status, 201, "{first}");
    let id = first["id"].as_str().expect("id").to_owned();
    d.wait_terminal(&id);

    d.kill9();
    d.restart();
    let (status, again) = d.post_json("/v1/jobs", &spec);
    assert_eq!(status, 200, "the key is durable: {again}");
    assert_eq!(again["id"], id.as_str());

    let (status, body) = d.delete(&format!("/v1/jobs/{id}"));
    assert_eq!(status, 204, "{body}");
    let (status, fresh) = d.post_json("/v1/jobs", &spec);
    assert_eq!(status, 201, "a deleted job frees its key: {fresh}");
    assert_ne!(fresh["id"], id.as_str());
    assert_eq!(d.job_count(), 1);
}
