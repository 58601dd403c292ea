#![allow(dead_code)] // not every bench uses it
//! One load generator for every "requests per second" figure that is
//! compared across servers: each client thread has one TCP connection and
//! sends the same prebuilt request again and again, reading each answer
//! before the next (no pipelining), for a fixed time. jobq's HTTP and
//! beanstalkd's protocol go through the same loop, so the client's own
//! cost is the same on both sides.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// How an answer is read off the connection.
#[derive(Clone, Copy, Debug)]
pub enum Answer {
    /// An HTTP/1.1 response with a `Content-Length` body; its status must
    /// be 2xx.
    Http,
    /// One line, which must start with this word (`INSERTED`).
    Line(&'static str),
}

/// Reads one answer; panics on an answer that is not a success.
fn read_answer(r: &mut BufReader<TcpStream>, answer: Answer) -> std::io::Result<()> {
    let mut line = String::new();
    match answer {
        Answer::Line(word) => {
            r.read_line(&mut line)?;
            assert!(line.starts_with(word), "answer {line:?}, wanted {word}");
        }
        Answer::Http => {
            r.read_line(&mut line)?;
            assert!(line.starts_with("HTTP/1.1 2"), "answer {line:?}");
            let mut len = 0usize;
            loop {
                let mut header = String::new();
                r.read_line(&mut header)?;
                if header == "\r\n" || header.is_empty() {
                    break;
                }
                if let Some((k, v)) = header.split_once(':') {
                    if k.eq_ignore_ascii_case("content-length") {
                        len = v.trim().parse().expect("a Content-Length");
                    }
                }
            }
            let mut body = vec![0u8; len];
            r.read_exact(&mut body)?;
        }
    }
    Ok(())
}

/// Requests/s: `clients` connections to `addr`, each sending `request`
/// and reading its `answer`, for `seconds`.
pub fn requests_per_second(
    addr: &str,
    clients: usize,
    seconds: f64,
    request: &[u8],
    answer: Answer,
) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (addr, request) = (addr.to_owned(), request.to_vec());
            let (done, stop) = (done.clone(), stop.clone());
            thread::spawn(move || {
                let conn = TcpStream::connect(&addr).expect("connect");
                conn.set_nodelay(true).expect("nodelay");
                let mut writer = conn.try_clone().expect("clone the connection");
                let mut reader = BufReader::new(conn);
                while !stop.load(Ordering::Relaxed) {
                    writer.write_all(&request).expect("send");
                    read_answer(&mut reader, answer).expect("read the answer");
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("client thread");
    }
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}
