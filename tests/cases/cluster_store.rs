//! The PostgreSQL store's guarantees, statement by statement, on a real
//! server: several stores, each its own pool and session as a node has,
//! claim from one database. A job is claimed by exactly one node; a queue's
//! limit holds across nodes; a lapsed lease is rescued and its node's late
//! end refused; a cancel reaches the node that runs the job; the schema
//! refuses a daemon older than it. (The daemon-level cluster tests build on
//! these guarantees.)

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_std::task;
use jobq::api::JobRequest;
use jobq::auth::RunAs;
use jobq::config::OnInterrupted;
use jobq::job::{Exit, FailReason, Job, JobId, Ownership, StateName};
use jobq::postgres::{Fenced, NodeState, PgStore, Renewal, Session};
use serde_json::json;

use crate::support::*;

const LEASE: Duration = Duration::from_secs(30);

/// A store with its own pool, as one node opens it.
async fn open(pg: &TestPostgres) -> PgStore {
    PgStore::open(&pg.url("postgres"), 4)
        .await
        .expect("open the PostgreSQL store")
}

/// Stores a new `true` job on `queue`.
async fn submit(store: &PgStore, queue: &str, priority: i32) -> Job {
    let now = jiff::Timestamp::now();
    let request: JobRequest = serde_json::from_value(json!({
        "command": ["true"], "queue": queue, "priority": priority,
    }))
    .unwrap();
    let (spec, _) = request.validate(now, Duration::from_secs(1)).unwrap();
    let ownership = Ownership {
        owner: "anonymous".to_owned(),
        run_as: RunAs {
            user: "nobody".to_owned(),
            uid: 65534,
        },
    };
    let seq = store.next_seq().await.unwrap();
    let job = Job::new(JobId::new(), seq, spec, ownership, Vec::new(), now);
    store.insert(&job).await.unwrap();
    job
}

/// Records a claimed job's process as having exited 0.
async fn succeed(store: &PgStore, session: &Session, claimed: &Job) -> Fenced {
    let mut done = claimed.clone();
    done.finish(Exit::Code(0), jiff::Timestamp::now()).unwrap();
    store.settle(session, claimed, &done).await.unwrap()
}

/// Counts by state of one queue, as the store keeps them.
async fn counts(store: &PgStore, queue: &str) -> HashMap<String, u64> {
    store
        .counts()
        .await
        .unwrap()
        .into_iter()
        .filter(|(q, _, _)| q == queue)
        .map(|(_, s, n)| (s, n))
        .collect()
}

#[test]
fn three_nodes_claim_3000_jobs_and_each_is_claimed_once() {
    let pg = TestPostgres::start();
    task::block_on(async {
        let first = open(&pg).await;
        for i in 0..3000 {
            submit(&first, "default", i % 3).await;
        }
        let claims: Arc<Mutex<Vec<(JobId, String)>>> = Arc::default();
        let mut nodes = Vec::new();
        for n in 0..3 {
            let store = open(&pg).await;
            let claims = claims.clone();
            nodes.push(task::spawn(async move {
                let session = store.join(&format!("node-{n}"), 8, LEASE).await.unwrap();
                let started = Instant::now();
                loop {
                    let batch = store.claim(&session, 8, LEASE).await.unwrap();
                    if batch.is_empty() {
                        if counts(&store, "default")
                            .await
                            .get("queued")
                            .copied()
                            .unwrap_or(0)
                            == 0
                        {
                            break;
                        }
                        assert!(started.elapsed() < WAIT_TIMEOUT * 4, "claims stalled");
                        continue;
                    }
                    for claimed in batch {
                        assert_eq!(claimed.job.state.name(), StateName::Running);
                        claims
                            .lock()
                            .unwrap()
                            .push((claimed.job.id, session.node.clone()));
                        assert_eq!(succeed(&store, &session, &claimed.job).await, Fenced::Done);
                    }
                }
            }));
        }
        for node in nodes {
            node.await;
        }
        let claims = std::mem::take(&mut *claims.lock().unwrap());
        let mut by_job: HashMap<JobId, Vec<&str>> = HashMap::new();
        for (id, node) in claims.iter() {
            by_job.entry(*id).or_default().push(node);
        }
        assert_eq!(by_job.len(), 3000, "every job was claimed");
        let twice: Vec<_> = by_job.iter().filter(|(_, n)| n.len() > 1).collect();
        assert!(twice.is_empty(), "claimed more than once: {twice:?}");
        let counts = counts(&first, "default").await;
        assert_eq!(counts.get("succeeded"), Some(&3000), "{counts:?}");
        assert_eq!(counts.get("running").copied().unwrap_or(0), 0, "{counts:?}");
        let running = pg.psql(
            "postgres",
            "SELECT running FROM jobq_queues WHERE name = 'default'",
        );
        assert_eq!(running, "0", "the queue's running count went back to 0");
    });
}

