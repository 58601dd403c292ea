//! `max_output`: a job that writes far more than the cap runs to its end at
//! pipe speed, keeps exactly the cap, says so, and the daemon's memory does
//! not grow with what the job writes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::support::{proc_status_kib, TestDaemon};

/// The cap under test.
const CAP: usize = 1 << 20;

/// What the job writes: 1 GiB, a thousand times the cap.
const FLOOD: u64 = 1 << 30;

/// A generous bound on the daemon's resident memory: a few MiB of buffers
/// and the store's cache are expected; a daemon that holds the flood (or
/// even a sizeable part of it) in memory goes far past it.
const RSS_BOUND_KIB: u64 = 200 * 1024;

#[test]
fn a_flood_keeps_exactly_max_output_and_bounded_memory() {
    let d = TestDaemon::builder()
        .config_toml("max_output = \"1MiB\"\n")
        .start();
    let pid = d.pid();
    let job = d.submit_shell(&format!("head -c {FLOOD} /dev/zero"));

    // A follower of stdout from the start: it must get the kept MiB and
    // then see the stream end, not the dropped bytes.
    let follower = {
        let id = job.id.clone();
        let s = d.open_stream(
            &format!("/v1/jobs/{id}/output?follow=true&stream=stdout"),
            &[],
        );
        std::thread::spawn(move || s.expect_ok("application/octet-stream").read_all())
    };

    // Sample the daemon's resident memory while the job floods it.
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut max = 0u64;
            let mut samples = 0u32;
            while !done.load(Ordering::SeqCst) {
                if let Some(kib) = proc_status_kib(pid, "VmRSS") {
                    max = max.max(kib);
                    samples += 1;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            (max, samples)
        })
    };
    let started = std::time::Instant::now();
    let job = d.wait_terminal(&job.id);
    let took = started.elapsed();
    done.store(true, Ordering::SeqCst);
    let (max_rss, samples) = sampler.join().expect("sampler");
    eprintln!(
        "flood of {FLOOD} bytes took {took:?}; max VmRSS {max_rss} KiB over {samples} samples"
    );

    assert_eq!(job.state.as_str(), "succeeded", "{job:?}");
    assert!(
        job.output_truncated,
        "output_truncated should be true: {job:?}"
    );

    let stdout = d.output(&job.id, "stdout");
    assert_eq!(stdout.len(), CAP, "kept stdout is exactly max_output");
    assert!(
        stdout.iter().all(|&b| b == 0),
        "kept stdout is the job's zeros"
    );
    let stderr = String::from_utf8(d.output(&job.id, "stderr")).expect("UTF-8 stderr");
    let last = stderr.trim_end_matches('\n').lines().last().unwrap_or("");
    // docs/api.md: `[jobq: output truncated: N of M bytes not kept
    // (max_output = …)]`; M is every byte the job wrote, so the daemon
    // drained the whole flood.
    let dropped = FLOOD - CAP as u64;
    assert!(
        last.starts_with(&format!(
            "[jobq: output truncated: {dropped} of {FLOOD} bytes not kept (max_output = "
        )) && last.ends_with(")]"),
        "stderr ends with the truncation line, got {stderr:?}"
    );
    let followed = follower.join().expect("follower");
    assert_eq!(
        followed.len(),
        CAP,
        "the follower got exactly the kept stdout"
    );
    assert!(followed.iter().all(|&b| b == 0));

    let after = proc_status_kib(pid, "VmRSS").expect("daemon VmRSS");
    let peak = proc_status_kib(pid, "VmHWM").expect("daemon VmHWM");
    eprintln!("daemon VmRSS after {after} KiB, VmHWM {peak} KiB");
    for (what, kib) in [
        ("VmRSS sampled during the flood", max_rss),
        ("VmRSS after the flood", after),
        ("VmHWM (peak RSS over the daemon's life)", peak),
    ] {
        assert!(
            kib < RSS_BOUND_KIB,
            "{what}: {kib} KiB, over the bound of {RSS_BOUND_KIB} KiB for a job that wrote {FLOOD} bytes with max_output = 1MiB"
        );
    }
}
