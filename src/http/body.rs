//! Request bodies: read under the size limit, parsed as strict JSON (no
//! key twice in an object), and turned into the API's types with errors
//! that name the field and say in words what was expected: serde's own
//! messages name Rust types (`expected i32`), which a client cannot act on.

use std::collections::BTreeSet;
use std::fmt;
use std::time::{Duration, Instant};

use futures_lite::{future, AsyncReadExt};
use serde::de::{self, DeserializeOwned, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};
use tide::{Request, StatusCode};

use super::{routes, ApiError, AppState};
use crate::api::ErrorCode;

/// The body the endpoint read before the handler ran.
pub(super) fn body(req: &Request<AppState>) -> &[u8] {
    req.ext::<routes::RequestBody>()
        .map_or(&[], |b| b.0.as_slice())
}

/// Longest a request body may go without a byte arriving.
pub const BODY_STALL: Duration = Duration::from_secs(10);
/// How long a body may take before it must have come at
/// [`MIN_BODY_RATE`] on average.
pub const BODY_GRACE: Duration = Duration::from_secs(30);
/// The slowest average a body may come at once [`BODY_GRACE`] is past,
/// in bytes per second: a client trickling a byte a second is dropped.
pub const MIN_BODY_RATE: u64 = 1024;

/// The 413 of a body over `max`.
fn too_large(max: u64) -> ApiError {
    ApiError::new(
        StatusCode::PayloadTooLarge,
        ErrorCode::PayloadTooLarge,
        format!("the request body is larger than the limit of {max} bytes (config max_body, or max_upload for uploads)"),
    )
}

/// Reads a request body piece by piece under the time limits, counting
/// what came, so that a body that stalls, trickles or stops short is
/// refused whole.
pub(super) struct BodyReader {
    body: tide::Body,
    declared: Option<usize>,
    max: u64,
    started: Instant,
    /// Bytes read so far.
    pub got: u64,
}

impl BodyReader {
    /// Takes `req`'s body, refusing with 413 one whose declared length is
    /// over `max`.
    pub fn new(req: &mut Request<AppState>, max: u64) -> Result<BodyReader, ApiError> {
        let declared = req.len();
        if declared.is_some_and(|len| len as u64 > max) {
            return Err(too_large(max));
        }
        Ok(BodyReader {
            body: req.take_body(),
            declared,
            max,
            started: Instant::now(),
            got: 0,
        })
    }

    /// The next bytes into `buf`; 0 at the end of a whole body.
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<usize, ApiError> {
        let timeout = |message: String| {
            ApiError::new(StatusCode::RequestTimeout, ErrorCode::InvalidJson, message)
        };
        let late = self.started + BODY_GRACE.max(Duration::from_secs(self.got / MIN_BODY_RATE));
        let stall = Instant::now() + BODY_STALL;
        let n = future::or(async { Some(self.body.read(buf).await) }, async {
            async_io::Timer::at(stall.min(late.max(Instant::now()))).await;
            None
        })
        .await;
        let n = match n {
            Some(read) => read.map_err(|e| {
                ApiError::new(
                    StatusCode::BadRequest,
                    ErrorCode::InvalidJson,
                    format!("cannot read the body: {e}"),
                )
            })?,
            None if Instant::now() >= late => {
                return Err(timeout(format!(
                    "the body came slower than {MIN_BODY_RATE} bytes/s ({} bytes in {} s)",
                    self.got,
                    self.started.elapsed().as_secs()
                )))
            }
            None => {
                return Err(timeout(format!(
                    "no byte of the body came for {} s ({} bytes came before)",
                    BODY_STALL.as_secs(),
                    self.got
                )))
            }
        };
        self.got += n as u64;
        if self.got > self.max {
            return Err(too_large(self.max));
        }
        // The client stopped sending (and half-closed) before the length it
        // announced: the request is not whole, so nothing of it is done.
        if n == 0 {
            if let Some(len) = self.declared.filter(|len| self.got < *len as u64) {
                return Err(ApiError::new(
                    StatusCode::BadRequest,
                    ErrorCode::InvalidJson,
                    format!(
                        "the body ended after {} of the {len} bytes its Content-Length announced",
                        self.got
                    ),
                ));
            }
        }
        Ok(n)
    }
}

/// Reads the whole body into memory, refusing more than `max` bytes with
/// 413 (for JSON bodies, whose `max_body` is small).
pub(super) async fn read_body(req: &mut Request<AppState>, max: u64) -> Result<Vec<u8>, ApiError> {
    let mut reader = BodyReader::new(req, max)?;
    let mut bytes = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            return Ok(bytes);
        }
        bytes.extend_from_slice(&buf[..n]);
    }
}

/// Parses a JSON body into `T`, naming the field at fault on error.
pub(super) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    from_object(parse_object(bytes)?)
}

/// Writes each number with a decimal point but no fraction (`3.0`, which
/// Python's `json` writes for a float) as the integer it is: JSON Schema
/// counts it as an integer, and serde would refuse it where one is wanted.
fn whole_numbers(value: &mut Value) {
    match value {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            // ±2^63 bounds what i64 and u64 hold exactly as converted.
            if f.fract() == 0.0 && f.abs() < 9.2e18 {
                *value = if f < 0.0 {
                    Value::from(f as i64)
                } else {
                    Value::from(f as u64)
                };
            }
        }
        Value::Array(items) => items.iter_mut().for_each(whole_numbers),
        Value::Object(fields) => fields.values_mut().for_each(whole_numbers),
        _ => {}
    }
}

