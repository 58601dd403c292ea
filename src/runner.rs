//! One subprocess: spawn it in its own process group, feed its stdin, pump
//! its stdout and stderr into the output log, and stop the whole group when
//! asked (cancel, timeout, shutdown) or when the leader exits.
//!
//! A job *is* its process group, as a systemd service is its cgroup: when the
//! leader exits, whatever it left running in the group is killed, so nothing
//! a job started outlives it (a process that moves itself to a new session
//! with `setsid` escapes; see docs/design.md). The runner knows nothing of
//! the store's records or the job's state; the engine turns what it reports
//! into a transition.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_channel::Receiver;
use async_io::Timer;
use event_listener::Event;
use futures_lite::{future, AsyncReadExt, AsyncWriteExt};
use rustix::process::{kill_process_group, Pid, Signal};

use crate::job::{Exit, JobSpec, Program};
use crate::output::OutputWriter;
use crate::store::Stream;

/// How long output pipes may stay open after the leader exited and its group
/// was killed. Only a process that escaped the group (setsid) can hold them
/// that long; the job does not wait on it forever.
const PIPE_DRAIN_LIMIT: Duration = Duration::from_secs(2);
/// Read size of the output pumps: large enough that a fast writer costs few
/// store writes, small enough to forward output promptly.
const PUMP_BUFFER: usize = 64 * 1024;

/// Why the engine asks a running job to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// A user cancelled it.
    Cancel,
    /// It ran past its timeout.
    Timeout,
    /// The daemon is shutting down.
    Shutdown,
}

/// What the runner needs besides the spec.
#[derive(Clone, Debug)]
pub struct Launch {
    /// `shell` jobs run as `<shell> -c <line>`.
    pub shell: PathBuf,
    /// Working directory when the spec names none.
    pub work_dir: PathBuf,
    /// Time between SIGTERM and SIGKILL when stopping.
    pub kill_grace: Duration,
}

/// A process that could not be started; the message is the job's `error`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SpawnError(pub String);

/// How a supervised process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ended {
    /// The leader's exit.
    pub exit: Exit,
    /// Set when the engine stopped it, with the reason.
    pub stopped: Option<StopReason>,
}

/// A spawned job process, not yet supervised.
pub struct Child {
    /// The process; its pid is also the process group id.
    child: async_process::Child,
    /// Its pid, kept because `async_process::Child::id` is per-call.
    pid: u32,
}

/// Starts `spec` as the leader of a new process group.
pub async fn spawn(
    spec: &JobSpec,
    launch: &Launch,
    job_id: &str,
    has_stdin: bool,
) -> Result<Child, SpawnError> {
    let cwd: &Path = spec.cwd.as_deref().unwrap_or(&launch.work_dir);
    if !cwd.is_dir() {
        return Err(SpawnError(format!(
            "cannot start the job: working directory {} does not exist",
            cwd.display()
        )));
    }
    let (program, mut cmd) = match &spec.program {
        Program::Command(argv) => {
            let mut cmd = std::process::Command::new(&argv[0]);
            cmd.args(&argv[1..]);
            (argv[0].clone(), cmd)
        }
        Program::Shell(line) => {
            let mut cmd = std::process::Command::new(&launch.shell);
            cmd.arg("-c").arg(line);
            (launch.shell.display().to_string(), cmd)
        }
    };
    cmd.current_dir(cwd)
        .envs(&spec.env)
        .env("JOBQ_JOB_ID", job_id)
        .process_group(0);
    die_with_daemon(&mut cmd);
    let child = spawner()
        .spawn(cmd, has_stdin)
        .await
        .map_err(|e| SpawnError(format!("cannot start {program:?}: {e}")))?;
    let pid = child.id();
    Ok(Child { child, pid })
}