#[test]
fn a_queue_limit_of_2_holds_across_three_nodes() {
    let pg = TestPostgres::start();
    task::block_on(async {
        let first = open(&pg).await;
        first.put_queue("two", Some(2), false).await.unwrap();
        for _ in 0..60 {
            submit(&first, "two", 0).await;
        }
        let held = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicUsize::new(0));
        let mut nodes = Vec::new();
        for n in 0..3 {
            let store = open(&pg).await;
            let (held, most, done) = (held.clone(), most.clone(), done.clone());
            nodes.push(task::spawn(async move {
                let session = store.join(&format!("node-{n}"), 10, LEASE).await.unwrap();
                let started = Instant::now();
                while done.load(Ordering::SeqCst) < 60 {
                    assert!(started.elapsed() < WAIT_TIMEOUT * 2, "claims stalled");
                    let batch = store.claim(&session, 10, LEASE).await.unwrap();
                    let now = held.fetch_add(batch.len(), Ordering::SeqCst) + batch.len();
                    most.fetch_max(now, Ordering::SeqCst);
                    for claimed in batch {
                        task::sleep(Duration::from_millis(15)).await;
                        held.fetch_sub(1, Ordering::SeqCst);
                        assert_eq!(succeed(&store, &session, &claimed.job).await, Fenced::Done);
                        done.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }));
        }
        // The database's own view, sampled while the nodes work.
        let mut most_seen_in_db = 0u64;
        while done.load(Ordering::SeqCst) < 60 {
            let running: u64 = pg
                .psql(
                    "postgres",
                    "SELECT count(*) FROM jobq_jobs WHERE queue = 'two' AND state = 'running'",
                )
                .parse()
                .unwrap();
            most_seen_in_db = most_seen_in_db.max(running);
            task::sleep(Duration::from_millis(5)).await;
        }
        for node in nodes {
            node.await;
        }
        let most = most.load(Ordering::SeqCst);
        assert!(
            most <= 2,
            "{most} jobs of a queue limited to 2 were held at once"
        );
        assert!(
            most_seen_in_db <= 2,
            "the database had {most_seen_in_db} running at once"
        );
        assert_eq!(
            most, 2,
            "the nodes used both slots (else this test proves nothing)"
        );
        assert_eq!(counts(&first, "two").await.get("succeeded"), Some(&60));
    });
}

#[test]
fn a_lapsed_lease_is_rescued_once_and_its_nodes_late_end_is_refused() {
    let pg = TestPostgres::start();
    task::block_on(async {
        let a = open(&pg).await;
        let b = open(&pg).await;
        let short = Duration::from_secs(1);
        let sa = a.join("a", 4, short).await.unwrap();
        let sb = b.join("b", 4, LEASE).await.unwrap();
        let jobs = [
            submit(&a, "default", 0).await,
            submit(&a, "default", 0).await,
        ];
        let claimed = a.claim(&sa, 4, short).await.unwrap();
        assert_eq!(claimed.len(), 2);
        // Within the lease nothing is rescued.
        assert!(b
            .rescue(OnInterrupted::Requeue, 100, jiff::Timestamp::now())
            .await
            .unwrap()
            .is_empty());
        // Node a falls silent past its lease.
        task::sleep(Duration::from_millis(1500)).await;
        let rescued = b
            .rescue(OnInterrupted::Requeue, 100, jiff::Timestamp::now())
            .await
            .unwrap();
        assert_eq!(rescued.len(), 2, "both of a's jobs are rescued");
        assert!(
            b.rescue(OnInterrupted::Requeue, 100, jiff::Timestamp::now())
                .await
                .unwrap()
                .is_empty(),
            "and only once"
        );
        for r in &rescued {
            assert_eq!(r.node, "a");
            assert_eq!(r.job.state.name(), StateName::Queued);
            assert_eq!(r.job.attempt, 2);
            let first = &r.job.attempts[0];
            assert_eq!(first.reason, Some(FailReason::Interrupted));
            assert!(
                first.error.as_deref().unwrap().contains("node a"),
                "{first:?}"
            );
        }
        // Node a comes back: its end is refused, its heartbeat says it
        // lost its lease, and it claims nothing more.
        assert_eq!(succeed(&a, &sa, &claimed[0].job).await, Fenced::Refused);
        let ids: Vec<JobId> = claimed.iter().map(|c| c.job.id).collect();
        assert_eq!(a.renew(&sa, &ids, short).await.unwrap(), Renewal::LeaseLost);
        assert!(a.claim(&sa, 4, short).await.unwrap().is_empty());
        // Node b runs them, as attempt 2.
        let again = b.claim(&sb, 4, LEASE).await.unwrap();
        assert_eq!(again.len(), 2);
        for c in &again {
            assert!(jobs.iter().any(|j| j.id == c.job.id));
            assert_eq!(c.job.attempt, 2);
            assert_eq!(succeed(&b, &sb, &c.job).await, Fenced::Done);
        }
        let nodes = b.nodes().await.unwrap();
        let states: Vec<(&str, NodeState)> =
            nodes.iter().map(|n| (n.name.as_str(), n.state)).collect();
        assert_eq!(states, [("a", NodeState::Dead), ("b", NodeState::Up)]);
    });
}

#[test]
fn a_node_that_renews_keeps_its_jobs_past_the_lease() {
    let pg = TestPostgres::start();
    task::block_on(async {
        let a = open(&pg).await;
        let b = open(&pg).await;
        let short = Duration::from_secs(1);
        let sa = a.join("a", 4, short).await.unwrap();
        submit(&a, "default", 0).await;
        let claimed = a.claim(&sa, 4, short).await.unwrap();
        let ids = [claimed[0].job.id];
        for _ in 0..8 {
            task::sleep(Duration::from_millis(250)).await;
            let renewal = a.renew(&sa, &ids, short).await.unwrap();
            assert_eq!(
                renewal,
                Renewal::Alive {
                    lost: vec![],
                    cancel: vec![]
                }
            );
            assert!(b
                .rescue(OnInterrupted::Requeue, 100, jiff::Timestamp::now())
                .await
                .unwrap()
                .is_empty());
        }
        assert_eq!(succeed(&a, &sa, &claimed[0].job).await, Fenced::Done);
        let nodes = a.nodes().await.unwrap();
        assert_eq!(nodes[0].state, NodeState::Up);
        assert_eq!(nodes[0].running, 1, "as of its last heartbeat");
    });
}

#[test]
fn a_cancel_from_another_node_reaches_the_node_that_runs_the_job() {
    let pg = TestPostgres::start();
    task::block_on(async {
        let a = open(&pg).await;
        let b = open(&pg).await;
        let mut listener = sqlx::postgres::PgListener::connect(&pg.url("postgres"))
            .await
            .unwrap();
        listener.listen("jobq_cancel").await.unwrap();
        let sa = a.join("a", 4, LEASE).await.unwrap();
        let queued = submit(&a, "default", 0).await;
        let claimed = a.claim(&sa, 1, LEASE).await.unwrap();
        let other = submit(&a, "default", 0).await;
        assert!(b.request_cancel(&claimed[0].job.id).await.unwrap());
        assert!(
            !b.request_cancel(&other.id).await.unwrap(),
            "a queued job is not running"
        );
        let told = async_std::future::timeout(WAIT_TIMEOUT, listener.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(told.payload(), claimed[0].job.id.to_string());
        let running = claimed[0].job.id;
        assert_eq!(
            running, queued.id,
            "the first job submitted is the first claimed"
        );
        let renewal = a.renew(&sa, &[running], LEASE).await.unwrap();
        assert_eq!(
            renewal,
            Renewal::Alive {
                lost: vec![],
                cancel: vec![running]
            }
        );
    });
}

#[test]
fn a_daemon_joining_under_a_live_nodes_name_takes_it_over() {
    let pg = TestPostgres::start();
    task::block_on(async {
        let one = open(&pg).await;
        let two = open(&pg).await;
        let first = one.join("web-3", 4, LEASE).await.unwrap();
        let second = two.join("web-3", 4, LEASE).await.unwrap();
        assert_eq!(second.epoch, first.epoch + 1);
        assert_eq!(
            one.renew(&first, &[], LEASE).await.unwrap(),
            Renewal::LeaseLost
        );
        submit(&one, "default", 0).await;
        assert!(
            one.claim(&first, 4, LEASE).await.unwrap().is_empty(),
            "the old session claims nothing"
        );
        assert_eq!(two.claim(&second, 4, LEASE).await.unwrap().len(), 1);
    });
}

#[test]
fn counts_follow_every_change_and_survive_folding() {
    let pg = TestPostgres::start();
    task::block_on(async {
        let store = open(&pg).await;
        let session = store.join("a", 4, LEASE).await.unwrap();
        for _ in 0..5 {
            submit(&store, "q", 0).await;
        }
        let claimed = store.claim(&session, 2, LEASE).await.unwrap();
        assert_eq!(
            succeed(&store, &session, &claimed[0].job).await,
            Fenced::Done
        );
        let expect: HashMap<String, u64> = [("queued", 3), ("running", 1), ("succeeded", 1)]
            .map(|(s, n)| (s.to_owned(), n))
            .into();
        assert_eq!(counts(&store, "q").await, expect);
        pg.psql("postgres", "SELECT jobq_fold_counts()");
        assert_eq!(
            pg.psql("postgres", "SELECT count(*) FROM jobq_count_deltas"),
            "0"
        );
        assert_eq!(counts(&store, "q").await, expect);
    });
}

#[test]
fn a_database_with_a_newer_schema_is_refused_and_a_bad_url_is_named() {
    let pg = TestPostgres::start();
    task::block_on(async {
        open(&pg).await;
        // Opening again applies nothing and is fine.
        open(&pg).await;
        pg.psql(
            "postgres",
            "INSERT INTO jobq_schema_versions (version, description, success, checksum, execution_time)
             VALUES (99, 'from the future', true, '\\x00', 0)",
        );
        let err = PgStore::open(&pg.url("postgres"), 2)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("version 99, newer than this jobq knows"),
            "{err}"
        );
        let err = PgStore::open("mysql://x", 1).await.unwrap_err().to_string();
        assert!(err.contains("not a PostgreSQL URL"), "{err}");
        let nobody = format!("postgres://jobq@127.0.0.1:{}/postgres", free_port());
        let err = PgStore::open(&nobody, 1).await.unwrap_err().to_string();
        assert!(
            err.contains("cannot connect to the PostgreSQL store"),
            "{err}"
        );
    });
}
