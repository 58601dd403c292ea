//! A blocking reader of Server-Sent Events (the WHATWG `text/event-stream`
//! format) over any [`BufRead`]: `event:`, `data:` (several
//! lines joined with `\n`), `id:` (kept across events, as the last event
//! id), comments (`:`), dispatch on a blank line. `retry:` and unknown
//! fields are ignored; lines end with LF or CRLF (a lone CR, which the
//! format also allows and the daemon never sends, is not a line end here).

use std::io::{self, BufRead};

/// Longest line accepted, so a broken peer cannot make the reader hold
/// unbounded memory; the daemon's lines are small JSON.
pub const MAX_LINE: usize = 4 * 1024 * 1024;

/// One dispatched event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Event {
    /// Its type: the `event:` field, `message` when there was none.
    pub event: String,
    /// Its `data:` lines joined with `\n`.
    pub data: String,
    /// The last event id seen so far (`id:`, this event's or an
    /// earlier one's), as a resumption point.
    pub id: Option<String>,
}

/// Reads events one at a time from a byte stream.
#[derive(Debug)]
pub struct Reader<R> {
    /// The stream.
    inner: R,
    /// The last `id:` seen.
    last_id: Option<String>,
    /// Whether the first line was read (a byte order mark may precede
    /// it).
    started: bool,
}

impl<R: BufRead> Reader<R> {
    /// A reader of the events of `inner`.
    pub fn new(inner: R) -> Reader<R> {
        Reader {
            inner,
            last_id: None,
            started: false,
        }
    }

    /// The next event, or `None` at the end of the stream (an event not
    /// ended by a blank line is dropped, as the format says).
    pub fn next_event(&mut self) -> io::Result<Option<Event>> {
        let mut event = String::new();
        let mut data = String::new();
        let mut line = Vec::new();
        loop {
            if !self.read_line(&mut line)? {
                return Ok(None);
            }
            if line.is_empty() {
                if data.is_empty() {
                    event.clear();
                    continue;
                }
                data.pop(); // the `\n` after the last data line
                return Ok(Some(Event {
                    event: if event.is_empty() {
                        "message".to_owned()
                    } else {
                        event
                    },
                    data,
                    id: self.last_id.clone(),
                }));
            }
            if line[0] == b':' {
                continue;
            }
            let text = String::from_utf8_lossy(&line);
            let (field, value) = match text.split_once(':') {
                Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
                None => (text.as_ref(), ""),
            };
            match field {
                "event" => event = value.to_owned(),
                "data" => {
                    data.push_str(value);
                    data.push('\n');
                }
                "id" if !value.contains('\0') => self.last_id = Some(value.to_owned()),
                _ => {}
            }
        }
    }

    /// Reads one line into `line` without its end; false at the end of
    /// the stream.
    fn read_line(&mut self, line: &mut Vec<u8>) -> io::Result<bool> {
        line.clear();
        loop {
            let buf = match self.inner.fill_buf() {
                Ok(buf) => buf,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if buf.is_empty() {
                // A last line without its end is no line: the event it
                // belongs to was cut off anyway.
                return Ok(false);
            }
            let (take, done) = match buf.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (buf.len(), false),
            };
            line.extend_from_slice(&buf[..take]);
            self.inner.consume(take);
            if line.len() > MAX_LINE + 2 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("an event stream line is longer than {MAX_LINE} bytes"),
                ));
            }
            if done {
                break;
            }
        }
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if !self.started {
            self.started = true;
            if line.starts_with("\u{feff}".as_bytes()) {
                line.drain(..3);
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(text: &str) -> Vec<Event> {
        let mut reader = Reader::new(text.as_bytes());
        let mut all = Vec::new();
        while let Some(event) = reader.next_event().unwrap() {
            all.push(event);
        }
        all
    }

    fn event(event: &str, data: &str, id: Option<&str>) -> Event {
        Event {
            event: event.into(),
            data: data.into(),
            id: id.map(str::to_owned),
        }
    }

    #[test]
    fn fields_comments_and_dispatch() {
        let got = events(
            ": a comment\n\
             event: stdout\nid: 5\ndata: aGVsbG8=\n\n\
             data: first\ndata:second\ndata\n\n\
             retry: 3000\nunknown: x\nevent: end\ndata: {\"exit\":3}\n\n",
        );
        assert_eq!(
            got,
            [
                event("stdout", "aGVsbG8=", Some("5")),
                event("message", "first\nsecond\n", Some("5")),
                event("end", "{\"exit\":3}", Some("5")),
            ]
        );
    }

    #[test]
    fn crlf_bom_and_only_one_leading_space() {
        let got = events("\u{feff}event: job\r\ndata:  two spaces\r\n\r\n");
        assert_eq!(got, [event("job", " two spaces", None)]);
    }

    #[test]
    fn no_data_no_event_and_the_type_does_not_leak() {
        let got = events("event: a\n\ndata: x\n\nevent: b\ndata:\n\n");
        assert_eq!(got, [event("message", "x", None), event("b", "", None)]);
    }

    #[test]
    fn an_unfinished_event_at_the_end_is_dropped() {
        assert_eq!(events("event: job\ndata: {\n"), []);
        assert_eq!(events("data: x\n\ndata: y"), [event("message", "x", None)]);
    }

    #[test]
    fn an_empty_id_resets_and_a_nul_id_is_ignored() {
        let got = events("id: 7\ndata: a\n\nid: 8\0\ndata: b\n\nid\ndata: c\n\n");
        assert_eq!(
            got,
            [
                event("message", "a", Some("7")),
                event("message", "b", Some("7")),
                event("message", "c", Some("")),
            ]
        );
    }

    #[test]
    fn events_split_across_reads() {
        // One byte at a time, as a slow network might deliver them.
        struct Trickle<'a>(&'a [u8]);
        impl io::Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = self.0.len().min(1).min(buf.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let text = b"event: job\ndata: {\"a\":1}\n\n";
        let mut reader = Reader::new(io::BufReader::with_capacity(3, Trickle(text)));
        assert_eq!(
            reader.next_event().unwrap(),
            Some(event("job", "{\"a\":1}", None))
        );
        assert_eq!(reader.next_event().unwrap(), None);
    }

    #[test]
    fn an_endless_line_is_an_error() {
        let long = "d".repeat(MAX_LINE + 10);
        let mut reader = Reader::new(io::BufReader::new(long.as_bytes()));
        let err = reader.next_event().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
