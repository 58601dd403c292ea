//! `jobq submit --batch FILE`: many jobs from a JSON Lines file, sent with
//! `POST /v1/jobs/batch`.
//!
//! Every line is read and checked before anything is sent (as JSON, then
//! with the daemon's own [`JobRequest::validate`]), so a malformed line
//! submits nothing. The daemon takes at most [`MAX_BATCH`] jobs
//! and `max_body` bytes in one request; a longer file goes in several
//! batches, each all or nothing on its own. Errors name the file's line
//! numbers, including the daemon's complaints about one spec
//! (`jobs[3].timeout` becomes the line that spec came from).

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use super::{render, CliError};
use crate::api::{BatchRequest, FieldError, JobRequest, MAX_BATCH};
use crate::client::{io_reason, Client, ClientError};

/// The bytes of `{"jobs":[]}` around the specs of a batch.
const ENVELOPE_BYTES: usize = 11;

/// One job spec of the file.
#[derive(Debug)]
struct Spec {
    /// Its line number, from 1.
    line: usize,
    /// The spec as read.
    request: JobRequest,
    /// Its size as sent, in bytes.
    bytes: usize,
}

/// Submits every job of the file at `path` (`-`: stdin); prints one id per
/// line in the order of the lines, or `{"jobs": [...]}` with `json`.
pub fn run(client: &Client, path: &Path, json: bool, out: &mut dyn Write) -> Result<i32, CliError> {
    let name = path.display().to_string();
    let specs = parse(&name, &read(path)?)?;
    if specs.is_empty() {
        return Err(CliError::Usage(format!(
            "--batch {name}: no job specs (every line is blank)"
        )));
    }
    let batches = split(specs, MAX_BATCH, body_limit());
    let count = batches.len();
    let mut jobs = Vec::new();
    let mut submitted: Option<(usize, usize)> = None;
    for (index, batch) in batches.into_iter().enumerate() {
        let lines: Vec<usize> = batch.iter().map(|s| s.line).collect();
        let request = BatchRequest {
            jobs: batch.into_iter().map(|s| s.request).collect(),
        };
        let reply = match client.submit_batch(&request) {
            Ok(reply) => reply,
            Err(err) => {
                if json && submitted.is_some() {
                    print_jobs(out, jobs)?;
                }
                let err = at_line(err, &name, &lines);
                return Err(batch_error(err, index, count, &lines, submitted));
            }
        };
        if json {
            if let Some(array) = reply.json.get("jobs").and_then(|j| j.as_array()) {
                jobs.extend(array.iter().cloned());
            }
        } else {
            for job in &reply.value.jobs {
                writeln!(out, "{}", job.id)?;
            }
            // Now: if a later batch is refused, these ids are already out.
            out.flush()?;
        }
        let first = submitted.map_or(lines[0], |(first, _)| first);
        submitted = Some((first, lines[lines.len() - 1]));
    }
    if json {
        print_jobs(out, jobs)?;
    }
    Ok(0)
}

/// The file's bytes (`-`: this process's stdin).
fn read(path: &Path) -> Result<Vec<u8>, CliError> {
    let mut bytes = Vec::new();
    let read = if path == Path::new("-") {
        std::io::stdin().lock().read_to_end(&mut bytes)
    } else {
        std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut bytes))
    };
    read.map_err(|e| {
        CliError::Usage(format!(
            "cannot read --batch {}: {}",
            path.display(),
            io_reason(&e)
        ))
    })?;
    Ok(bytes)
}

/// Every spec of a JSON Lines text, skipping blank lines; the first bad
/// line is an error naming it (`name` is the file, for the message).
fn parse(name: &str, bytes: &[u8]) -> Result<Vec<Spec>, CliError> {
    let mut specs = Vec::new();
    for (index, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let line = index + 1;
        let bad = |what: String| CliError::Usage(format!("--batch {name}: line {line}: {what}"));
        let text = std::str::from_utf8(raw).map_err(|_| bad("not valid UTF-8".to_owned()))?;
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        let request = parse_spec(text).map_err(&bad)?;
        precheck(&request).map_err(|e| bad(e.to_string()))?;
        let bytes = serde_json::to_vec(&request).map_or(0, |v| v.len());
        specs.push(Spec {
            line,
            request,
            bytes,
        });
    }
    Ok(specs)
}

