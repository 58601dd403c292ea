//! A property test of the store's bookkeeping: after any sequence of
//! applies (inserts, state changes, removals, several in one batch), the
//! stored counts equal a recount of the records, every index entry points
//! at a record in the state it indexes, every record has its entries, and
//! all of it is the same after the store is closed and opened again.
//!
//! On a real sled store in a temp dir: the model is a plain map of what
//! was applied.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::Timestamp;
use proptest::prelude::*;

use super::{keys, Change, Store};
use crate::auth::RunAs;
use crate::config::Durability;
use crate::job::{Job, JobId, Ownership, State, StateName};

/// A state to give a job; ids of `Waiting` are indexes into the jobs made
/// so far.
#[derive(Clone, Debug)]
enum StateSeed {
    Queued,
    Running(u32),
    Scheduled(i64),
    Waiting(Vec<usize>),
    Succeeded(i64),
    Failed(i64),
    Cancelled(i64),
}

/// One step: a new job, a change of a job's state, or a removal; a batch
/// groups several in one apply.
#[derive(Clone, Debug)]
enum Op {
    Insert {
        queue: u8,
        priority: i32,
        key: bool,
        state: StateSeed,
    },
    Update {
        job: usize,
        state: StateSeed,
    },
    Remove {
        job: usize,
    },
}

fn state_seed() -> impl Strategy<Value = StateSeed> {
    let secs = 1_700_000_000i64..1_700_000_100;
    prop_oneof![
        Just(StateSeed::Queued),
        (1u32..100_000).prop_map(StateSeed::Running),
        secs.clone().prop_map(StateSeed::Scheduled),
        prop::collection::vec(0usize..64, 1..4).prop_map(StateSeed::Waiting),
        secs.clone().prop_map(StateSeed::Succeeded),
        secs.clone().prop_map(StateSeed::Failed),
        secs.prop_map(StateSeed::Cancelled),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..3, -2i32..3, any::<bool>(), state_seed()).prop_map(|(queue, priority, key, state)| Op::Insert { queue, priority, key, state }),
        3 => (0usize..64, state_seed()).prop_map(|(job, state)| Op::Update { job, state }),
        1 => (0usize..64).prop_map(|job| Op::Remove { job }),
    ]
}

fn at(secs: i64) -> Timestamp {
    // Sub-millisecond parts, which the time indexes drop.
    Timestamp::new(secs, 123_456_789).expect("a valid time")
}

fn state_of(seed: &StateSeed, ids: &[JobId]) -> State {
    match seed {
        StateSeed::Queued => State::Queued,
        StateSeed::Running(pid) => State::Running {
            pid: *pid,
            started_at: at(1_700_000_000),
        },
        StateSeed::Scheduled(s) => State::Scheduled { at: at(*s) },
        StateSeed::Waiting(deps) => {
            let mut pending: Vec<JobId> =
                deps.iter().filter_map(|i| ids.get(*i)).copied().collect();
            pending.dedup();
            if pending.is_empty() {
                pending.push(JobId::new());
            }
            State::Waiting { pending }
        }
        StateSeed::Succeeded(s) => State::Succeeded {
            started_at: at(*s),
            finished_at: at(*s),
        },
        StateSeed::Failed(s) => State::Failed {
            reason: crate::job::FailReason::Exit,
            started_at: None,
            finished_at: at(*s),
            exit: None,
            error: None,
        },
        StateSeed::Cancelled(s) => State::Cancelled {
            started_at: None,
            finished_at: at(*s),
            exit: None,
        },
    }
}

