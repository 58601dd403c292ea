//! Request bodies: read under the size limit, parsed as strict JSON (no
//! key twice in an object), and turned into the API's types with errors
//! that name the field and say in words what was expected: serde's own
//! messages name Rust types (`expected i32`), which a client cannot act on.

use std::collections::BTreeSet;
use std::fmt;

use futures_lite::AsyncReadExt;
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

/// Reads the body, refusing more than `max` bytes with 413.
pub(super) async fn read_body(req: &mut Request<AppState>, max: u64) -> Result<Vec<u8>, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PayloadTooLarge,
            ErrorCode::PayloadTooLarge,
            format!("the request body is larger than the limit of {max} bytes (config max_body, or max_upload for uploads)"),
        )
    };
    let declared = req.len();
    if declared.is_some_and(|len| len as u64 > max) {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    req.take_body()
        .take(max + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::BadRequest,
                ErrorCode::InvalidJson,
                format!("cannot read the body: {e}"),
            )
        })?;
    if bytes.len() as u64 > max {
        return Err(too_large());
    }
    // The client stopped sending (and half-closed) before the length it
    // announced: the request is not whole, so nothing of it is done.
    if let Some(len) = declared.filter(|len| bytes.len() < *len) {
        return Err(ApiError::new(
            StatusCode::BadRequest,
            ErrorCode::InvalidJson,
            format!(
                "the body ended after {} of the {len} bytes its Content-Length announced",
                bytes.len()
            ),
        ));
    }
    Ok(bytes)
}

/// Parses a JSON body into `T`, naming the field at fault on error.
pub(super) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    from_object(parse_object(bytes)?)
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
pub(super) fn from_object<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
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
