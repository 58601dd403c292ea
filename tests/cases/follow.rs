//! Following a job's output as it is produced: `GET /v1/jobs/{id}/output`
//! with `follow=true` (raw bytes, chunked) and with
//! `Accept: text/event-stream` (SSE, resumable with `Last-Event-ID`).

use std::io::{BufRead, BufReader, Read};
use std::sync::mpsc;

use crate::support::{assert_error, SseEvent, TestDaemon, HOLD_WINDOW, WAIT_TIMEOUT};

/// The output SSE events carry, decoded and concatenated in order, checking
/// that each event's `id` is the byte position after it (starting from
/// `from`) and that the stream ends with one `end` event, which is returned.
#[track_caller]
fn sse_output(events: &[SseEvent], from: u64) -> (Vec<u8>, Option<SseEvent>) {
    let mut bytes = Vec::new();
    let mut end = None;
    let mut position = from;
    for e in events {
        assert!(end.is_none(), "an event after `end`: {e:?} in {events:?}");
        match e.event.as_str() {
            "attempt" => {
                // A new attempt: positions start again.
                assert_eq!(e.position(), 0, "an attempt begins at 0: {e:?}");
                position = 0;
            }
            "stdout" | "stderr" => {
                let data = e.bytes();
                position += data.len() as u64;
                bytes.extend(data);
                assert_eq!(
                    e.position(),
                    position,
                    "the id of {e:?} is the byte position after it"
                );
            }
            "end" => end = Some(e.clone()),
            other => panic!("unexpected event {other:?}: {e:?}"),
        }
    }
    (bytes, end)
}

/// A shell loop writing `n` lines `line<i>` (from 1) to stdout, one every
/// `pause`.
fn lines_every(n: usize, pause: &str) -> String {
    format!("i=1; while [ $i -le {n} ]; do echo line$i; i=$((i+1)); sleep {pause}; done")
}

fn expected_lines(n: usize) -> String {
    (1..=n).map(|i| format!("line{i}\n")).collect()
}

#[test]
fn a_follower_gets_output_while_the_job_runs() {
    let d = TestDaemon::start();
    // A line every 100 ms for 2 s.
    let job = d.submit_shell(&lines_every(20, "0.1"));
    let s = d
        .open_stream(&format!("/v1/jobs/{}/output?follow=true", job.id), &[])
        .expect_ok("application/octet-stream");
    assert!(
        s.transfer_encoding
            .as_deref()
            .is_some_and(|t| t.contains("chunked")),
        "a followed output is sent chunked, Transfer-Encoding was {:?}",
        s.transfer_encoding
    );
    let what = s.what.clone();
    let mut reader = BufReader::new(s.body);
    let mut first = String::new();
    reader
        .read_line(&mut first)
        .unwrap_or_else(|e| panic!("{what}: reading the first line: {e}"));
    // The moment the first line is in: the job must still be running, or the
    // daemon held the output back until the end.
    let state = d.state(&job.id);
    assert_eq!(first, "line1\n");
    assert_eq!(
        state, "running",
        "the first line should arrive while the job still runs (it runs ~2 s)"
    );
    let mut rest = Vec::new();
    reader
        .read_to_end(&mut rest)
        .unwrap_or_else(|e| panic!("{what}: reading to the end: {e}"));
    // The stream ends when the job is terminal and everything was sent.
    let state = d.state(&job.id);
    assert_eq!(state, "succeeded", "the stream ended before the job did");
    let all = first
        .into_bytes()
        .into_iter()
        .chain(rest)
        .collect::<Vec<u8>>();
    assert_eq!(String::from_utf8_lossy(&all), expected_lines(20));
    assert_eq!(all, d.output(&job.id, "all"));
}

