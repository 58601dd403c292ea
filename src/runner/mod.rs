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

use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_channel::Receiver;
use async_io::{Async, Timer};
use event_listener::Event;
use futures_lite::{future, AsyncReadExt, AsyncWriteExt};
use rustix::process::{kill_process_group, Pid, Signal};

use crate::auth::Account;
use crate::job::{Exit, JobSpec, Program};
use crate::output::OutputWriter;
use crate::resources::{LimitKind, Limits, Usage};
use crate::store::{StdinSource, Stream};

mod cgroup;
pub mod identity;
pub mod limits;
mod process;
mod spawn;
pub mod strays;
mod watch;

pub use cgroup::Cgroups;
use cgroup::JobCgroup;
use process::Process;

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
    /// It passed one of its limits (the watch saw it).
    Limit(LimitKind),
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
    /// The user the daemon runs as: its own jobs start in `work_dir`
    /// without a change of user.
    pub daemon: Account,
    /// The part of the daemon's environment jobs get (`[jobs]
    /// inherit_env`), read once at start.
    pub base_env: Vec<(OsString, OsString)>,
    /// The umask and rlimits of job processes: those the daemon was
    /// started with, before it changed its own.
    pub inherited: limits::Inherited,
    /// Where jobs with a `processes` limit get a cgroup, if anywhere.
    pub cgroups: Cgroups,
}

/// A process that could not be started; the message is the job's `error`.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SpawnError {
    /// What went wrong, in words.
    pub message: String,
    /// The daemon ran short of a system resource (file descriptors,
    /// memory, processes): not the job's fault, so the job is started
    /// again later instead of failing.
    pub transient: bool,
}

impl SpawnError {
    /// A failure that is the job's (its program, user or directory).
    pub fn of_job(message: String) -> SpawnError {
        SpawnError {
            message,
            transient: false,
        }
    }

    /// A failure from `failure`, transient when its error is a shortage.
    fn from_failure(context: String, failure: spawn::SpawnFailure) -> SpawnError {
        let transient = failure
            .os_error()
            .is_some_and(|e| [libc::EMFILE, libc::ENFILE, libc::ENOMEM, libc::EAGAIN].contains(&e));
        SpawnError {
            message: format!("{context}: {failure}"),
            transient,
        }
    }
}

/// How a supervised process ended.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ended {
    /// The leader's exit.
    pub exit: Exit,
    /// Set when the engine stopped it, with the reason.
    pub stopped: Option<StopReason>,
    /// What its processes used.
    pub usage: Usage,
}

/// A spawned job process, not yet supervised.
pub struct Child {
    /// The leader; its pid is also the process group id.
    process: Process,
    /// The write end of its stdin, when piped.
    stdin: Option<Async<std::fs::File>>,
    /// The read end of its stdout.
    stdout: Async<std::fs::File>,
    /// The read end of its stderr.
    stderr: Async<std::fs::File>,
    /// Its cgroup, if it has one: removed once the job ended.
    cgroup: Option<JobCgroup>,
}

/// Starts `spec` as `account`, the leader of a new process group, which
/// gets SIGKILL if the daemon dies (see `src/runner/spawn.rs`).
pub async fn spawn(
    spec: &JobSpec,
    launch: &Launch,
    job_id: &str,
    has_stdin: bool,
    account: &Account,
) -> Result<Child, SpawnError> {
    let start = identity::start(
        spec,
        job_id,
        account,
        &launch.daemon,
        &launch.base_env,
        &launch.work_dir,
    );
    if start.credentials.is_some() && !launch.daemon.is_root() {
        return Err(SpawnError::of_job(format!(
            "cannot start the job as {:?}: jobq runs as {:?} and can start jobs only as itself",
            account.name, launch.daemon.name
        )));
    }
    if !start.cwd.is_dir() {
        return Err(SpawnError::of_job(format!(
            "cannot start the job: working directory {} does not exist",
            start.cwd.display()
        )));
    }
    let argv: Vec<OsString> = match &spec.program {
        Program::Command(argv) => argv.iter().map(OsString::from).collect(),
        Program::Shell(line) => vec![
            launch.shell.clone().into_os_string(),
            "-c".into(),
            line.into(),
        ],
    };
    let program = argv.first().cloned().unwrap_or_default();
    let failed =
        |e: spawn::SpawnFailure| SpawnError::from_failure(format!("cannot start {program:?}"), e);
    let rlimits = limits::for_job(&launch.inherited.limits, &spec.limits);
    let mut plan = spawn::Plan::new(&argv, start, has_stdin, launch.inherited.umask, &rlimits)
        .map_err(failed)?;
    let cgroup = match spec.limits.processes {
        Some(n) if launch.cgroups.has_pids() => {
            let cgroups = launch.cgroups.clone();
            let name = job_id.to_owned();
            blocking::unblock(move || cgroups.for_job(&name, n)).await
        }
        _ => None,
    };
    let cgroup = cgroup.map(|(cgroup, procs)| {
        plan.join_cgroup(procs);
        cgroup
    });
    let spawned = match spawn::spawn(plan).await {
        Ok(spawned) => spawned,
        Err(e) => {
            if let Some(cgroup) = cgroup {
                blocking::unblock(move || cgroup.remove()).await;
            }
            return Err(failed(e));
        }
    };
    let pid = spawned.pid;
    let wrap = |fd: OwnedFd| Async::new(std::fs::File::from(fd));
    let handles = (|| {
        let stdin = spawned.stdin.map(wrap).transpose()?;
        let stdout = wrap(spawned.stdout)?;
        let stderr = wrap(spawned.stderr)?;
        Ok::<_, std::io::Error>((Process::new(pid, spawned.pidfd)?, stdin, stdout, stderr))
    })();
    match handles {
        Ok((process, stdin, stdout, stderr)) => Ok(Child {
            process,
            stdin,
            stdout,
            stderr,
            cgroup,
        }),
        Err(e) => {
            // It runs, but cannot be supervised: stop and reap it.
            spawn::kill_and_reap(pid);
            if let Some(cgroup) = cgroup {
                blocking::unblock(move || cgroup.remove()).await;
            }
            let transient = e.raw_os_error().is_some_and(|e| {
                [libc::EMFILE, libc::ENFILE, libc::ENOMEM, libc::EAGAIN].contains(&e)
            });
            Err(SpawnError {
                message: format!("cannot supervise {program:?}: {e}"),
                transient,
            })
        }
    }
}

