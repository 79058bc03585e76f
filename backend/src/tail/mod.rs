//! Live tail sessions: one per WebSocket, streaming the records that match its query as they
//! are stored.
//!
//! A session reads from the log store, never from the ingest path: after every commit (the
//! store's `committed` watch) it asks for the matching records stored after its cursor (the
//! sequence number of the last record it sent). So a slow client slows only its own session;
//! when it falls more than [`MAX_BACKLOG`] matching records behind, the session skips to the
//! newest [`BATCH`] and says how many it left out in a `lagged` frame. A client that reconnects
//! with its last cursor resumes exactly where it stopped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use tokio_util::sync::CancellationToken;
use vigil_proto::{TailFrame, TailQuery};

use vigil_logstore::{LogStore, LogStoreError};

/// Records per frame.
pub const BATCH: usize = 500;
/// Matching records a session may fall behind before it skips ahead.
pub const MAX_BACKLOG: u64 = 5000;

/// Live tails one caller may have open at once.
pub const MAX_TAILS_PER_CALLER: usize = 8;
/// Live tails open at once in all.
pub const MAX_TAILS: usize = 1000;
/// The largest message a client may send on a tail (it has nothing to say but pongs and
/// close frames).
pub const MAX_CLIENT_MESSAGE_BYTES: usize = 4 << 10;

/// The open live tails, counted per caller.
#[derive(Default)]
pub struct TailSlots {
    open: Mutex<HashMap<String, usize>>,
}

/// One open tail; its slot is given back when it is dropped.
pub struct TailSlot {
    slots: Arc<TailSlots>,
    caller: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TailLimitError {
    #[error("at most {MAX_TAILS_PER_CALLER} live tails may be open at once by one caller")]
    PerCaller,
    #[error("the server has {MAX_TAILS} live tails open; try again later")]
    Total,
}

impl TailSlots {
    /// A slot for one more tail of `caller`.
    pub fn acquire(self: &Arc<Self>, caller: String) -> Result<TailSlot, TailLimitError> {
        let mut open = self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if open.values().sum::<usize>() >= MAX_TAILS {
            return Err(TailLimitError::Total);
        }
        let count = open.entry(caller.clone()).or_insert(0);
        if *count >= MAX_TAILS_PER_CALLER {
            return Err(TailLimitError::PerCaller);
        }
        *count += 1;
        Ok(TailSlot { slots: self.clone(), caller })
    }
}

impl Drop for TailSlot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = open.get_mut(&self.caller) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.caller);
            }
        }
    }
}

enum Ended {
    ClientLeft,
    ServerStopping,
    Failed(LogStoreError),
}

pub async fn run(
    socket: WebSocket,
    store: Arc<dyn LogStore>,
    query: TailQuery,
    heartbeat: Duration,
    shutdown: CancellationToken,
) {
    let mut socket = socket;
    let ended = stream(&mut socket, store.as_ref(), query, heartbeat, &shutdown).await;
    let close = match ended {
        Ended::ClientLeft => return,
        Ended::ServerStopping => CloseFrame { code: close_code::AWAY, reason: "server shutting down".into() },
        Ended::Failed(error) => {
            tracing::warn!(error = %error, "live tail failed");
            CloseFrame { code: close_code::ERROR, reason: "log store error".into() }
        }
    };
    let _client_gone = socket.send(Message::Close(Some(close))).await;
}

async fn send(socket: &mut WebSocket, frame: &TailFrame) -> Result<(), Ended> {
    let text = serde_json::to_string(frame).expect("tail frames serialize");
    socket.send(Message::Text(text.into())).await.map_err(|_| Ended::ClientLeft)
}

async fn stream(
    socket: &mut WebSocket,
    store: &dyn LogStore,
    query: TailQuery,
    heartbeat: Duration,
    shutdown: &CancellationToken,
) -> Ended {
    let mut committed = store.committed();
    // Without a cursor, start after what is stored now.
    let mut cursor = query.cursor.or(*committed.borrow_and_update());
    loop {
        if let Err(ended) = catch_up(socket, store, &query.q, &mut cursor).await {
            return ended;
        }
        tokio::select! {
            changed = committed.changed() => if changed.is_err() {
                return Ended::ServerStopping;
            },
            () = tokio::time::sleep(heartbeat) => {
                if let Err(ended) = send(socket, &TailFrame::Heartbeat { cursor }).await {
                    return ended;
                }
            }
            message = socket.recv() => match message {
                None | Some(Err(_) | Ok(Message::Close(_))) => return Ended::ClientLeft,
                Some(Ok(_)) => {}
            },
            () = shutdown.cancelled() => return Ended::ServerStopping,
        }
    }
}

/// Sends every matching record stored after `cursor`, skipping ahead when too far behind.
async fn catch_up(
    socket: &mut WebSocket,
    store: &dyn LogStore,
    q: &str,
    cursor: &mut Option<u64>,
) -> Result<(), Ended> {
    loop {
        let (records, total) = store.since(q.to_owned(), *cursor, BATCH, false).await.map_err(Ended::Failed)?;
        if total > MAX_BACKLOG {
            let (newest, _) = store.since(q.to_owned(), *cursor, BATCH, true).await.map_err(Ended::Failed)?;
            let Some(oldest_kept) = newest.last().map(|hit| hit.id.sequence) else {
                return Ok(());
            };
            let skipped = total - newest.len() as u64;
            *cursor = oldest_kept.checked_sub(1);
            send(socket, &TailFrame::Lagged { skipped, cursor: oldest_kept.saturating_sub(1) }).await?;
            continue;
        }
        let Some(last) = records.last().map(|hit| hit.id.sequence) else {
            return Ok(());
        };
        let full = records.len() == BATCH;
        *cursor = Some(last);
        send(socket, &TailFrame::Records { records, cursor: last }).await?;
        if !full {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails_are_bounded_per_caller_and_given_back() {
        let slots = Arc::new(TailSlots::default());
        let held: Vec<TailSlot> =
            (0..MAX_TAILS_PER_CALLER).map(|_| slots.acquire("user:1".to_owned()).unwrap()).collect();
        assert!(matches!(slots.acquire("user:1".to_owned()), Err(TailLimitError::PerCaller)));
        assert!(slots.acquire("user:2".to_owned()).is_ok(), "others are not held back");
        drop(held);
        assert!(slots.acquire("user:1".to_owned()).is_ok());
    }
}
