//! The daemon's Prometheus metrics (`GET /metrics`, text format): what
//! jobs do, how the store and the API keep up. One registry for the
//! process, reached through [`metrics`], so the store's flusher, the output
//! writer, the event hub, the engine and the HTTP layer each count where
//! the thing happens without a handle threaded through every constructor.
//!
//! Counters and histograms move as things happen; the per-state job gauge
//! and the busy workers are set from the engine's own counts at each
//! scrape ([`Metrics::encode`]), so they never drift from `GET /v1/queues`.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use crate::job::StateName;

/// `queue`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabel {
    /// The queue's name.
    pub queue: String,
}

/// `queue`, `state`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueState {
    /// The queue's name.
    pub queue: String,
    /// A state name (`succeeded`, `failed`…).
    pub state: String,
}

/// `route`, `status` of an HTTP request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteStatus {
    /// The route's pattern (`/v1/jobs/:id`), or `unmatched`.
    pub route: String,
    /// The answer's status code.
    pub status: u16,
}

/// `route` of an HTTP request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    /// The route's pattern (`/v1/jobs/:id`), or `unmatched`.
    pub route: String,
}

/// `stream` of output.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StreamLabel {
    /// `stdout` or `stderr`.
    pub stream: &'static str,
}

/// `version`, `commit` of the running binary.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    commit: &'static str,
}

/// The configured limits the gauges show.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// `workers`.
    pub workers: usize,
    /// `max_queued`.
    pub max_queued: u64,
}

/// A histogram family keyed by `L`, all with the same buckets.
type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric of the daemon.
pub struct Metrics {
    registry: Registry,
    /// Jobs accepted (idempotent repeats not counted).
    pub submitted: Family<QueueLabel, Counter>,
    /// Jobs that became terminal, by how.
    pub finished: Family<QueueState, Counter>,
    /// Jobs by queue and state now (set at scrape).
    jobs: Family<QueueState, Gauge>,
    /// Jobs running now (set at scrape).
    running: Gauge,
    /// The `workers` limit.
    workers: Gauge,
    /// The `max_queued` limit.
    max_queued: Gauge,
    /// From an attempt's start to its end.
    pub job_duration: Histograms<QueueLabel>,
    /// From entering the ready line to starting.
    pub queue_wait: Histograms<QueueLabel>,
    /// Requests answered, by route and status.
    pub http_requests: Family<RouteStatus, Counter>,
    /// Time to the answer's head, by route (a stream's life is not counted).
    pub http_duration: Histograms<RouteLabel>,
    /// One fsync of the store.
    pub store_flush: Histogram,
    /// Output bytes kept (past `max_output`, bytes are drained, not kept).
    pub output_bytes: Family<StreamLabel, Counter>,
    /// Event subscribers cut off for lagging.
    pub events_dropped: Counter,
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

/// The git commit the binary was built from (`build.rs`), or `unknown`.
pub const COMMIT: &str = match option_env!("JOBQ_GIT_COMMIT") {
    Some(commit) => commit,
    None => "unknown",
};

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("jobq");
        let submitted = Family::<QueueLabel, Counter>::default();
        registry.register(
            "jobs_submitted",
            "Jobs accepted, by queue",
            submitted.clone(),
        );
        let finished = Family::<QueueState, Counter>::default();
        registry.register(
            "jobs_finished",
            "Jobs that became terminal, by queue and state",
            finished.clone(),
        );
        let jobs = Family::<QueueState, Gauge>::default();
        registry.register("jobs", "Jobs now, by queue and state", jobs.clone());
        let running = Gauge::default();
        registry.register("workers_busy", "Jobs running now", running.clone());
        let workers = Gauge::default();
        registry.register(
            "workers",
            "Most jobs running at once (workers)",
            workers.clone(),
        );
        let max_queued = Gauge::default();
        registry.register(
            "max_queued",
            "Most jobs not yet started before submissions get 429 (max_queued)",
            max_queued.clone(),
        );
        let job_duration: Histograms<QueueLabel> =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.01, 4.0, 10)));
        registry.register_with_unit(
            "job_duration",
            "Time from an attempt's start to its end, by queue",
            Unit::Seconds,
            job_duration.clone(),
        );
        let queue_wait: Histograms<QueueLabel> =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.001, 4.0, 12)));
        registry.register_with_unit(
            "queue_wait",
            "Time a job waited in its queue's line, ready, until it started",
            Unit::Seconds,
            queue_wait.clone(),
        );
        let http_requests = Family::<RouteStatus, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route and status",
            http_requests.clone(),
        );
        let http_duration: Histograms<RouteLabel> =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.000_25, 4.0, 10)));
        registry.register_with_unit(
            "http_request_duration",
            "Time to an HTTP answer's head, by route",
            Unit::Seconds,
            http_duration.clone(),
        );
        let store_flush = Histogram::new(exponential_buckets(0.000_1, 3.0, 12));
        registry.register_with_unit(
            "store_flush",
            "One fsync of the store (its count is the flushes)",
            Unit::Seconds,
            store_flush.clone(),
        );
        let output_bytes = Family::<StreamLabel, Counter>::default();
        registry.register(
            "output_bytes",
            "Bytes of job output kept, by stream",
            output_bytes.clone(),
        );
        let events_dropped = Counter::default();
        registry.register(
            "events_dropped_subscribers",
            "Event subscribers cut off for falling too far behind",
            events_dropped.clone(),
        );
        registry.register(
            "build",
            "The running jobq",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
                commit: COMMIT,
            }),
        );
        Metrics {
            registry,
            submitted,
            finished,
            jobs,
            running,
            workers,
            max_queued,
            job_duration,
            queue_wait,
            http_requests,
            http_duration,
            store_flush,
            output_bytes,
            events_dropped,
        }
    }

    /// Counts a job that became terminal in `state` after an attempt that
    /// ran `ran` (none if it never started).
    pub fn job_ended(&self, queue: &str, state: StateName, ran: Option<Duration>) {
        self.finished
            .get_or_create(&QueueState {
                queue: queue.to_owned(),
                state: state.as_str().to_owned(),
            })
            .inc();
        if let Some(ran) = ran {
            self.job_duration
                .get_or_create(&QueueLabel {
                    queue: queue.to_owned(),
                })
                .observe(ran.as_secs_f64());
        }
    }

    /// The text exposition, with the gauges set from `counts` (jobs by
    /// queue and state), `running` and the limits.
    pub fn encode(
        &self,
        counts: &std::collections::BTreeMap<(String, StateName), u64>,
        running: usize,
        limits: Limits,
    ) -> String {
        self.jobs.clear();
        for ((queue, state), n) in counts {
            self.jobs
                .get_or_create(&QueueState {
                    queue: queue.clone(),
                    state: state.as_str().to_owned(),
                })
                .set(i64::try_from(*n).unwrap_or(i64::MAX));
        }
        self.running.set(running as i64);
        self.workers.set(limits.workers as i64);
        self.max_queued
            .set(i64::try_from(limits.max_queued).unwrap_or(i64::MAX));
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}
