//! Disk trouble: when the file system fills up, submissions get 503 with a
//! clear message, running jobs keep running, nothing acknowledged is lost,
//! and the daemon takes work again once space returns — without a restart.
//!
//! Runs on a 16 MiB tmpfs mounted by the test, which needs root (CI runs
//! as root); without it the tests fail, saying so.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{require_root, wait_for, TestDaemon};

/// A tmpfs mounted for the test; unmounted on drop.
struct SmallFs(PathBuf);

impl SmallFs {
    #[track_caller]
    fn mount(size: &str) -> SmallFs {
        require_root("mount a small tmpfs");
        let dir = tempfile::tempdir().expect("a temp dir").keep();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "cannot mount a tmpfs on {}", dir.display());
        SmallFs(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    /// Writes zeros until the file system is full.
    fn fill(&self) -> PathBuf {
        let filler = self.0.join("filler");
        let _ = Command::new("dd")
            .arg("if=/dev/zero")
            .arg(format!("of={}", filler.display()))
            .arg("bs=1M")
            .status();
        filler
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
fn a_full_disk_refuses_work_keeps_jobs_running_and_recovers_when_space_returns() {
    let fs = SmallFs::mount("16m");
    let d = TestDaemon::builder().workers(1).root_in(fs.path()).start();
    // The gate lives outside the full file system.
    let outside = tempfile::tempdir().unwrap();
    let gate = outside.path().join("gate");
    let running = d.submit_shell(&format!(
        "while [ ! -e '{}' ]; do sleep 0.05; done; echo survived",
        gate.display()
    ));
    let pid = d.wait_running(&running.id).pid.expect("pid");

    let filler = fs.fill();
    // sled may still fit a few writes in space it had allocated; those are
    // acknowledged and durable. Then the answer must be 503.
    let mut accepted = Vec::new();
    let mut refused = None;
    for _ in 0..500 {
        let (status, body) = d.post_json("/v1/jobs", &serde_json::json!({"shell": "echo queued"}));
        match status {
            201 => accepted.push(body["id"].as_str().unwrap().to_owned()),
            _ => {
                refused = Some((status, body));
                break;
            }
        }
    }
    let (status, body) = refused.expect("a full disk never refused a submission");
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("No space left"),
        "the message says why: {body}"
    );
    // The running job is untouched.
    assert!(
        Path::new(&format!("/proc/{pid}")).exists(),
        "the running job was killed"
    );

    std::fs::remove_file(&filler).unwrap();
    let mut after = None;
    wait_for(
        "submissions to be accepted again once space returned",
        || {
            let (status, body) =
                d.post_json("/v1/jobs", &serde_json::json!({"shell": "echo after"}));
            if status == 201 {
                after = Some(body["id"].as_str().unwrap().to_owned());
            }
            status == 201
        },
    );
    std::fs::write(&gate, b"open").unwrap();

    for id in accepted.iter().chain(after.iter()).chain([&running.id]) {
        let job = d.wait_terminal(id);
        assert_eq!(job.state.as_str(), "succeeded", "{job:?}");
    }
    // The job that ran through the outage finished; if its end could not be
    // recorded it ran again (at-least-once), and its output is whole.
    assert_eq!(d.output(&running.id, "stdout"), b"survived\n");
}

/// Fills the disk under `d`, sends `request` until the daemon refuses it
/// (sled may still fit a few writes in space it had allocated), frees the
/// space, and waits until the same request is taken again: the first
/// failed write of any kind must start the daemon's repair, or sled, which
/// refuses every write after its first I/O error, never takes one again.
fn refused_then_repaired(fs: &SmallFs, what: &str, mut request: impl FnMut() -> (u16, String)) {
    let filler = fs.fill();
    let mut refused = None;
    for _ in 0..500 {
        let (status, body) = request();
        if !(200..300).contains(&status) {
            refused = Some((status, body));
            break;
        }
    }
    let (status, body) = refused.unwrap_or_else(|| panic!("a full disk never refused {what}"));
    assert_eq!(status, 503, "{what}: {body}");
    std::fs::remove_file(&filler).unwrap();
    wait_for(
        &format!("{what} to be taken again once space returned"),
        || (200..300).contains(&request().0),
    );
}

/// Relaxed durability: no request waits for a flush, so a failed write is
/// the request's own (the daemon's background flush fails first, and sled
/// then refuses the next write), not a flush's, which was always counted.
const RELAXED: &str = "durability = \"relaxed\"\n";

#[test]
fn an_upload_that_fails_on_a_full_disk_starts_the_repair() {
    let fs = SmallFs::mount("16m");
    let d = TestDaemon::builder()
        .root_in(fs.path())
        .config_toml(RELAXED)
        .start();
    let bytes = vec![7u8; 64 * 1024];
    refused_then_repaired(&fs, "an upload", || {
        let reply = d.post_raw("/v1/uploads", "application/octet-stream", &bytes);
        (reply.status, reply.json().to_string())
    });
}