#[test]
fn a_hundred_followers_get_identical_complete_output() {
    const FOLLOWERS: usize = 100;
    const LINES: usize = 2048;
    let d = TestDaemon::start();
    let gate = d.gate();
    // ~200 KiB in 2048 writes of 101 bytes (printf is a builtin: one write
    // each), with a pause every 256 lines so followers join mid-stream too.
    let pad = "x".repeat(93);
    let job = d.submit_shell(&format!(
        "{}; i=0; while [ $i -lt {LINES} ]; do printf '%06d {pad}\\n' $i; i=$((i+1)); \
         if [ $((i % 256)) -eq 0 ]; then sleep 0.02; fi; done",
        gate.shell()
    ));
    let expected: Vec<u8> = (0..LINES)
        .flat_map(|i| format!("{i:06} {pad}\n").into_bytes())
        .collect();
    assert_eq!(expected.len(), LINES * 101);

    // Half the followers are connected before the job writes anything; the
    // other half connect while it writes.
    let (connected_tx, connected_rx) = mpsc::channel::<()>();
    let mut followers = Vec::new();
    for n in 0..FOLLOWERS {
        if n == FOLLOWERS / 2 {
            for _ in 0..n {
                connected_rx
                    .recv_timeout(WAIT_TIMEOUT)
                    .expect("the first followers to connect");
            }
            gate.open();
        }
        let s = d.open_stream(&format!("/v1/jobs/{}/output?follow=true", job.id), &[]);
        let connected = connected_tx.clone();
        followers.push(std::thread::spawn(move || {
            let s = s.expect_ok("application/octet-stream");
            let _ = connected.send(());
            s.read_all()
        }));
    }
    let outputs: Vec<Vec<u8>> = followers
        .into_iter()
        .map(|t| t.join().expect("follower thread"))
        .collect();
    let job = d.wait_terminal(&job.id);
    assert_eq!(job.state.as_str(), "succeeded", "{job:?}");
    let plain = d.output(&job.id, "all");
    assert_eq!(plain.len(), expected.len(), "the plain output is complete");
    assert!(plain == expected, "the plain output is what the job wrote");
    for (n, out) in outputs.iter().enumerate() {
        assert!(
            *out == plain,
            "follower {n} got {} bytes that differ from the plain output ({} bytes); first difference at byte {:?}",
            out.len(),
            plain.len(),
            out.iter().zip(&plain).position(|(a, b)| a != b)
        );
    }
}

/// A job writing 40 lines to stdout and 40 to stderr, alternately, with
/// pauses, so a follower can leave and come back while it still writes.
const ALTERNATING: &str =
    "i=0; while [ $i -lt 40 ]; do echo out$i; sleep 0.01; echo err$i >&2; i=$((i+1)); sleep 0.01; done";

#[test]
fn sse_resumes_from_last_event_id_without_loss_or_repeat() {
    let d = TestDaemon::start();
    for stream in ["all", "stdout", "stderr"] {
        let job = d.submit_shell(ALTERNATING);
        let query = format!("stream={stream}");
        // Read a few events, then hang up.
        let mut first = d.follow_sse(&job.id, &query, None);
        let mut events = Vec::new();
        for _ in 0..5 {
            let e = first
                .next_event()
                .unwrap_or_else(|| panic!("{stream}: the stream ended after {events:?}"));
            events.push(e);
        }
        drop(first);
        assert_eq!(
            d.state(&job.id),
            "running",
            "{stream}: the job should still run when the follower leaves"
        );
        let (head, end) = sse_output(&events, 0);
        assert!(end.is_none(), "{stream}: ended within 5 events: {events:?}");
        let last = events.last().expect("5 events");
        assert_eq!(last.position(), head.len() as u64);
        let last = last.id.clone().expect("an id");

        // Come back with the last id seen and read to the end.
        let rest_events = d.follow_sse(&job.id, &query, Some(&last)).collect_all();
        let (tail, end) = sse_output(&rest_events, head.len() as u64);
        let end = end.unwrap_or_else(|| panic!("{stream}: no `end` event in {rest_events:?}"));
        let end = end.json();
        assert_eq!(end["state"], "succeeded", "{stream}: end {end}");
        assert_eq!(end["exit_code"], 0, "{stream}: end {end}");
        assert_eq!(end["exit"], 0, "{stream}: end {end}");

        let mut all = head;
        all.extend(tail);
        let plain = d.output(&job.id, stream);
        assert_eq!(
            String::from_utf8_lossy(&all),
            String::from_utf8_lossy(&plain),
            "{stream}: resumed SSE data gives every byte exactly once"
        );
        // Each stream's lines arrive whole and in order. How the two
        // interleave in `all` is left to
        // `following_all_keeps_stdout_and_stderr_in_production_order`: 10 ms
        // apart, a loaded machine may read two pipes in either order.
        let plain = String::from_utf8_lossy(&plain);
        for (prefix, shown) in [("out", stream != "stderr"), ("err", stream != "stdout")] {
            let got: Vec<&str> = plain.lines().filter(|l| l.starts_with(prefix)).collect();
            let want: Vec<String> = if shown {
                (0..40).map(|i| format!("{prefix}{i}")).collect()
            } else {
                Vec::new()
            };
            assert_eq!(got, want, "{stream}: the {prefix} lines");
        }
        assert_eq!(
            plain.lines().count(),
            if stream == "all" { 80 } else { 40 },
            "{stream}: nothing else: {plain:?}"
        );
    }
}

