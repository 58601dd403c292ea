//! A typed, blocking HTTP client for the daemon's API (docs/api.md), used by the
//! CLI's client commands and usable by tests, over TCP or the daemon's
//! unix socket (`unix.rs`).
//!
//! This module is the only code that names ureq. It turns every answer into
//! either a value of the shared wire types of [`crate::api`] or a
//! [`ClientError`] that says whether the daemon could not be reached, refused
//! the request, or said something this client does not understand; the CLI
//! maps those to exit codes and one-line messages. It prints nothing itself.
//!
//! Streamed answers (followed output, the event stream) are handed out as
//! readers and iterators over one request; reconnecting after a lost
//! connection is the caller's policy, not this module's. Their requests go
//! through a second agent without a read timeout: a followed job or a
//! waited-for one may say nothing for hours. The Server-Sent Events parser
//! is [`sse`].

mod schedules;
pub mod sse;
mod unix;

use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::api::{
    BatchRequest, BatchResponse, BulkRequest, BulkResponse, ErrorBody, ErrorCode, ErrorDetail,
    JobEvent, JobList, JobRequest, JobView, QueueList, QueuePatch, QueueView, Upload,
};

/// docs/api.md's default address, as a URL.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7711";

/// The socket of a daemon run by the shipped systemd unit
/// (`RuntimeDirectory=jobq`); the CLI's default when it exists (docs/api.md).
pub const SYSTEM_SOCKET: &str = "/run/jobq/jobq.sock";

/// How long to wait for a TCP connection: the daemon is usually on the same
/// host, so a connection that takes longer than this is not going to happen.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one read or write of an ordinary request may stall before the
/// daemon is taken as hung. Generous: an answer may wait for an fsync of a
/// large upload. Streamed answers have no read timeout (see the module
/// doc).
pub const READ_TIMEOUT: Duration = Duration::from_secs(90);

/// Why a request did not give the answer the caller wanted.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// `--server` is not a URL this client can use.
    #[error("--server {url}: {reason}")]
    InvalidServer {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No daemon answered at the URL (refused, timed out, name not
    /// resolved, connection lost mid-answer).
    #[error("cannot reach jobq at {url}: {reason}")]
    Unreachable {
        /// The server URL rather than the request's: it is what the user
        /// gave and can fix.
        url: String,
        /// The cause, in a few lowercase words (`connection refused`).
        reason: String,
    },
    /// The daemon answered with a 4xx or 5xx status and an error body.
    #[error("{}", api_message(*status, body))]
    Api {
        /// The HTTP status.
        status: u16,
        /// The daemon's error, or one made up from the status when the body
        /// was not an API error (a proxy's page, say).
        body: ErrorBody,
    },
    /// The daemon answered, but not as docs/api.md says (an unexpected status, a
    /// body that is not the expected JSON): a version mismatch or a bug.
    #[error("unexpected answer from jobq at {url}: {detail}")]
    Protocol {
        /// The server URL.
        url: String,
        /// What was wrong, naming the field when JSON did not fit.
        detail: String,
    },
}

impl ClientError {
    /// The process exit code the CLI gives for this error: 3 when the daemon
    /// cannot be reached (a retry later may work), 2 for everything the user
    /// or the daemon refused.
    pub fn exit_code(&self) -> i32 {
        match self {
            ClientError::Unreachable { .. } => 3,
            ClientError::InvalidServer { .. }
            | ClientError::Api { .. }
            | ClientError::Protocol { .. } => 2,
        }
    }

    /// The API error code, when the daemon sent one.
    pub fn api_code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Api { body, .. } => Some(body.error.code),
            _ => None,
        }
    }
}

/// The one line shown for an API error: the daemon's message, the field at
/// fault when it is not already named, and how to fix it where the client
/// knows.
fn api_message(status: u16, body: &ErrorBody) -> String {
    let ErrorDetail {
        code,
        message,
        field,
    } = &body.error;
    let mut line = match field {
        Some(f) if !message.contains(f.as_str()) => format!("{f}: {message}"),
        _ => message.clone(),
    };
    match code {
        ErrorCode::QueueFull => {
            // The daemon's own message may already say both halves.
            if !line.contains("queue is full") {
                line = format!("the queue is full: {line}");
            }
            if !line.contains("retry") && !line.contains("try again") {
                line.push_str("; try again later");
            }
        }
        ErrorCode::Unavailable => {
            line = format!("the daemon is unavailable (shutting down or disk trouble): {line}");
            if !line.contains("retry") && !line.contains("try again") {
                line.push_str("; try again later");
            }
        }
        ErrorCode::Unauthorized => {
            line.push_str("; pass --token TOKEN, or set JOBQ_TOKEN or JOBQ_TOKEN_FILE")
        }
        ErrorCode::Internal => line = format!("daemon error ({status}): {line}"),
        _ => {}
    }
    line
}

/// Which output of a job to read (`stream=` of `GET /v1/jobs/{id}/output`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OutputStream {
    /// stdout and stderr interleaved in the order produced.
    #[default]
    All,
    /// Only stdout.
    Stdout,
    /// Only stderr.
    Stderr,
}

impl OutputStream {
    /// The query value.
    pub fn as_str(self) -> &'static str {
        match self {
            OutputStream::All => "all",
            OutputStream::Stdout => "stdout",
            OutputStream::Stderr => "stderr",
        }
    }
}

/// Filters of `GET /v1/jobs`; `None` leaves the daemon's default.
#[derive(Clone, Debug, Default)]
pub struct ListFilter {
    /// Comma-separated state names.
    pub state: Option<String>,
    /// One queue.
    pub queue: Option<String>,
    /// Only jobs of this owner (`token:ci`, `unix:alice`, `anonymous`).
    pub owner: Option<String>,
    /// Only jobs with this name.
    pub name: Option<String>,
    /// Only jobs with all of these labels.
    pub labels: Vec<(String, String)>,
    /// Most jobs in the page.
    pub limit: Option<u32>,
    /// Where the previous page stopped (its `next_cursor`).
    pub cursor: Option<String>,
}

/// Filters of `GET /v1/events`; `None` leaves that filter out.
#[derive(Clone, Debug, Default)]
pub struct EventQuery {
    /// Only this job's events; the stream then starts with its current
    /// state.
    pub job: Option<String>,
    /// Only jobs of this queue.
    pub queue: Option<String>,
}

