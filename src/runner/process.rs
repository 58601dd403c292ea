//! A job's leader as the daemon waits for it: through a pidfd, which turns
//! readable when the process exits, so waiting is one more descriptor in the
//! reactor — no SIGCHLD handler, no reaper thread, and no chance of reaping
//! some other child by mistake.

use std::os::fd::{AsFd, OwnedFd};

use async_io::Async;
use rustix::process::Pid;

use super::spawn::{reap, Reaped};
use crate::job::Exit;

/// A started process the daemon has not reaped yet.
pub struct Process {
    /// Its pid (also its process group id).
    pid: Pid,
    /// Readable once it has exited; `None` once reaped.
    pidfd: Option<Async<OwnedFd>>,
    /// How it ended and what it used, once reaped.
    reaped: Option<Reaped>,
}

impl Process {
    /// Takes charge of the process `pid` with its `pidfd`.
    pub fn new(pid: Pid, pidfd: OwnedFd) -> std::io::Result<Process> {
        Ok(Process {
            pid,
            pidfd: Some(Async::new(pidfd)?),
            reaped: None,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid.as_raw_nonzero().get() as u32
    }

    /// Waits for the process to exit and reaps it; once reaped, answers
    /// with the same exit again. Dropping the future before it resolves
    /// leaves the process unreaped, so it can be waited for again.
    pub async fn wait(&mut self) -> std::io::Result<Exit> {
        loop {
            if let Some(reaped) = self.reaped {
                return Ok(reaped.exit);
            }
            let Some(pidfd) = &self.pidfd else {
                return Err(std::io::Error::other("the process is gone"));
            };
            if let Some(reaped) = reap(pidfd.as_fd())? {
                self.reaped = Some(reaped);
                self.pidfd = None;
                continue;
            }
            pidfd.readable().await?;
        }
    }

    /// What it and the children it waited for used, once reaped.
    pub fn reaped(&self) -> Option<Reaped> {
        self.reaped
    }
}

impl Drop for Process {
    /// A process dropped unreaped (its run was abandoned) is reaped in the
    /// background, so it does not linger as a zombie.
    fn drop(&mut self) {
        if self.reaped.is_some() || self.pidfd.is_none() {
            return;
        }
        let mut rest = Process {
            pid: self.pid,
            pidfd: self.pidfd.take(),
            reaped: None,
        };
        crate::rt::spawn(async move {
            let _ = rest.wait().await;
        });
    }
}