/// Makes the job's leader get SIGKILL when the daemon dies, so a crashed
/// daemon does not leave jobs running unsupervised. (What the leader
/// started lives on in its group until recovery kills the group.)
///
/// The kernel ties this to the *thread* that forked, not the process:
/// every job is therefore forked by one thread that lives as long as the
/// daemon ([`Spawner`]). Using `pre_exec` makes std fork+exec instead of
/// posix_spawn; see docs/benchmarks.md for what that costs.
fn die_with_daemon(cmd: &mut std::process::Command) {
    let daemon = rustix::process::getpid();
    // SAFETY: the closure runs in the child between fork and exec; it calls
    // only prctl and getppid, both async-signal-safe, and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
            // The daemon may have died before prctl took effect.
            if rustix::process::getppid() != Some(daemon) {
                return Err(std::io::Error::other("jobq died while starting the job"));
            }
            Ok(())
        });
    }
}

/// A spawn request: the command, whether stdin is piped, where the answer
/// goes.
type SpawnRequest = (
    std::process::Command,
    bool,
    async_channel::Sender<std::io::Result<async_process::Child>>,
);

/// The one long-lived thread that forks every job (see [`die_with_daemon`]).
struct Spawner {
    /// Requests to the thread.
    requests: std::sync::Mutex<std::sync::mpsc::Sender<SpawnRequest>>,
}

fn spawner() -> &'static Spawner {
    static SPAWNER: std::sync::OnceLock<Spawner> = std::sync::OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("jobq-spawner".into())
            .spawn(move || {
                for (cmd, has_stdin, reply) in rx {
                    // Converting resets the stdio settings, so they are set
                    // afterwards.
                    let mut cmd = async_process::Command::from(cmd);
                    cmd.stdin(if has_stdin {
                        Stdio::piped()
                    } else {
                        Stdio::null()
                    })
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .kill_on_drop(false);
                    let _ = reply.try_send(cmd.spawn());
                }
            })
            .expect("cannot start the jobq-spawner thread");
        Spawner {
            requests: std::sync::Mutex::new(tx),
        }
    })
}

impl Spawner {
    async fn spawn(
        &self,
        cmd: std::process::Command,
        has_stdin: bool,
    ) -> std::io::Result<async_process::Child> {
        let (tx, rx) = async_channel::bounded(1);
        let sent = self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send((cmd, has_stdin, tx));
        if sent.is_err() {
            return Err(std::io::Error::other("the jobq-spawner thread is gone"));
        }
        rx.recv()
            .await
            .unwrap_or_else(|_| Err(std::io::Error::other("the jobq-spawner thread is gone")))
    }
}

impl Child {
    /// The process id, which is also its process group id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Runs the job to its end: feeds `stdin`, pumps output into `out`,
    /// obeys `stop` and `timeout` (per attempt), and kills what is left of the group when the leader
    /// exits. Returns once the leader is reaped and the pipes are drained.
    pub async fn supervise(
        mut self,
        stdin: Option<Vec<u8>>,
        out: &OutputWriter,
        stop: Receiver<StopReason>,
        timeout: Option<Duration>,
        kill_grace: Duration,
    ) -> Ended {
        let pid = self.pid;
        let stdin_pipe = self.child.stdin.take();
        let stdout = self.child.stdout.take();
        let stderr = self.child.stderr.take();
        let leader_gone = Event::new();
        let gone = AtomicBool::new(false);

        let waiter = async {
            let ended = wait_or_stop(&mut self.child, pid, &stop, timeout, kill_grace).await;
            // Whatever the leader left in its group goes with it.
            signal_group(pid, Signal::KILL);
            gone.store(true, Ordering::SeqCst);
            leader_gone.notify(usize::MAX);
            ended
        };
        let io = async {
            let work = future::zip(
                feed(stdin_pipe, stdin),
                future::zip(
                    pump(stdout, Stream::Stdout, out),
                    pump(stderr, Stream::Stderr, out),
                ),
            );
            let limit = async {
                loop {
                    let listener = leader_gone.listen();
                    if gone.load(Ordering::SeqCst) {
                        break;
                    }
                    listener.await;
                }
                Timer::after(PIPE_DRAIN_LIMIT).await;
                tracing::warn!(pid, "output pipes still open after the job's group was killed; a process escaped the group");
            };
            future::race(
                async {
                    work.await;
                },
                limit,
            )
            .await;
        };
        future::zip(waiter, io).await.0
    }
}