/// One event of the job event stream ([`Client::events`]).
#[derive(Clone, Debug, PartialEq)]
pub enum StreamEvent {
    /// A job changed state (`event: job`).
    Job {
        /// The event, decoded.
        event: JobEvent,
        /// Its JSON as the daemon sent it (one line), for `--json`.
        data: String,
    },
    /// The stream fell too far behind and the daemon cut it
    /// (`event: lagged`); the daemon's message. Nothing follows.
    Lagged(String),
}

/// An open `GET /v1/events` stream, read one event at a time.
pub struct EventStream {
    /// The SSE body.
    sse: sse::Reader<BufReader<Box<dyn Read + Send>>>,
    /// The server, for errors.
    server: String,
}

impl EventStream {
    /// The next job event, or `None` once the daemon ended the stream
    /// (which it does only when shutting down, or after
    /// [`StreamEvent::Lagged`]). Events this client does not know are
    /// skipped. A lost connection is [`ClientError::Unreachable`]; so is a
    /// read cut by the deadline given to [`Client::events`].
    pub fn next_event(&mut self) -> Result<Option<StreamEvent>, ClientError> {
        loop {
            let event = match self.sse.next_event() {
                Ok(Some(event)) => event,
                Ok(None) => return Ok(None),
                Err(e) => {
                    return Err(ClientError::Unreachable {
                        url: self.server.clone(),
                        reason: format!("connection lost: {}", io_reason(&e)),
                    })
                }
            };
            match event.event.as_str() {
                "job" => {
                    let job = serde_json::from_str::<serde_json::Value>(&event.data)
                        .map_err(|e| e.to_string())
                        .and_then(|json| {
                            serde_path_to_error::deserialize::<_, JobEvent>(json)
                                .map_err(|e| format!("at `{}`: {}", e.path(), e.inner()))
                        });
                    return match job {
                        Ok(job) => Ok(Some(StreamEvent::Job {
                            event: job,
                            data: event.data,
                        })),
                        Err(detail) => Err(ClientError::Protocol {
                            url: self.server.clone(),
                            detail: format!("a job event that is not one: {detail}"),
                        }),
                    };
                }
                "lagged" => return Ok(Some(StreamEvent::Lagged(lagged_message(&event.data)))),
                _ => continue,
            }
        }
    }
}

/// One event of a followed job's output ([`Client::follow_events`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutputEvent {
    /// Attempt `n` began; its output follows from position 0.
    Attempt(u32),
    /// A piece of output.
    Output {
        /// Which stream wrote it.
        stream: OutputStream,
        /// The bytes.
        data: Vec<u8>,
        /// Its attempt.
        attempt: u32,
        /// The byte position after it in that attempt's followed output:
        /// where to resume.
        position: u64,
    },
    /// The job is terminal and all its output was sent.
    End,
}

/// An open followed output, read one event at a time.
pub struct OutputEvents {
    /// The SSE body.
    sse: sse::Reader<BufReader<Box<dyn Read + Send>>>,
    /// The server, for errors.
    server: String,
}

impl OutputEvents {
    /// The next event; `None` when the stream ended without an
    /// [`OutputEvent::End`] (a cut connection: resume from the last
    /// position). A lost connection is [`ClientError::Unreachable`].
    pub fn next_event(&mut self) -> Result<Option<OutputEvent>, ClientError> {
        use base64::Engine as _;
        loop {
            let event = match self.sse.next_event() {
                Ok(Some(event)) => event,
                Ok(None) => return Ok(None),
                Err(e) => {
                    return Err(ClientError::Unreachable {
                        url: self.server.clone(),
                        reason: format!("connection lost: {}", io_reason(&e)),
                    })
                }
            };
            let bad = |what: &str| ClientError::Protocol {
                url: self.server.clone(),
                detail: format!("an output event that is not one: {what}"),
            };
            let stream = match event.event.as_str() {
                "stdout" => OutputStream::Stdout,
                "stderr" => OutputStream::Stderr,
                "end" => return Ok(Some(OutputEvent::End)),
                "attempt" => {
                    let json: serde_json::Value =
                        serde_json::from_str(&event.data).map_err(|e| bad(&e.to_string()))?;
                    let n = json["attempt"]
                        .as_u64()
                        .and_then(|n| u32::try_from(n).ok())
                        .ok_or_else(|| bad(&event.data))?;
                    return Ok(Some(OutputEvent::Attempt(n)));
                }
                _ => continue,
            };
            let (attempt, position) = event
                .id
                .as_deref()
                .and_then(|id| id.split_once(':'))
                .and_then(|(a, p)| Some((a.parse().ok()?, p.parse().ok()?)))
                .ok_or_else(|| bad("no attempt:position id"))?;
            let data = base64::engine::general_purpose::STANDARD
                .decode(event.data.as_bytes())
                .map_err(|e| bad(&e.to_string()))?;
            return Ok(Some(OutputEvent::Output {
                stream,
                data,
                attempt,
                position,
            }));
        }
    }
}

