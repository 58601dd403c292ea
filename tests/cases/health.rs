//! The probes and the address file a freshly started daemon offers.

use std::net::SocketAddr;

use crate::support::TestDaemon;

#[test]
fn healthz_and_readyz_answer_200_once_started() {
    let d = TestDaemon::start();
    let (status, body) = d.get_json("/healthz");
    assert_eq!(status, 200, "{body}");
    let (status, body) = d.get_json("/readyz");
    assert_eq!(status, 200, "{body}");
}

#[test]
fn the_bound_address_is_written_to_jobq_addr() {
    let d = TestDaemon::start();
    let text = std::fs::read_to_string(d.data_dir().join("jobq.addr")).unwrap();
    assert_eq!(text.trim_end().lines().count(), 1, "one line: {text:?}");
    let addr: SocketAddr = text
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{text:?}: {e}"));
    assert!(addr.ip().is_loopback(), "{addr}");
    assert_ne!(addr.port(), 0, "the bound port, not the requested 0");
    assert_eq!(addr, d.addr());
    assert_eq!(d.get("/healthz").status, 200);
}

#[test]
fn an_unknown_route_is_a_json_404() {
    let d = TestDaemon::start();
    let (status, body) = d.get_json("/v1/nothing-here");
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "not_found", "{body}");
}

#[test]
fn readyz_is_503_while_draining_and_healthz_stays_200() {
    let mut d = TestDaemon::builder()
        .config_toml("shutdown_grace = \"20s\"\n")
        .start();
    let gate = d.gate();
    let job = d.submit_shell(&gate.shell());
    d.wait_running(&job.id);
    d.send_sigterm();
    // The running job holds the drain open until the gate opens.
    crate::support::wait_for("/readyz to say it drains", || {
        d.get_json("/readyz").0 == 503
    });
    let (status, body) = d.get_json("/readyz");
    assert_eq!(
        (status, body["status"].as_str()),
        (503, Some("shutting down")),
        "{body}"
    );
    assert_eq!(d.get("/healthz").status, 200, "the process still serves");
    gate.open();
    assert!(d.wait_exit().success());
}