/// Applies `ops` (grouped into batches of `batch` changes) to `store` and
/// returns the model of what it should hold.
fn run(store: &Store, ops: &[Op], batch: usize) -> BTreeMap<JobId, Job> {
    let mut model: BTreeMap<JobId, Job> = BTreeMap::new();
    let mut ids: Vec<JobId> = Vec::new();
    let mut keys_used = 0u32;
    let mut pending: Vec<(Option<Job>, Option<Job>)> = Vec::new();
    let flush = |pending: &mut Vec<(Option<Job>, Option<Job>)>| {
        let changes: Vec<Change<'_>> = pending
            .iter()
            .map(|(old, new)| Change {
                old: old.as_ref(),
                new: new.as_ref(),
                stdin: None,
                claims_upload: None,
            })
            .collect();
        store.apply(&changes).expect("apply");
        pending.clear();
    };
    for op in ops {
        let change = match op {
            Op::Insert {
                queue,
                priority,
                key,
                state,
            } => {
                let mut spec = crate::job::sample_spec(&[]);
                spec.queue = ["default", "a", "b"][*queue as usize].to_owned();
                spec.priority = *priority;
                if *key {
                    keys_used += 1;
                    spec.idempotency_key = Some(format!("key-{keys_used}"));
                }
                let ownership = Ownership {
                    owner: "token:t".into(),
                    run_as: RunAs {
                        user: "u".into(),
                        uid: 1,
                    },
                };
                let id = JobId::new();
                let mut job = Job::new(
                    id,
                    ids.len() as u64,
                    spec,
                    ownership,
                    vec![],
                    Timestamp::now(),
                );
                job.state = state_of(state, &ids);
                ids.push(id);
                model.insert(id, job.clone());
                (None, Some(job))
            }
            Op::Update { job, state } => {
                let Some(old) = ids
                    .get(*job % ids.len().max(1))
                    .and_then(|id| model.get(id))
                    .cloned()
                else {
                    continue;
                };
                let mut new = old.clone();
                new.state = state_of(state, &ids);
                model.insert(old.id, new.clone());
                (Some(old), Some(new))
            }
            Op::Remove { job } => {
                let Some(old) = ids
                    .get(*job % ids.len().max(1))
                    .and_then(|id| model.remove(id))
                else {
                    continue;
                };
                (Some(old), None)
            }
        };
        // A batch holds at most one change of a job, as the engine's do.
        let id = change.1.as_ref().or(change.0.as_ref()).map(|j| j.id);
        if pending
            .iter()
            .any(|(o, n)| n.as_ref().or(o.as_ref()).map(|j| j.id) == id)
        {
            flush(&mut pending);
        }
        pending.push(change);
        if pending.len() >= batch {
            flush(&mut pending);
        }
    }
    flush(&mut pending);
    model
}