/// The message of an `event: lagged`, whose data is `{"message": "…"}`.
fn lagged_message(data: &str) -> String {
    serde_json::from_str::<serde_json::Value>(data)
        .ok()
        .and_then(|json| json["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "the event stream fell too far behind and was cut".to_owned())
}

/// A decoded answer together with the JSON it was decoded from, so `--json`
/// can print exactly what the daemon said, including fields this client
/// does not know yet (docs/api.md allows adding fields).
#[derive(Clone, Debug)]
pub struct Reply<T> {
    /// The typed answer.
    pub value: T,
    /// The body as the daemon sent it.
    pub json: serde_json::Value,
}

/// Where the daemon is: a TCP address or a unix socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Server {
    /// `http://host:port[/prefix]`, without a trailing slash.
    Http(String),
    /// `unix:/path/to/socket`: the daemon knows who connected, no token
    /// needed.
    Unix(PathBuf),
}

impl Server {
    /// Parses `--server`: `unix:/path`, `http://host:port`, or a bare
    /// `host:port` (taken as http). An empty value is [`default_server`].
    pub fn parse(server: &str) -> Result<Server, ClientError> {
        let invalid = |reason: &str| ClientError::InvalidServer {
            url: server.to_owned(),
            reason: reason.to_owned(),
        };
        let trimmed = server.trim();
        if let Some(path) = trimmed.strip_prefix("unix:") {
            let path = Path::new(path);
            if !path.is_absolute() {
                return Err(invalid(
                    "a unix socket needs an absolute path, such as unix:/run/jobq/jobq.sock",
                ));
            }
            return Ok(Server::Unix(path.to_owned()));
        }
        let trimmed = trimmed.trim_end_matches('/');
        if trimmed.is_empty() {
            // `JOBQ_SERVER=` is how people unset it in a shell line.
            return Ok(default_server());
        }
        let url = match trimmed.split_once("://") {
            Some(("http", rest)) if !rest.is_empty() => trimmed.to_owned(),
            Some(("https", _)) => {
                return Err(invalid(
                    "this jobq speaks plain http only; use an http:// URL (a TLS proxy in front of the daemon can add https)",
                ))
            }
            Some(_) => {
                return Err(invalid(
                    "not an http URL such as http://127.0.0.1:7711, nor unix:/path",
                ))
            }
            None => format!("http://{trimmed}"),
        };
        if url.contains(char::is_whitespace) {
            return Err(invalid("a URL cannot contain spaces"));
        }
        Ok(Server::Http(url))
    }
}

impl Server {
    /// True when the daemon is on this machine (a unix socket, or a
    /// loopback address or `localhost`): then a path here means the same
    /// to it, and the CLI sends its current directory as the job's `cwd`.
    pub fn is_local(&self) -> bool {
        match self {
            Server::Unix(_) => true,
            Server::Http(url) => {
                let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
                let authority = rest.split('/').next().unwrap_or(rest);
                let host = match authority.strip_prefix('[') {
                    Some(v6) => v6.split(']').next().unwrap_or(v6),
                    None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
                };
                host.eq_ignore_ascii_case("localhost")
                    || host
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            }
        }
    }
}

impl std::fmt::Display for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Server::Http(url) => f.write_str(url),
            Server::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// The server a client uses when neither `--server` nor `JOBQ_SERVER`
/// names one: the system socket when it exists (the daemon runs as a
/// service on this machine), else docs/api.md's default address.
pub fn default_server() -> Server {
    default_with_socket(Path::new(SYSTEM_SOCKET))
}

/// [`default_server`] with `socket` as the system socket.
fn default_with_socket(socket: &Path) -> Server {
    if socket.exists() {
        Server::Unix(socket.to_owned())
    } else {
        Server::Http(DEFAULT_SERVER.to_owned())
    }
}

/// A connection to one daemon. Cheap to clone; reuses connections.
#[derive(Clone)]
pub struct Client {
    /// Carries the timeouts and the connection pool.
    agent: ureq::Agent,
    /// The same without a read timeout, for streamed answers.
    stream_agent: ureq::Agent,
    /// Where requests go, as shown in messages.
    server: Server,
    /// The URL every path is appended to: the server's for TCP, a
    /// placeholder host for a unix socket (the connector ignores it).
    base: String,
    /// Sent as `Authorization: Bearer` when set.
    token: Option<String>,
}

/// Hides the token, which is a credential.
impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("server", &self.server)
            .field("token", &self.token.as_ref().map(|_| "<hidden>"))
            .finish()
    }
}

/// A request body.
enum Payload {
    /// None.
    Empty,
    /// JSON bytes.
    Json(Vec<u8>),
    /// Bytes read as they are sent, `application/octet-stream`, with their
    /// length when known (else chunked).
    Stream(Box<dyn Read>, Option<u64>),
}

/// A request, before it is sent.
struct Call<'a> {
    /// The HTTP method.
    method: ureq::http::Method,
    /// The path, escaped.
    path: String,
    /// Query parameters, in order, unescaped.
    query: Vec<(&'a str, String)>,
    /// Extra headers.
    headers: Vec<(&'static str, String)>,
    /// The body.
    payload: Payload,
    /// Whether the answer is a stream (no read timeout).
    streamed: bool,
    /// The whole request must be done by then.
    deadline: Option<Instant>,
}

impl<'a> Call<'a> {
    fn new(method: ureq::http::Method, path: impl Into<String>) -> Call<'a> {
        Call {
            method,
            path: path.into(),
            query: Vec::new(),
            headers: Vec::new(),
            payload: Payload::Empty,
            streamed: false,
            deadline: None,
        }
    }

    fn get(path: impl Into<String>) -> Call<'a> {
        Call::new(ureq::http::Method::GET, path)
    }

    fn post(path: impl Into<String>) -> Call<'a> {
        Call::new(ureq::http::Method::POST, path)
    }

    fn query(mut self, key: &'a str, value: impl Into<String>) -> Call<'a> {
        self.query.push((key, value.into()));
        self
    }

    fn json<B: Serialize>(mut self, body: &B) -> Call<'a> {
        // Our own types always serialize.
        self.payload = Payload::Json(serde_json::to_vec(body).unwrap_or_default());
        self
    }
}

impl Client {
    /// A client for the daemon at `server` (see [`Server::parse`]). This
    /// build speaks plain HTTP only, over TCP or a unix socket.
    pub fn new(server: &str, token: Option<String>) -> Result<Client, ClientError> {
        Client::with_server(Server::parse(server)?, token)
    }

    /// A client for `server`.
    pub fn with_server(server: Server, token: Option<String>) -> Result<Client, ClientError> {
        let config = |read_timeout: Option<Duration>| {
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(0)
                .timeout_connect(Some(CONNECT_TIMEOUT))
                .timeout_per_write(Some(READ_TIMEOUT))
                .timeout_per_read(read_timeout)
                .user_agent(concat!("jobq/", env!("CARGO_PKG_VERSION")))
                .build()
        };
        let agent = |read_timeout| match &server {
            Server::Http(_) => ureq::Agent::new_with_config(config(read_timeout)),
            Server::Unix(path) => ureq::Agent::with_parts(
                config(read_timeout),
                unix::UnixConnector { path: path.clone() },
                unix::NoResolver,
            ),
        };
        let base = match &server {
            Server::Http(url) => url.clone(),
            // The Host header the daemon sees; it does not check it on a
            // unix socket.
            Server::Unix(_) => "http://localhost".to_owned(),
        };
        Ok(Client {
            agent: agent(Some(READ_TIMEOUT)),
            stream_agent: agent(None),
            server,
            base,
            token: token.filter(|t| !t.is_empty()),
        })
    }

    /// True when the daemon is on this machine (see [`Server::is_local`]).
    pub fn is_local(&self) -> bool {
        self.server.is_local()
    }

