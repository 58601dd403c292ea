//! Ctrl-C during `submit --follow`: stop following, leave the job running,
//! and say how to cancel it.
//!
//! A thread waits for SIGINT (through `async-signal`, which the daemon
//! already uses: the handler only writes to a pipe, the thread does the
//! rest) and then prints the hint and ends the process with 130, the
//! shell's code for an interrupted command. The main thread may be blocked
//! in a read that no timeout cuts (a quiet job); ending the process from
//! the watcher does not depend on that read returning, which a flag checked
//! between reads would. Nothing is left to clean up: the job lives in the
//! daemon, and output already written was flushed.

use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use async_signal::{Signal, Signals};
use futures_lite::StreamExt;

/// The exit code after Ctrl-C: 128 + SIGINT, as a shell reports it.
pub const INTERRUPTED: i32 = 130;

/// The job a Ctrl-C leaves running, once there is one. While it is `None`
/// (before the submission answered, or once the job ended), Ctrl-C ends
/// the process quietly.
#[derive(Clone, Debug, Default)]
pub struct Watch {
    /// The job's id.
    job: Arc<Mutex<Option<String>>>,
}

impl Watch {
    /// Takes over SIGINT for the rest of the process.
    pub fn install() -> io::Result<Watch> {
        let watch = Watch::default();
        let mut signals = Signals::new([Signal::Int])?;
        let job = watch.job.clone();
        std::thread::Builder::new()
            .name("jobq-sigint".into())
            .spawn(move || {
                if async_io::block_on(signals.next()).is_some() {
                    let id = job.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    if let Some(id) = id {
                        // stderr is unbuffered; if it is gone there is
                        // no one to tell.
                        let _ = writeln!(
                            io::stderr(),
                            "jobq: still running; cancel with: jobq cancel {id}"
                        );
                    }
                    std::process::exit(INTERRUPTED);
                }
            })?;
        Ok(watch)
    }

    /// From now on, Ctrl-C names job `id` (or, with `None`, no job).
    pub fn set_job(&self, id: Option<&str>) {
        *self.job.lock().unwrap_or_else(|e| e.into_inner()) = id.map(str::to_owned);
    }
}
