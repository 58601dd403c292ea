//! Processes: the `jobq` binary and how tests run it (bounded, line by
//! line, as another user), the jobs' processes in /proc, and the marks
//! jobs leave in a file to show when they ran.

use super::*;

/// The path of the `jobq` binary cargo built for this test run.
pub fn jobq_bin() -> &'static str {
    env!("CARGO_BIN_EXE_jobq")
}

/// A `jobq` command with no inherited server or token settings, so the
/// developer's own environment cannot steer a test.
pub fn jobq_command(args: &[&str]) -> Command {
    let mut cmd = Command::new(jobq_bin());
    cmd.args(args)
        .env_remove("JOBQ_SERVER")
        .env_remove("JOBQ_TOKEN")
        .env_remove("JOBQ_TOKEN_FILE")
        .env_remove("RUST_LOG");
    cmd
}

/// `program args…` run as `user` through `runuser` (root only, see
/// [`require_root`]), with the jobq client variables cleared.
pub fn as_user(user: &str, program: &str, args: &[&str]) -> Command {
    require_root("run a command as another user");
    let mut cmd = Command::new("runuser");
    cmd.args(["-u", user, "--", program])
        .args(args)
        .env_remove("JOBQ_SERVER")
        .env_remove("JOBQ_TOKEN")
        .env_remove("JOBQ_TOKEN_FILE")
        .env_remove("RUST_LOG");
    cmd
}

/// Fails the test, saying why, unless it runs as root: what it checks
/// (jobs started as other users, peers of other users on the socket)
/// cannot be done otherwise. CI runs the suite as root; such a test must
/// not pass by skipping its point.
#[track_caller]
pub fn require_root(to: &str) {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test needs root to {to}; run the suite as root (CI does), it cannot pass without"
    );
}