/// Waits for the leader to exit; on a stop request, SIGTERM to the group,
/// then SIGKILL after the grace period.
async fn wait_or_stop(
    child: &mut async_process::Child,
    pid: u32,
    stop: &Receiver<StopReason>,
    timeout: Option<Duration>,
    kill_grace: Duration,
) -> Ended {
    enum First {
        Exited(std::io::Result<ExitStatus>),
        Stop(StopReason),
    }
    let stop_request = async {
        match stop.recv().await {
            Ok(reason) => First::Stop(reason),
            // The engine dropped the sender: nobody can stop us any more.
            Err(_) => future::pending().await,
        }
    };
    let deadline = async {
        match timeout {
            Some(limit) => {
                Timer::after(limit).await;
                First::Stop(StopReason::Timeout)
            }
            None => future::pending().await,
        }
    };
    let first = future::race(
        async { First::Exited(child.status().await) },
        future::race(stop_request, deadline),
    )
    .await;
    let (status, stopped) = match first {
        First::Exited(status) => (status, None),
        First::Stop(reason) => {
            signal_group(pid, Signal::TERM);
            let status = future::or(async { Some(child.status().await) }, async {
                Timer::after(kill_grace).await;
                None
            })
            .await;
            let status = match status {
                Some(status) => status,
                None => {
                    signal_group(pid, Signal::KILL);
                    child.status().await
                }
            };
            (status, Some(reason))
        }
    };
    let exit = match status {
        Ok(status) => exit_of(status),
        Err(e) => {
            // Only possible if the child was reaped behind our back; report
            // it as killed rather than inventing a success.
            tracing::error!(pid, error = %e, "cannot wait for job process");
            Exit::Signal(Signal::KILL.as_raw())
        }
    };
    Ended { exit, stopped }
}

fn exit_of(status: ExitStatus) -> Exit {
    match (status.code(), status.signal()) {
        (Some(code), _) => Exit::Code(code),
        (None, Some(sig)) => Exit::Signal(sig),
        (None, None) => Exit::Signal(Signal::KILL.as_raw()),
    }
}

/// Sends `sig` to process group `pgid`; a group that no longer exists is
/// not an error.
pub fn signal_group(pgid: u32, sig: Signal) {
    let Some(pid) = i32::try_from(pgid).ok().and_then(Pid::from_raw) else {
        return;
    };
    match kill_process_group(pid, sig) {
        Ok(()) | Err(rustix::io::Errno::SRCH) => {}
        Err(e) => {
            tracing::warn!(pgid, signal = ?sig, error = %e, "cannot signal job process group")
        }
    }
}

/// Writes `bytes` to the child's stdin, then closes it. A child that exits
/// without reading everything is not an error.
async fn feed(pipe: Option<async_process::ChildStdin>, bytes: Option<Vec<u8>>) {
    let (Some(mut pipe), Some(bytes)) = (pipe, bytes) else {
        return;
    };
    if let Err(e) = pipe.write_all(&bytes).await {
        tracing::debug!(error = %e, "job closed stdin before reading all of it");
    }
    let _ = pipe.close().await;
}

/// Copies one output pipe into the log until EOF.
async fn pump(
    pipe: Option<impl futures_lite::AsyncRead + Unpin>,
    stream: Stream,
    out: &OutputWriter,
) {
    let Some(mut pipe) = pipe else { return };
    let mut buf = vec![0u8; PUMP_BUFFER];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) => return,
            Ok(n) => {
                if let Err(e) = out.append(stream, &buf[..n]) {
                    // Keep draining: a full pipe would block the job.
                    tracing::error!(error = %e, "cannot store job output");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                tracing::warn!(error = %e, ?stream, "reading job output failed");
                return;
            }
        }
    }
}
