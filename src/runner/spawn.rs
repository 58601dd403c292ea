//! Starting a job's leader: a vfork-style `clone` whose child makes its
//! process group, drops to the job's user, sets the parent-death signal
//! and the umask, redirects stdio, changes directory and execs.
//!
//! Why not `std::process::Command` (or async-process, which wraps it): std
//! uses posix_spawn, which cannot set a death signal; with a `pre_exec` hook
//! it falls back to `fork`, which copies the daemon's page tables on every
//! job. That copy grows with the daemon's memory and halved job throughput
//! (docs/benchmarks.md). `clone(CLONE_VM | CLONE_VFORK)` shares the memory
//! instead, like glibc's posix_spawn, so a spawn costs the same whatever
//! the daemon holds.
//!
//! Everything the child needs is prepared beforehand ([`Plan`]): between
//! `clone` and `exec` the child runs on a borrowed stack in the daemon's
//! memory and may only make plain system calls: no allocation, no locks.
//!
//! The change of user is raw `setgroups`/`setresgid`/`setresuid` system
//! calls, not libc's wrappers: glibc's make every thread of the process
//! change credentials together (a signal to each), and this child shares
//! the daemon's memory and thread list bookkeeping; the raw calls change
//! only the calling task, which is the child. They come before the death
//! signal, which the kernel clears on a change of credentials, and before
//! `chdir`, so a home directory is entered as its owner. One side effect:
//! the kernel marks the shared memory (the daemon's) not dumpable when the
//! child changes credentials; the daemon then leaves no core dump, which
//! is as well for a process that holds tokens.

// The one place with unsafe code (`unsafe_code` is denied everywhere
// else): `clone`, the child before exec, and the system calls it makes.
#![allow(unsafe_code)]

use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};

use rustix::process::{Pid, WaitOptions};

use super::identity;

/// keyctl(2)'s operation that gives the caller a new anonymous session
/// keyring (linux/keyctl.h).
const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;

/// Stack for the child between `clone` and `exec`. It only makes a few
/// system calls; 256 KiB leaves a wide margin even for debug builds.
const CHILD_STACK: usize = 256 * 1024;

/// Where the child failed before running the program; it tells the user
/// which part of starting the job went wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
enum Step {
    Started = 0,
    ProcessGroup = 1,
    DeathSignal = 2,
    DaemonGone = 3,
    Stdio = 4,
    Cwd = 5,
    Exec = 6,
    Credentials = 7,
    Limits = 8,
    Cgroup = 9,
}

impl Step {
    fn from_raw(raw: i32) -> Step {
        match raw {
            1 => Step::ProcessGroup,
            2 => Step::DeathSignal,
            3 => Step::DaemonGone,
            4 => Step::Stdio,
            5 => Step::Cwd,
            6 => Step::Exec,
            7 => Step::Credentials,
            8 => Step::Limits,
            9 => Step::Cgroup,
            _ => Step::Started,
        }
    }
}

