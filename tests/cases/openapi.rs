//! `GET /v1/openapi.json`, and what schemathesis found against it
//! (scripts/schemathesis.sh; docs/design.md, "Why the OpenAPI document is
//! generated"): each finding is a test here.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::json;

use crate::support::{assert_error, TestDaemon};

/// Sends `raw` on a connection of its own and reads the answer until the
/// daemon closes it.
fn exchange(d: &TestDaemon, raw: &str) -> String {
    let mut s = TcpStream::connect(d.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(raw.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn the_document_is_served_without_a_token_and_lists_every_route() {
    let d = TestDaemon::builder()
        .token("0123456789abcdef0123456789abcdef")
        .start();
    let reply = d.get("/v1/openapi.json");
    assert_eq!(reply.status, 200, "{}", reply.text());
    let doc = reply.json();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    let operations: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    // The route table's 30 routes (the unit test holds the two equal).
    assert_eq!(operations, 30, "{:?}", paths.keys().collect::<Vec<_>>());
    let submit = &paths["/v1/jobs"]["post"];
    assert_eq!(submit["security"], json!([{ "bearer": [] }]));
    assert!(submit["responses"]["429"].is_object());
    // Requests and answers write durations differently.
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["JobView"]["properties"]["backoff"]["$ref"],
        "#/components/schemas/ShownDuration"
    );
    assert!(schemas["JobRequest"]["properties"]["backoff"]
        .to_string()
        .contains("#/components/schemas/Duration\""));
}

#[test]
fn a_method_http_types_does_not_know_is_a_405_with_allow() {
    let d = TestDaemon::start();
    let answer = exchange(
        &d,
        "QUERY /v1/queues HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    assert!(
        answer.to_lowercase().contains("\r\nallow: get\r\n"),
        "{answer}"
    );
    assert!(answer.contains("method_not_allowed"), "{answer}");
    // On a connection that already served a request, too.
    let mut s = TcpStream::connect(d.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let mut first = Vec::new();
    while !String::from_utf8_lossy(&first).ends_with(r#"{"status":"ok"}"#) {
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed after {first:?}");
        first.extend_from_slice(&buf[..n]);
    }
    s.write_all(b"QUERY /v1/jobs/12 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    assert!(
        answer.to_lowercase().contains("allow: delete, get"),
        "{answer}"
    );
    // A path no route has: 404.
    let answer = exchange(
        &d,
        "QUERY /v2/nothing HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
}

#[test]
fn a_named_resource_is_not_a_job_id() {
    let d = TestDaemon::start();
    for path in [
        "/v1/jobs/batch",
        "/v1/jobs/cancel",
        "/v1/jobs/clean",
        "/v1/jobs/retry",
    ] {
        let answer = exchange(
            &d,
            &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
        );
        assert!(answer.starts_with("HTTP/1.1 405"), "{path}: {answer}");
        assert!(
            answer.to_lowercase().contains("\r\nallow: post\r\n"),
            "{path}: {answer}"
        );
    }
    let answer = exchange(
        &d,
        "DELETE /v1/jobs/12 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
}

#[test]
fn whole_floats_are_integers_and_after_reads_ids_as_the_path_does() {
    let d = TestDaemon::start();
    let first = d.submit(json!({ "command": ["true"] }));
    d.wait_terminal(&first.id);
    let (status, body) = d.post_json(
        "/v1/jobs",
        &json!({
            "command": ["true"], "priority": 3.0, "retries": 1.0,
            "limits": { "open_files": 64.0 },
            "after": [format!("  {}\n", first.id.to_uppercase())],
        }),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["priority"], 3);
    assert_eq!(body["retries"], 1);
    assert_eq!(body["after"], json!([first.id]));
    // A fraction is still no integer.
    let (status, body) = d.post_json("/v1/jobs", &json!({ "command": ["true"], "priority": 2.5 }));
    assert_error(status, &body, 400, "invalid_field", Some("priority"));
    // A batch names the field and the entry, once.
    let (status, body) = d.post_json(
        "/v1/jobs/batch",
        &json!({ "jobs": [{ "command": ["true"], "after": ["987654"] }] }),
    );
    assert_error(status, &body, 400, "invalid_field", Some("jobs[0].after"));
    let message = body["error"]["message"].as_str().unwrap();
    assert_eq!(message, "jobs[0].after: no job number 987654", "{body}");
}

#[test]
fn durations_past_a_thousand_years_are_refused_naming_the_field() {
    let d = TestDaemon::start();
    let before = d.job_count();
    for (field, value) in [
        ("delay", json!(1e12)),
        ("delay", json!("1001years")),
        ("timeout", json!(31_557_600_001u64)),
        ("backoff", json!("999999999y")),
    ] {
        let (status, body) = d.post_json("/v1/jobs", &json!({ "command": ["true"], field: value }));
        assert_error(status, &body, 400, "invalid_field", Some(field));
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("1000 years"),
            "{field}={value}: {body}"
        );
    }
    assert_eq!(d.job_count(), before, "a refused job was stored");
    // 999 years is a time (before jiff's year 9999).
    let (status, body) = d.post_json("/v1/jobs", &json!({ "command": ["true"], "delay": "999y" }));
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["state"], "scheduled");
}

#[test]
fn limits_are_an_object_not_an_array_of_fields() {
    let d = TestDaemon::start();
    let (status, body) = d.post_json(
        "/v1/jobs",
        &json!({ "command": ["true"], "limits": [null, null] }),
    );
    assert_error(status, &body, 400, "invalid_field", Some("limits"));
    assert_eq!(d.job_count(), 0);
}