    /// The server requests go to, as shown in messages (`http://…` or
    /// `unix:/…`).
    pub fn server(&self) -> String {
        self.server.to_string()
    }

    /// `POST /v1/jobs`: the new job (201), or the existing one for a repeated
    /// idempotency key (200).
    pub fn submit(&self, request: &JobRequest) -> Result<Reply<JobView>, ClientError> {
        let resp = self.send(Call::post("/v1/jobs").json(request))?;
        self.expect_json(resp, &[200, 201])
    }

    /// `POST /v1/jobs/batch`: every job of `request`, created all or none,
    /// in request order (a repeated idempotency key gives the existing job).
    pub fn submit_batch(
        &self,
        request: &BatchRequest,
    ) -> Result<Reply<BatchResponse>, ClientError> {
        let resp = self.send(Call::post("/v1/jobs/batch").json(request))?;
        self.expect_json(resp, &[200, 201])
    }

    /// `POST /v1/jobs/{action}` (`clean`, `cancel`, `retry`): the action on
    /// every job `request` selects; answers how many it took.
    pub fn bulk(
        &self,
        action: BulkAction,
        request: &BulkRequest,
    ) -> Result<Reply<BulkResponse>, ClientError> {
        let path = format!("/v1/jobs/{}", action.as_str());
        let resp = self.send(Call::post(path).json(request))?;
        self.expect_json(resp, &[200])
    }

    /// `GET /v1/queues`: every queue with its limit, pause flag and counts.
    pub fn queues(&self) -> Result<Reply<QueueList>, ClientError> {
        let resp = self.send(Call::get("/v1/queues"))?;
        self.expect_json(resp, &[200])
    }

    /// `PATCH /v1/queues/{name}`: the queue as it is after the change.
    /// Only the fields `patch` sets are sent: an absent `concurrency` must
    /// not become `null`, which would reset the limit.
    pub fn patch_queue(
        &self,
        name: &str,
        patch: &QueuePatch,
    ) -> Result<Reply<QueueView>, ClientError> {
        let path = format!("/v1/queues/{}", percent_encode(name));
        let call = Call::new(ureq::http::Method::PATCH, path).json(&patch_body(patch));
        let resp = self.send(call)?;
        self.expect_json(resp, &[200])
    }

    /// `DELETE /v1/queues/{name}`: forgets an empty queue's settings.
    pub fn remove_queue(&self, name: &str) -> Result<(), ClientError> {
        let path = format!("/v1/queues/{}", percent_encode(name));
        let resp = self.send(Call::new(ureq::http::Method::DELETE, path))?;
        match resp.status().as_u16() {
            200 | 204 => Ok(()),
            other => Err(self.protocol(format!("status {other}, expected 204"))),
        }
    }

    /// `GET /v1/jobs`: one page of jobs, newest first.
    pub fn list(&self, filter: &ListFilter) -> Result<Reply<JobList>, ClientError> {
        let mut call = Call::get("/v1/jobs");
        if let Some(state) = &filter.state {
            call = call.query("state", state);
        }
        if let Some(queue) = &filter.queue {
            call = call.query("queue", queue);
        }
        if let Some(owner) = &filter.owner {
            call = call.query("owner", owner);
        }
        if let Some(name) = &filter.name {
            call = call.query("name", name);
        }
        for (k, v) in &filter.labels {
            call = call.query("label", format!("{k}:{v}"));
        }
        if let Some(limit) = filter.limit {
            call = call.query("limit", limit.to_string());
        }
        if let Some(cursor) = &filter.cursor {
            call = call.query("cursor", cursor);
        }
        let resp = self.send(call)?;
        self.expect_json(resp, &[200])
    }

    /// `GET /v1/jobs/{id}`: the job now.
    pub fn get(&self, id: &str) -> Result<Reply<JobView>, ClientError> {
        let resp = self.send(Call::get(job_path(id, "")))?;
        self.expect_json(resp, &[200])
    }

    /// `POST /v1/jobs/{id}/cancel`: the job, now cancelled or being stopped.
    pub fn cancel(&self, id: &str) -> Result<Reply<JobView>, ClientError> {
        let resp = self.send(Call::post(job_path(id, "/cancel")))?;
        self.expect_json(resp, &[200])
    }

    /// `POST /v1/jobs/{id}/retry`: the job, queued again with `attempt` + 1.
    pub fn retry(&self, id: &str) -> Result<Reply<JobView>, ClientError> {
        let resp = self.send(Call::post(job_path(id, "/retry")))?;
        self.expect_json(resp, &[200])
    }

    /// `DELETE /v1/jobs/{id}`: forgets a terminal job and its output.
    pub fn remove(&self, id: &str) -> Result<(), ClientError> {
        let call = Call::new(ureq::http::Method::DELETE, job_path(id, ""));
        let resp = self.send(call)?;
        match resp.status().as_u16() {
            200 | 204 => Ok(()),
            other => Err(self.protocol(format!("status {other}, expected 204"))),
        }
    }

    /// `GET /v1/jobs/{id}/output`: the output so far, skipping `offset` bytes
    /// of that stream, as a reader so large outputs are streamed, not held.
    /// Read errors from it mean the connection was lost.
    pub fn output(
        &self,
        id: &str,
        stream: OutputStream,
        offset: u64,
        attempt: Option<u32>,
    ) -> Result<Box<dyn Read + Send>, ClientError> {
        let mut call = Call::get(job_path(id, "/output")).query("stream", stream.as_str());
        if offset > 0 {
            call = call.query("offset", offset.to_string());
        }
        if let Some(attempt) = attempt {
            call = call.query("attempt", attempt.to_string());
        }
        let resp = self.send(call)?;
        if resp.status() != 200 {
            return Err(self.protocol(format!("status {}, expected 200", resp.status())));
        }
        Ok(Box::new(resp.into_body().into_reader()))
    }

    /// `GET /v1/jobs/{id}/output` as Server-Sent Events: the output of
    /// `stream` from `from` (attempt, byte position; the current attempt
    /// from its start when `None`), then each new piece as the job writes
    /// it, attempt after attempt, until an [`OutputEvent::End`].
    pub fn follow_events(
        &self,
        id: &str,
        stream: OutputStream,
        from: Option<(u32, u64)>,
    ) -> Result<OutputEvents, ClientError> {
        let mut call = Call::get(job_path(id, "/output")).query("stream", stream.as_str());
        call.headers
            .push(("Accept", "text/event-stream".to_owned()));
        call.streamed = true;
        if let Some((attempt, offset)) = from {
            call = call
                .query("attempt", attempt.to_string())
                .query("offset", offset.to_string());
        }
        let resp = self.send(call)?;
        if resp.status() != 200 {
            return Err(self.protocol(format!("status {}, expected 200", resp.status())));
        }
        let body: Box<dyn Read + Send> = Box::new(resp.into_body().into_reader());
        Ok(OutputEvents {
            sse: sse::Reader::new(BufReader::new(body)),
            server: self.server(),
        })
    }