/// Why a job's process could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnFailure {
    /// An argument, variable or path holds a NUL byte, which exec cannot
    /// pass.
    #[error("{0} contains a NUL byte")]
    Nul(&'static str),
    /// There is no program to run.
    #[error("the command is empty")]
    EmptyCommand,
    /// A system call in the daemon failed (pipes, clone).
    #[error("{what}: {source}")]
    Daemon {
        /// What the daemon was doing.
        what: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// The child failed before the program ran.
    #[error("{what}{source}")]
    Child {
        /// Which step, as words ending in ": ", or nothing for exec.
        what: &'static str,
        /// The error.
        source: std::io::Error,
    },
}

impl SpawnFailure {
    /// The system's error number, when a system call failed.
    pub fn os_error(&self) -> Option<i32> {
        match self {
            SpawnFailure::Daemon { source, .. } | SpawnFailure::Child { source, .. } => {
                source.raw_os_error()
            }
            _ => None,
        }
    }
}

/// Everything the child needs, as C strings and pointer arrays built before
/// `clone`.
pub struct Plan {
    /// Paths to try in order (the PATH search is done here, not in the
    /// child).
    candidates: Vec<CString>,
    /// Argument vector, `argv[0]` included.
    argv: Vec<CString>,
    /// `KEY=value` environment.
    envp: Vec<CString>,
    /// Working directory.
    cwd: CString,
    /// Whether stdin is a pipe (else /dev/null).
    piped_stdin: bool,
    /// The user and groups to switch to, if any.
    credentials: Option<Credentials>,
    /// The umask the program starts with.
    umask: libc::mode_t,
    /// Resource limits it starts with.
    limits: Vec<(libc::c_int, libc::rlimit)>,
    /// The `cgroup.procs` of the cgroup it starts in, if any.
    cgroup: Option<OwnedFd>,
}

/// The ids of [`identity::Credentials`] as the system calls take them.
struct Credentials {
    uid: libc::uid_t,
    gid: libc::gid_t,
    groups: Vec<libc::gid_t>,
}

impl Plan {
    /// Prepares `argv` (first element the program) to start as `start`
    /// says, with umask `umask`.
    pub fn new(
        argv: &[OsString],
        start: identity::Start,
        piped_stdin: bool,
        umask: u32,
        limits: &[super::limits::Limit],
    ) -> Result<Plan, SpawnFailure> {
        let vars = start.env;
        let cwd: &Path = &start.cwd;
        let program = argv.first().ok_or(SpawnFailure::EmptyCommand)?;
        let candidates = candidates(program, vars.get(OsStr::new("PATH")).map(|p| p.as_os_str()))?;
        let argv = argv
            .iter()
            .map(|a| c_string(a.as_bytes().to_vec(), "an argument"))
            .collect::<Result<_, _>>()?;
        let envp = vars
            .into_iter()
            .map(|(k, v)| {
                let mut kv = k.into_vec();
                kv.push(b'=');
                kv.extend_from_slice(v.as_bytes());
                c_string(kv, "an environment variable")
            })
            .collect::<Result<_, _>>()?;
        let cwd = c_string(cwd.as_os_str().as_bytes().to_vec(), "the working directory")?;
        Ok(Plan {
            candidates,
            argv,
            envp,
            cwd,
            piped_stdin,
            credentials: start.credentials.map(|c| Credentials {
                uid: c.uid,
                gid: c.gid,
                groups: c.groups,
            }),
            umask: umask as libc::mode_t,
            limits: limits
                .iter()
                .map(|l| {
                    let value = |v: u64| {
                        if v == u64::MAX {
                            libc::RLIM_INFINITY
                        } else {
                            v as libc::rlim_t
                        }
                    };
                    (
                        l.resource,
                        libc::rlimit {
                            rlim_cur: value(l.cur),
                            rlim_max: value(l.max),
                        },
                    )
                })
                .collect(),
            cgroup: None,
        })
    }

    /// Starts the program in the cgroup whose `cgroup.procs` is `procs`
    /// (open for writing).
    pub fn join_cgroup(&mut self, procs: OwnedFd) {
        self.cgroup = Some(procs);
    }
}

fn c_string(bytes: Vec<u8>, what: &'static str) -> Result<CString, SpawnFailure> {
    CString::new(bytes).map_err(|_| SpawnFailure::Nul(what))
}

/// The paths exec tries for `program`, as `execvp` would: the program
/// itself if it names a path, else each directory of PATH in turn.
fn candidates(program: &OsStr, path: Option<&OsStr>) -> Result<Vec<CString>, SpawnFailure> {
    let bytes = program.as_bytes();
    if bytes.contains(&b'/') {
        return Ok(vec![c_string(bytes.to_vec(), "the program")?]);
    }
    let path = path
        .map(OsStr::as_bytes)
        .unwrap_or(b"/usr/local/bin:/usr/bin:/bin");
    path.split(|b| *b == b':')
        .map(|dir| {
            let mut full = if dir.is_empty() {
                b".".to_vec()
            } else {
                dir.to_vec()
            };
            full.push(b'/');
            full.extend_from_slice(bytes);
            c_string(full, "the program")
        })
        .collect()
}

/// A started leader: its pid and the daemon's ends of its pipes.
pub struct Spawned {
    /// Process id, also its process group id.
    pub pid: Pid,
    /// A pidfd for the process: readable once it has exited.
    pub pidfd: OwnedFd,
    /// The write end of its stdin, when piped.
    pub stdin: Option<OwnedFd>,
    /// The read end of its stdout.
    pub stdout: OwnedFd,
    /// The read end of its stderr.
    pub stderr: OwnedFd,
}

/// What the child reads: raw pointers into the [`Plan`] and the fds, and
/// where it reports a failure. It lives on the parent's stack, which stays
/// put while the parent is suspended by `CLONE_VFORK`.
#[repr(C)]
struct ChildArgs {
    stdio: [RawFd; 3],
    /// A job cgroup's `cgroup.procs`, open for writing, or -1.
    cgroup: RawFd,
    /// Whether to switch user, and to what.
    switch: bool,
    uid: libc::uid_t,
    gid: libc::gid_t,
    groups: *const libc::gid_t,
    ngroups: libc::size_t,
    umask: libc::mode_t,
    limits: *const (libc::c_int, libc::rlimit),
    nlimits: libc::size_t,
    cwd: *const libc::c_char,
    candidates: *const *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    daemon: libc::pid_t,
    failed_step: AtomicI32,
    failed_errno: AtomicI32,
}

fn null_terminated(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// Moves `fd` above the standard descriptors, so that redirecting stdio in
/// the child cannot overwrite one source with another.
fn above_stdio(fd: OwnedFd, what: &'static str) -> Result<OwnedFd, SpawnFailure> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    rustix::io::fcntl_dupfd_cloexec(&fd, 3).map_err(|e| SpawnFailure::Daemon {
        what,
        source: e.into(),
    })
}

