//! The rules of the API that its types do not carry: name patterns, bounds,
//! fields that exclude each other, and which states each bulk action takes.
//! They are written into the generated schemas here, so that a client (or
//! schemathesis) that keeps to the document is not refused, and one that
//! breaks a rule knows from the document that it will be.
//!
//! What no schema can say stays in prose: a `cwd` must exist, an `after`
//! job must exist, a `delay` must end before the year 10000.

use serde_json::{json, Value};

use crate::api::{
    MAX_AFTER, MAX_ARG_STRING, MAX_BATCH, MAX_CONCURRENCY, MAX_DURATION, MAX_LABELS, MAX_LABEL_LEN,
    MAX_RETRIES,
};
use crate::job::StateName;

/// A queue name, as `is_valid_queue_name` takes it.
pub const QUEUE_NAME: &str = "^[a-z0-9_.-]{1,64}$";

/// A UUID in each form the `uuid` crate reads.
const UUID: &str = r"([0-9a-fA-F]{32}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|\{[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\}|urn:uuid:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})";

/// A job id or number (`JobRef`).
pub fn job_ref() -> Value {
    json!({
        "type": "string",
        "description": "a job id (UUID) or number",
        "pattern": format!(r"^\s*([0-9]{{1,19}}|{UUID})\s*$"),
    })
}

/// An id the `uuid` crate reads (a cursor, an upload id).
pub fn uuid() -> Value {
    json!({ "type": "string", "pattern": format!("^{UUID}$") })
}

/// The units humantime reads.
const UNITS: &str = "nanos|nsec|ns|usec|us|µs|millis|msec|ms|seconds|second|secs|sec|s|minutes|minute|mins|min|m|hours|hour|hrs|hr|h|days|day|d|weeks|week|wks|wk|w|months|month|M|years|year|yrs|yr|y";

/// The units of [`UNITS`] from milliseconds up.
const UNITS_FROM_MS: &str = "millis|msec|ms|seconds|second|secs|sec|s|minutes|minute|mins|min|m|hours|hour|hrs|hr|h|days|day|d|weeks|week|wks|wk|w|months|month|M|years|year|yrs|yr|y";

/// The units humantime writes below a millisecond, and the millisecond's.
const SUB_MS: &str = "nanos|nsec|ns|usec|us|µs";

/// The millisecond units.
const MS: &str = "millis|msec|ms";

/// A duration as humantime writes it in answers (`"999years 11months 3days
/// 4h 5m 6s 7ms 8us 9ns"`, each part present only when not zero, largest
/// first), up to 999 years; `from_ms`: with at least one part of a
/// millisecond or more. A duration within 999 years and 12 months is not
/// always within the daemon's 1000 years: such strings (999 years and more
/// than 11 months) match, and are refused.
fn written(from_ms: bool) -> String {
    let parts = [
        r"([1-9][0-9]{0,2})(year|years)",
        r"(1[01]|[1-9])(month|months)",
        r"([12][0-9]|3[01]|[1-9])(day|days)",
        r"(1[0-9]|2[0-3]|[1-9])h",
        r"([1-5][0-9]|[1-9])m",
        r"([1-5][0-9]|[1-9])s",
        r"([1-9][0-9]{0,2})ms",
        r"([1-9][0-9]{0,2})us",
        r"([1-9][0-9]{0,2})ns",
    ];
    let optional: String = parts.iter().map(|p| format!("({p} ?)?")).collect();
    let big = if from_ms {
        r"(?=[0-9]+(years?|months?|days?|h|m|s|ms)( |$))"
    } else {
        r"(?=[0-9])"
    };
    format!("{big}{optional}")
}

