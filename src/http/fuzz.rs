//! Fuzzing of the request parsers (proptest, bounded by
//! `JOBQ_FUZZ_CASES`, default 512): whatever a client sends as a job spec,
//! a duration or a size, the answer is a value or an error that names what
//! is wrong, never a panic.

use proptest::prelude::*;
use serde_json::{Map, Value};

use super::body::{parse_json, parse_object};
use crate::api::{parse_duration, BatchRequest, JobRequest, QueuePatch};

fn cases() -> u32 {
    std::env::var("JOBQ_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512)
}

/// The spec's field names, and a few that are not, so that generated
/// objects hit the real fields far more often than chance would.
const FIELDS: &[&str] = &[
    "command",
    "shell",
    "env",
    "cwd",
    "stdin",
    "stdin_upload",
    "queue",
    "priority",
    "run_at",
    "delay",
    "timeout",
    "retries",
    "backoff",
    "after",
    "idempotency_key",
    "name",
    "labels",
    "limits",
    "memory",
    "cpu_time",
    "processes",
    "open_files",
    "unknown",
    "",
];

/// Any JSON value, a few levels deep, with object keys drawn mostly from
/// [`FIELDS`].
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[a-z0-9 /.:=-]{0,12}".prop_map(Value::from),
        any::<String>().prop_map(Value::from),
        prop_oneof![
            Just("10s"),
            Just("1h30m"),
            Just("512MiB"),
            Just("-1"),
            Just("2026-12-01T00:00:00Z")
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((prop::sample::select(FIELDS), inner), 0..8).prop_map(|kv| {
                Value::Object(
                    kv.into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect::<Map<_, _>>(),
                )
            }),
        ]
    })
}

/// A spec object: the fields chosen from [`FIELDS`], each with any value.
fn spec() -> impl Strategy<Value = Value> {
    proptest::collection::vec((prop::sample::select(FIELDS), json()), 0..10).prop_map(|kv| {
        Value::Object(
            kv.into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect::<Map<_, _>>(),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_as_a_body_are_an_answer(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse_object(&bytes);
        let _ = parse_json::<JobRequest>(&bytes);
        let _ = parse_json::<BatchRequest>(&bytes);
        let _ = parse_json::<QueuePatch>(&bytes);
    }

    #[test]
    fn any_spec_is_a_job_or_an_error_naming_a_field(value in spec()) {
        let bytes = serde_json::to_vec(&value).unwrap();
        match parse_json::<JobRequest>(&bytes) {
            Ok(request) => {
                if let Err(e) = request.validate(jiff::Timestamp::now(), std::time::Duration::from_secs(1)) {
                    prop_assert!(!e.field.is_empty() && !e.message.is_empty(), "{e:?}");
                }
            }
            Err(e) => prop_assert!(!e.message.is_empty()),
        }
    }

    #[test]
    fn any_text_is_a_duration_or_an_error(text in any::<String>()) {
        let _ = parse_duration(&text);
        let _ = crate::resources::parse_size(&text);
    }

    #[test]
    fn durations_read_back_as_written(ms in 0u64..10_000_000_000) {
        let d = std::time::Duration::from_millis(ms);
        let text = humantime::format_duration(d).to_string();
        prop_assert_eq!(parse_duration(&text), Ok(d));
    }

    #[test]
    fn sizes_read_back_as_written(n in 0u64..(1 << 50)) {
        prop_assert_eq!(crate::resources::parse_size(&n.to_string()), Ok(n));
        let mib = n >> 20;
        prop_assert_eq!(crate::resources::parse_size(&format!("{mib}MiB")), Ok(mib << 20));
    }
}
