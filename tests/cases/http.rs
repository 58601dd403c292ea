//! HTTP/1.1 behaviour below the API: a kept-alive connection must stay
//! usable whatever the previous request on it was.
//!
//! These speak raw HTTP over a `TcpStream`, because the point is the bytes
//! on one connection, which a pooling client hides.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

use std::time::Duration;

use crate::support::TestDaemon;

/// How long to wait for the answer to a `GET /healthz` on loopback, which
/// takes milliseconds: five seconds is plenty even on a loaded runner, and a
/// daemon that swallows the request fails the test in a few seconds
/// instead of holding a test thread for the whole HTTP timeout.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads one response (status line, headers, `Content-Length` body) and
/// returns its status, or `None` when none came before [`ANSWER_TIMEOUT`] or
/// the server closed the connection.
fn read_response(reader: &mut BufReader<TcpStream>) -> Option<u16> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let status = line.split_whitespace().nth(1)?.parse().ok()?;
    let mut length = 0usize;
    loop {
        line.clear();
        reader.read_line(&mut line).ok()?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(status)
}

/// Sends `head` alone; once the daemon has answered it (without waiting for
/// the body), sends the `body` together with a `GET /healthz` on the same
/// connection, as a client still sending its body and then reusing the
/// connection does. The second request must be answered (or the connection
/// closed, which tells the client to reconnect), not silently swallowed.
fn second_request_after_unread_body(d: &TestDaemon, head: &str, body: &[u8], want_first: u16) {
    let stream = TcpStream::connect(d.addr()).expect("connect");
    stream.set_read_timeout(Some(ANSWER_TIMEOUT)).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    writer.write_all(head.as_bytes()).unwrap();
    assert_eq!(read_response(&mut reader), Some(want_first), "first answer");

    let mut rest = body.to_vec();
    rest.extend_from_slice(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    if writer.write_all(&rest).is_err() {
        return; // Closed after the first answer: the client reconnects.
    }
    let mut line = String::new();
    match reader.read_line(&mut line) {
        Ok(0) => {} // Closed: fine.
        Ok(_) => assert!(line.starts_with("HTTP/1.1 200"), "second answer: {line:?}"),
        Err(e) => panic!(
            "the request after an unread body got no answer within {ANSWER_TIMEOUT:?} ({e}): \
             the daemon neither answered it nor closed the connection"
        ),
    }
}

#[test]
fn keep_alive_survives_a_body_refused_as_too_large() {
    let d = TestDaemon::builder()
        .config_toml("max_body = \"2KiB\"\n")
        .start();
    let body = vec![b'x'; 4096];
    let head = format!(
        "POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    second_request_after_unread_body(&d, &head, &body, 413);
}

/// Sends `request` on a connection of its own and reads until the daemon
/// closes it: the whole answer, as text.
fn exchange(d: &TestDaemon, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(d.addr()).expect("connect");
    stream.set_read_timeout(Some(ANSWER_TIMEOUT)).unwrap();
    stream.write_all(request).unwrap();
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .expect("the daemon answers and closes the connection");
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn an_http_1_0_request_is_answered_and_the_connection_closed() {
    let d = TestDaemon::start();
    let answer = exchange(&d, b"GET /healthz HTTP/1.0\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(answer.ends_with(r#"{"status":"ok"}"#), "{answer:?}");

    let body = br#"{"shell": "true"}"#;
    let request = format!(
        "POST /v1/jobs HTTP/1.0\r\nHost: {}\r\nConnection: keep-alive\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        d.addr(),
        body.len()
    );
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body);
    let answer = exchange(&d, &bytes);
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer:?}");
    assert_eq!(d.job_count(), 1);
}

#[test]
fn a_method_a_route_does_not_take_is_a_405_with_allow() {
    let d = TestDaemon::start();
    let job = d.submit_shell("true");
    for (method, path, allow) in [
        ("PUT", "/v1/jobs".to_owned(), "GET, POST"),
        ("PATCH", format!("/v1/jobs/{}", job.id), "DELETE, GET"),
        ("GET", format!("/v1/jobs/{}/cancel", job.id), "POST"),
        ("POST", "/v1/queues".to_owned(), "GET"),
        ("GET", "/v1/queues/default".to_owned(), "DELETE, PATCH"),
    ] {
        let answer = exchange(
            &d,
            format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        assert!(
            answer.starts_with("HTTP/1.1 405"),
            "{method} {path}: {answer:?}"
        );
        let lower = answer.to_ascii_lowercase();
        assert!(
            lower.contains(&format!("\r\nallow: {}\r\n", allow.to_ascii_lowercase())),
            "{method} {path}: {answer:?}"
        );
        assert!(
            answer.contains(r#""code":"method_not_allowed""#),
            "{answer:?}"
        );
    }
}
