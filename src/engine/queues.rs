//! Per-queue limits: each queue's concurrency and pause flag, and how many
//! of its jobs run now. Together with the ready queues this decides which
//! queue may start a job; the global `workers` limit is a semaphore apart.
//!
//! A queue's limit comes from, in order: a `PATCH` (stored, survives
//! restarts), `[queues.NAME] concurrency` in the config,
//! `default_concurrency`, else no limit but `workers`. Queues need no
//! declaration: a name in use is a queue.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use crate::api::{QueuePatch, QueueView};
use crate::config::Config;
use crate::job::StateName;
use crate::store::QueueSettings;

/// One queue's live state.
#[derive(Clone, Debug, Default)]
struct QueueState {
    /// What was stored by `PATCH`.
    settings: QueueSettings,
    /// Its jobs running now.
    running: usize,
}

/// Every queue's limits and running counts.
pub struct QueueLimits {
    /// Configured limits.
    config: Arc<Config>,
    /// Queues with settings or running jobs.
    queues: HashMap<String, QueueState>,
}

impl Default for QueueLimits {
    fn default() -> Self {
        QueueLimits::new(Arc::new(Config::default()))
    }
}

impl QueueLimits {
    /// Limits from `config`, no queue running anything.
    pub fn new(config: Arc<Config>) -> QueueLimits {
        QueueLimits {
            config,
            queues: HashMap::new(),
        }
    }

    /// Restores a queue's stored settings at start.
    pub fn restore(&mut self, name: &str, settings: QueueSettings) {
        self.queues.entry(name.to_owned()).or_default().settings = settings;
    }

    fn limit(&self, name: &str, state: Option<&QueueState>) -> Option<usize> {
        state
            .and_then(|q| q.settings.concurrency)
            .or_else(|| self.config.queue_concurrency(name))
    }

    /// True when a job of `name` may start now.
    pub fn has_room(&self, name: &str) -> bool {
        let state = self.queues.get(name);
        if state.is_some_and(|q| q.settings.paused) {
            return false;
        }
        let running = state.map_or(0, |q| q.running);
        self.limit(name, state).is_none_or(|limit| running < limit)
    }

    /// A job of `name` started.
    pub fn started(&mut self, name: &str) {
        self.queues.entry(name.to_owned()).or_default().running += 1;
    }

    /// A job of `name` ended.
    pub fn finished(&mut self, name: &str) {
        if let Some(q) = self.queues.get_mut(name) {
            q.running = q.running.saturating_sub(1);
        }
    }

    /// Applies a patch; returns the settings to store.
    pub fn patch(&mut self, name: &str, patch: QueuePatch) -> QueueSettings {
        let q = self.queues.entry(name.to_owned()).or_default();
        if let Some(concurrency) = patch.concurrency {
            q.settings.concurrency = concurrency;
        }
        if let Some(paused) = patch.paused {
            q.settings.paused = paused;
        }
        q.settings.clone()
    }

    /// True when `name` is a queue: it has jobs (in `counts`), stored
    /// settings, running jobs or a config entry, or is `default`.
    pub fn knows(&self, name: &str, counts: &BTreeMap<(String, StateName), u64>) -> bool {
        name == "default"
            || self.queues.contains_key(name)
            || self.config.queues.contains_key(name)
            || has_jobs(name, counts)
    }

    /// Forgets the queue's settings, or says why it may not: it has jobs,
    /// or is `default` or in the config (which would bring it back).
    pub fn remove(
        &mut self,
        name: &str,
        counts: &BTreeMap<(String, StateName), u64>,
    ) -> Result<(), String> {
        let running = self.queues.get(name).map_or(0, |q| q.running);
        if running > 0 || has_jobs(name, counts) {
            let jobs: u64 = StateName::ALL
                .iter()
                .map(|s| counts.get(&(name.to_owned(), *s)).copied().unwrap_or(0))
                .sum();
            return Err(format!(
                "it has {} jobs (remove them first, e.g. with `jobq clean --queue {name}`)",
                jobs.max(running as u64)
            ));
        }
        if name == "default" {
            return Err("it is the default queue".to_owned());
        }
        if self.config.queues.contains_key(name) {
            return Err(format!(
                "the config file declares it ([queues.{name}]); remove it there"
            ));
        }
        self.queues.remove(name);
        Ok(())
    }

    /// One queue's view, with its counts taken from `counts`.
    pub fn view(&self, name: &str, counts: &BTreeMap<(String, StateName), u64>) -> QueueView {
        let state = self.queues.get(name);
        QueueView {
            name: name.to_owned(),
            concurrency: self.limit(name, state),
            paused: state.is_some_and(|q| q.settings.paused),
            running: state.map_or(0, |q| q.running),
            counts: StateName::ALL
                .iter()
                .map(|s| (*s, counts.get(&(name.to_owned(), *s)).copied().unwrap_or(0)))
                .collect(),
        }
    }

    /// Every queue that has jobs, settings or a config entry, by name
    /// (those [`knows`](Self::knows)).
    pub fn views(&self, counts: &BTreeMap<(String, StateName), u64>) -> Vec<QueueView> {
        let mut names: BTreeSet<&str> = counts.keys().map(|(q, _)| q.as_str()).collect();
        names.extend(self.queues.keys().map(String::as_str));
        names.extend(self.config.queues.keys().map(String::as_str));
        names.insert("default");
        names.into_iter().map(|n| self.view(n, counts)).collect()
    }
}

/// True when `counts` has a job of queue `name` in any state.
fn has_jobs(name: &str, counts: &BTreeMap<(String, StateName), u64>) -> bool {
    StateName::ALL
        .iter()
        .any(|s| counts.get(&(name.to_owned(), *s)).is_some_and(|n| *n > 0))
}
