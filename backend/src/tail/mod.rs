//! Live tail sessions: one per WebSocket, streaming the records that match its query as they
//! are stored.
//!
//! A session reads from the log store, never from the ingest path: after every commit (the
//! store's `committed` watch) it asks for the matching records stored after its cursor (the
//! sequence number of the last record it sent). So a slow client slows only its own session;
//! when it falls more than [`MAX_BACKLOG`] matching records behind, the session skips to the
//! newest [`BATCH`] and says how many it left out in a `lagged` frame. A client that reconnects
//! with its last cursor resumes exactly where it stopped.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use tokio_util::sync::CancellationToken;
use vigil_proto::{TailFrame, TailQuery};

use crate::logs::{LogStore, LogStoreError};

/// Records per frame.
pub const BATCH: usize = 500;
/// Matching records a session may fall behind before it skips ahead.
pub const MAX_BACKLOG: u64 = 5000;

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