/// Runs `cmd` to completion with output captured, failing the test if it
/// runs longer than [`WAIT_TIMEOUT`] (and killing it then).
pub fn run_bounded(mut cmd: Command, what: &str) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let mut guard = KillOnDrop(child);
    let mut stdout = guard.0.stdout.take().expect("stdout is piped");
    let mut stderr = guard.0.stderr.take().expect("stderr is piped");
    // Both pipes drain at once, so a chatty child cannot block on a full pipe.
    let out = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let mut status = None;
    wait_for(&format!("{what} to exit"), || {
        status = guard.0.try_wait().expect("try_wait");
        status.is_some()
    });
    Output {
        status: status.expect("exited"),
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

/// A command that runs until it is stopped (`jobq events`), its stdout
/// read line by line as it comes (its stderr kept); killed when dropped.
pub struct LineReader {
    /// The process.
    child: KillOnDrop,
    /// Its stdout lines, from a reader thread.
    lines: std::sync::mpsc::Receiver<String>,
    /// Its stderr so far, from another.
    stderr: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    /// The command, for messages.
    what: String,
}

impl LineReader {
    /// Starts `cmd` with stdout and stderr piped.
    pub fn spawn(mut cmd: Command, what: &str) -> LineReader {
        use std::io::BufRead;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut err_pipe = child.stderr.take().expect("stderr is piped");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err_pipe.read(&mut buf) {
                if n == 0 {
                    return;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        LineReader {
            child: KillOnDrop(child),
            lines,
            stderr,
            what: what.to_owned(),
        }
    }

    /// The next line, or `None` once stdout ended; fails the test if
    /// neither comes within [`WAIT_TIMEOUT`].
    #[track_caller]
    pub fn next_line_or_end(&mut self) -> Option<String> {
        match self.lines.recv_timeout(WAIT_TIMEOUT) {
            Ok(line) => Some(line),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => None,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!(
                "{}: no line within {WAIT_TIMEOUT:?} (WAIT_TIMEOUT); stderr: {}",
                self.what,
                self.stderr_text()
            ),
        }
    }

    /// Its process id (to signal it).
    pub fn pid(&self) -> u32 {
        self.child.0.id()
    }

    /// What it wrote to stderr so far.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// Waits for it to exit (within [`WAIT_TIMEOUT`]); its status and all
    /// it wrote to stderr.
    #[track_caller]
    pub fn finish(mut self) -> (std::process::ExitStatus, String) {
        let mut status = None;
        wait_for(&format!("{} to exit", self.what), || {
            status = self.child.0.try_wait().expect("try_wait");
            status.is_some()
        });
        // The stderr reader sees the end of the pipe right after the exit.
        std::thread::sleep(Duration::from_millis(50));
        (status.expect("exited"), self.stderr_text())
    }

    /// The next line, failing the test if none comes within
    /// [`WAIT_TIMEOUT`] or the output ends.
    #[track_caller]
    pub fn next_line(&mut self) -> String {
        match self.lines.recv_timeout(WAIT_TIMEOUT) {
            Ok(line) => line,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!(
                "{}: no line within {WAIT_TIMEOUT:?} (WAIT_TIMEOUT)",
                self.what
            ),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => panic!(
                "{}: stdout ended (exit {:?})",
                self.what,
                self.child.0.try_wait()
            ),
        }
    }
}

/// Kills a child process when a test panics before it was waited for.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The process's exit code, failing the test when a signal ended it.
#[track_caller]
pub fn exit_code(out: &Output) -> i32 {
    out.status.code().unwrap_or_else(|| {
        panic!(
            "jobq was killed by a signal: {:?}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// A command's stdout as text (lossy, so a test sees bad bytes, not a panic).
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A command's stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Fails the test unless the command exited 0, showing what it printed.
#[track_caller]
pub fn assert_ok(out: &Output) {
    assert_eq!(
        exit_code(out),
        0,
        "stdout: {}\nstderr: {}",
        stdout(out),
        stderr(out)
    );
}

/// One line a job wrote into a shared mark log: which group it belongs to
/// (e.g. its queue) and when it started or ended, in nanoseconds.
#[derive(Debug, Clone)]
pub struct Mark {
    /// The tag the job was given.
    pub tag: String,
    /// True for the start line, false for the end line.
    pub start: bool,
    /// `date +%s%N` when it was written.
    pub nanos: u128,
}

/// A shell line that appends `TAG start NANOS` to `log`, sleeps `secs`,
/// then appends `TAG end NANOS`: a job that says itself when it ran, so a
/// test can count overlaps without trusting the daemon's own times.
pub fn marked_sleep(log: &Path, tag: &str, secs: &str) -> String {
    format!(
        "echo \"{tag} start $(date +%s%N)\" >> '{0}'; sleep {secs}; echo \"{tag} end $(date +%s%N)\" >> '{0}'",
        log.display()
    )
}

/// Every mark in `log`, failing the test on a line that is not one.
pub fn read_marks(log: &Path) -> Vec<Mark> {
    let text = fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .map(|l| {
            let parts: Vec<&str> = l.split(' ').collect();
            match parts.as_slice() {
                [tag, kind @ ("start" | "end"), nanos] => Mark {
                    tag: (*tag).to_owned(),
                    start: *kind == "start",
                    nanos: nanos
                        .parse()
                        .unwrap_or_else(|e| panic!("bad time in {l:?} ({e}):\n{text}")),
                },
                _ => panic!("unexpected line {l:?} in {}:\n{text}", log.display()),
            }
        })
        .collect()
}

/// The most jobs running at once among `marks` (of any tag: filter first).
/// At equal times an end counts before a start, so jobs that merely touch
/// do not count as overlapping.
pub fn max_overlap<'a>(marks: impl IntoIterator<Item = &'a Mark>) -> usize {
    let mut events: Vec<(u128, i32)> = marks
        .into_iter()
        .map(|m| (m.nanos, if m.start { 1 } else { -1 }))
        .collect();
    events.sort();
    let (mut now, mut max) = (0i32, 0i32);
    for (_, delta) in events {
        now += delta;
        max = max.max(now);
    }
    usize::try_from(max).expect("never negative")
}

/// Copies a directory tree (a store fixture).
pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create dir");
    for entry in fs::read_dir(from).expect("read fixture dir") {
        let entry = entry.expect("read fixture entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).expect("copy fixture file");
        }
    }
}

/// A field of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`), if readable.
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?.strip_prefix(':')?;
        rest.trim().strip_suffix("kB")?.trim().parse().ok()
    })
}

/// Every pid in /proc (processes may be gone by the time they are read).
fn live_pids() -> impl Iterator<Item = u32> {
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
}

impl TestDaemon {
    /// The live (not zombie) processes of job `job_id` in process group
    /// `pgid` (they carry its `JOBQ_JOB_ID`).
    pub fn job_processes(pgid: u32, job_id: &str) -> Vec<u32> {
        // A pid (and so a process-group id) may be reused by another test's
        // job once the group is empty: only processes of *this* job count.
        let marker = format!("JOBQ_JOB_ID={job_id}");
        Self::group_members(pgid)
            .into_iter()
            .filter(|pid| {
                fs::read(format!("/proc/{pid}/environ"))
                    .map(|env| env.split(|b| *b == 0).any(|v| v == marker.as_bytes()))
                    .unwrap_or(false)
            })
            .collect()
    }

    /// The live (not zombie) processes, in any group, that carry job
    /// `job_id`'s `JOBQ_JOB_ID`.
    pub fn carrying(job_id: &str) -> Vec<u32> {
        let marker = format!("JOBQ_JOB_ID={job_id}");
        live_pids()
            .filter(|pid| {
                let live = fs::read_to_string(format!("/proc/{pid}/stat"))
                    .ok()
                    .and_then(|stat| {
                        let after = &stat[stat.rfind(')')? + 1..];
                        Some(after.split_whitespace().next()? != "Z")
                    })
                    .unwrap_or(false);
                live && fs::read(format!("/proc/{pid}/environ"))
                    .map(|env| env.split(|b| *b == 0).any(|v| v == marker.as_bytes()))
                    .unwrap_or(false)
            })
            .collect()
    }

    /// Live (not zombie) processes in process group `pgid`, whoever they
    /// belong to; prefer [`TestDaemon::job_processes`].
    pub fn group_members(pgid: u32) -> Vec<u32> {
        live_pids()
            .filter(|pid| {
                let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
                    return false;
                };
                // Fields after the command name, which is in parentheses and
                // may itself contain spaces: state, ppid, pgrp, …
                let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                    return false;
                };
                let fields: Vec<&str> = after.split_whitespace().collect();
                fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid.to_string()
            })
            .collect()
    }

    /// SIGKILLs every process still carrying this daemon's tag: jobs a
    /// killed daemon left behind.
    pub(super) fn kill_tagged_processes(&self) {
        self.kill_jobs();
    }

    /// SIGKILLs the jobs this daemon started that still run: with
    /// [`TestDaemon::kill9`], the death of a whole machine.
    pub fn kill_jobs(&self) {
        let needle = format!("{TAG_VAR}={}", self.tag);
        for pid in live_pids() {
            let mut environ = Vec::new();
            if File::open(format!("/proc/{pid}/environ"))
                .and_then(|mut f| f.read_to_end(&mut environ))
                .is_err()
            {
                continue;
            }
            if environ
                .split(|b| *b == 0)
                .any(|var| var == needle.as_bytes())
            {
                signal(pid, rustix::process::Signal::KILL);
            }
        }
    }
}

/// Sends `sig` to process `pid`; one that is gone already is no error.
pub fn signal(pid: u32, sig: rustix::process::Signal) {
    if let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process(pid, sig);
    }
}