#[test]
fn raw_follow_resumes_from_offset_without_loss_or_repeat() {
    let d = TestDaemon::start();
    for stream in ["all", "stdout"] {
        let job = d.submit_shell(ALTERNATING);
        let s = d
            .open_stream(
                &format!("/v1/jobs/{}/output?follow=true&stream={stream}", job.id),
                &[],
            )
            .expect_ok("application/octet-stream");
        let what = s.what.clone();
        let mut body = s.body;
        let mut head = Vec::new();
        let mut buf = [0u8; 64];
        while head.len() < 40 {
            let n = body
                .read(&mut buf)
                .unwrap_or_else(|e| panic!("{what}: read: {e}"));
            assert!(n > 0, "{what}: ended after {} bytes", head.len());
            head.extend_from_slice(&buf[..n]);
        }
        drop(body);
        assert_eq!(
            d.state(&job.id),
            "running",
            "{stream}: the job should still run when the follower leaves"
        );
        let tail = d.follow_raw(&job.id, &format!("stream={stream}&offset={}", head.len()));
        let mut all = head;
        all.extend(tail);
        assert_eq!(
            String::from_utf8_lossy(&all),
            String::from_utf8_lossy(&d.output(&job.id, stream)),
            "{stream}: resumed raw follow gives every byte exactly once"
        );
    }
}

#[test]
fn following_all_keeps_stdout_and_stderr_in_production_order() {
    let d = TestDaemon::start();
    // The pauses make the production order certain (two pipes written back
    // to back may be read in either order).
    let line: String = (0..8)
        .map(|i| format!("echo a{i}; sleep 0.05; echo b{i} >&2; sleep 0.05; "))
        .collect();
    let want: String = (0..8).map(|i| format!("a{i}\nb{i}\n")).collect();
    let job = d.submit_shell(&line);
    let sse = {
        let mut reader = d.follow_sse(&job.id, "stream=all", None);
        std::thread::spawn(move || reader.collect_all())
    };
    let raw = d.follow_raw(&job.id, "stream=all");
    assert_eq!(String::from_utf8_lossy(&raw), want, "raw follow of all");
    let events = sse.join().expect("SSE reader");
    let (bytes, end) = sse_output(&events, 0);
    assert!(end.is_some(), "no end event: {events:?}");
    assert_eq!(String::from_utf8_lossy(&bytes), want, "SSE follow of all");
    // Each piece is tagged with the stream it came from.
    for e in events
        .iter()
        .filter(|e| e.event != "end" && e.event != "attempt")
    {
        let text = String::from_utf8(e.bytes()).expect("UTF-8");
        let tag = if e.event == "stdout" { 'a' } else { 'b' };
        assert!(
            text.lines().all(|l| l.starts_with(tag)),
            "a {} event carries {text:?}",
            e.event
        );
    }
    assert_eq!(d.output(&job.id, "all"), raw);
}