    /// `GET /v1/events`: the stream of job state changes that `query`
    /// selects. With `deadline`, every read fails (as
    /// [`ClientError::Unreachable`], "timed out") once it has passed;
    /// without, the stream may stay quiet for as long as nothing happens.
    pub fn events(
        &self,
        query: &EventQuery,
        deadline: Option<Instant>,
    ) -> Result<EventStream, ClientError> {
        let mut call = Call::get("/v1/events");
        call.headers
            .push(("Accept", "text/event-stream".to_owned()));
        call.streamed = true;
        call.deadline = deadline;
        if let Some(job) = &query.job {
            call = call.query("job", job);
        }
        if let Some(queue) = &query.queue {
            call = call.query("queue", queue);
        }
        let resp = self.send(call)?;
        if resp.status() != 200 {
            return Err(self.protocol(format!("status {}, expected 200", resp.status())));
        }
        let content_type = header(&resp, "content-type").unwrap_or_default();
        if content_type != "text/event-stream" {
            return Err(self.protocol(format!(
                "content type {content_type:?}, expected text/event-stream"
            )));
        }
        let body: Box<dyn Read + Send> = Box::new(resp.into_body().into_reader());
        Ok(EventStream {
            sse: sse::Reader::new(BufReader::new(body)),
            server: self.server(),
        })
    }

    /// `POST /v1/uploads`: sends `body` as it is read (its `len` when known,
    /// else chunked) and answers the upload's id for a job's
    /// `stdin_upload`. The bytes are never all in memory here.
    pub fn upload(
        &self,
        body: impl Read + 'static,
        len: Option<u64>,
    ) -> Result<Reply<Upload>, ClientError> {
        let mut call = Call::post("/v1/uploads");
        call.payload = Payload::Stream(Box::new(body), len);
        let resp = self.send(call)?;
        self.expect_json(resp, &[200, 201])
    }

    /// Turns an error while reading a streamed body (see [`Client::output`])
    /// into the error the CLI reports.
    pub fn read_error(&self, err: &io::Error) -> ClientError {
        ClientError::Unreachable {
            url: self.server(),
            reason: format!("connection lost: {}", io_reason(err)),
        }
    }

    /// Sends `call`; turns transport failures and error statuses into
    /// [`ClientError`]s, so callers only see 2xx/3xx answers.
    fn send(&self, call: Call<'_>) -> Result<Response, ClientError> {
        let mut url = format!("{}{}", self.base, call.path);
        for (i, (key, value)) in call.query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(&percent_encode(key));
            url.push('=');
            url.push_str(&percent_encode(value));
        }
        let mut builder = ureq::http::Request::builder().method(call.method).uri(&url);
        if let Some(token) = &self.token {
            builder = builder.header("Authorization", format!("Bearer {token}"));
        }
        for (name, value) in &call.headers {
            builder = builder.header(*name, value);
        }
        let agent = if call.streamed {
            &self.stream_agent
        } else {
            &self.agent
        };
        let body = match call.payload {
            Payload::Empty => ureq::SendBody::none(),
            Payload::Json(bytes) => {
                builder = builder.header("Content-Type", "application/json");
                ureq::SendBody::from_owned_reader(io::Cursor::new(bytes))
            }
            Payload::Stream(reader, len) => {
                builder = builder.header("Content-Type", "application/octet-stream");
                if let Some(len) = len {
                    builder = builder.header("Content-Length", len.to_string());
                }
                ureq::SendBody::from_owned_reader(reader)
            }
        };
        let req = builder.body(body).map_err(|e| ClientError::InvalidServer {
            url: self.server(),
            reason: e.to_string(),
        })?;
        let result = self.run(agent, req, call.deadline);
        let resp = result.map_err(|e| self.transport_error(e))?;
        let status = resp.status().as_u16();
        if status >= 400 {
            return Err(self.api_error(status, resp));
        }
        Ok(resp)
    }

    /// Runs one request on `agent`, bounded by `deadline` when given.
    fn run(
        &self,
        agent: &ureq::Agent,
        req: ureq::http::Request<ureq::SendBody<'static>>,
        deadline: Option<Instant>,
    ) -> Result<Response, ureq::Error> {
        match deadline {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                let req = agent
                    .configure_request(req)
                    .timeout_global(Some(left))
                    .build();
                agent.run(req)
            }
            None => agent.run(req),
        }
    }

    fn api_error(&self, status: u16, resp: Response) -> ClientError {
        let status_text = resp
            .status()
            .canonical_reason()
            .unwrap_or_default()
            .to_owned();
        let mut bytes = Vec::new();
        // An error body is small; cap it so a misbehaving server cannot make
        // the client hold a huge one.
        let _ = resp
            .into_body()
            .into_reader()
            .take(64 * 1024)
            .read_to_end(&mut bytes);
        let body = serde_json::from_slice::<ErrorBody>(&bytes)
            .unwrap_or_else(|_| self.unknown_error_body(status, &status_text, &bytes));
        ClientError::Api { status, body }
    }

    /// An [`ErrorBody`] for an error answer that is not one: a newer
    /// daemon's unknown error code (its message is kept), or not jobq at
    /// all (a proxy's page, another service on the port).
    fn unknown_error_body(&self, status: u16, status_text: &str, bytes: &[u8]) -> ErrorBody {
        let detail = |message: String, field: Option<String>| ErrorBody {
            error: ErrorDetail {
                code: code_for_status(status),
                message,
                field,
            },
        };
        if let Ok(json) = serde_json::from_slice::<serde_json::Value>(bytes) {
            if let Some(message) = json["error"]["message"].as_str() {
                let field = json["error"]["field"].as_str().map(str::to_owned);
                return detail(message.to_owned(), field);
            }
        }
        let text = String::from_utf8_lossy(bytes);
        let text = text.trim();
        let mut message = format!("HTTP {status} {status_text}");
        if !text.is_empty() && text.len() <= 200 && !text.contains('\n') {
            message = format!("{message}: {text}");
        }
        detail(
            format!(
                "{message} from {} (not a jobq answer; is --server right?)",
                self.server()
            ),
            None,
        )
    }

    fn transport_error(&self, e: ureq::Error) -> ClientError {
        use ureq::Error as E;
        let unreachable = |reason: String| ClientError::Unreachable {
            url: self.server(),
            reason,
        };
        match e {
            E::BadUri(reason) => ClientError::InvalidServer {
                url: self.server(),
                reason: reason.to_lowercase(),
            },
            E::Http(e) => ClientError::InvalidServer {
                url: self.server(),
                reason: e.to_string().to_lowercase(),
            },
            E::Protocol(e) => self.protocol(e.to_string().to_lowercase()),
            E::TooManyRedirects | E::RedirectFailed => {
                self.protocol("the daemon answered with a redirect".to_owned())
            }
            E::Io(io) => unreachable(match (&self.server, io.kind()) {
                (Server::Unix(_), io::ErrorKind::NotFound) => {
                    "no such socket (is the daemon running?)".to_owned()
                }
                (Server::Unix(_), io::ErrorKind::PermissionDenied) => {
                    "permission denied (the socket's mode or group does not let you in)".to_owned()
                }
                _ => io_reason(&io),
            }),
            E::Timeout(_) => unreachable("timed out".to_owned()),
            E::HostNotFound => unreachable("cannot resolve the host name".to_owned()),
            E::ConnectionFailed => unreachable("connection failed".to_owned()),
            other => unreachable(other.to_string().to_lowercase()),
        }
    }

    fn protocol(&self, detail: String) -> ClientError {
        ClientError::Protocol {
            url: self.server(),
            detail,
        }
    }

    /// Checks the status and decodes the JSON body as `T`, keeping the JSON.
    fn expect_json<T: DeserializeOwned>(
        &self,
        resp: Response,
        ok: &[u16],
    ) -> Result<Reply<T>, ClientError> {
        let status = resp.status().as_u16();
        if !ok.contains(&status) {
            return Err(self.protocol(format!("status {status}, expected {ok:?}")));
        }
        let mut bytes = Vec::new();
        resp.into_body()
            .into_reader()
            .read_to_end(&mut bytes)
            .map_err(|e| self.read_error(&e))?;
        let json: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| self.protocol(format!("the body is not JSON ({e})")))?;
        let value = serde_path_to_error::deserialize(&json)
            .map_err(|e| self.protocol(format!("at `{}`: {}", e.path(), e.inner())))?;
        Ok(Reply { value, json })
    }
}