/// One line as a job spec, or what is wrong with it: the field at fault
/// and the column.
fn parse_spec(text: &str) -> Result<JobRequest, String> {
    // serde would also take a struct as an array of its fields in order.
    if !text.starts_with('{') {
        return Err("not a JSON object; each line must be one job spec {...}".to_owned());
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let request: JobRequest = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let column = inner.column();
        let message = without_position(&inner);
        match path.as_str() {
            "." | "" => format!("column {column}: {message}"),
            field => format!("{field}: {message}"),
        }
    })?;
    de.end().map_err(|e| {
        format!(
            "column {}: {} (one job spec per line)",
            e.column(),
            without_position(&e)
        )
    })?;
    Ok(request)
}

/// The daemon's own checks of a spec ([`JobRequest::validate`]), run here
/// so that a bad spec in a later batch is caught before an earlier batch
/// is sent. `cwd` is left to the daemon: it names a directory on the
/// daemon's host.
fn precheck(request: &JobRequest) -> Result<(), FieldError> {
    let request = JobRequest {
        cwd: None,
        ..request.clone()
    };
    request
        .validate(jiff::Timestamp::now(), Duration::from_secs(1))
        .map(drop)
}

/// A serde_json error without its ` at line 1 column 12` tail: every line
/// is line 1 to the parser.
fn without_position(err: &serde_json::Error) -> String {
    let text = err.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

/// The body limit batches are cut to: the daemon's default `max_body`. A
/// daemon configured lower refuses a batch with 413 and says so.
fn body_limit() -> usize {
    usize::try_from(crate::config::Config::default().max_body).unwrap_or(usize::MAX)
}

/// Cuts the specs, in order, into batches of at most `max_jobs` specs and
/// `max_bytes` of body. A spec larger than `max_bytes` on its own goes alone,
/// for the daemon to judge.
fn split(specs: Vec<Spec>, max_jobs: usize, max_bytes: usize) -> Vec<Vec<Spec>> {
    let mut batches = Vec::new();
    let mut batch: Vec<Spec> = Vec::new();
    let mut bytes = ENVELOPE_BYTES;
    for spec in specs {
        // +1 for the comma before it.
        let full = batch.len() >= max_jobs || bytes + spec.bytes + 1 > max_bytes;
        if full && !batch.is_empty() {
            batches.push(std::mem::take(&mut batch));
            bytes = ENVELOPE_BYTES;
        }
        bytes += spec.bytes + 1;
        batch.push(spec);
    }
    if !batch.is_empty() {
        batches.push(batch);
    }
    batches
}

/// Prints jobs as one `{"jobs": [...]}`, like a single batch's answer.
fn print_jobs(out: &mut dyn Write, jobs: Vec<serde_json::Value>) -> Result<(), CliError> {
    render::json(out, &serde_json::json!({ "jobs": jobs }))?;
    Ok(())
}

/// The daemon's complaint about one spec (field `jobs[i]…`) with the line
/// that spec came from in place of its index in the batch.
fn at_line(err: ClientError, name: &str, lines: &[usize]) -> ClientError {
    let ClientError::Api { status, mut body } = err else {
        return err;
    };
    let Some(field) = body.error.field.clone() else {
        return ClientError::Api { status, body };
    };
    let index = field
        .strip_prefix("jobs[")
        .and_then(|rest| rest.split_once(']'))
        .and_then(|(i, _)| i.parse::<usize>().ok());
    let Some(line) = index.and_then(|i| lines.get(i)) else {
        return ClientError::Api { status, body };
    };
    let prefix = format!("jobs[{}]", index.unwrap_or_default());
    let message = &body.error.message;
    let rest = message
        .strip_prefix(&format!("{prefix}."))
        .or_else(|| message.strip_prefix(&prefix))
        .unwrap_or(message);
    body.error.message = format!("--batch {name}: line {line}: {rest}");
    body.error.field = None;
    ClientError::Api { status, body }
}

/// The error of batch `index` of `count`, saying which lines were submitted
/// before it (`submitted`, first and last line) and which were not.
fn batch_error(
    err: ClientError,
    index: usize,
    count: usize,
    lines: &[usize],
    submitted: Option<(usize, usize)>,
) -> CliError {
    if count == 1 {
        return err.into();
    }
    let (first, last) = (lines[0], lines[lines.len() - 1]);
    let this = format!("batch {} of {count}, lines {first}-{last}", index + 1);
    let context = match (submitted, &err) {
        (None, ClientError::Unreachable { .. }) => {
            format!("{this}; no earlier batch; this one may or may not have been saved")
        }
        (None, _) => format!("{this}; nothing was submitted"),
        (Some((a, b)), ClientError::Unreachable { .. }) => format!(
            "{this}; lines {a}-{b} were submitted (and printed); \
             this batch may or may not have been saved, later ones were not sent"
        ),
        (Some((a, b)), _) => format!(
            "{this}; lines {a}-{b} were submitted (and printed), \
             the lines from {first} on were not"
        ),
    };
    CliError::Context {
        error: err,
        context,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ErrorBody, ErrorCode, ErrorDetail};

    fn specs(text: &str) -> Result<Vec<Spec>, CliError> {
        parse("jobs.jsonl", text.as_bytes())
    }

    #[test]
    fn blank_lines_are_skipped_and_lines_numbered() {
        let s = specs("{\"command\":[\"true\"]}\n\n  \r\n{\"shell\":\"echo hi\",\"delay\":90}\r\n")
            .unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].line, s[1].line), (1, 4));
        assert_eq!(s[1].request.shell.as_deref(), Some("echo hi"));
        assert!(s[0].bytes > 0);
    }

    #[test]
    fn a_bad_line_is_named() {
        let err = specs("{\"command\":[\"true\"]}\n{\"comand\":[\"x\"]}\n").unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let text = err.to_string();
        assert!(text.starts_with("--batch jobs.jsonl: line 2: "), "{text}");
        assert!(text.contains("unknown field `comand`"), "{text}");
        assert!(!text.contains("at line 1"), "{text}");
        let err = specs("{\"command\":[\"true\"]} {}\n").unwrap_err();
        assert!(err.to_string().contains("line 1: column"), "{err}");
        let err = specs("{\"command\":[\"true\"]}\n{\"command\":[]}").unwrap_err();
        assert!(
            err.to_string()
                .contains("line 2: command: must name a program"),
            "{err}"
        );
        let err = specs("{\"command\":\"true\"}").unwrap_err();
        assert!(err.to_string().contains("line 1: command: "), "{err}");
        let err = specs("[[\"true\"]]").unwrap_err();
        assert!(
            err.to_string().contains("line 1: not a JSON object"),
            "{err}"
        );
        let err = parse("f", b"{\"shell\":\"\xff\"}").unwrap_err();
        assert!(err.to_string().contains("not valid UTF-8"), "{err}");
    }

    #[test]
    fn batches_respect_both_limits() {
        let spec = |line| Spec {
            line,
            request: JobRequest::default(),
            bytes: 10,
        };
        let sizes = |b: &[Vec<Spec>]| b.iter().map(Vec::len).collect::<Vec<_>>();
        let b = split((1..=7).map(spec).collect(), 3, 1000);
        assert_eq!(sizes(&b), [3, 3, 1]);
        assert_eq!(b[1][0].line, 4);
        // Room for 3 specs of 11 bytes (with commas) after the envelope.
        let b = split((1..=7).map(spec).collect(), 100, ENVELOPE_BYTES + 33);
        assert_eq!(sizes(&b), [3, 3, 1]);
        // A spec too large alone still goes, alone.
        let b = split((1..=2).map(spec).collect(), 100, 5);
        assert_eq!(sizes(&b), [1, 1]);
    }

    #[test]
    fn daemon_errors_name_the_line() {
        let err = ClientError::Api {
            status: 400,
            body: ErrorBody {
                error: ErrorDetail {
                    code: ErrorCode::InvalidField,
                    message: "jobs[1].cwd: \"rel\" is not an absolute path".into(),
                    field: Some("jobs[1].cwd".into()),
                },
            },
        };
        let err = at_line(err, "f", &[3, 7]);
        assert_eq!(
            err.to_string(),
            "--batch f: line 7: cwd: \"rel\" is not an absolute path"
        );
    }

    #[test]
    fn a_later_batch_failing_says_what_was_submitted() {
        let err = ClientError::Protocol {
            url: "u".into(),
            detail: "d".into(),
        };
        let err = batch_error(err, 1, 3, &[11, 20], Some((1, 10)));
        assert_eq!(err.exit_code(), 2);
        let text = err.to_string();
        assert!(text.contains("batch 2 of 3, lines 11-20"), "{text}");
        assert!(text.contains("lines 1-10 were submitted"), "{text}");
    }
}
