//! Connections, as an attacker with no token would hold them: sockets that send nothing,
//! or only the HTTP/2 preface, a flood of them beyond the connection limit, a keep-alive
//! connection left idle, a request head that never ends, an HTTP/2 connection left open.

use std::sync::Arc;
use std::time::Duration;

use axum::http::Request;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::common::{TestApp, catalog};
use crate::limits::{get_over_tcp, read_to_close, serve};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Reads one HTTP/1 response with a `Content-Length` body, leaving the connection open.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut byte = [0u8; 1];
    let read = async {
        while !out.ends_with(b"\r\n\r\n") {
            assert_eq!(stream.read(&mut byte).await.unwrap(), 1, "closed early");
            out.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&out).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .map_or(0, |v| v.trim().parse().unwrap());
        let mut body = vec![0u8; length];
        stream.read_exact(&mut body).await.unwrap();
        out.extend(body);
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("no response");
    String::from_utf8_lossy(&out).into_owned()
}

const LIVE: &[u8] = b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n";

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn silent_and_http2_preface_sockets_beyond_the_limit_are_closed_and_health_answers_throughout(
    db: sqlx::PgPool,
) {
    let app = TestApp::with(db, Arc::new(catalog()), |c| {
        c.limits.header_read_timeout_secs = 5;
        c.limits.max_connections = 64;
    });
    let shutdown = CancellationToken::new();
    let address = serve(&app, shutdown.clone()).await;
    let mut silent = Vec::new();
    for _ in 0..400 {
        silent.push(TcpStream::connect(&address).await.unwrap());
    }
    let mut preface = Vec::new();
    for _ in 0..100 {
        let mut socket = TcpStream::connect(&address).await.unwrap();
        socket.write_all(PREFACE).await.unwrap();
        preface.push(socket);
    }
    // Every connection is taken: anything but health gets 503 with Retry-After...
    let refused = get_over_tcp(&address, "/v1/settings").await;
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(
        refused.to_ascii_lowercase().contains("retry-after: 1"),
        "{refused}"
    );
    assert!(refused.contains("64 connections open already"), "{refused}");
    // ...and the probes, each on a new connection as the kubelet's, are answered.
    for _ in 0..20 {
        let live = get_over_tcp(&address, "/health/live").await;
        assert!(live.starts_with("HTTP/1.1 200"), "{live}");
    }
    let still = get_over_tcp(&address, "/v1/settings").await;
    assert!(
        still.starts_with("HTTP/1.1 503"),
        "the flood was still there: {still}"
    );
    // The server closes every one of them (none ever sent a request).
    for socket in &mut silent {
        assert_eq!(read_to_close(socket).await, "");
    }
    for socket in &mut preface {
        let answer = read_to_close(socket).await;
        assert!(!answer.contains("HTTP/1.1"), "{answer}");
    }
    // And serves everyone again.
    let settings = get_over_tcp(&address, "/v1/settings").await;
    assert!(settings.starts_with("HTTP/1.1 401"), "{settings}");
    shutdown.cancel();
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_keep_alive_connection_idles_past_the_header_timeout_until_the_idle_timeout(
    db: sqlx::PgPool,
) {
    let app = TestApp::with(db, Arc::new(catalog()), |c| {
        c.limits.header_read_timeout_secs = 1;
        c.limits.idle_timeout_secs = 6;
    });
    let shutdown = CancellationToken::new();
    let address = serve(&app, shutdown.clone()).await;
    let mut conn = TcpStream::connect(&address).await.unwrap();
    conn.write_all(LIVE).await.unwrap();
    assert!(read_response(&mut conn).await.starts_with("HTTP/1.1 200"));
    // Idle for longer than the header timeout (not a request being sent): still open.
    tokio::time::sleep(Duration::from_secs(3)).await;
    conn.write_all(LIVE).await.unwrap();
    assert!(read_response(&mut conn).await.starts_with("HTTP/1.1 200"));
    // Headers that begin but never end are cut at the header timeout, unanswered.
    conn.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let answer = read_to_close(&mut conn).await;
    assert!(!answer.contains("200 OK"), "{answer}");
    // A connection left idle after its request is closed, having sent nothing more.
    let mut idle = TcpStream::connect(&address).await.unwrap();
    idle.write_all(LIVE).await.unwrap();
    assert!(read_response(&mut idle).await.starts_with("HTTP/1.1 200"));
    assert_eq!(read_to_close(&mut idle).await, "");
    shutdown.cancel();
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn an_http2_connection_has_its_streams_capped_and_is_closed_when_idle(db: sqlx::PgPool) {
    let app = TestApp::with(db, Arc::new(catalog()), |c| {
        c.limits.http2_max_streams = 7;
        c.limits.idle_timeout_secs = 2;
    });
    let shutdown = CancellationToken::new();
    let address = serve(&app, shutdown.clone()).await;
    let tcp = TcpStream::connect(&address).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    let driver = tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let request = Request::get(format!("http://{address}/health/live"))
        .body(())
        .unwrap();
    let (response, _) = client.send_request(request, true).unwrap();
    let response = response.await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(client.current_max_send_streams(), 7);
    let mut body = response.into_body();
    while let Some(chunk) = body.data().await {
        chunk.unwrap();
    }
    // Nothing more is asked: the server ends the connection.
    tokio::time::timeout(Duration::from_secs(60), driver)
        .await
        .expect("the idle HTTP/2 connection stayed open")
        .unwrap()
        .ok();
    shutdown.cancel();
}
