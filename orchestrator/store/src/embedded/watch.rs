//! Watch streams: history from the log, then the live broadcast, without a gap or a
//! duplicate at the handoff.
//!
//! ```text
//!   watch(range, from):  subscribe to the broadcast ─┐   (1) before reading
//!                        read snapshot revision S ───┘   (2) then read
//!   stream:  catch-up  [from ..= S] from the log, in pages of PAGE revisions
//!            live      batches from the broadcast, dropping revisions < next
//! ```
//!
//! A batch committed before (1) is durable before it is broadcast, so the snapshot read
//! in (2) contains it; a batch committed after (1) reaches the receiver. The stream keeps
//! `next`, the first revision it has not delivered (or skipped as outside the range), so
//! whatever arrives twice is dropped and a lagged receiver ends the stream with
//! `WatchLagged { resume_from: next }`.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::read::{self, Readers};
use super::writer::Batch;
use crate::{Error, KeyRange, Result, Revision, WatchResponse, WatchStream};

/// How many revisions one catch-up read covers.
const PAGE: Revision = 256;

pub(super) struct Watch {
    pub readers: Arc<Readers>,
    pub live: broadcast::Receiver<Batch>,
    pub shutdown: CancellationToken,
    pub range: KeyRange,
    /// The first revision not yet delivered.
    pub next: Revision,
    /// The revision up to which history comes from the log.
    pub catch_up_to: Revision,
}

impl Watch {
    pub fn into_stream(self) -> WatchStream {
        let state = State {
            watch: self,
            pending: VecDeque::new(),
            done: false,
        };
        Box::pin(futures::stream::unfold(state, |mut state| async move {
            let item = state.next_item().await?;
            Some((item, state))
        }))
    }
}

struct State {
    watch: Watch,
    pending: VecDeque<WatchResponse>,
    done: bool,
}

impl State {
    fn end(&mut self, error: Error) -> Option<Result<WatchResponse>> {
        self.done = true;
        Some(Err(error))
    }

    async fn next_item(&mut self) -> Option<Result<WatchResponse>> {
        loop {
            if let Some(response) = self.pending.pop_front() {
                return Some(Ok(response));
            }
            if self.done {
                return None;
            }
            let w = &mut self.watch;
            if w.shutdown.is_cancelled() {
                return self.end(Error::Closed);
            }
            if w.next <= w.catch_up_to {
                let (from, to) = (w.next, (w.next + PAGE - 1).min(w.catch_up_to));
                let range = w.range.clone();
                match w
                    .readers
                    .run(move |conn| read::events(conn, &range, from, to))
                    .await
                {
                    Ok(responses) => {
                        self.pending.extend(responses);
                        self.watch.next = to + 1;
                    }
                    Err(e) => return self.end(e),
                }
                continue;
            }
            let received = tokio::select! {
                biased;
                () = w.shutdown.cancelled() => None,
                received = w.live.recv() => Some(received),
            };
            let Some(received) = received else {
                return self.end(Error::Closed);
            };
            let w = &mut self.watch;
            match received {
                Ok(batch) => {
                    for response in batch.iter() {
                        if response.revision < w.next {
                            continue;
                        }
                        let events: Vec<_> = response
                            .events
                            .iter()
                            .filter(|e| w.range.contains(&e.kv.key))
                            .cloned()
                            .collect();
                        if !events.is_empty() {
                            self.pending.push_back(WatchResponse {
                                revision: response.revision,
                                events,
                            });
                        }
                        w.next = response.revision + 1;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let resume_from = w.next;
                    return self.end(Error::WatchLagged { resume_from });
                }
                Err(broadcast::error::RecvError::Closed) => return self.end(Error::Closed),
            }
        }
    }
}
