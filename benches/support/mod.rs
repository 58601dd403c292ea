//! What the benchmarks share: a real `jobq serve` on a temp dir and a free
//! port.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// A daemon on a temp dir; killed on drop.
pub struct Daemon {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Daemon {
    /// Starts a daemon with this config file text; waits until it is ready.
    pub fn start(config: &str) -> Daemon {
        let dir = tempfile::tempdir().expect("temp dir");
        let config_path = dir.path().join("jobq.toml");
        std::fs::write(&config_path, config).expect("write config");
        let data = dir.path().join("data");
        let child = Command::new(env!("CARGO_BIN_EXE_jobq"))
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&config_path)
            .arg("--data-dir")
            .arg(&data)
            .stderr(Stdio::null())
            .spawn()
            .expect("start jobq serve");
        let addr_file = data.join("jobq.addr");
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = loop {
            if let Some(addr) = read_addr(&addr_file) {
                let url = format!("http://{addr}");
                if ureq::get(&format!("{url}/readyz")).call().is_ok() {
                    break url;
                }
            }
            assert!(Instant::now() < deadline, "the daemon did not start");
            thread::sleep(Duration::from_millis(20));
        };
        Daemon {
            child,
            url,
            _dir: dir,
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_addr(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.ends_with('\n').then(|| text.trim().to_owned())
}