#[test]
fn binary_output_round_trips_exactly() {
    let d = TestDaemon::start();
    let file = d.path("bytes");
    let every: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    std::fs::write(&file, &every).expect("write bytes file");
    let job =
        d.submit(serde_json::json!({ "command": ["cat", file.to_str().expect("UTF-8 path")] }));
    // Followers from before the job ends, and after.
    let sse = {
        let mut reader = d.follow_sse(&job.id, "stream=stdout", None);
        std::thread::spawn(move || reader.collect_all())
    };
    let raw = d.follow_raw(&job.id, "stream=stdout");
    let job = d.wait_terminal(&job.id);
    assert_eq!(job.state.as_str(), "succeeded", "{job:?}");
    assert_eq!(d.output(&job.id, "stdout"), every, "plain output");
    assert_eq!(raw, every, "raw follow");
    let (bytes, end) = sse_output(&sse.join().expect("SSE reader"), 0);
    assert!(end.is_some(), "no end event");
    assert_eq!(bytes, every, "SSE follow, base64-decoded");
    let (bytes, _) = sse_output(
        &d.follow_sse(&job.id, "stream=stdout", None).collect_all(),
        0,
    );
    assert_eq!(bytes, every, "SSE of an ended job");
    assert_eq!(
        d.follow_raw(&job.id, "stream=stdout"),
        every,
        "raw follow of an ended job"
    );
}

