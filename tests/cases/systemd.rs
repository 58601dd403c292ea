//! The daemon under systemd's protocols, without systemd: the notify
//! messages on a datagram socket the test owns as `NOTIFY_SOCKET`, and
//! socket activation through `systemd-socket-activate` (the systemd
//! package; it needs no running systemd).

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{agent, jobq_bin, jobq_command, wait_for, LineReader};

/// One notify datagram and when it came.
#[derive(Debug)]
struct Message {
    at: Instant,
    text: String,
}

/// Reads notify datagrams until `done` says so of the last one, or fails
/// after 20 s.
fn read_until(socket: &UnixDatagram, seen: &mut Vec<Message>, done: impl Fn(&Message) -> bool) {
    let give_up = Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 4096];
    loop {
        assert!(Instant::now() < give_up, "no such message; got {seen:#?}");
        let Ok(n) = socket.recv(&mut buf) else {
            continue;
        };
        let message = Message {
            at: Instant::now(),
            text: String::from_utf8_lossy(&buf[..n]).into_owned(),
        };
        let stop = done(&message);
        seen.push(message);
        if stop {
            return;
        }
    }
}

/// `jobq serve` on `data`, through `sh` so that `WATCHDOG_PID` is its own
/// pid, as systemd sets it.
fn serve_notified(data: &Path, notify: &Path, watchdog_usec: u64) -> LineReader {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("WATCHDOG_PID=$$ exec \"$0\" serve --listen 127.0.0.1:0 --data-dir \"$1\"")
        .arg(jobq_bin())
        .arg(data)
        .env("NOTIFY_SOCKET", notify)
        .env("WATCHDOG_USEC", watchdog_usec.to_string())
        .env_remove("RUST_LOG");
    LineReader::spawn(cmd, "jobq serve under NOTIFY_SOCKET")
}

#[test]
fn notify_says_ready_status_watchdog_and_stopping_in_order() {
    let root = tempfile::tempdir().unwrap();
    let notify = root.path().join("notify.sock");
    let socket = UnixDatagram::bind(&notify).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let data = root.path().join("data");
    // A ping every 300 ms.
    let daemon = serve_notified(&data, &notify, 600_000);

    let mut seen = Vec::new();
    read_until(&socket, &mut seen, |m| m.text.contains("READY=1"));
    // Ready means served: the address is written and /readyz says 200.
    let addr = std::fs::read_to_string(data.join("jobq.addr")).unwrap();
    let url = format!("http://{}", addr.lines().next().unwrap());
    let http = agent(Duration::from_secs(5), true);
    let ready = http.get(format!("{url}/readyz")).call().unwrap();
    assert_eq!(
        ready.status().as_u16(),
        200,
        "READY=1 came before /readyz is 200"
    );
    assert!(
        seen[0].text.contains("STATUS=recovering"),
        "the first message says it recovers: {seen:#?}"
    );
    assert!(
        seen.last()
            .unwrap()
            .text
            .contains("STATUS=0 running, 0 queued"),
        "READY=1 comes with the counts: {seen:#?}"
    );

    // A running job shows in the status; pings keep coming meanwhile.
    let body = serde_json::json!({"command": ["sleep", "30"]});
    let job: serde_json::Value = http
        .post(format!("{url}/v1/jobs"))
        .send_json(&body)
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    read_until(&socket, &mut seen, |m| m.text.contains("STATUS=1 running"));
    let since = Instant::now();
    read_until(&socket, &mut seen, |m| {
        m.text.contains("WATCHDOG=1") && m.at.duration_since(since) > Duration::from_secs(2)
    });
    let pings: Vec<Instant> = seen
        .iter()
        .filter(|m| m.text.trim() == "WATCHDOG=1")
        .map(|m| m.at)
        .collect();
    assert!(pings.len() >= 4, "pings every 300 ms over 2 s: {seen:#?}");
    // Not from a tight loop: never much faster than half of WATCHDOG_USEC.
    for pair in pings.windows(2) {
        assert!(
            pair[1] - pair[0] > Duration::from_millis(150),
            "two pings {:?} apart: {seen:#?}",
            pair[1] - pair[0]
        );
    }
    let statuses: Vec<Instant> = seen
        .iter()
        .filter(|m| m.text.starts_with("STATUS=") && !m.text.contains("READY=1"))
        .map(|m| m.at)
        .collect();
    for pair in statuses.windows(2) {
        assert!(
            pair[1] - pair[0] > Duration::from_millis(500),
            "STATUS at most once a second: {seen:#?}"
        );
    }

    let cancel = http
        .post(format!(
            "{url}/v1/jobs/{}/cancel",
            job["id"].as_str().unwrap()
        ))
        .send_empty()
        .unwrap();
    assert_eq!(cancel.status().as_u16(), 200);
    crate::support::signal(daemon.pid(), rustix::process::Signal::TERM);
    read_until(&socket, &mut seen, |m| m.text.contains("STOPPING=1"));
    let (status, stderr) = daemon.finish();
    assert!(status.success(), "{status:?}: {stderr}");
}

