//! Disk trouble: when the file system fills up, submissions get 503 with a
//! clear message, running jobs keep running, nothing acknowledged is lost,
//! and the daemon takes work again once space returns — without a restart.
//!
//! Runs on a 16 MiB tmpfs mounted by the test (CI runs as root). Where
//! mounting is not allowed the test says so and passes without checking.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{wait_for, TestDaemon};

/// A tmpfs mounted for the test; unmounted on drop.
struct SmallFs(PathBuf);

impl SmallFs {
    fn mount(size: &str) -> Option<SmallFs> {
        let dir = tempfile::tempdir().ok()?.keep();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(SmallFs(dir))
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
    let Some(fs) = SmallFs::mount("16m") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
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
