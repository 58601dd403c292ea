//! What the benchmarks share: a real `jobq serve` on a temp dir and a free
//! port.

pub mod load;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// A jobq build the benches run. The one cargo built with the bench is
/// always measured; `$JOBQ_BENCH_BIN` may name a second (the previous
/// commit's, say), which the benches measure in the same run and print
/// beside it, so that a change is judged against figures from one sitting.
#[derive(Clone, Debug)]
pub struct Build {
    /// How tables name it: `this build` or `previous`.
    pub label: &'static str,
    /// Its `jobq` binary (daemon and CLI).
    pub bin: PathBuf,
}

/// The builds to measure: this one first, then `$JOBQ_BENCH_BIN` if set.
pub fn builds() -> Vec<Build> {
    let mut builds = vec![current()];
    if let Some(bin) = std::env::var_os("JOBQ_BENCH_BIN") {
        let bin = PathBuf::from(bin);
        assert!(
            bin.is_file(),
            "JOBQ_BENCH_BIN={} is not a file",
            bin.display()
        );
        builds.push(Build {
            label: "previous",
            bin,
        });
    }
    builds
}

/// The `jobq` cargo built with the bench.
pub fn current() -> Build {
    Build {
        label: "this build",
        bin: env!("CARGO_BIN_EXE_jobq").into(),
    }
}

/// A daemon on a temp dir; killed on drop.
pub struct Daemon {
    child: Child,
    bin: PathBuf,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    config_path: PathBuf,
    data: PathBuf,
    _dir: tempfile::TempDir,
}

impl Daemon {
    /// Starts this build's daemon with this config file text; waits until
    /// it is ready.
    #[allow(dead_code)] // not every bench uses every helper
    pub fn start(config: &str) -> Daemon {
        Daemon::start_with(&current(), config)
    }

    /// Starts `build`'s daemon with this config file text; waits until it
    /// is ready.
    pub fn start_with(build: &Build, config: &str) -> Daemon {
        let dir = tempfile::tempdir().expect("temp dir");
        let config_path = dir.path().join("jobq.toml");
        std::fs::write(&config_path, config).expect("write config");
        let data = dir.path().join("data");
        let (child, url, _) = spawn_ready(&build.bin, &config_path, &data);
        Daemon {
            child,
            bin: build.bin.clone(),
            url,
            config_path,
            data,
            _dir: dir,
        }
    }

    /// The daemon's process id (for /proc/<pid>/status and the like).
    #[allow(dead_code)] // not every bench uses every helper
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The daemon's data dir (`--data-dir`): the store, `work/`, `jobq.addr`.
    #[allow(dead_code)]
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// Kills the daemon (SIGKILL, as a crash would) and starts a new one
    /// with the same config on the same data dir; `url` is the new one's
    /// (a fresh port). Returns the time from spawning the new process until
    /// its `/readyz` answered 200.
    #[allow(dead_code)]
    pub fn restart(&mut self) -> Duration {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let (child, url, took) = spawn_ready(&self.bin, &self.config_path, &self.data);
        self.child = child;
        self.url = url;
        took
    }
}

impl Daemon {
    /// Sends SIGTERM and waits for the process to exit; returns the time
    /// from the signal to the exit (the drain, for an idle daemon nothing
    /// but closing the store).
    #[allow(dead_code)]
    pub fn terminate(&mut self) -> Duration {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).expect("a pid");
        let start = Instant::now();
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
        let _ = self.child.wait();
        start.elapsed()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns `bin serve` on `data` and waits until `/readyz` answers 200;
/// returns the child, its URL and the time from spawn to ready.
fn spawn_ready(bin: &Path, config_path: &Path, data: &Path) -> (Child, String, Duration) {
    // A stale address from an earlier run on this data dir must not be
    // taken for the new daemon's (the daemon removes it only after opening
    // its store).
    let addr_file = data.join("jobq.addr");
    let _ = std::fs::remove_file(&addr_file);
    let start = Instant::now();
    let mut child = Command::new(bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(config_path)
        .arg("--data-dir")
        .arg(data)
        .stderr(Stdio::null())
        .spawn()
        .expect("start jobq serve");
    let deadline = start + Duration::from_secs(600);
    let agent = agent(Duration::from_secs(10));
    loop {
        if let Some(addr) = read_addr(&addr_file) {
            let url = format!("http://{addr}");
            if agent.get(&format!("{url}/readyz")).call().is_ok() {
                return (child, url, start.elapsed());
            }
        }
        if Instant::now() > deadline || matches!(child.try_wait(), Ok(Some(_))) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the daemon did not start");
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// An HTTP client whose every request must be done within `timeout`.
pub fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .build()
        .new_agent()
}

fn read_addr(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.ends_with('\n').then(|| text.trim().to_owned())
}

/// Single submissions per second to `d` by `clients` keep-alive clients
/// (one thread each) over `seconds`. The caller pauses the queue first if
/// nothing should spawn.
#[allow(dead_code)] // not every bench measures submissions
pub fn submissions_per_second(d: &Daemon, clients: usize, seconds: f64) -> f64 {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (url, done, stop) = (format!("{}/v1/jobs", d.url), done.clone(), stop.clone());
            thread::spawn(move || {
                let agent = agent(Duration::from_secs(120));
                let body = serde_json::json!({"command": ["true"]});
                while !stop.load(Ordering::Relaxed) {
                    agent
                        .post(&url)
                        .send_json(&body)
                        .expect("submission accepted");
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("client thread");
    }
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}
