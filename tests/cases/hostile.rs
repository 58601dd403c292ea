//! What a hostile or broken client sends, and what a job can do to the
//! daemon: each is refused or survived, and nothing it did is kept.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::json;

use crate::support::{assert_error, TestDaemon};

/// Sends `raw` on a connection of its own (half-closing it after, when
/// `half_close`), and reads the answer until the daemon closes.
fn exchange(d: &TestDaemon, raw: &[u8], half_close: bool) -> String {
    let mut s = TcpStream::connect(d.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(raw).unwrap();
    if half_close {
        s.shutdown(std::net::Shutdown::Write).unwrap();
    }
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn a_body_shorter_than_its_length_is_a_400_and_does_nothing() {
    let d = TestDaemon::start();
    let body = br#"{"shell":"echo truncated-request-ran"}"#;
    for path in ["/v1/jobs", "/v1/uploads"] {
        let mut raw = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
        )
        .into_bytes();
        raw.extend_from_slice(body);
        let answer = exchange(&d, &raw, true);
        assert!(answer.starts_with("HTTP/1.1 400"), "{path}: {answer}");
        assert!(answer.contains("38 of the 1000 bytes"), "{path}: {answer}");
    }
    assert_eq!(d.job_count(), 0, "a truncated submission ran");
}

#[test]
fn heads_too_large_or_malformed_get_an_answer() {
    let d = TestDaemon::start();
    let big = format!(
        "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(10_000)
    );
    let many: String = (0..200).map(|i| format!("X-{i}: a\r\n")).collect();
    let many = format!("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n{many}\r\n");
    for (raw, status) in [
        (big.as_bytes(), "431"),
        (many.as_bytes(), "431"),
        (&b"NOT HTTP AT ALL\r\n\r\n"[..], "400"),
    ] {
        let answer = exchange(&d, raw, false);
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{answer}"
        );
        assert!(answer.contains(r#""error""#), "{answer}");
    }
    assert_eq!(d.get("/healthz").status, 200, "it still serves");
}

#[test]
fn strings_the_kernel_cannot_pass_are_refused_at_submit() {
    let d = TestDaemon::start();
    let big = "x".repeat(128 * 1024);
    for (spec, field) in [
        (json!({ "shell": "true", "env": { "BIG": big } }), "env.BIG"),
        (json!({ "command": ["echo", big] }), "command[1]"),
        (json!({ "shell": format!("echo {big}") }), "shell"),
    ] {
        let (status, body) = d.post_json("/v1/jobs", &spec);
        assert_error(status, &body, 400, "invalid_field", Some(field));
    }
    // Just under the limit starts.
    let fits = "x".repeat(128 * 1024 - "FITS=".len() - 1);
    let job = d.submit(json!({ "shell": "test ${#FITS} -gt 100000", "env": { "FITS": fits } }));
    assert_eq!(d.wait_terminal(&job.id).state.as_str(), "succeeded");
    assert_eq!(d.job_count(), 1);
}

/// Sends `first`, then one byte of `then` a second from a thread, on each
/// of `n` connections; returns the connections for reading later.
fn trickle(d: &TestDaemon, n: usize, first: &[u8], then: u8) -> Vec<TcpStream> {
    let conns: Vec<TcpStream> = (0..n)
        .map(|_| {
            let mut s = TcpStream::connect(d.addr()).unwrap();
            s.write_all(first).unwrap();
            s
        })
        .collect();
    let writers: Vec<TcpStream> = conns.iter().map(|s| s.try_clone().unwrap()).collect();
    std::thread::spawn(move || {
        for _ in 0..60 {
            std::thread::sleep(Duration::from_secs(1));
            let mut alive = 0;
            for mut s in &writers {
                alive += usize::from(s.write_all(&[then]).is_ok());
            }
            if alive == 0 {
                return;
            }
        }
    });
    conns
}

/// Before: a head or body could take for ever (200 connections trickling a
/// byte a second were all open after 100 s). Now a head must end 10 s after
/// its first byte and a body must not stall 10 s nor come slower than
/// 1 KiB/s after 30 s; each gets a 408 and its connection closes, and the
/// daemon serves everyone else meanwhile.
#[test]
fn slow_heads_and_bodies_are_cut_off_while_others_are_served() {
    let d = TestDaemon::start();
    let heads = trickle(
        &d,
        500,
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ",
        b'a',
    );
    let bodies = trickle(
        &d,
        50,
        b"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"shell\":\"echo ",
        b'x',
    );
    let mut stalled = TcpStream::connect(d.addr()).unwrap();
    stalled
        .write_all(
            b"POST /v1/uploads HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\nhalf",
        )
        .unwrap();
    // Served meanwhile, over and over.
    for _ in 0..20 {
        assert_eq!(d.get("/healthz").status, 200);
        let job = d.submit_shell("true");
        assert_eq!(job.state.as_str(), "queued");
        std::thread::sleep(Duration::from_millis(200));
    }
    let read_all = |s: &mut TcpStream, within: u64| {
        s.set_read_timeout(Some(Duration::from_secs(within)))
            .unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    };
    let answer = read_all(&mut stalled, 20);
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "a stalled body: {answer}"
    );
    assert!(
        answer.contains("no byte of the body came for 10 s"),
        "{answer}"
    );
    for mut s in heads {
        let answer = read_all(&mut s, 20);
        assert!(answer.starts_with("HTTP/1.1 408"), "a slow head: {answer}");
    }
    for mut s in bodies {
        let answer = read_all(&mut s, 40);
        assert!(
            answer.starts_with("HTTP/1.1 408"),
            "a trickled body: {answer}"
        );
        assert!(answer.contains("slower than 1024 bytes/s"), "{answer}");
    }
    assert_eq!(d.job_count(), 20, "a cut-off body made a job");
}

/// Tuned to the descriptors a daemon on the sled store holds (one on
/// PostgreSQL holds a pool of connections besides).
mod sled_only {
    use super::*;

    /// At its open-files limit the daemon does not fail jobs it could not
    /// start for want of descriptors: they go back in line and run later.
    #[test]
    fn jobs_the_daemon_cannot_start_for_want_of_descriptors_wait_and_run() {
        let d = TestDaemon::builder().open_files(48).workers(16).start();
        let ids: Vec<String> = (0..16)
            .map(|_| d.submit(json!({ "shell": "sleep 0.5" })).id)
            .collect();
        for id in &ids {
            let job = d.wait_terminal(id);
            assert_eq!(job.state.as_str(), "succeeded", "{job:?}");
            assert_eq!(job.attempt, 1, "{job:?}");
        }
        assert!(
            d.stderr_all().contains("goes back in line"),
            "16 jobs at once did not run short of descriptors at 48: the test proves nothing"
        );
    }
}