/// An answer, whatever its status.
type Response = ureq::http::Response<ureq::Body>;

/// A response header as text, if present and readable.
fn header(resp: &Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// `/v1/jobs/{id}{rest}`. Ids are UUIDs (the CLI checks them), so they need
/// no escaping; anything else is escaped so it cannot change the path.
fn job_path(id: &str, rest: &str) -> String {
    format!("/v1/jobs/{}{rest}", percent_encode(id))
}

/// The bulk actions of [`Client::bulk`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BulkAction {
    /// Forget finished jobs.
    Clean,
    /// Cancel jobs that have not ended.
    Cancel,
    /// Run finished jobs again.
    Retry,
}

impl BulkAction {
    /// The last path segment.
    pub fn as_str(self) -> &'static str {
        match self {
            BulkAction::Clean => "clean",
            BulkAction::Cancel => "cancel",
            BulkAction::Retry => "retry",
        }
    }
}

/// What [`percent_encode`] leaves as it is: RFC 3986's unreserved
/// characters.
const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `s` percent-encoded so it stays one path segment (or one query key or
/// value): everything but unreserved characters is escaped.
pub fn percent_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, UNRESERVED).to_string()
}

/// The JSON of a queue patch with only the fields it sets. `QueuePatch`'s
/// own serialization writes an absent `concurrency` as `null`, which the
/// daemon reads as "back to the configured limit"; pausing a queue must not
/// do that.
fn patch_body(patch: &QueuePatch) -> serde_json::Value {
    let mut body = serde_json::Map::new();
    if let Some(concurrency) = patch.concurrency {
        body.insert("concurrency".into(), serde_json::json!(concurrency));
    }
    if let Some(paused) = patch.paused {
        body.insert("paused".into(), serde_json::json!(paused));
    }
    if patch.create {
        body.insert("create".into(), serde_json::json!(true));
    }
    serde_json::Value::Object(body)
}

/// The API code a status implies, for error answers without an API body.
fn code_for_status(status: u16) -> ErrorCode {
    match status {
        400 => ErrorCode::InvalidField,
        401 => ErrorCode::Unauthorized,
        403 => ErrorCode::Forbidden,
        404 => ErrorCode::NotFound,
        405 => ErrorCode::MethodNotAllowed,
        409 => ErrorCode::Conflict,
        413 => ErrorCode::PayloadTooLarge,
        429 => ErrorCode::QueueFull,
        503 => ErrorCode::Unavailable,
        _ => ErrorCode::Internal,
    }
}