impl Child {
    /// The process id, which is also its process group id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Runs the job to its end: feeds `stdin`, pumps output into `out`,
    /// obeys `stop` and `timeout` (per attempt), and kills what is left of the group when the leader
    /// exits. Returns once the leader is reaped and the pipes are drained.
    pub async fn supervise(
        self,
        stdin: Option<StdinSource>,
        out: &OutputWriter,
        stop: Receiver<StopReason>,
        timeout: Option<Duration>,
        limits: Limits,
        kill_grace: Duration,
    ) -> Ended {
        let pid = self.process.pid();
        let Child {
            mut process,
            stdin: stdin_pipe,
            stdout,
            stderr,
            cgroup,
        } = self;
        let leader_gone = Event::new();
        let gone = AtomicBool::new(false);

        let waiter = async {
            let pids_events = cgroup.as_ref().map(JobCgroup::pids_events);
            let mut ended = wait_or_stop(
                &mut process,
                pid,
                &stop,
                timeout,
                (limits, pids_events.clone()),
                kill_grace,
            )
            .await;
            if ended.stopped.is_none() && watch::forks_were_refused(pids_events.as_deref()) {
                ended.stopped = Some(StopReason::Limit(LimitKind::Processes));
            }
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
        let ended = future::zip(waiter, io).await.0;
        if let Some(cgroup) = cgroup {
            blocking::unblock(move || cgroup.remove()).await;
        }
        ended
    }
}

/// Waits for the leader to exit; on a stop request, SIGTERM to the group,
/// then SIGKILL after the grace period.
async fn wait_or_stop(
    child: &mut Process,
    pid: u32,
    stop: &Receiver<StopReason>,
    timeout: Option<Duration>,
    (limits, pids_events): (Limits, Option<PathBuf>),
    kill_grace: Duration,
) -> Ended {
    enum First {
        Exited(std::io::Result<Exit>),
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
    let peak = std::sync::atomic::AtomicU64::new(0);
    let watched = async {
        let passed = watch::until_passed(watch::Watched {
            pid,
            limits,
            pids_events,
            peak: &peak,
        })
        .await;
        First::Stop(StopReason::Limit(passed))
    };
    let first = future::race(
        async { First::Exited(child.wait().await) },
        future::race(stop_request, future::race(deadline, watched)),
    )
    .await;
    let (status, stopped) = match first {
        First::Exited(status) => (status, None),
        First::Stop(reason @ StopReason::Limit(_)) => {
            // Past a limit there is no grace: more time is more memory.
            signal_group(pid, Signal::KILL);
            (child.wait().await, Some(reason))
        }
        First::Stop(reason) => {
            signal_group(pid, Signal::TERM);
            let status = future::or(async { Some(child.wait().await) }, async {
                Timer::after(kill_grace).await;
                None
            })
            .await;
            let status = match status {
                Some(status) => status,
                None => {
                    signal_group(pid, Signal::KILL);
                    child.wait().await
                }
            };
            (status, Some(reason))
        }
    };
    let exit = match status {
        Ok(exit) => exit,
        Err(e) => {
            // Only possible if the child was reaped behind our back; report
            // it as killed rather than inventing a success.
            tracing::error!(pid, error = %e, "cannot wait for job process");
            Exit::Signal(Signal::KILL.as_raw())
        }
    };
    let usage = child.reaped().map_or_else(Usage::default, |r| Usage {
        cpu_user_s: r.user.as_secs_f64(),
        cpu_system_s: r.system.as_secs_f64(),
        max_rss_bytes: peak.into_inner(),
    });
    Ended {
        exit,
        stopped,
        usage,
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

/// Writes the job's stdin into its pipe, then closes it: bytes as they
/// are, an upload's file a piece at a time (never whole in memory). A
/// child that exits without reading everything is not an error.
async fn feed(pipe: Option<Async<std::fs::File>>, source: Option<StdinSource>) {
    let (Some(mut pipe), Some(source)) = (pipe, source) else {
        return;
    };
    let fed = match source {
        StdinSource::Bytes(bytes) => pipe.write_all(&bytes).await,
        StdinSource::File(path) => match blocking::unblock(move || std::fs::File::open(path)).await
        {
            Ok(file) => {
                let file = blocking::Unblock::with_capacity(FEED_BUFFER, file);
                futures_lite::io::copy(file, &mut pipe).await.map(drop)
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot open the job's stdin file; it gets an empty stdin");
                Ok(())
            }
        },
    };
    if let Err(e) = fed {
        tracing::debug!(error = %e, "job closed stdin before reading all of it");
    }
    let _ = pipe.close().await;
}

/// Bytes of an upload read ahead while it is fed to a job's stdin.
const FEED_BUFFER: usize = 64 * 1024;

/// Copies one output pipe into the log until EOF.
async fn pump(mut pipe: Async<std::fs::File>, stream: Stream, out: &OutputWriter) {
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
