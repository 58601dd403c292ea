//! `POST /v1/uploads` and a job spec's `stdin_upload`: stdin of any size
//! (up to `max_upload`) and any bytes, which `stdin` (a JSON string) cannot
//! carry.

use std::path::Path;
use std::process::Command;

use serde_json::json;

use crate::support::{assert_error, TestDaemon};

/// 100 MiB: far over `max_body`, the JSON limit.
const BIG: usize = 100 << 20;

/// The SHA-256 of a file, by the system's `sha256sum`, in hex.
fn sha256_of(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("run sha256sum");
    assert!(
        out.status.success(),
        "sha256sum {}: {out:?}",
        path.display()
    );
    hash_field(&out.stdout)
}

/// The hash of a `sha256sum` output line (`<hex>  <name>`).
fn hash_field(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    let hash = text.split_whitespace().next().unwrap_or("").to_owned();
    assert_eq!(hash.len(), 64, "not a sha256sum line: {text:?}");
    hash
}

/// Random bytes from a seeded fast PRNG (every byte value, none of it
/// UTF-8 text).
fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut bytes = vec![0u8; len];
    rng.fill(&mut bytes);
    bytes
}

#[test]
fn a_large_binary_upload_becomes_the_jobs_stdin_exactly() {
    let d = TestDaemon::start();
    let file = d.path("stdin.bin");
    std::fs::write(&file, random_bytes(BIG, 0x5eed)).expect("write the upload file");
    let want = sha256_of(&file);

    // The body streams from the file, not from memory.
    let reply = d.upload_file(&file);
    assert_eq!(
        reply.status,
        201,
        "POST /v1/uploads answered {}",
        reply.json()
    );
    let upload = reply.json();
    assert_eq!(upload["bytes"], BIG, "{upload}");
    let id = upload["upload"]
        .as_str()
        .unwrap_or_else(|| panic!("no upload id in {upload}"))
        .to_owned();

    let job = d.submit(json!({ "shell": "sha256sum; echo $? >&2", "stdin_upload": id }));
    assert_eq!(job.stdin_bytes, Some(BIG as u64), "{job:?}");
    let job = d.wait_terminal(&job.id);
    assert_eq!(job.state.as_str(), "succeeded", "{job:?}");
    assert_eq!(d.output(&job.id, "stderr"), b"0\n");
    assert_eq!(
        hash_field(&d.output(&job.id, "stdout")),
        want,
        "the job read exactly the uploaded bytes"
    );
}

#[test]
fn stdin_and_stdin_upload_are_exclusive_and_uploads_must_exist() {
    let d = TestDaemon::start();
    let reply = d.post_raw("/v1/uploads", "application/octet-stream", b"some bytes\n");
    assert_eq!(reply.status, 201, "{}", reply.json());
    let id = reply.json()["upload"]
        .as_str()
        .expect("upload id")
        .to_owned();

    let (status, body) = d.post_json(
        "/v1/jobs",
        &json!({ "shell": "cat", "stdin": "text", "stdin_upload": id }),
    );
    assert_error(status, &body, 400, "invalid_field", Some("stdin_upload"));

    let (status, body) = d.post_json(
        "/v1/jobs",
        &json!({ "shell": "cat", "stdin_upload": "0192f1c4-8a6e-7c3b-9d1e-3f5a7b9c1d2e" }),
    );
    assert_error(status, &body, 400, "invalid_field", Some("stdin_upload"));
    let (status, body) = d.post_json(
        "/v1/jobs",
        &json!({ "shell": "cat", "stdin_upload": "not-an-upload" }),
    );
    assert_error(status, &body, 400, "invalid_field", Some("stdin_upload"));

    // The upload refused above is still there for a valid spec.
    let job = d.submit(json!({ "shell": "cat", "stdin_upload": id }));
    let job = d.wait_terminal(&job.id);
    assert_eq!(job.state.as_str(), "succeeded", "{job:?}");
    assert_eq!(d.output(&job.id, "stdout"), b"some bytes\n");

    // One upload, one job: a claimed upload cannot be named again.
    let (status, body) = d.post_json("/v1/jobs", &json!({ "shell": "cat", "stdin_upload": id }));
    assert_error(status, &body, 400, "invalid_field", Some("stdin_upload"));
}

#[test]
fn an_upload_over_max_upload_is_refused() {
    let d = TestDaemon::builder()
        .config_toml("max_upload = \"1KiB\"\n")
        .start();
    let reply = d.post_raw_alone("/v1/uploads", "application/octet-stream", &[7u8; 4096]);
    assert_error(reply.status, &reply.json(), 413, "payload_too_large", None);
    // Exactly the limit is fine.
    let reply = d.post_raw_alone("/v1/uploads", "application/octet-stream", &[7u8; 1024]);
    assert_eq!(reply.status, 201, "{}", reply.json());
    assert_eq!(reply.json()["bytes"], 1024);
}