/// A duration: seconds, or a humantime string. The number's bound is the
/// daemon's ([`MAX_DURATION`]); the string's pattern allows a part of what
/// the daemon reads that is sure (or, for [`written`], all but sure) to be
/// within it: up to 9 parts of up to 2 digits (3 for the units below a
/// second), up to 9 digits of seconds, or humantime's own form, so that
/// what an answer writes can be sent back. A positive duration (a timeout,
/// at least 1 ms) starts with a part of at least a millisecond that is not
/// zero.
pub fn duration(positive: bool) -> Value {
    let part = format!(r"([0-9]{{1,2}}\s*({UNITS})|[0-9]{{1,3}}\s*({MS}|{SUB_MS}))\s*");
    let (seconds, first) = if positive {
        (
            r"(?=[^1-9]*[1-9])[0-9]{1,9}(\.[0-9]{1,3})?",
            format!(r"([1-9][0-9]?\s*({UNITS_FROM_MS})|[1-9][0-9]{{0,2}}\s*({MS}))\s*"),
        )
    } else {
        (r"[0-9]{1,9}(\.[0-9]{1,6})?", part.clone())
    };
    let written = written(positive);
    let number = if positive {
        json!({ "type": "number", "description": "seconds", "minimum": 0.001, "maximum": MAX_DURATION.as_secs() })
    } else {
        json!({ "type": "number", "description": "seconds", "minimum": 0, "maximum": MAX_DURATION.as_secs() })
    };
    json!({
        "oneOf": [
            number,
            {
                "type": "string",
                "description": "a humantime duration: \"500ms\", \"10s\", \"1h30m\", \"1h 30m\", or seconds",
                "pattern": format!(r"^(\s*({seconds}|{first}({part}){{0,8}})|{written}|1000years)$"),
            },
        ]
    })
}

/// `?wait=`: at most 5 minutes. The string's pattern allows up to 99
/// seconds or 4 minutes, a part of what the daemon takes.
pub fn wait() -> Value {
    json!({
        "oneOf": [
            { "type": "number", "minimum": 0, "maximum": 300 },
            { "type": "string", "pattern": r"^\s*([0-9]{1,2}(\.[0-9]{1,3})?\s*(s|sec|secs|ms)?|[0-4]\s*(m|min|mins))\s*$" },
        ]
    })
}

/// A size: bytes, or a string; the pattern allows a part of what the
/// daemon reads (up to 6 digits and a unit).
pub fn size() -> Value {
    json!({
        "oneOf": [
            { "type": "integer", "description": "bytes", "minimum": 0, "maximum": u64::MAX },
            { "type": "string", "description": "a size: \"512MiB\", \"2GB\"", "pattern": "^[0-9]{1,6} ?(KiB|MiB|GiB|KB|MB|GB)?$" },
        ]
    })
}

/// A duration in an answer, as humantime writes it (`"1h 30m"`).
const SHOWN_DURATION: &str = "ShownDuration";

/// Points every `Duration` (and `PositiveDuration`) reference in `schema`
/// at [`SHOWN_DURATION`],
/// and `LimitsArg` at `ShownLimits`: answers write durations their own
/// way, which requests need not follow.
fn shown(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get_mut("$ref") {
                if r == "#/components/schemas/Duration"
                    || r == "#/components/schemas/PositiveDuration"
                {
                    *r = format!("#/components/schemas/{SHOWN_DURATION}");
                } else if r == "#/components/schemas/LimitsArg" {
                    *r = "#/components/schemas/ShownLimits".to_owned();
                }
            }
            map.values_mut().for_each(shown);
        }
        Value::Array(items) => items.iter_mut().for_each(shown),
        _ => {}
    }
}

/// A string of at most `max` bytes with no NUL, not empty when `min` is 1.
/// JSON Schema counts characters: `max` of them is the bound that refuses
/// what the daemon refuses; a string under it in characters but over it in
/// bytes (many multi-byte characters) is refused too, as the prose says.
fn text(min: usize, max: usize) -> Value {
    json!({ "type": "string", "minLength": min, "maxLength": max, "pattern": "^[^\\u0000]*$" })
}

