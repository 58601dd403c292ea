//! Job events fanned out to subscribers (`GET /v1/events`, `jobq events`,
//! `jobq wait`): every durable state change of a job, in the order the
//! engine announces them.
//!
//! Each subscriber has a channel that grows as events wait in it (an idle
//! subscriber costs a few hundred bytes, not a preallocated buffer) and is
//! bounded by [`SUBSCRIBER_BUFFER`]. Publishing never waits: a subscriber
//! too slow to keep up is cut off (and told so), rather than slowing the
//! engine or growing memory; a client reconnects and re-reads what it
//! needs from `GET /v1/jobs`. A subscription dropped is forgotten at the
//! next subscribe or publish, whichever comes first.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_channel::{Receiver, Sender};
use jiff::Timestamp;

use crate::api::JobEvent;
use crate::job::{signal_name, Exit, Job, JobId, State};

/// Events a subscriber may fall behind by before it is cut off.
pub const SUBSCRIBER_BUFFER: usize = 4096;

/// Which events a subscriber wants.
#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    /// Only this job's.
    pub job: Option<JobId>,
    /// Only this queue's.
    pub queue: Option<String>,
}

impl EventFilter {
    fn accepts(&self, job: &Job) -> bool {
        self.job.is_none_or(|id| id == job.id)
            && self.queue.as_ref().is_none_or(|q| *q == job.spec.queue)
    }
}

/// A subscription: events arrive on `events`; `lagged` is set if the
/// subscriber was cut off for falling behind.
pub struct Subscription {
    /// The events, in order; closed when cut off or at shutdown.
    pub events: Receiver<JobEvent>,
    /// True once the subscription was cut off for falling behind.
    pub lagged: Arc<AtomicBool>,
}

struct Subscriber {
    filter: EventFilter,
    tx: Sender<JobEvent>,
    lagged: Arc<AtomicBool>,
}

/// The subscribers. A std mutex: publishing only does `try_send`, never
/// awaits while holding it.
#[derive(Default)]
pub struct EventHub {
    subscribers: Mutex<Vec<Subscriber>>,
}

impl EventHub {
    /// Subscribes to the events `filter` accepts, from now on.
    pub fn subscribe(&self, filter: EventFilter) -> Subscription {
        // Unbounded in the type, bounded in `publish`: a bounded channel
        // allocates its whole buffer up front, ~500 KB per subscriber.
        let (tx, rx) = async_channel::unbounded();
        let lagged = Arc::new(AtomicBool::new(false));
        let mut subscribers = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        subscribers.retain(|s| !s.tx.is_closed());
        subscribers.push(Subscriber {
            filter,
            tx,
            lagged: lagged.clone(),
        });
        Subscription { events: rx, lagged }
    }

    /// True while somebody is subscribed: a node of a cluster reads a job
    /// another node changed only for its subscribers.
    pub fn has_subscribers(&self) -> bool {
        let mut subscribers = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        subscribers.retain(|s| !s.tx.is_closed());
        !subscribers.is_empty()
    }

    /// Sends `job`'s new state to every subscriber that wants it.
    pub fn publish(&self, job: &Job) {
        let mut subscribers = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        if subscribers.is_empty() {
            return;
        }
        let event = snapshot(job);
        subscribers.retain(|s| {
            if !s.filter.accepts(job) {
                return !s.tx.is_closed();
            }
            if s.tx.len() >= SUBSCRIBER_BUFFER {
                crate::metrics::metrics().events_dropped.inc();
                s.lagged.store(true, Ordering::SeqCst);
                s.tx.close();
                return false;
            }
            s.tx.try_send(event.clone()).is_ok()
        });
    }

    /// Ends every subscription (shutdown).
    pub fn close(&self) {
        self.subscribers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

/// The event describing `job` as it is now.
pub fn snapshot(job: &Job) -> JobEvent {
    let (exit, reason, error) = match &job.state {
        State::Failed {
            exit,
            reason,
            error,
            ..
        } => (*exit, Some(*reason), error.clone()),
        State::Succeeded { .. } => (Some(Exit::Code(0)), None, None),
        State::Cancelled { exit, .. } => (*exit, None, None),
        _ => (None, None, None),
    };
    JobEvent {
        id: job.id.to_string(),
        number: job.number(),
        state: job.state.name(),
        queue: job.spec.queue.clone(),
        attempt: job.attempt,
        at: Timestamp::now(),
        exit_code: exit.and_then(Exit::code),
        signal: exit.and_then(Exit::signal).map(signal_name),
        reason,
        exit: job.wait_exit_code(),
        error,
    }
}