#[test]
fn a_follower_of_a_queued_job_waits_for_it_to_run() {
    let d = TestDaemon::builder().workers(1).start();
    let gate = d.gate();
    let blocker = d.submit_shell(&gate.shell());
    d.wait_running(&blocker.id);
    // The pause keeps the order: stdout and stderr are read apart, and two
    // writes back to back may be read either way round.
    let job = d.submit_shell("echo one; sleep 0.1; echo two >&2; exit 3");
    assert_eq!(d.state(&job.id), "queued");

    let (raw_tx, raw_rx) = mpsc::channel();
    let raw = d.open_stream(&format!("/v1/jobs/{}/output?follow=true", job.id), &[]);
    std::thread::spawn(move || {
        let _ = raw_tx.send(raw.expect_ok("application/octet-stream").read_all());
    });
    let (sse_tx, sse_rx) = mpsc::channel();
    let mut sse = d.follow_sse(&job.id, "", None);
    std::thread::spawn(move || {
        let _ = sse_tx.send(sse.collect_all());
    });

    // While the job waits for the worker, the followers wait with it.
    let held = std::time::Instant::now();
    while held.elapsed() < HOLD_WINDOW {
        assert!(
            raw_rx.try_recv().is_err(),
            "the raw follower of a queued job ended before the job ran"
        );
        assert!(
            sse_rx.try_recv().is_err(),
            "the SSE follower of a queued job ended before the job ran"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(d.state(&job.id), "queued");

    gate.open();
    let raw = raw_rx
        .recv_timeout(WAIT_TIMEOUT)
        .expect("the raw follower to end");
    let events = sse_rx
        .recv_timeout(WAIT_TIMEOUT)
        .expect("the SSE follower to end");
    let job = d.wait_terminal(&job.id);
    let plain = d.output(&job.id, "all");
    assert_eq!(String::from_utf8_lossy(&plain), "one\ntwo\n");
    assert_eq!(raw, plain, "raw follower");
    let (bytes, end) = sse_output(&events, 0);
    assert_eq!(bytes, plain, "SSE follower");
    let end = end.expect("an end event").json();
    assert_eq!(end["state"], "failed", "{end}");
    assert_eq!(end["reason"], "exit", "{end}");
    assert_eq!(end["exit_code"], 3, "{end}");
    assert_eq!(end["exit"], 3, "{end}");
}

#[test]
fn bad_follow_requests_are_rejected() {
    let d = TestDaemon::start();
    let job = d.submit_shell("echo hi");
    d.wait_terminal(&job.id);
    let id = &job.id;
    let sse = ("Accept", "text/event-stream");

    let r = d.get_with(&format!("/v1/jobs/{id}/output?follow=maybe"), &[]);
    assert_error(r.status, &r.json(), 400, "invalid_field", Some("follow"));
    let r = d.get_with(
        &format!("/v1/jobs/{id}/output"),
        &[sse, ("Last-Event-ID", "abc")],
    );
    assert_error(
        r.status,
        &r.json(),
        400,
        "invalid_field",
        Some("Last-Event-ID"),
    );
    let r = d.get_with(&format!("/v1/jobs/{id}/output?follow=true&offset=-1"), &[]);
    assert_error(r.status, &r.json(), 400, "invalid_field", Some("offset"));
    let r = d.get_with(&format!("/v1/jobs/{id}/output?offset=-1"), &[sse]);
    assert_error(r.status, &r.json(), 400, "invalid_field", Some("offset"));
    let r = d.get_with(
        &format!("/v1/jobs/{id}/output?follow=true&stream=both"),
        &[],
    );
    assert_error(r.status, &r.json(), 400, "invalid_field", Some("stream"));

    let unknown = "0192f1c4-8a6e-7c3b-9d1e-3f5a7b9c1d2e";
    let r = d.get_with(&format!("/v1/jobs/{unknown}/output?follow=true"), &[]);
    assert_error(r.status, &r.json(), 404, "not_found", None);
    let r = d.get_with(&format!("/v1/jobs/{unknown}/output"), &[sse]);
    assert_error(r.status, &r.json(), 404, "not_found", None);
}

#[test]
fn sse_ids_are_per_attempt_and_an_old_attempts_id_resumes_through_the_next() {
    // Attempt 1 prints "one", waits for the gate and fails; attempt 2 (the
    // retry) prints "two".
    let d = TestDaemon::start();
    let gate = d.gate();
    let marker = d.path("tried");
    let job = d.submit(serde_json::json!({
        "shell": format!(
            "if [ -e '{0}' ]; then echo two; exit 0; fi; touch '{0}'; echo one; {1}; exit 1",
            marker.display(),
            gate.shell()
        ),
        "retries": 1,
        "backoff": "300ms",
    }));
    let mut sse = d.follow_sse(&job.id, "stream=stdout", None);
    let begun = sse.next_event().expect("attempt 1 begins");
    assert_eq!(
        (begun.event.as_str(), begun.id.as_deref()),
        ("attempt", Some("1:0"))
    );
    let first = sse.next_event().expect("attempt 1's output");
    assert_eq!(
        (first.id.as_deref(), first.bytes()),
        (Some("1:4"), b"one\n".to_vec())
    );
    gate.open();
    let mut events = vec![first];
    events.extend(sse.collect_all());
    let output: Vec<(Option<String>, Vec<u8>)> = events
        .iter()
        .filter(|e| e.event == "stdout")
        .map(|e| (e.id.clone(), e.bytes()))
        .collect();
    assert_eq!(
        output,
        vec![
            (Some("1:4".to_owned()), b"one\n".to_vec()),
            (Some("2:4".to_owned()), b"two\n".to_vec()),
        ],
        "ids are attempt:position, and positions restart with the attempt: {events:?}"
    );
    // Resuming with an id of attempt 1 after attempt 2 ran gives the rest
    // of attempt 1 (here nothing), then attempt 2 from its start, marked:
    // every attempt's output is kept, nothing is skipped.
    let mut resumed = d.follow_sse(&job.id, "stream=stdout", Some("1:4"));
    let again: Vec<(String, Option<String>)> = resumed
        .collect_all()
        .iter()
        .filter(|e| e.event != "end")
        .map(|e| (e.event.clone(), e.id.clone()))
        .collect();
    assert_eq!(
        again,
        [
            ("attempt".to_owned(), Some("2:0".to_owned())),
            ("stdout".to_owned(), Some("2:4".to_owned()))
        ]
    );
    let mut from_start = d.follow_sse(&job.id, "stream=stdout", Some("1:0"));
    let (bytes, _) = sse_output(&from_start.collect_all(), 0);
    assert_eq!(
        bytes, b"one\ntwo\n",
        "from attempt 1's start: both attempts"
    );
    // Within the attempt, the position is honoured.
    let mut within = d.follow_sse(&job.id, "stream=stdout", Some("2:4"));
    assert!(within.collect_all().iter().all(|e| e.event != "stdout"));
}