/// Writes the rules into `doc`'s component schemas.
pub fn apply(doc: &mut Value) {
    let schemas = &mut doc["components"]["schemas"];
    schemas["Duration"] = duration(false);
    schemas["PositiveDuration"] = duration(true);
    schemas["Size"] = size();
    schemas[SHOWN_DURATION] = json!({
        "type": "string",
        "description": "a duration as humantime writes it: \"1s\", \"1h 30m\", \"2years 3months\"",
    });
    schemas["ShownLimits"] = schemas["LimitsArg"].clone();
    for name in ["ShownLimits", "JobView", "AttemptView"] {
        shown(&mut schemas[name]);
    }

    let job = &mut schemas["JobRequest"];
    let props = &mut job["properties"];
    let argument = text(0, MAX_ARG_STRING - 1);
    props["command"] = json!({
        "type": ["array", "null"],
        "description": "argv, run without a shell; argv[0] names the program",
        "minItems": 1,
        "prefixItems": [text(1, MAX_ARG_STRING - 1)],
        "items": argument,
    });
    props["shell"] = json!({
        "type": ["string", "null"],
        "description": "a line run by the shell; not blank",
        "maxLength": MAX_ARG_STRING - 1,
        "pattern": "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$",
    });
    props["env"]["propertyNames"] =
        json!({ "type": "string", "minLength": 1, "pattern": "^[^=\\u0000]+$" });
    // NAME=VALUE is bounded together (128 KiB): said in prose only.
    props["env"]["additionalProperties"] = json!({ "type": "string", "pattern": "^[^\\u0000]*$" });
    props["cwd"]["pattern"] = json!("^/");
    props["queue"]["pattern"] = json!(QUEUE_NAME);
    props["retries"]["maximum"] = json!(MAX_RETRIES);
    props["after"]["maxItems"] = json!(MAX_AFTER);
    props["after"]["items"] = job_ref();
    for key in ["name", "idempotency_key"] {
        let mut t = text(1, MAX_LABEL_LEN);
        t["type"] = json!(["string", "null"]);
        props[key] = t;
    }
    props["labels"]["maxProperties"] = json!(MAX_LABELS);
    props["labels"]["propertyNames"] = json!({
        "type": "string", "minLength": 1, "maxLength": MAX_LABEL_LEN,
        "pattern": "^[^:\\u0000]*$",
    });
    props["labels"]["additionalProperties"] = text(0, MAX_LABEL_LEN);
    props["stdin"] = json!({ "type": ["string", "null"], "description": "text fed to stdin (any characters, NUL too)" });
    let mut upload = uuid();
    upload["type"] = json!(["string", "null"]);
    props["stdin_upload"] = upload;
    props["timeout"] = json!({ "oneOf": [{ "type": "null" }, { "$ref": "#/components/schemas/PositiveDuration" }], "description": "limit per attempt" });
    let given =
        |name: &str, schema: Value| json!({ "required": [name], "properties": { name: schema } });
    let not_null = json!({ "not": { "type": "null" } });
    job["allOf"] = json!([
        // Exactly one of command and shell.
        { "oneOf": [given("command", json!({ "type": "array" })), given("shell", json!({ "type": "string" }))] },
        // At most one of run_at and delay; of stdin and stdin_upload.
        { "not": { "allOf": [given("run_at", not_null.clone()), given("delay", not_null.clone())] } },
        { "not": { "allOf": [given("stdin", not_null.clone()), given("stdin_upload", not_null)] } },
    ]);

    // At most MAX_BATCH as well, said in prose only: so many specs are over
    // `max_body` long before, a 413 rather than the 400 a schema's bound
    // would promise.
    schemas["BatchRequest"]["properties"]["jobs"]["minItems"] = json!(1);
    schemas["BatchRequest"]["properties"]["jobs"]["description"] =
        json!(format!("the specs, created all or none; 1 to {MAX_BATCH}"));

    let bulk = schemas["BulkRequest"].clone();
    for (name, action) in [
        ("CleanRequest", "clean"),
        ("CancelRequest", "cancel"),
        ("RetryRequest", "retry"),
    ] {
        let mut s = bulk.clone();
        let states: Vec<&str> = StateName::ALL
            .iter()
            .filter(|s| match action {
                "cancel" => !s.is_terminal(),
                "retry" => matches!(s, StateName::Failed | StateName::Cancelled),
                _ => s.is_terminal(),
            })
            .map(|s| s.as_str())
            .collect();
        s["properties"]["state"] =
            json!({ "type": "array", "items": { "type": "string", "enum": states } });
        s["properties"]["queue"] = json!({ "type": ["string", "null"], "pattern": QUEUE_NAME });
        s["properties"]["owner"] = json!({ "type": ["string", "null"] });
        if action != "clean" {
            // Acting on every job at once is rarely meant: say which.
            s["anyOf"] = json!([
                { "required": ["state"], "properties": { "state": { "minItems": 1 } } },
                given("queue", json!({ "type": "string" })),
            ]);
        }
        schemas[name] = s;
    }

    schedules(schemas);

    let patch = &mut schemas["QueuePatch"];
    patch["properties"]["concurrency"]["minimum"] = json!(1);
    patch["properties"]["concurrency"]["maximum"] = json!(MAX_CONCURRENCY);
    patch["anyOf"] = json!([
        { "required": ["concurrency"] },
        given("paused", json!({ "type": "boolean" })),
        given("create", json!({ "const": true })),
    ]);
}

