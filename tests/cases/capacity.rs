//! What clients may hold at once, and what they leave behind: connection,
//! stream and upload limits answer 503 past them; subscribers, uploads and
//! connections that go away give their memory and files back.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::json;

use crate::support::{assert_error, proc_status_kib, wait_for, TestDaemon};

/// Reads what the daemon answers on `s` until it closes or `timeout`.
fn answer(s: &mut TcpStream, timeout: Duration) -> String {
    s.set_read_timeout(Some(timeout)).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Opens `GET /v1/events` on a raw connection and reads its answer's head.
fn subscribe(d: &TestDaemon) -> (TcpStream, String) {
    let mut s = TcpStream::connect(d.addr()).unwrap();
    s.write_all(b"GET /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut head = vec![0u8; 512];
    let n = s.read(&mut head).unwrap_or(0);
    head.truncate(n);
    if head.starts_with(b"HTTP/1.1 503") {
        // A refusal closes: read it whole.
        let _ = s.read_to_end(&mut head);
    }
    (s, String::from_utf8_lossy(&head).into_owned())
}

fn rss_kib(d: &TestDaemon) -> u64 {
    proc_status_kib(d.pid(), "VmRSS").expect("daemon VmRSS")
}

#[test]
fn past_max_connections_a_connection_gets_503_and_the_daemon_goes_on() {
    let d = TestDaemon::builder()
        .config_toml("max_connections = 10\n")
        .start();
    let held: Vec<TcpStream> = (0..10)
        .map(|_| TcpStream::connect(d.addr()).unwrap())
        .collect();
    // The daemon counts them once it accepted them.
    wait_for("the 10 connections to be accepted", || {
        let mut s = TcpStream::connect(d.addr()).unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .unwrap();
        answer(&mut s, Duration::from_secs(5)).starts_with("HTTP/1.1 503")
    });
    let mut s = TcpStream::connect(d.addr()).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let refused = answer(&mut s, Duration::from_secs(5));
    assert!(refused.contains(r#""code":"unavailable""#), "{refused}");
    assert!(refused.contains("max_connections"), "{refused}");
    drop(held);
    wait_for("connections to be served again", || {
        d.get("/healthz").status == 200
    });
}

#[test]
fn past_max_streams_a_stream_gets_503_and_a_closed_one_frees_its_slot() {
    let d = TestDaemon::builder()
        .config_toml("max_streams = 3\n")
        .start();
    let mut open: Vec<TcpStream> = (0..3)
        .map(|_| {
            let (s, head) = subscribe(&d);
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            s
        })
        .collect();
    let (_, head) = subscribe(&d);
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    assert!(head.contains("max_streams"), "{head}");
    let job = d.submit_shell("true");
    let (status, body) = d.get_json(&format!("/v1/jobs/{}/output?follow=true", job.id));
    assert_error(status, &body, 503, "unavailable", None);
    // A client that goes away gives its slot back at once, not at the next
    // keep-alive ping.
    open.pop();
    wait_for("the closed stream's slot to come back", || {
        subscribe(&d).1.starts_with("HTTP/1.1 200")
    });
    assert_eq!(d.get("/healthz").status, 200);
}

/// Before: each subscription kept a preallocated 4096-event buffer (about
/// 500 KB) until the next event was published; 1,000 connect-and-drop
/// subscribers added 490 MB of RSS that never came back.
#[test]
fn subscribers_that_connect_and_drop_leave_no_memory_behind() {
    let d = TestDaemon::start();
    // Warm up: the first connections grow pools that stay.
    for _ in 0..100 {
        drop(subscribe(&d));
    }
    let before = rss_kib(&d);
    for round in 0..3 {
        let batch: Vec<TcpStream> = (0..1000)
            .map(|_| {
                let (s, head) = subscribe(&d);
                assert!(head.starts_with("HTTP/1.1 200"), "round {round}: {head}");
                s
            })
            .collect();
        drop(batch);
    }
    // Jobs publish events: closed subscriptions are gone, not filled.
    let job = d.submit_shell("true");
    d.wait_terminal(&job.id);
    let after = rss_kib(&d);
    let grown_mib = after.saturating_sub(before) / 1024;
    assert!(
        grown_mib < 64,
        "3,000 dropped subscribers grew the daemon by {grown_mib} MiB ({before} → {after} KiB)"
    );
    assert_eq!(d.get("/healthz").status, 200);
}

/// Before: an upload was read whole into memory, then copied into sled:
/// one 1 GiB upload peaked at 4.2 GB of RSS.
#[test]
fn an_upload_streams_to_disk_in_bounded_memory_and_feeds_the_job() {
    let d = TestDaemon::start();
    let size: u64 = 256 * 1024 * 1024;
    let file = d.path("big.bin");
    {
        let mut f = std::fs::File::create(&file).unwrap();
        let block: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
        for _ in 0..size / block.len() as u64 {
            f.write_all(&block).unwrap();
        }
    }
    let before = proc_status_kib(d.pid(), "VmHWM").expect("VmHWM");
    let reply = d.upload_file(&file);
    assert_eq!(reply.status, 201, "{}", reply.text());
    let upload = reply.json()["upload"].as_str().unwrap().to_owned();
    let job = d.submit(json!({ "shell": "wc -c", "stdin_upload": upload }));
    let done = d.wait_terminal(&job.id);
    assert_eq!(done.state.as_str(), "succeeded", "{done:?}");
    assert_eq!(
        String::from_utf8_lossy(&d.output(&job.id, "stdout")).trim(),
        size.to_string()
    );
    let peak = proc_status_kib(d.pid(), "VmHWM").expect("VmHWM");
    let grown_mib = peak.saturating_sub(before) / 1024;
    assert!(
        grown_mib < 64,
        "a 256 MiB upload and its job raised the daemon's peak RSS by {grown_mib} MiB"
    );
}

#[test]
fn past_max_uploads_an_upload_gets_503_and_cut_off_uploads_leave_no_file() {
    let d = TestDaemon::builder()
        .config_toml("max_uploads = 2\n")
        .start();
    let start_upload = || {
        let mut s = TcpStream::connect(d.addr()).unwrap();
        s.write_all(
            b"POST /v1/uploads HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\nContent-Length: 10000000\r\n\r\n",
        )
        .unwrap();
        s.write_all(&[7u8; 100_000]).unwrap();
        s
    };
    let stdin_dir = d.data_dir().join("store").join("stdin");
    let parts = || {
        std::fs::read_dir(&stdin_dir)
            .map(|entries| entries.count())
            .unwrap_or(0)
    };
    let uploading = [start_upload(), start_upload()];
    wait_for("two uploads to be in progress", || parts() == 2);
    let reply = d.post_raw("/v1/uploads", "application/octet-stream", b"more");
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert!(reply.text().contains("max_uploads"), "{}", reply.text());
    drop(uploading);
    wait_for("the cut-off uploads' files to go", || parts() == 0);
    let reply = d.post_raw("/v1/uploads", "application/octet-stream", b"more");
    assert_eq!(reply.status, 201, "{}", reply.text());
    // A whole upload is a file of the sled store; on PostgreSQL it is in
    // the database, and the node's file of it is gone once it is stored.
    let kept = match crate::support::test_store() {
        crate::support::TestStore::Sled => 1,
        crate::support::TestStore::Postgres => 0,
    };
    assert_eq!(parts(), kept);
}

/// 10,000 connections that each stop mid-request (in the head, in a JSON
/// body, in an upload) leave the daemon serving, with nothing made and its
/// memory where it was.
#[test]
fn ten_thousand_connections_dropped_mid_request_leave_nothing() {
    let d = TestDaemon::start();
    let partial: [&[u8]; 3] = [
        b"GET /v1/jobs HTTP/1.1\r\nHost: 127.0",
        b"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"shell\":\"echo ran\"",
        b"POST /v1/uploads HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\nsome bytes",
    ];
    for _ in 0..300 {
        let mut s = TcpStream::connect(d.addr()).unwrap();
        let _ = s.write_all(partial[0]);
    }
    let before = rss_kib(&d);
    for i in 0..10_000 {
        let mut s = TcpStream::connect(d.addr()).unwrap();
        let _ = s.write_all(partial[i % 3]);
    }
    wait_for("the daemon to serve", || d.get("/healthz").status == 200);
    assert_eq!(d.job_count(), 0, "a cut-off submission made a job");
    let stdin_dir = d.data_dir().join("store").join("stdin");
    wait_for("cut-off uploads to leave no file", || {
        std::fs::read_dir(&stdin_dir).map_or(0, |e| e.count()) == 0
    });
    let after = rss_kib(&d);
    let grown_mib = after.saturating_sub(before) / 1024;
    assert!(
        grown_mib < 32,
        "10,000 dropped connections grew the daemon by {grown_mib} MiB ({before} → {after} KiB)"
    );
}