fn pipe(what: &'static str) -> Result<(OwnedFd, OwnedFd), SpawnFailure> {
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(|e| {
        SpawnFailure::Daemon {
            what,
            source: e.into(),
        }
    })?;
    Ok((above_stdio(r, what)?, above_stdio(w, what)?))
}

/// A spawn request: the plan and where the answer goes.
type Request = (Plan, async_channel::Sender<Result<Spawned, SpawnFailure>>);

/// The one long-lived thread that creates every job process.
///
/// The parent-death signal fires when the *thread* that created the child
/// ends, not the process; this thread lives as long as the daemon, so a job
/// dies with the daemon and with nothing else.
struct Spawner {
    /// Requests to the thread.
    requests: std::sync::mpsc::Sender<Request>,
}

fn spawner() -> &'static Spawner {
    static SPAWNER: std::sync::OnceLock<Spawner> = std::sync::OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("jobq-spawner".into())
            .spawn(move || {
                let mut stack = vec![0u8; CHILD_STACK].into_boxed_slice();
                for (plan, reply) in rx {
                    let _ = reply.try_send(spawn_here(&plan, &mut stack));
                }
            })
            .expect("cannot start the jobq-spawner thread");
        Spawner { requests: tx }
    })
}

/// Starts `plan`'s program as the leader of a new process group that gets
/// SIGKILL when the daemon ends. Resolves once the child has exec'd.
pub async fn spawn(plan: Plan) -> Result<Spawned, SpawnFailure> {
    let gone = || SpawnFailure::Daemon {
        what: "cannot start the job",
        source: std::io::Error::other("the jobq-spawner thread is gone"),
    };
    let (tx, rx) = async_channel::bounded(1);
    // Unbounded, so sending never blocks; the `workers` limit bounds it.
    spawner().requests.send((plan, tx)).map_err(|_| gone())?;
    rx.recv().await.unwrap_or_else(|_| Err(gone()))
}

