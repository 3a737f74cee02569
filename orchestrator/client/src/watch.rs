//! Watch streams: the newline-delimited `{"type", "object"}` events of a `?watch=true`
//! answer, parsed as they arrive over the chunked body.
//!
//! The stream ends when the server ends the watch (its timeout, or shutdown); an `ERROR`
//! event (a 410 after compaction, say) is yielded as [`WatchEvent::Error`] and the stream
//! ends after it. Chunk boundaries need not match line boundaries.

use std::pin::Pin;

use bytes::{Buf, BytesMut};
use futures::Stream;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::Value;

use crate::error::{ApiError, Error, Result};

/// One watch event.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchEvent {
    Added(Value),
    Modified(Value),
    Deleted(Value),
    /// Progress: only `metadata.resourceVersion` (and annotations) is meaningful.
    Bookmark(Value),
    /// The server ended the watch with this Status.
    Error(ApiError),
}

impl WatchEvent {
    /// The event's object (`None` for an error).
    pub fn object(&self) -> Option<&Value> {
        match self {
            WatchEvent::Added(o)
            | WatchEvent::Modified(o)
            | WatchEvent::Deleted(o)
            | WatchEvent::Bookmark(o) => Some(o),
            WatchEvent::Error(_) => None,
        }
    }

    /// `ADDED`, `MODIFIED`, … as on the wire.
    pub fn type_name(&self) -> &'static str {
        match self {
            WatchEvent::Added(_) => "ADDED",
            WatchEvent::Modified(_) => "MODIFIED",
            WatchEvent::Deleted(_) => "DELETED",
            WatchEvent::Bookmark(_) => "BOOKMARK",
            WatchEvent::Error(_) => "ERROR",
        }
    }

    /// Parses one event line.
    pub fn parse(line: &[u8]) -> Result<WatchEvent> {
        let v: Value = serde_json::from_slice(line)
            .map_err(|e| Error::WatchEvent(format!("{e}: {}", String::from_utf8_lossy(line))))?;
        let Value::Object(mut map) = v else {
            return Err(Error::WatchEvent("an event must be a JSON object".into()));
        };
        let kind = map
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let object = map.remove("object").unwrap_or(Value::Null);
        match kind.as_str() {
            "ADDED" => Ok(WatchEvent::Added(object)),
            "MODIFIED" => Ok(WatchEvent::Modified(object)),
            "DELETED" => Ok(WatchEvent::Deleted(object)),
            "BOOKMARK" => Ok(WatchEvent::Bookmark(object)),
            "ERROR" => Ok(WatchEvent::Error(
                ApiError::from_status(&object)
                    .unwrap_or_else(|| ApiError::from_response(500, object.to_string().as_bytes())),
            )),
            other => Err(Error::WatchEvent(format!("unknown event type {other:?}"))),
        }
    }
}

/// The events of one watch.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchEvent>> + Send>>;

/// Splits complete lines off `buf`; what follows the last newline stays.
#[derive(Debug, Default)]
pub struct LineBuffer {
    buf: BytesMut,
}

impl LineBuffer {
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete non-empty line, without its newline.
    pub fn next_line(&mut self) -> Option<BytesMut> {
        loop {
            let pos = self.buf.iter().position(|b| *b == b'\n')?;
            let mut line = self.buf.split_to(pos);
            self.buf.advance(1);
            if line.last() == Some(&b'\r') {
                line.truncate(line.len() - 1);
            }
            if !line.iter().all(u8::is_ascii_whitespace) {
                return Some(line);
            }
        }
    }

    /// What is left at the end of the body (a last line without a newline).
    pub fn rest(&mut self) -> Option<BytesMut> {
        let rest = self.buf.split();
        (!rest.iter().all(u8::is_ascii_whitespace)).then_some(rest)
    }
}

struct State {
    body: Incoming,
    lines: LineBuffer,
    path: String,
    done: bool,
}

pub(crate) fn event_stream(body: Incoming, path: String) -> WatchStream {
    let state = State {
        body,
        lines: LineBuffer::default(),
        path,
        done: false,
    };
    Box::pin(futures::stream::unfold(state, next_event))
}

async fn next_event(mut st: State) -> Option<(Result<WatchEvent>, State)> {
    loop {
        if st.done {
            return None;
        }
        if let Some(line) = st.lines.next_line() {
            let ev = WatchEvent::parse(&line);
            if matches!(ev, Err(_) | Ok(WatchEvent::Error(_))) {
                st.done = true;
            }
            return Some((ev, st));
        }
        match st.body.frame().await {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    st.lines.push(data);
                }
            }
            Some(Err(e)) => {
                st.done = true;
                let err = Error::Body {
                    method: "GET".into(),
                    path: st.path.clone(),
                    cause: e,
                };
                return Some((Err(err), st));
            }
            None => {
                st.done = true;
                let last = st.lines.rest()?;
                return Some((WatchEvent::parse(&last), st));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn lines_split_across_chunks() {
        let mut b = LineBuffer::default();
        b.push(b"{\"type\":\"ADDED\",\"obj");
        assert!(b.next_line().is_none());
        b.push(b"ect\":{\"a\":1}}\n\n{\"type\":\"DELETED\",\"object\":{}}\r\n{\"ty");
        let first = b.next_line().unwrap();
        assert_eq!(
            WatchEvent::parse(&first).unwrap(),
            WatchEvent::Added(serde_json::json!({"a": 1}))
        );
        let second = b.next_line().unwrap();
        assert_eq!(WatchEvent::parse(&second).unwrap().type_name(), "DELETED");
        assert!(b.next_line().is_none());
        assert_eq!(&b.rest().unwrap()[..], b"{\"ty");
    }

    #[test]
    fn error_events_carry_the_status() {
        let line = br#"{"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired","message":"too old resource version: 1 (5)"}}"#;
        match WatchEvent::parse(line).unwrap() {
            WatchEvent::Error(e) => {
                assert!(e.is_gone());
                assert_eq!(
                    e.to_string(),
                    "Error from server (Expired): too old resource version: 1 (5)"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(WatchEvent::parse(b"[1]").is_err());
        assert!(WatchEvent::parse(br#"{"type":"WHAT","object":{}}"#).is_err());
        assert!(WatchEvent::parse(b"not json").is_err());
    }
}
