//! Recovery at start: one rule per stored state, and the killing of
//! process groups a crashed daemon left behind.

use super::*;

/// Kills what is left of a job's process group after a crash of the daemon.
///
/// A recorded pid may have been reused since (after a reboot, say), so a
/// group is killed only if one of its processes carries this job's
/// `JOBQ_JOB_ID` in its environment: the runner sets it in every job.
fn kill_orphaned_group(pgid: u32, id: &JobId) {
    let marker = format!("JOBQ_JOB_ID={id}");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    let ours = entries.flatten().any(|entry| {
        let path = entry.path();
        let in_group = std::fs::read_to_string(path.join("stat"))
            .ok()
            .and_then(|stat| {
                // Field 5 (pgrp) follows the parenthesised command name.
                let after = stat.rsplit_once(')')?.1;
                after.split_whitespace().nth(2)?.parse::<u32>().ok()
            })
            == Some(pgid);
        in_group
            && std::fs::read(path.join("environ"))
                .map(|env| env.split(|b| *b == 0).any(|var| var == marker.as_bytes()))
                .unwrap_or(false)
    });
    if ours {
        tracing::warn!(job = %id, pgid, "killing the process group a crashed jobq left running");
        runner::signal_group(pgid, rustix::process::Signal::KILL);
    }
}

impl Engine {
    /// Brings the store to a consistent state after a start, one rule per
    /// stored state, and loads the in-memory queues. Returns how many
    /// interrupted jobs were found.
    pub async fn recover(&self) -> Result<usize, EngineError> {
        let store = &self.inner.store;
        let now = Timestamp::now();
        let interrupted = store.running_jobs()?;
        let mut sched = self.inner.sched.lock().await;
        let mut changes = Vec::new();
        for job in &interrupted {
            // running: it has no supervisor any more. Its process group, if
            // it survived us, is killed first, so the job never runs twice at
            // the same time; then the policy decides.
            if let State::Running { pid, .. } = job.state {
                kill_orphaned_group(pid, &job.id);
            }
            let mut next = job.clone();
            match self.inner.config.on_interrupted {
                OnInterrupted::Requeue => next.requeue_interrupted(now)?,
                OnInterrupted::Fail => next.fail_interrupted(now)?,
            }
            tracing::info!(job = %job.id, policy = ?self.inner.config.on_interrupted, "job was running when jobq stopped");
            let mut follow = self.cascade(&next, now)?;
            changes.push((job.clone(), next));
            changes.append(&mut follow);
        }
        apply(store, &changes)?;
        // queued (including those just re-queued): back in line, in order.
        let entries = store.ready_entries()?;
        for e in &entries {
            sched.ready.push(&e.queue, e.priority, e.seq, e.id);
        }
        // scheduled: back on the timers; any already due run right away.
        let timers = store.scheduled()?;
        sched.timers.extend(timers.iter().copied());
        // waiting: nothing to load; their edges are in the store and the
        // jobs they wait for wake them.
        // paused queues and changed limits survive a restart.
        for (name, settings) in store.queue_settings()? {
            sched.queues.restore(&name, settings);
        }
        drop(sched);
        store.sync().await?;
        tracing::info!(
            queued = entries.len(),
            scheduled = timers.len(),
            interrupted = interrupted.len(),
            "recovered"
        );
        Ok(interrupted.len())
    }
}
