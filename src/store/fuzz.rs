//! Fuzzing of what the store reads back (proptest, bounded): key decoders
//! and record decoders meet bytes a damaged or foreign store could hold.
//! Each must answer with an error (or `None`), never panic; a key it
//! encodes must decode to what went in.
//!
//! Cases per property: `JOBQ_FUZZ_CASES` (default 512), so CI runs a
//! bounded number and a longer run is one variable away.

use proptest::prelude::*;

use super::*;

/// Cases per property, from `JOBQ_FUZZ_CASES`.
pub(crate) fn cases() -> u32 {
    std::env::var("JOBQ_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512)
}

fn any_id() -> impl Strategy<Value = JobId> {
    any::<[u8; 16]>().prop_map(JobId::from_bytes)
}

/// A stored record of a real job, for mutation.
fn record() -> Vec<u8> {
    let job = crate::job::Job::new(
        JobId::new(),
        7,
        crate::job::sample_spec(&[("K", "v")]),
        crate::job::Ownership {
            owner: "anonymous".into(),
            run_as: crate::auth::RunAs {
                user: "nobody".into(),
                uid: 65534,
            },
        },
        vec![],
        jiff::Timestamp::now(),
    );
    serde_json::to_vec(&job).expect("a job encodes")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn key_decoders_take_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = keys::parse_by_time(&bytes);
        let _ = keys::parse_count(&bytes);
        let _ = keys::parse_ready(&bytes);
        let _ = keys::id_of(&bytes);
        let _ = keys::id_value(&bytes);
        let _ = output::decode(&bytes);
    }

    #[test]
    fn keys_decode_to_what_was_encoded(
        queue in "[a-z0-9_.-]{1,64}",
        priority in any::<i32>(),
        seq in any::<u64>(),
        id in any_id(),
        ms in 0i64..4_000_000_000_000,
    ) {
        prop_assert_eq!(keys::parse_ready(&keys::ready(&queue, priority, seq)), Some((queue.clone(), priority, seq)));
        let at = jiff::Timestamp::from_millisecond(ms).unwrap();
        let key = keys::by_time(keys::FINISHED, at, &id);
        prop_assert_eq!(keys::parse_by_time(&key), Some((at, id)));
        prop_assert_eq!(keys::id_of(&keys::by_id(keys::JOB, &id)), Some(id));
        let state = crate::job::StateName::Queued;
        prop_assert_eq!(keys::parse_count(&keys::count(&queue, state)), Some((queue, state)));
    }

    #[test]
    fn a_damaged_record_is_an_error_not_a_panic(
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in any::<usize>(),
    ) {
        let mut bytes = record();
        for (at, byte) in flips {
            let i = at % bytes.len();
            bytes[i] = byte;
        }
        bytes.truncate(cut % (bytes.len() + 1));
        let id = JobId::new();
        match decode(&id, &bytes) {
            Ok(_) => {}
            Err(StoreError::Corrupt { key, .. }) => prop_assert_eq!(key, id.to_string()),
            Err(other) => prop_assert!(false, "not Corrupt: {other}"),
        }
    }

    #[test]
    fn any_bytes_as_a_record_are_an_error_not_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(&JobId::new(), &bytes);
        let _ = serde_json::from_slice::<crate::api::QueueView>(&bytes);
    }
}