/// An I/O error in a few lowercase words, without the `(os error N)` tail;
/// also used by the CLI for its own file errors.
pub(crate) fn io_reason(err: &io::Error) -> String {
    use io::ErrorKind as K;
    match err.kind() {
        K::ConnectionRefused => "connection refused".to_owned(),
        K::ConnectionReset => "connection reset".to_owned(),
        K::ConnectionAborted | K::UnexpectedEof | K::BrokenPipe => "connection closed".to_owned(),
        K::TimedOut | K::WouldBlock => "timed out".to_owned(),
        _ => {
            let text = err.to_string();
            let text = match text.find(" (os error") {
                Some(i) => &text[..i],
                None => &text,
            };
            let mut chars = text.chars();
            match chars.next() {
                Some(first) => first.to_lowercase().chain(chars).collect(),
                None => "i/o error".to_owned(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    /// Answers one request with `status` and `body` and hands back the
    /// request line and headers.
    fn one_shot(
        status: &'static str,
        body: &'static str,
    ) -> (String, std::thread::JoinHandle<String>) {
        one_shot_with(status, "", body)
    }

    /// [`one_shot`] with extra response `headers` (each ending in CRLF).
    /// A chunked request body is read to its end and not kept.
    fn one_shot_with(
        status: &'static str,
        extra: &'static str,
        body: &'static str,
    ) -> (String, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut first = String::new();
            reader.read_line(&mut first).unwrap();
            let mut headers = String::new();
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
                if line == "\r\n" {
                    break;
                }
                headers.push_str(&line);
            }
            let mut request_body = vec![0; len];
            reader.read_exact(&mut request_body).unwrap();
            if headers
                .to_lowercase()
                .contains("transfer-encoding: chunked")
            {
                skip_chunked(&mut reader);
            }
            let response = format!(
                "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\n\r\n{body}",
                body.len()
            );
            (&stream).write_all(response.as_bytes()).unwrap();
            format!("{first}{headers}")
        });
        (url, handle)
    }

    /// Reads a chunked body to its last chunk.
    fn skip_chunked(reader: &mut impl BufRead) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).unwrap();
            let size = usize::from_str_radix(size.trim(), 16).unwrap();
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).unwrap();
            if size == 0 {
                return;
            }
        }
    }

    #[test]
    fn refused_connection_is_unreachable_with_exit_3() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = Client::new(&format!("http://127.0.0.1:{port}"), None).unwrap();
        let err = client.get("x").unwrap_err();
        assert_eq!(err.exit_code(), 3);
        assert_eq!(
            err.to_string(),
            format!("cannot reach jobq at http://127.0.0.1:{port}: connection refused")
        );
    }

    #[test]
    fn api_errors_carry_the_daemons_message() {
        let (url, server) = one_shot(
            "409 Conflict",
            r#"{"error":{"code":"conflict","message":"job is running; cannot delete"}}"#,
        );
        let client = Client::new(&url, Some("s3cret".into())).unwrap();
        let err = client.remove("abc").unwrap_err();
        let request = server.join().unwrap().to_lowercase();
        assert!(
            request.starts_with("delete /v1/jobs/abc http/1.1"),
            "{request}"
        );
        assert!(
            request.contains("authorization: bearer s3cret"),
            "{request}"
        );
        assert_eq!(err.exit_code(), 2);
        assert_eq!(err.api_code(), Some(ErrorCode::Conflict));
        assert_eq!(err.to_string(), "job is running; cannot delete");
    }

    #[test]
    fn queue_full_says_so() {
        let (url, server) = one_shot(
            "429 Too Many Requests",
            r#"{"error":{"code":"queue_full","message":"10000 jobs are waiting"}}"#,
        );
        let client = Client::new(&url, None).unwrap();
        let err = client.submit(&JobRequest::default()).unwrap_err();
        server.join().unwrap();
        assert!(err.to_string().starts_with("the queue is full: "), "{err}");
    }

    #[test]
    fn queue_full_is_not_said_twice() {
        let (url, server) = one_shot(
            "429 Too Many Requests",
            r#"{"error":{"code":"queue_full","message":"the queue is full: 5 jobs wait to start (config max_queued = 5); retry later"}}"#,
        );
        let client = Client::new(&url, None).unwrap();
        let err = client.submit(&JobRequest::default()).unwrap_err();
        server.join().unwrap();
        assert_eq!(
            err.to_string(),
            "the queue is full: 5 jobs wait to start (config max_queued = 5); retry later"
        );
    }

    #[test]
    fn unavailable_says_why_and_keeps_the_message() {
        let (url, server) = one_shot(
            "503 Service Unavailable",
            r#"{"error":{"code":"unavailable","message":"jobq is shutting down and accepts no new work"}}"#,
        );
        let client = Client::new(&url, None).unwrap();
        let err = client.queues().unwrap_err();
        server.join().unwrap();
        assert_eq!(err.exit_code(), 2);
        assert_eq!(
            err.to_string(),
            "the daemon is unavailable (shutting down or disk trouble): \
             jobq is shutting down and accepts no new work; try again later"
        );
    }

    #[test]
    fn a_queue_patch_sends_only_what_it_sets() {
        let pause = QueuePatch {
            paused: Some(true),
            ..QueuePatch::default()
        };
        assert_eq!(patch_body(&pause), serde_json::json!({"paused": true}));
        let reset = QueuePatch {
            concurrency: Some(None),
            ..QueuePatch::default()
        };
        assert_eq!(patch_body(&reset), serde_json::json!({"concurrency": null}));
        let set = QueuePatch {
            concurrency: Some(Some(4)),
            ..QueuePatch::default()
        };
        assert_eq!(patch_body(&set), serde_json::json!({"concurrency": 4}));
    }

    #[test]
    fn queue_names_are_one_percent_encode() {
        let (url, server) = one_shot("400 Bad Request", "");
        let client = Client::new(&url, None).unwrap();
        let _ = client.patch_queue("a/b c", &QueuePatch::default());
        let request = server.join().unwrap();
        assert!(
            request.starts_with("PATCH /v1/queues/a%2Fb%20c HTTP/1.1"),
            "{request}"
        );
    }

    #[test]
    fn an_error_without_an_api_body_still_has_a_message() {
        let (url, server) = one_shot("404 Not Found", "");
        let client = Client::new(&url, None).unwrap();
        let err = client.get("abc").unwrap_err();
        server.join().unwrap();
        assert_eq!(err.api_code(), Some(ErrorCode::NotFound));
        assert!(
            err.to_string()
                .starts_with("HTTP 404 Not Found from http://"),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_error_code_keeps_the_message() {
        let (url, server) = one_shot(
            "400 Bad Request",
            r#"{"error":{"code":"brand_new","message":"at most 3","field":"widgets"}}"#,
        );
        let client = Client::new(&url, None).unwrap();
        let err = client.get("abc").unwrap_err();
        server.join().unwrap();
        assert_eq!(err.to_string(), "widgets: at most 3");
    }

    #[test]
    fn events_asks_for_one_job_and_decodes_its_events() {
        let (url, server) = one_shot_with(
            "200 OK",
            "Content-Type: text/event-stream\r\n",
            ": hello\n\n\
             event: job\n\
             data: {\"id\":\"abc\",\"state\":\"failed\",\"queue\":\"q\",\"attempt\":2,\
             \"at\":\"2025-01-02T03:04:05Z\",\"exit_code\":3,\"signal\":null,\
             \"reason\":\"exit\",\"exit\":3}\n\n\
             event: brand_new\ndata: {}\n\n\
             event: lagged\ndata: {\"message\":\"too slow\"}\n\n",
        );
        let client = Client::new(&url, None).unwrap();
        let query = EventQuery {
            job: Some("abc".into()),
            queue: None,
        };
        let mut stream = client.events(&query, None).unwrap();
        let request = server.join().unwrap();
        assert!(request.starts_with("GET /v1/events?job=abc "), "{request}");
        assert!(
            request.to_lowercase().contains("accept: text/event-stream"),
            "{request}"
        );
        match stream.next_event().unwrap() {
            Some(StreamEvent::Job { event, data }) => {
                assert_eq!(event.id, "abc");
                assert_eq!(event.state, crate::job::StateName::Failed);
                assert_eq!(event.attempt, 2);
                assert_eq!(event.exit, Some(3));
                assert!(data.starts_with("{\"id\":\"abc\""), "{data}");
            }
            other => panic!("expected a job event, got {other:?}"),
        }
        assert_eq!(
            stream.next_event().unwrap(),
            Some(StreamEvent::Lagged("too slow".into()))
        );
        assert_eq!(stream.next_event().unwrap(), None);
    }

    #[test]
    fn events_refuse_an_answer_that_is_not_a_stream() {
        let (url, server) = one_shot("200 OK", "{}");
        let client = Client::new(&url, None).unwrap();
        let err = client.events(&EventQuery::default(), None).err().unwrap();
        server.join().unwrap();
        assert!(matches!(err, ClientError::Protocol { .. }), "{err}");
    }

    #[test]
    fn followed_output_resumes_where_it_was_and_decodes_its_events() {
        let (url, server) = one_shot_with(
            "200 OK",
            "Content-Type: text/event-stream\r\n",
            "id: 2:0\nevent: attempt\ndata: {\"attempt\":2}\n\n\
             id: 2:3\nevent: stderr\ndata: YWJj\n\n\
             event: end\ndata: {}\n\n",
        );
        let client = Client::new(&url, None).unwrap();
        let mut events = client
            .follow_events("abc", OutputStream::All, Some((1, 42)))
            .unwrap();
        let request = server.join().unwrap();
        assert!(
            request.starts_with("GET /v1/jobs/abc/output?stream=all&attempt=1&offset=42 "),
            "{request}"
        );
        assert!(
            request.to_lowercase().contains("accept: text/event-stream"),
            "{request}"
        );
        assert_eq!(events.next_event().unwrap(), Some(OutputEvent::Attempt(2)));
        assert_eq!(
            events.next_event().unwrap(),
            Some(OutputEvent::Output {
                stream: OutputStream::Stderr,
                data: b"abc".to_vec(),
                attempt: 2,
                position: 3
            })
        );
        assert_eq!(events.next_event().unwrap(), Some(OutputEvent::End));
    }

    #[test]
    fn an_upload_streams_its_body() {
        let (url, server) = one_shot("201 Created", r#"{"upload":"u1","bytes":3}"#);
        let client = Client::new(&url, None).unwrap();
        let reply = client.upload(&b"\x00\xff\n"[..], None).unwrap();
        let request = server.join().unwrap();
        assert!(request.starts_with("POST /v1/uploads "), "{request}");
        assert!(
            request
                .to_lowercase()
                .contains("transfer-encoding: chunked"),
            "{request}"
        );
        assert_eq!(reply.value.upload, "u1");
        assert_eq!(reply.value.bytes, 3);
    }

    #[test]
    fn server_urls_are_normalized() {
        let http = |s: &str| Server::Http(s.to_owned());
        assert_eq!(Server::parse("http://h:1/").unwrap(), http("http://h:1"));
        assert_eq!(
            Server::parse("127.0.0.1:7711").unwrap(),
            http("http://127.0.0.1:7711")
        );
        assert!(Server::parse("https://h").is_err());
        assert!(Server::parse("ftp://h").is_err());
        assert_eq!(Server::parse("").unwrap(), default_server());
        assert_eq!(
            Server::parse("unix:/run/x.sock").unwrap(),
            Server::Unix("/run/x.sock".into())
        );
        assert_eq!(
            Server::parse("unix:/run/x.sock").unwrap().to_string(),
            "unix:/run/x.sock"
        );
        for local in [
            "unix:/x.sock",
            "http://127.0.0.1:7711",
            "localhost:1",
            "http://[::1]:1/p",
        ] {
            assert!(Server::parse(local).unwrap().is_local(), "{local}");
        }
        for remote in [
            "http://build.example:7711",
            "10.0.0.5:7711",
            "http://[2001:db8::1]:1",
        ] {
            assert!(!Server::parse(remote).unwrap().is_local(), "{remote}");
        }
        let err = Server::parse("unix:x.sock").unwrap_err();
        assert!(err.to_string().contains("absolute path"), "{err}");
    }

    #[test]
    fn the_default_is_the_system_socket_when_it_exists() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("jobq.sock");
        assert_eq!(
            default_with_socket(&socket),
            Server::Http(DEFAULT_SERVER.to_owned())
        );
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        assert_eq!(default_with_socket(&socket), Server::Unix(socket.clone()));
    }

    #[test]
    fn requests_go_over_a_unix_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobq.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line == "\r\n" {
                    break;
                }
                head.push_str(&line);
            }
            let body = r#"{"queues":[]}"#;
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            (&stream).write_all(response.as_bytes()).unwrap();
            head
        });
        let client = Client::new(&format!("unix:{}", path.display()), None).unwrap();
        let reply = client.queues().unwrap();
        assert!(reply.value.queues.is_empty());
        let head = server.join().unwrap();
        assert!(head.starts_with("GET /v1/queues HTTP/1.1"), "{head}");
        assert_eq!(client.server(), format!("unix:{}", path.display()));
    }

    #[test]
    fn a_missing_socket_is_unreachable_and_says_so() {
        let client = Client::new("unix:/nonexistent/jobq.sock", None).unwrap();
        let err = client.queues().unwrap_err();
        assert_eq!(err.exit_code(), 3);
        assert_eq!(
            err.to_string(),
            "cannot reach jobq at unix:/nonexistent/jobq.sock: no such socket (is the daemon running?)"
        );
    }

    #[test]
    fn ids_cannot_escape_their_percent_encode() {
        assert_eq!(job_path("a/../b", "/cancel"), "/v1/jobs/a%2F..%2Fb/cancel");
    }

    #[test]
    fn debug_hides_the_token() {
        let client = Client::new(DEFAULT_SERVER, Some("s3cret".into())).unwrap();
        assert!(!format!("{client:?}").contains("s3cret"));
    }
}
