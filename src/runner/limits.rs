//! Resource limits (rlimits) a job starts with: what the daemon found at
//! its own start, given back to jobs after the daemon raised its own.
//!
//! The daemon raises its soft `RLIMIT_NOFILE` to the hard limit, since it
//! holds a descriptor per connection, follower and running job's pipes;
//! jobs get the soft limit it was started with, as any program started
//! there would (a soft limit above 1024 breaks programs that use
//! `select`).

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// One limit a job's leader gets before it execs (inherited by its
/// children): `resource` with soft `cur` and hard `max` (`u64::MAX` for
/// none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    /// `RLIMIT_*`.
    pub resource: libc::c_int,
    /// The soft limit.
    pub cur: u64,
    /// The hard limit.
    pub max: u64,
}

/// What the daemon's start leaves jobs: its umask and limits from before
/// it changed its own.
#[derive(Clone, Debug)]
pub struct Inherited {
    /// The umask jobs start with (the daemon's own is 077).
    pub umask: u32,
    /// Limits jobs start with.
    pub limits: Vec<Limit>,
}

/// The rlimits a job starts with: those it inherits, with its own
/// `limits` over them. `open_files` is `RLIMIT_NOFILE` exactly; `cpu_time`
/// is a per-process `RLIMIT_CPU` backstop (SIGXCPU at it, SIGKILL a second
/// later; the watch holds the sum over processes).
///
/// `processes` is not `RLIMIT_NPROC`: the kernel counts every process of
/// the job's user there, in every container of the machine, which the
/// daemon cannot see (tried: a job as `nobody` could not fork once); a
/// pids cgroup or the watch holds it.
pub fn for_job(inherited: &[Limit], limits: &crate::resources::Limits) -> Vec<Limit> {
    let mut out: Vec<Limit> = inherited.to_vec();
    let mut set = |resource: libc::__rlimit_resource_t, cur: u64, max: u64| {
        let resource = resource as libc::c_int;
        out.retain(|l| l.resource != resource);
        out.push(Limit { resource, cur, max });
    };
    if let Some(n) = limits.open_files {
        set(libc::RLIMIT_NOFILE, n, n);
    }
    if let Some(t) = limits.cpu_time {
        let secs = t.as_secs() + u64::from(t.subsec_nanos() > 0);
        set(libc::RLIMIT_CPU, secs, secs + 1);
    }
    out
}

/// The daemon's soft open-files limit as it is now.
pub fn open_files_now() -> u64 {
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// Raises the daemon's soft open-files limit to the hard one; returns the
/// limit it found, for jobs. Failure leaves the limit as it was.
pub fn raise_open_files() -> Limit {
    let found = getrlimit(Resource::Nofile);
    let limit = Limit {
        resource: libc::RLIMIT_NOFILE as libc::c_int,
        cur: found.current.unwrap_or(u64::MAX),
        max: found.maximum.unwrap_or(u64::MAX),
    };
    if found.current != found.maximum {
        let raised = Rlimit {
            current: found.maximum,
            maximum: found.maximum,
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!(error = %e, "cannot raise the open-files limit to its hard limit");
        }
    }
    limit
}