/// Does the work of [`spawn`] on the calling thread, with `stack` as the
/// child's stack until it execs.
fn spawn_here(plan: &Plan, stack: &mut [u8]) -> Result<Spawned, SpawnFailure> {
    let (stdin_child, stdin) = if plan.piped_stdin {
        let (r, w) = pipe("cannot create the stdin pipe")?;
        (r, Some(w))
    } else {
        let null = rustix::fs::open(
            "/dev/null",
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| SpawnFailure::Daemon {
            what: "cannot open /dev/null",
            source: e.into(),
        })?;
        (above_stdio(null, "cannot open /dev/null")?, None)
    };
    let (stdout, stdout_child) = pipe("cannot create the stdout pipe")?;
    let (stderr, stderr_child) = pipe("cannot create the stderr pipe")?;

    let candidates = null_terminated(&plan.candidates);
    let argv = null_terminated(&plan.argv);
    let envp = null_terminated(&plan.envp);
    let no_groups: [libc::gid_t; 0] = [];
    let (switch, uid, gid, groups) = match &plan.credentials {
        Some(c) => (true, c.uid, c.gid, c.groups.as_slice()),
        None => (false, 0, 0, &no_groups[..]),
    };
    let args = ChildArgs {
        stdio: [
            stdin_child.as_raw_fd(),
            stdout_child.as_raw_fd(),
            stderr_child.as_raw_fd(),
        ],
        cgroup: plan.cgroup.as_ref().map_or(-1, |fd| fd.as_raw_fd()),
        switch,
        uid,
        gid,
        groups: groups.as_ptr(),
        ngroups: groups.len(),
        umask: plan.umask,
        limits: plan.limits.as_ptr(),
        nlimits: plan.limits.len(),
        cwd: plan.cwd.as_ptr(),
        candidates: candidates.as_ptr(),
        argv: argv.as_ptr(),
        envp: envp.as_ptr(),
        daemon: rustix::process::getpid().as_raw_nonzero().get(),
        failed_step: AtomicI32::new(Step::Started as i32),
        failed_errno: AtomicI32::new(0),
    };
    // SAFETY: the child runs `child_main` on its own stack (the top of
    // `stack`, 16-byte aligned) and shares our memory; CLONE_VFORK keeps
    // this thread suspended until the child has exec'd or exited, so
    // `args`, the plan and the stack outlive its use of them. All signals
    // are blocked around the clone so that no handler of the daemon runs in
    // the child; the child resets them before unblocking.
    let pid = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let top = stack.as_mut_ptr().add(stack.len());
        let top = top.sub(top as usize % 16);
        let pid = libc::clone(
            child_main,
            top.cast(),
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            std::ptr::from_ref(&args).cast_mut().cast(),
        );
        let clone_error = std::io::Error::last_os_error();
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        if pid < 0 {
            return Err(SpawnFailure::Daemon {
                what: "cannot create a process",
                source: clone_error,
            });
        }
        pid
    };
    let pid = Pid::from_raw(pid).expect("clone returned a positive pid");

    let step = Step::from_raw(args.failed_step.load(Ordering::SeqCst));
    if step != Step::Started {
        // The child has exited already; reap it so no zombie is left.
        let _ = rustix::process::waitpid(Some(pid), WaitOptions::empty());
        let source = std::io::Error::from_raw_os_error(args.failed_errno.load(Ordering::SeqCst));
        let what = match step {
            Step::ProcessGroup => "cannot create its process group: ",
            Step::DeathSignal => "cannot set its parent-death signal: ",
            Step::DaemonGone => "the daemon ended while it started: ",
            Step::Stdio => "cannot redirect its stdin/stdout/stderr: ",
            Step::Cwd => "cannot change to its working directory: ",
            Step::Credentials => "cannot switch to its user: ",
            Step::Limits => "cannot set its resource limits: ",
            Step::Cgroup => "cannot join its cgroup: ",
            Step::Exec | Step::Started => "",
        };
        return Err(SpawnFailure::Child { what, source });
    }
    let pidfd = match rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()) {
        Ok(fd) => fd,
        Err(e) => {
            // Without a pidfd the daemon cannot supervise it: undo.
            kill_and_reap(pid);
            return Err(SpawnFailure::Daemon {
                what: "cannot open a pidfd for the new process",
                source: e.into(),
            });
        }
    };
    Ok(Spawned {
        pid,
        pidfd,
        stdin,
        stdout,
        stderr,
    })
}

/// Reports `step` and the current errno to the parent and exits the child.
///
/// # Safety
/// Only for the child of [`spawn`], before exec.
unsafe fn fail(args: &ChildArgs, step: Step) -> ! {
    // SAFETY: errno is this thread's (the parent's, shared); reading it is
    // a plain load.
    unsafe {
        args.failed_errno
            .store(*libc::__errno_location(), Ordering::SeqCst);
        args.failed_step.store(step as i32, Ordering::SeqCst);
        libc::_exit(127)
    }
}

/// Undoes a start the daemon cannot supervise: SIGKILL to the new group,
/// then reaps the leader so no zombie is left.
pub fn kill_and_reap(pid: Pid) {
    let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    let _ = rustix::process::waitpid(Some(pid), WaitOptions::empty());
}