/// Parses a JSON body that must be an object, refusing a key given twice
/// in any object (`{"shell": "true", "shell": "false"}` would otherwise
/// run whichever came last).
pub(super) fn parse_object(bytes: &[u8]) -> Result<Value, ApiError> {
    let Strict(value) = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BadRequest,
            ErrorCode::InvalidJson,
            format!("the body is not valid JSON: {e}"),
        )
    })?;
    if !value.is_object() {
        return Err(ApiError::new(
            StatusCode::BadRequest,
            ErrorCode::InvalidJson,
            "the body must be a JSON object",
        ));
    }
    Ok(value)
}

/// Turns a parsed body into `T`, naming the field at fault on error.
pub(super) fn from_object<T: DeserializeOwned>(mut value: Value) -> Result<T, ApiError> {
    whole_numbers(&mut value);
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        // serde names an unknown or missing field only in its message.
        let unknown = ["unknown field `", "missing field `"]
            .iter()
            .find_map(|prefix| message.strip_prefix(prefix))
            .and_then(|rest| rest.split('`').next())
            .map(str::to_owned);
        // serde_path_to_error already ends the path with an unknown field's
        // name in some versions and not in others; name it exactly once.
        let field = match (unknown, path.as_str()) {
            (Some(name), ".") => name,
            (Some(name), p) if p == name || p.ends_with(&format!(".{name}")) => p.to_owned(),
            (Some(name), parent) => format!("{parent}.{name}"),
            (None, path) => path.to_owned(),
        };
        ApiError::field(field.clone(), format!("{field}: {}", in_words(&message)))
    })
}

/// serde's message about a value of the wrong type or range, in words:
/// `invalid value: integer \`-1\`, expected u32` → `must be ≥ 0, not -1`.
/// Messages of our own types (durations, ids) pass through unchanged.
fn in_words(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("unknown variant `") {
        if let Some((value, expected)) = rest.split_once("`, expected ") {
            let expected = expected.replace('`', "");
            return format!(
                "{value:?} is not one of {}",
                expected.trim_start_matches("one of ")
            );
        }
    }
    let Some((kind, rest)) = message
        .strip_prefix("invalid type: ")
        .map(|r| ("type", r))
        .or_else(|| {
            message
                .strip_prefix("invalid value: ")
                .map(|r| ("value", r))
        })
    else {
        return message.to_owned();
    };
    let Some((got, expected)) = rest.rsplit_once(", expected ") else {
        return message.to_owned();
    };
    let got = unexpected(got);
    let negative = got.starts_with('-');
    let expected = match expected {
        "i32" => "a whole number from -2147483648 to 2147483647 (such as 10 or -5)",
        "u32" | "u64" | "usize" if kind == "value" && negative => {
            return format!("must be ≥ 0, not {got}");
        }
        "u32" => "a whole number from 0 to 4294967295 (such as 3)",
        "u64" | "usize" => "a whole number ≥ 0 (such as 3)",
        "a sequence" => "a list (a JSON array)",
        "a map" => "an object (a JSON object of names to values)",
        "a boolean" => "true or false",
        "a string" => "a string (in double quotes)",
        other => other,
    };
    format!("expected {expected}, not {got}")
}

/// serde's description of the value it got, as JSON would write it.
fn unexpected(got: &str) -> String {
    let literal = |prefix: &str| {
        got.strip_prefix(prefix)
            .map(|v| v.trim_matches('`').to_owned())
    };
    if let Some(v) = literal("integer ").or_else(|| literal("floating point ")) {
        return v;
    }
    if let Some(v) = got.strip_prefix("string ") {
        return v.to_owned();
    }
    match got {
        "sequence" => "a list".to_owned(),
        "map" => "an object".to_owned(),
        "unit value" | "null" => "null".to_owned(),
        "boolean `true`" => "true".to_owned(),
        "boolean `false`" => "false".to_owned(),
        other => other.to_owned(),
    }
}

/// A JSON value read with every object's keys checked for repeats.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Strict, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

/// Builds a [`Value`] like serde_json's own, but refuses a repeated key.
struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut seen = BTreeSet::new();
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom(format!(
                    "the key {key:?} appears twice in one object"
                )));
            }
            let Strict(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_key_is_refused_at_any_depth() {
        assert!(parse_object(br#"{"shell":"true","shell":"false"}"#).is_err());
        assert!(parse_object(br#"{"env":{"A":"1","A":"2"}}"#).is_err());
        assert!(parse_object(br#"{"jobs":[{"q":1},{"q":1,"q":2}]}"#).is_err());
        let fine = parse_object(br#"{"a":{"b":1},"b":{"a":[1,2.5,null,true]}}"#).unwrap();
        assert_eq!(fine["b"]["a"][1], 2.5);
    }

    #[test]
    fn serde_messages_are_said_in_words() {
        for (serde, words) in [
            ("invalid type: string \"x\", expected i32", "expected a whole number from -2147483648 to 2147483647 (such as 10 or -5), not \"x\""),
            ("invalid value: integer `-1`, expected u32", "must be ≥ 0, not -1"),
            ("invalid value: integer `-1`, expected usize", "must be ≥ 0, not -1"),
            ("invalid type: floating point `1.5`, expected u32", "expected a whole number from 0 to 4294967295 (such as 3), not 1.5"),
            ("invalid type: sequence, expected a map", "expected an object (a JSON object of names to values), not a list"),
            ("invalid type: string \"yes\", expected a boolean", "expected true or false, not \"yes\""),
            ("unknown variant `x`, expected one of `a`, `b`", "\"x\" is not one of a, b"),
            ("a duration cannot be negative", "a duration cannot be negative"),
        ] {
            let said = in_words(serde);
            assert_eq!(said, words);
            for rust in ["i32", "u32", "usize", "sequence", "map", "parsable"] {
                assert!(!said.contains(rust), "{said}");
            }
        }
    }
}