#[test]
fn without_notify_socket_nothing_is_sent_and_it_still_serves() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let mut cmd = jobq_command(&["serve", "--listen", "127.0.0.1:0", "--data-dir"]);
    cmd.arg(&data).env_remove("NOTIFY_SOCKET");
    let daemon = LineReader::spawn(cmd, "jobq serve");
    wait_for("jobq.addr", || data.join("jobq.addr").exists());
    crate::support::signal(daemon.pid(), rustix::process::Signal::TERM);
    let (status, stderr) = daemon.finish();
    assert!(status.success(), "{status:?}: {stderr}");
}

/// A free loopback port (bound and let go: another process may take it in
/// between, which fails the test loudly rather than wrongly).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `jobq serve` behind `systemd-socket-activate`, listening on `tcp` and
/// the unix socket `unix`; `listen` in its config names another address,
/// which must not be used.
fn activated(data: &Path, tcp: u16, unix: &Path, extra: &[&str]) -> LineReader {
    let mut cmd = Command::new("systemd-socket-activate");
    cmd.arg("-l")
        .arg(format!("127.0.0.1:{tcp}"))
        .arg("-l")
        .arg(unix)
        .args(extra)
        .arg("--fdname=api:socket")
        .arg(jobq_bin())
        .args(["serve", "--listen", "127.0.0.1:1", "--data-dir"])
        .arg(data);
    LineReader::spawn(cmd, "systemd-socket-activate jobq serve")
}

#[test]
fn socket_activation_serves_tcp_and_unix_on_the_passed_sockets() {
    crate::support::require_root("check a unix peer's principal");
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let unix = root.path().join("jobq.sock");
    let port = free_port();
    let daemon = activated(&data, port, &unix, &[]);
    wait_for("the passed unix socket", || unix.exists());

    // The first connection launches the daemon; it queues until served.
    let url = format!("http://127.0.0.1:{port}");
    let http = agent(Duration::from_secs(20), false);
    wait_for("/readyz through the passed TCP socket", || {
        http.get(format!("{url}/readyz"))
            .call()
            .is_ok_and(|r| r.status().as_u16() == 200)
    });
    let job: serde_json::Value = http
        .post(format!("{url}/v1/jobs"))
        .send_json(serde_json::json!({"shell": "echo tcp"}))
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    assert_eq!(job["owner"], "anonymous", "{job}");

    let server = format!("unix:{}", unix.display());
    let out = crate::support::run_bounded(
        jobq_command(&[
            "submit", "--server", &server, "--wait", "--json", "--", "true",
        ]),
        "jobq submit over the passed unix socket",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let over_unix: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        over_unix["owner"], "unix:root",
        "the socket's peer is known"
    );

    // jobq.addr lists the passed sockets; `listen` was not bound.
    let addrs = std::fs::read_to_string(data.join("jobq.addr")).unwrap();
    assert!(addrs.contains(&format!("127.0.0.1:{port}")), "{addrs}");
    assert!(addrs.contains(&unix.display().to_string()), "{addrs}");
    assert!(!addrs.contains("127.0.0.1:1\n"), "{addrs}");

    crate::support::signal(daemon.pid(), rustix::process::Signal::TERM);
    let (status, stderr) = daemon.finish();
    assert!(status.success(), "{status:?}: {stderr}");
    assert!(
        unix.exists(),
        "the socket file is systemd's: it stays for the next start"
    );
}

#[test]
fn a_passed_socket_that_is_not_a_stream_listener_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let unix = root.path().join("dgram.sock");
    let port = free_port();
    let mut daemon = activated(&data, port, &unix, &["--datagram"]);
    wait_for("the passed socket", || unix.exists());
    // A datagram to the UDP socket launches the daemon.
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.send_to(b"x", ("127.0.0.1", port)).unwrap();
    let _ = daemon.next_line_or_end();
    let (status, stderr) = daemon.finish();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not a listening stream socket"), "{stderr}");
    assert!(!data.join("store").exists(), "{stderr}");
}
