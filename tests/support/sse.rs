//! Server-Sent Events as tests read them: events one at a time off a
//! streamed answer, through the client's own SSE parser.

use super::*;

/// One Server-Sent Event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The last event id (`id:`) the stream gave, this event's or an earlier one's.
    pub id: Option<String>,
    /// The `event:` field (`message` when absent, as in the SSE spec).
    pub event: String,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
}

impl SseEvent {
    /// `data` decoded from standard base64 (output events), failing the test
    /// when it is not base64.
    #[track_caller]
    pub fn bytes(&self) -> Vec<u8> {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(self.data.as_bytes())
            .unwrap_or_else(|e| panic!("data of {self:?} is not standard base64: {e}"))
    }

    /// `data` as JSON (job events, `end`), failing the test when it is not.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|e| panic!("data of {self:?} is not JSON: {e}"))
    }

    /// The byte position `id` names: the id itself (`N`), or its part after
    /// an attempt number (`A:N`); failing the test when it is neither.
    /// Tests hand ids back (`Last-Event-ID`) exactly as received.
    #[track_caller]
    pub fn position(&self) -> u64 {
        self.id
            .as_deref()
            .and_then(|id| match id.split_once(':') {
                Some((attempt, pos)) => attempt.parse::<u32>().ok().and(pos.parse().ok()),
                None => id.parse().ok(),
            })
            .unwrap_or_else(|| panic!("{self:?} has no id giving a byte position"))
    }
}

/// Reads Server-Sent Events off a streamed body, one at a time, with the
/// client's parser (`jobq::client::sse`).
pub struct SseReader {
    /// The request, for messages.
    what: String,
    /// The parser over the body.
    reader: jobq::client::sse::Reader<std::io::BufReader<Box<dyn Read + Send + 'static>>>,
}

impl SseReader {
    /// Events of `body`, the answer to `what`.
    pub fn new(what: String, body: Box<dyn Read + Send + 'static>) -> SseReader {
        SseReader {
            what,
            reader: jobq::client::sse::Reader::new(std::io::BufReader::new(body)),
        }
    }

    /// The next event, or `None` when the stream has ended. Fails the test
    /// when a read fails (as after [`STREAM_TIMEOUT`]). An event's `id` is
    /// the last one the stream gave, as SSE defines it.
    #[track_caller]
    pub fn next_event(&mut self) -> Option<SseEvent> {
        let event = self
            .reader
            .next_event()
            .unwrap_or_else(|e| panic!("{}: reading the next event failed: {e}", self.what))?;
        Some(SseEvent {
            id: event.id,
            event: event.event,
            data: event.data,
        })
    }

    /// Every event up to the end of the stream.
    #[track_caller]
    pub fn collect_all(&mut self) -> Vec<SseEvent> {
        let mut all = Vec::new();
        while let Some(e) = self.next_event() {
            all.push(e);
        }
        all
    }
}