/// A cron expression of the forms the daemon takes, narrowed to a subset
/// whose every string fires (days 1 to 28 exist in every month); the
/// daemon takes more (ranges, lists, names, `L`), as docs/api.md says.
pub const CRON: &str = r"^(@(hourly|daily|weekly|monthly|yearly)|([1-5]?[0-9] )?(\*|[1-5]?[0-9]|\*/[1-9]) (\*|1?[0-9]|2[0-3]) (\*|[1-9]|1[0-9]|2[0-8]) (\*|[1-9]|1[0-2]) (\*|[0-6]))$";

/// The schedule schemas: a schedule's job is a job spec without the
/// fields a recurring job cannot have.
fn schedules(schemas: &mut Value) {
    let mut job = schemas["JobRequest"].clone();
    if let Some(props) = job["properties"].as_object_mut() {
        for gone in [
            "run_at",
            "delay",
            "after",
            "idempotency_key",
            "stdin_upload",
        ] {
            props.remove(gone);
        }
    }
    // Of the spec's rules, exactly one of command and shell remains.
    let one_of = job["allOf"][0].clone();
    job["allOf"] = json!([one_of]);
    job["description"] = json!("a job spec as POST /v1/jobs takes it, without run_at, delay, after, idempotency_key or stdin_upload");
    let mut shown_job = job.clone();
    shown(&mut shown_job);
    shown_job.as_object_mut().map(|o| o.remove("allOf"));
    schemas["ScheduleJob"] = job;
    schemas["ShownScheduleJob"] = shown_job;

    let put = &mut schemas["ScheduleRequest"]["properties"];
    put["job"] = json!({ "$ref": "#/components/schemas/ScheduleJob" });
    put["cron"] = json!({ "type": "string", "pattern": CRON, "description": "5 fields (minute hour day-of-month month day-of-week), 6 with seconds first, or @hourly, @daily, @weekly, @monthly, @yearly" });
    put["timezone"] = json!({ "type": ["string", "null"], "minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$", "description": "an IANA time zone name (default UTC)" });

    let view = &mut schemas["ScheduleView"]["properties"];
    view["job"] = json!({ "$ref": "#/components/schemas/ShownScheduleJob" });

    let patch = &mut schemas["SchedulePatch"];
    patch["properties"]["paused"] = json!({ "type": "boolean" });
    patch["required"] = json!(["paused"]);
}
