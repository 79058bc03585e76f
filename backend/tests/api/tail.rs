//! The live tail WebSocket: streaming, resume by cursor, lag notice, heartbeats, close codes.

use std::time::Duration;

use futures::StreamExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use vigil_proto::{TailFrame, paths};

use crate::helpers::{Db, TestApp, record, spawn_app_with};

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn request(app: &TestApp, query: &str) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let url = format!("ws://127.0.0.1:{}{}?{query}", app.port, paths::LOGS_TAIL);
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert("authorization", format!("Bearer {}", app.read_token).parse().unwrap());
    request
}

async fn connect(app: &TestApp, query: &str) -> Socket {
    tokio_tungstenite::connect_async(request(app, query)).await.expect("tail connects").0
}

/// The next data frame, skipping heartbeats.
async fn next_frame(socket: &mut Socket) -> TailFrame {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(20), socket.next())
            .await
            .expect("a frame in time")
            .unwrap()
            .unwrap();
        if let Message::Text(text) = message {
            let frame: TailFrame = serde_json::from_str(&text).unwrap();
            if !matches!(frame, TailFrame::Heartbeat { .. }) {
                return frame;
            }
        }
    }
}

async fn tail_app() -> TestApp {
    spawn_app_with(Db::Sqlite, |config| config.logs.tail_heartbeat_seconds = 1).await
}

#[tokio::test]
async fn matching_records_stream_and_a_reconnect_resumes_without_gaps() {
    let app = tail_app().await;
    assert_eq!(app.post_logs(&[record("2026-11-29T08:00:00Z", "api", "info", "before the tail")]).await.status(), 200);
    let mut socket = connect(&app, "q=service:api").await;
    let batch = [
        record("2026-11-29T08:00:01Z", "api", "error", "first live"),
        record("2026-11-29T08:00:01Z", "worker", "error", "not this service"),
    ];
    assert_eq!(app.post_logs(&batch).await.status(), 200);
    let TailFrame::Records { records, cursor } = next_frame(&mut socket).await else { panic!("records expected") };
    assert_eq!(records.iter().map(|hit| hit.message.as_str()).collect::<Vec<_>>(), ["first live"]);
    socket.close(None).await.unwrap();

    // Stored while nobody listens; the reconnect with the cursor gets exactly these.
    let missed: Vec<_> =
        (0..3).map(|index| record("2026-11-29T08:00:02Z", "api", "info", &format!("missed {index}"))).collect();
    assert_eq!(app.post_logs(&missed).await.status(), 200);
    let mut socket = connect(&app, &format!("q=service:api&cursor={cursor}")).await;
    let TailFrame::Records { records, .. } = next_frame(&mut socket).await else { panic!("records expected") };
    assert_eq!(
        records.iter().map(|hit| hit.message.as_str()).collect::<Vec<_>>(),
        ["missed 0", "missed 1", "missed 2"]
    );
}

#[tokio::test]
async fn a_client_far_behind_is_told_how_many_it_missed() {
    let app = tail_app().await;
    let mut socket = connect(&app, "q=").await;
    // Learn the cursor of the tail's start, then let it fall far behind by reconnecting with it.
    assert_eq!(app.post_logs(&[record("2026-11-29T08:00:00Z", "api", "info", "marker")]).await.status(), 200);
    let TailFrame::Records { cursor, .. } = next_frame(&mut socket).await else { panic!("records expected") };
    socket.close(None).await.unwrap();
    let flood: Vec<_> =
        (0..5600).map(|index| record("2026-11-29T08:00:01Z", "api", "info", &format!("flood {index}"))).collect();
    assert_eq!(app.post_logs(&flood).await.status(), 200);

    let mut socket = connect(&app, &format!("cursor={cursor}")).await;
    let TailFrame::Lagged { skipped, .. } = next_frame(&mut socket).await else { panic!("a lag notice expected") };
    assert_eq!(skipped, 5600 - 500);
    let TailFrame::Records { records, .. } = next_frame(&mut socket).await else { panic!("records expected") };
    assert_eq!(records.len(), 500);
    assert_eq!(records.last().unwrap().message, "flood 5599");
}

#[tokio::test]
async fn quiet_tails_get_heartbeats_and_a_clean_close_on_shutdown() {
    let app = tail_app().await;
    let mut socket = connect(&app, "q=level:error").await;
    let message = tokio::time::timeout(Duration::from_secs(10), socket.next()).await.unwrap().unwrap().unwrap();
    let frame: TailFrame = serde_json::from_str(message.to_text().unwrap()).unwrap();
    assert!(matches!(frame, TailFrame::Heartbeat { .. }), "{frame:?}");

    app.state.shutdown.cancel();
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.next()).await.unwrap() {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(close.unwrap().code, CloseCode::Away);
}

#[tokio::test]
async fn a_bad_query_or_missing_token_is_refused_before_the_upgrade() {
    let app = tail_app().await;
    match tokio_tungstenite::connect_async(request(&app, "q=service:(")).await {
        Err(WsError::Http(response)) => {
            assert_eq!(response.status(), 400);
            let body: serde_json::Value = serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
            assert_eq!(body["code"], "invalid_query");
        }
        other => panic!("expected 400, got {other:?}"),
    }
    let mut anonymous = request(&app, "q=");
    anonymous.headers_mut().remove("authorization");
    match tokio_tungstenite::connect_async(anonymous).await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), 401),
        other => panic!("expected 401, got {other:?}"),
    }
    let plain = app.client.get(app.url(paths::LOGS_TAIL)).bearer_auth(&app.read_token).send().await.unwrap();
    crate::helpers::assert_error(plain, 400, "invalid_parameter", "WebSocket").await;
}

/// A caller has at most eight tails open, gets the slot back when one closes, and cannot send
/// large messages on one.
#[tokio::test]
async fn tails_are_bounded_per_caller_and_in_what_clients_send() {
    use futures::SinkExt;
    let app = tail_app().await;
    let mut open = Vec::new();
    for _ in 0..vigil_backend::tail::MAX_TAILS_PER_CALLER {
        open.push(connect(&app, "q=").await);
    }
    match tokio_tungstenite::connect_async(request(&app, "q=")).await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), 429),
        other => panic!("a ninth tail was not refused: {:?}", other.map(|_| ())),
    }
    // Another caller is not held back.
    let other_token = crate::helpers::service_token(&app.state, "other-reader", vigil_proto::auth::Scope::Read).await;
    let mut other = request(&app, "q=");
    other.headers_mut().insert("authorization", format!("Bearer {other_token}").parse().unwrap());
    let (mut other, _) = tokio_tungstenite::connect_async(other).await.expect("another caller's tail");

    // A message far beyond what a tail client has to say ends its connection.
    other.send(Message::Text("x".repeat(1 << 20).into())).await.unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match other.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the server dropped the connection after a 1 MiB message");

    let mut closed = open.pop().unwrap();
    closed.close(None).await.unwrap();
    while closed.next().await.is_some() {}
    crate::helpers::eventually(10, "the closed tail's slot", || async {
        tokio_tungstenite::connect_async(request(&app, "q=")).await.ok().map(drop)
    })
    .await;
}