/// The child between `clone` and `exec`. Plain system calls only: it shares
/// the daemon's memory, and any lock or allocation could deadlock or
/// corrupt it.
extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` points at the parent's `ChildArgs`, alive while the
    // parent is suspended; every pointer in it is a valid C string or a
    // NULL-terminated array of them. The calls are async-signal-safe.
    unsafe {
        let args = &*(arg as *const ChildArgs);

        // Handlers would run the daemon's code in this shared memory: back
        // to the defaults, and SIGPIPE too, which Rust's runtime ignores.
        for sig in 1..=64 {
            if sig == libc::SIGKILL || sig == libc::SIGSTOP {
                continue;
            }
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut old) != 0 {
                continue;
            }
            let ignored = old.sa_sigaction == libc::SIG_IGN;
            if old.sa_sigaction != libc::SIG_DFL && (!ignored || sig == libc::SIGPIPE) {
                let mut dfl: libc::sigaction = std::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(sig, &dfl, std::ptr::null_mut());
            }
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());

        if libc::setpgid(0, 0) != 0 {
            fail(args, Step::ProcessGroup);
        }
        // Into the job's cgroup before anything else can fork, and as root
        // (the cgroup's files are the daemon's): "0" is the writer itself.
        if args.cgroup >= 0 && libc::write(args.cgroup, b"0".as_ptr().cast(), 1) != 1 {
            fail(args, Step::Cgroup);
        }
        // Limits before the change of user: root may set any, a user only
        // lower its own.
        for i in 0..args.nlimits {
            let (resource, ref limit) = *args.limits.add(i);
            if libc::setrlimit(resource as _, limit) != 0 {
                fail(args, Step::Limits);
            }
        }
        // Groups, then group, then user: once the uid is not root, the
        // others can no longer be changed. Raw calls: see the module doc.
        if args.switch
            && (libc::syscall(libc::SYS_setgroups, args.ngroups, args.groups) != 0
                || libc::syscall(libc::SYS_setresgid, args.gid, args.gid, args.gid) != 0
                || libc::syscall(libc::SYS_setresuid, args.uid, args.uid, args.uid) != 0)
        {
            fail(args, Step::Credentials);
        }
        if args.switch {
            // A session keyring of its own, so that jobs of different
            // users do not share the daemon's. Best effort: a seccomp
            // filter may refuse keyctl, and a job runs without one.
            libc::syscall(
                libc::SYS_keyctl,
                KEYCTL_JOIN_SESSION_KEYRING,
                std::ptr::null::<libc::c_char>(),
            );
        }
        libc::umask(args.umask);
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
            fail(args, Step::DeathSignal);
        }
        // The daemon may have died before the death signal was armed.
        if libc::getppid() != args.daemon {
            *libc::__errno_location() = libc::ESRCH;
            fail(args, Step::DaemonGone);
        }
        for (target, &fd) in args.stdio.iter().enumerate() {
            // The sources are all above 2 (see `above_stdio`) and
            // close-on-exec; dup2 gives the copy a clear flag.
            if libc::dup2(fd, target as libc::c_int) < 0 {
                fail(args, Step::Stdio);
            }
        }
        if libc::chdir(args.cwd) != 0 {
            fail(args, Step::Cwd);
        }
        // As execvp: skip directories where the program is not, remember a
        // permission error, stop at any other error.
        let mut errno = libc::ENOENT;
        let mut next = args.candidates;
        while !(*next).is_null() {
            libc::execve(*next, args.argv, args.envp);
            match *libc::__errno_location() {
                libc::ENOENT | libc::ENOTDIR => {}
                libc::EACCES => errno = libc::EACCES,
                other => {
                    errno = other;
                    break;
                }
            }
            next = next.add(1);
        }
        *libc::__errno_location() = errno;
        fail(args, Step::Exec)
    }
}

/// How a reaped process ended, and the kernel's account of the CPU time
/// it and the children it waited for used. (Not `ru_maxrss`: the child
/// shared the daemon's memory until it exec'd, and the kernel carries that
/// memory's peak into it; `watch.rs` samples the job's own.)
#[derive(Clone, Copy, Debug)]
pub struct Reaped {
    /// Its exit code, or the signal that ended it.
    pub exit: crate::job::Exit,
    /// CPU time in user mode.
    pub user: std::time::Duration,
    /// CPU time in the kernel.
    pub system: std::time::Duration,
}

/// Reaps the exited process behind `pidfd`, if it has exited; `Ok(None)`
/// while it runs. The raw `waitid` system call, for the `rusage` its fifth
/// argument returns (libc's wrapper and rustix's leave it out).
pub fn reap(pidfd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<Option<Reaped>> {
    // SAFETY: zeroed siginfo_t and rusage are valid values of these plain C
    // structs; the kernel fills them. `waitid` with P_PIDFD reads the fd
    // number and writes only through the two pointers, both valid for the
    // call.
    let (info, usage) = unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let mut usage: libc::rusage = std::mem::zeroed();
        let rc = libc::syscall(
            libc::SYS_waitid,
            libc::P_PIDFD,
            pidfd.as_raw_fd(),
            &mut info as *mut libc::siginfo_t,
            libc::WEXITED | libc::WNOHANG,
            &mut usage as *mut libc::rusage,
        );
        if rc < 0 {
            return Err(std::io::Error::last_os_error());
        }
        (info, usage)
    };
    // SAFETY: the kernel filled the SIGCHLD fields (pid, status) of
    // `info`, or left them zero when nothing has exited yet.
    let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
    if pid == 0 {
        return Ok(None);
    }
    let exit = match info.si_code {
        libc::CLD_EXITED => crate::job::Exit::Code(status),
        _ => crate::job::Exit::Signal(status),
    };
    let time = |t: libc::timeval| {
        std::time::Duration::from_secs(t.tv_sec.max(0) as u64)
            + std::time::Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    Ok(Some(Reaped {
        exit,
        user: time(usage.ru_utime),
        system: time(usage.ru_stime),
    }))
}
