//! `GET /v1/jobs/{id}/output`: stdout and stderr kept apart, `all` in the
//! order produced, `offset` skipping bytes of the chosen stream.

use crate::support::{assert_error, TestDaemon};

/// Writes alternately to stdout and stderr. The pauses between writes make
/// the production order certain (otherwise two pipes written back to back
/// may be read in either order); they are the job's, not the test's.
const INTERLEAVED: &str =
    "echo a; sleep 0.1; echo b >&2; sleep 0.1; echo c; sleep 0.1; echo d >&2; sleep 0.1; printf e";

fn finished_interleaved(d: &TestDaemon) -> String {
    let job = d.submit_shell(INTERLEAVED);
    let job = d.wait_terminal(&job.id);
    assert_eq!(job.state.as_str(), "succeeded", "{job:?}");
    job.id
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).expect("UTF-8 output")
}

#[test]
fn streams_are_kept_apart_and_all_is_in_production_order() {
    let d = TestDaemon::start();
    let id = finished_interleaved(&d);
    assert_eq!(text(d.output(&id, "stdout")), "a\nc\ne");
    assert_eq!(text(d.output(&id, "stderr")), "b\nd\n");
    assert_eq!(text(d.output(&id, "all")), "a\nb\nc\nd\ne");
    let (status, default) = d.get_bytes(&format!("/v1/jobs/{id}/output"));
    assert_eq!(status, 200);
    assert_eq!(text(default), "a\nb\nc\nd\ne", "the default stream is all");
}

#[test]
fn offset_skips_bytes_of_the_chosen_stream() {
    let d = TestDaemon::start();
    let id = finished_interleaved(&d);
    let get = |query: &str| {
        let (status, body) = d.get_bytes(&format!("/v1/jobs/{id}/output?{query}"));
        assert_eq!(status, 200, "{query}: {}", String::from_utf8_lossy(&body));
        text(body)
    };
    assert_eq!(get("stream=stdout&offset=2"), "c\ne");
    assert_eq!(get("stream=stderr&offset=2"), "d\n");
    assert_eq!(get("stream=all&offset=2"), "b\nc\nd\ne");
    assert_eq!(get("offset=6"), "d\ne");
    assert_eq!(get("stream=stdout&offset=0"), "a\nc\ne");
    assert_eq!(get("stream=stdout&offset=5"), "", "offset at the end");
}

#[test]
fn large_output_is_kept_whole() {
    // 1 MiB on stdout and 1 MiB on stderr at once: the runner must drain
    // both pipes together, or the job blocks on a full pipe.
    let d = TestDaemon::start();
    let job = d.submit_shell(
        "head -c 1048576 /dev/zero | tr '\\0' o & head -c 1048576 /dev/zero | tr '\\0' e >&2; wait",
    );
    let job = d.wait_terminal(&job.id);
    assert_eq!(job.state.as_str(), "succeeded", "{job:?}");
    let out = d.output(&job.id, "stdout");
    assert_eq!(out.len(), 1 << 20);
    assert!(out.iter().all(|&b| b == b'o'));
    let err = d.output(&job.id, "stderr");
    assert_eq!(err.len(), 1 << 20);
    assert!(err.iter().all(|&b| b == b'e'));
    assert_eq!(d.output(&job.id, "all").len(), 2 << 20);
}

#[test]
fn output_of_an_unknown_job_is_not_found() {
    let d = TestDaemon::start();
    let (status, body) = d.get_json("/v1/jobs/0192f1c4-8a6e-7c3b-9d1e-3f5a7b9c1d2e/output");
    assert_error(status, &body, 404, "not_found", None);
}

#[test]
fn bad_stream_or_offset_is_rejected() {
    let d = TestDaemon::start();
    let id = finished_interleaved(&d);
    let (status, body) = d.get_json(&format!("/v1/jobs/{id}/output?stream=both"));
    assert_error(status, &body, 400, "invalid_field", Some("stream"));
    let (status, body) = d.get_json(&format!("/v1/jobs/{id}/output?offset=-1"));
    assert_error(status, &body, 400, "invalid_field", Some("offset"));
}