/// Checks every invariant of the store against `model`.
fn check(store: &Store, model: &BTreeMap<JobId, Job>) {
    // Records.
    for (id, job) in model {
        assert_eq!(store.get(id).unwrap().as_ref(), Some(job), "record of {id}");
    }
    // Counts: the stored ones equal a recount.
    let mut recount: BTreeMap<(String, StateName), u64> = BTreeMap::new();
    for job in model.values() {
        *recount
            .entry((job.spec.queue.clone(), job.state.name()))
            .or_default() += 1;
    }
    let counts: BTreeMap<_, _> = store.counts().into_iter().filter(|(_, n)| *n > 0).collect();
    assert_eq!(counts, recount, "counts");
    // The ready index: exactly the queued jobs, in priority then seq order.
    let ready: Vec<JobId> = store
        .ready_entries()
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    let mut want: Vec<&Job> = model
        .values()
        .filter(|j| j.state == State::Queued)
        .collect();
    want.sort_by_key(|j| (j.spec.queue.clone(), -j.spec.priority, j.seq));
    let want: Vec<JobId> = want.iter().map(|j| j.id).collect();
    assert_eq!(ready, want, "ready index");
    // The timer index: the scheduled jobs, by time (to the millisecond).
    let ms = |t: Timestamp| Timestamp::from_millisecond(t.as_millisecond()).unwrap();
    let scheduled: BTreeSet<(Timestamp, JobId)> = store.scheduled().unwrap().into_iter().collect();
    let want: BTreeSet<(Timestamp, JobId)> = model
        .values()
        .filter_map(|j| match j.state {
            State::Scheduled { at } => Some((ms(at), j.id)),
            _ => None,
        })
        .collect();
    assert_eq!(scheduled, want, "timer index");
    // The running index.
    let running: BTreeSet<JobId> = store.running_jobs().unwrap().iter().map(|j| j.id).collect();
    let want: BTreeSet<JobId> = model
        .values()
        .filter(|j| matches!(j.state, State::Running { .. }))
        .map(|j| j.id)
        .collect();
    assert_eq!(running, want, "running index");
    // The retention index: every terminal job, none else.
    let finished: BTreeSet<(Timestamp, JobId)> = store
        .oldest_finished(usize::MAX)
        .unwrap()
        .into_iter()
        .collect();
    let want: BTreeSet<(Timestamp, JobId)> = model
        .values()
        .filter_map(|j| match j.state {
            State::Succeeded { finished_at, .. }
            | State::Failed { finished_at, .. }
            | State::Cancelled { finished_at, .. } => Some((ms(finished_at), j.id)),
            _ => None,
        })
        .collect();
    assert_eq!(finished, want, "retention index");
    // Dependency edges: exactly the waiting jobs' pending lists.
    let mut edges: BTreeSet<(JobId, JobId)> = BTreeSet::new();
    for job in model.values() {
        if let State::Waiting { pending } = &job.state {
            for dep in pending {
                edges.insert((*dep, job.id));
            }
        }
    }
    let awaited: BTreeSet<JobId> = edges.iter().map(|(a, _)| *a).collect();
    let mut stored_edges = BTreeSet::new();
    for a in &awaited {
        for w in store.dependents(a).unwrap() {
            stored_edges.insert((*a, w));
        }
    }
    assert_eq!(stored_edges, edges, "dependency edges");
    // Every entry of every index names a job in the state it indexes.
    let h = store.h().unwrap();
    for (prefix, name) in [
        (keys::READY, "ready"),
        (keys::RUNNING, "running"),
        (keys::SCHEDULED, "timer"),
        (keys::FINISHED, "retention"),
        (keys::DEPENDENT, "dependency"),
        (keys::IDEMPOTENCY, "key"),
        (keys::NUMBER, "number"),
    ] {
        let n = h.main.scan_prefix([prefix]).count();
        let want = match prefix {
            keys::READY => model.values().filter(|j| j.state == State::Queued).count(),
            keys::RUNNING => model
                .values()
                .filter(|j| j.state.name() == StateName::Running)
                .count(),
            keys::SCHEDULED => model
                .values()
                .filter(|j| j.state.name() == StateName::Scheduled)
                .count(),
            keys::FINISHED => model.values().filter(|j| j.state.is_terminal()).count(),
            keys::DEPENDENT => edges.len(),
            keys::NUMBER => model.len(),
            _ => model
                .values()
                .filter(|j| j.spec.idempotency_key.is_some())
                .count(),
        };
        assert_eq!(n, want, "{name} index entries");
    }
    for job in model.values() {
        assert_eq!(
            store.job_with_number(job.number()).unwrap(),
            Some(job.id),
            "number {}",
            job.seq
        );
        if let Some(key) = &job.spec.idempotency_key {
            assert_eq!(store.job_with_key(key).unwrap(), Some(job.id), "key {key}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn counts_and_indexes_always_match_the_records(ops in prop::collection::vec(op(), 1..80), batch in 1usize..6) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let store = Store::open(&path, Durability::Fsync, Duration::from_millis(10)).unwrap();
        let model = run(&store, &ops, batch);
        check(&store, &model);
        crate::rt::block_on(store.flush_now()).unwrap();
        // The same once the store is opened again (counts are reloaded).
        // sled can release its file lock a moment after its handles go (a
        // thread of its own still ending); the daemon's repair loop retries
        // a reopen the same way.
        let mut tries = 0;
        loop {
            match store.reopen() {
                Ok(()) => break,
                Err(super::StoreError::Locked { .. }) if tries < 100 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("reopen after {tries} tries: {e}"),
            }
        }
        check(&store, &model);
    }
}
