//! Streamed command output as server-sent events
//! (`POST /v1/sessions/{id}/exec` with `Accept: text/event-stream`).
//!
//! Events, in order:
//!
//! * `stdout` and `stderr`: `{"text": "..."}` for a chunk of UTF-8 text,
//!   or `{"base64": "..."}` for bytes that are not (a character split
//!   between two chunks is held back and sent whole with the next one);
//! * then exactly one of `exit`, `{"exit_code", "timed_out", "truncated",
//!   "duration_ms", "notes"}`, or `error`, `{"code", "message"}` (the run
//!   failed after it started);
//! * and, while nothing else is sent, a comment line (`: keep-alive`)
//!   every keep-alive interval.
//!
//! The command's whole process tree ends when the client goes away: the
//! response body owns the stream, and dropping the stream kills the tree.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use futures_core::Stream;
use sandbay_core::{ExecEvent, ExecStream};
use serde_json::json;

/// Whether the request asks for an event stream.
pub(crate) fn wants_events(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get_all(axum::http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| {
            v.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/event-stream"))
        })
}

/// The event-stream response over a started command.
pub(crate) fn response(stream: ExecStream, keep_alive: Duration) -> Response {
    Sse::new(Events {
        stream,
        pending: [Vec::new(), Vec::new()],
        queued: None,
        done: false,
    })
    .keep_alive(KeepAlive::new().interval(keep_alive))
    .into_response()
}

/// The command's events as SSE events.
struct Events {
    stream: ExecStream,
    /// Bytes of a character split at the end of the last chunk, per
    /// stream (stdout, stderr).
    pending: [Vec<u8>; 2],
    /// An event made but not sent yet (the end follows held-back bytes).
    queued: Option<Event>,
    done: bool,
}

const NAMES: [&str; 2] = ["stdout", "stderr"];

impl Events {
    /// The event of a chunk, or `None` when all of it is held back.
    fn chunk(&mut self, which: usize, bytes: Vec<u8>) -> Option<Event> {
        let mut data = std::mem::take(&mut self.pending[which]);
        data.extend_from_slice(&bytes);
        let body = match std::str::from_utf8(&data) {
            Ok(text) => json!({ "text": text }),
            // an incomplete character at the end: keep it for the next chunk
            Err(e) if e.error_len().is_none() && data.len() - e.valid_up_to() < 4 => {
                let tail = data.split_off(e.valid_up_to());
                self.pending[which] = tail;
                if data.is_empty() {
                    return None;
                }
                // valid up to here by the check above
                json!({ "text": String::from_utf8_lossy(&data) })
            }
            Err(_) => json!({ "base64": base64::engine::general_purpose::STANDARD.encode(&data) }),
        };
        Some(Event::default().event(NAMES[which]).data(body.to_string()))
    }

    /// Held-back bytes that never became a character, as base64.
    fn flush(&mut self) -> Option<Event> {
        (0..2).find_map(|which| {
            let data = std::mem::take(&mut self.pending[which]);
            (!data.is_empty()).then(|| {
                let body =
                    json!({ "base64": base64::engine::general_purpose::STANDARD.encode(&data) });
                Event::default().event(NAMES[which]).data(body.to_string())
            })
        })
    }
}

impl Stream for Events {
    type Item = Result<Event, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if self.queued.is_some() {
                // the end: bytes still held back go first
                if let Some(flushed) = self.flush() {
                    return Poll::Ready(Some(Ok(flushed)));
                }
                self.done = true;
                return Poll::Ready(self.queued.take().map(Ok));
            }
            if self.done {
                return Poll::Ready(None);
            }
            let event = match Pin::new(&mut self.stream).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(event) => event,
            };
            match event {
                Some(Ok(ExecEvent::Stdout(bytes))) => {
                    if let Some(e) = self.chunk(0, bytes) {
                        return Poll::Ready(Some(Ok(e)));
                    }
                }
                Some(Ok(ExecEvent::Stderr(bytes))) => {
                    if let Some(e) = self.chunk(1, bytes) {
                        return Poll::Ready(Some(Ok(e)));
                    }
                }
                Some(Ok(ExecEvent::Exit(exit))) => {
                    let body = json!({
                        "exit_code": exit.exit_code,
                        "timed_out": exit.timed_out,
                        "truncated": exit.truncated,
                        "duration_ms": u64::try_from(exit.duration.as_millis()).unwrap_or(u64::MAX),
                        "notes": exit.notes,
                    });
                    self.queued = Some(Event::default().event("exit").data(body.to_string()));
                }
                Some(Err(e)) => {
                    let body = json!({ "code": e.code().as_str(), "message": e.to_string() });
                    self.queued = Some(Event::default().event("error").data(body.to_string()));
                }
                None => {
                    let body = json!({
                        "code": "unavailable",
                        "message": "the command's output ended without its exit status",
                    });
                    self.queued = Some(Event::default().event("error").data(body.to_string()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_is_parsed() {
        let mut h = axum::http::HeaderMap::new();
        assert!(!wants_events(&h));
        h.insert(
            axum::http::header::ACCEPT,
            "application/json, Text/Event-Stream;q=0.9".parse().unwrap(),
        );
        assert!(wants_events(&h));
        h.insert(
            axum::http::header::ACCEPT,
            "text/event-streams".parse().unwrap(),
        );
        assert!(!wants_events(&h));
    }
}
