//! Server limits: header-read timeout, request timeout, panics.

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

use crate::helpers::*;

async fn spawn_with_a_one_second_header_read_timeout() -> TestApp {
    let (toml, file) = standard_config(Keys::File);
    spawn_with(
        &toml.replace(
            "max_body_bytes = 4096",
            "max_body_bytes = 4096\nheader_read_timeout = \"1s\"",
        ),
        file,
    )
    .await
}

#[tokio::test]
async fn a_client_dripping_its_headers_is_disconnected_at_the_header_read_timeout() {
    let app = spawn_with_a_one_second_header_read_timeout().await;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(b"POST /token HTTP/1.1\r\nHost: x\r\nX-Drip: ")
        .await
        .unwrap();
    // Drip one byte every 200 ms for up to 20 s; the server must hang up long before.
    let mut closed = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if stream.write_all(b"a").await.is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 512];
        match tokio::time::timeout(Duration::from_millis(1), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(_)) => {
                // A 408 or similar before closing is fine too.
                closed = true;
                break;
            }
            Err(_) => {}
        }
    }
    assert!(
        closed,
        "the connection was still open after 20 s of dripped headers"
    );
    // The service still answers everyone else.
    expect(app.get("/healthz", None).await, 200).await;
}

/// The status line the server answers to a GET of `/healthz` whose head is `size` bytes in all,
/// made up to that size by one `X-Pad` header.
async fn status_for_a_head_of(app: &TestApp, size: usize) -> String {
    let start = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Pad: ";
    let end = "\r\n\r\n";
    let head = format!("{start}{}{end}", "a".repeat(size - start.len() - end.len()));
    assert_eq!(head.len(), size);
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    // The server may answer and close before it has read it all (431), so a failed write or a
    // reset after the status line is no error here.
    let _ = stream.write_all(head.as_bytes()).await;
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !answer.windows(2).any(|w| w == b"\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    answer.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_request_head_over_64_kib_is_answered_431() {
    let app = spawn_app().await;
    let limit = 64 * 1024;
    assert_eq!(
        status_for_a_head_of(&app, limit).await,
        "HTTP/1.1 200 OK",
        "a head of exactly 64 KiB"
    );
    for size in [limit + 1, 100_000] {
        assert_eq!(
            status_for_a_head_of(&app, size).await,
            "HTTP/1.1 431 Request Header Fields Too Large",
            "a head of {size} bytes"
        );
    }
    expect(app.get("/healthz", None).await, 200).await;
}

/// Whether the server hangs up on `stream` within `limit`, reading (and dropping) whatever it
/// answers first.
async fn hung_up_within(stream: &mut tokio::net::TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 512];
    tokio::time::timeout(limit, async {
        while matches!(stream.read(&mut buf).await, Ok(1..)) {}
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn connections_that_send_no_http1_request_are_closed_too() {
    let app = spawn_with_a_one_second_header_read_timeout().await;
    // Nothing at all; the start of an HTTP/2 preface, as a client dripping it would send it;
    // the whole preface (h2c with prior knowledge, which is not served); one request, then an
    // idle keep-alive connection.
    for first in [
        &b""[..],
        b"PRI * HTTP/2.0\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    ] {
        let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        stream.write_all(first).await.unwrap();
        assert!(
            hung_up_within(&mut stream, Duration::from_secs(5)).await,
            "a connection that sent {:?} was still open after 5 s",
            String::from_utf8_lossy(first)
        );
    }
    expect(app.get("/healthz", None).await, 200).await;
}

#[tokio::test]
async fn a_request_slower_than_the_request_timeout_gets_a_problem_response() {
    let server = JwksServer::start(JwksMode::Slow(Duration::from_secs(30), jwks_a())).await;
    let (toml, _) = standard_config(Keys::Url(&server.url));
    let app = spawn_with(
        &toml.replace(
            "max_body_bytes = 4096",
            "max_body_bytes = 4096\nrequest_timeout = \"1s\"",
        ),
        None,
    )
    .await;
    // No keys yet and the provider hangs: the request must not hang with it.
    let response = app
        .client
        .post(app.url("/apps/support/token"))
        .bearer_auth(token_for("alice"))
        .header("x-request-id", "slow-1")
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    // Answered by the token handler like any refusal: its request id, no caching.
    assert_eq!(response.headers()["x-request-id"], "slow-1");
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["retry-after"], "1");
    let body = expect(response, status).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "unavailable", "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("too long"),
        "{body}"
    );
    // Counted as a denial, and in the latency histogram like any other answer.
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    for expected in [
        r#"tokenmint_token_denials_total{app="support",code="unavailable"} 1"#,
        r#"tokenmint_http_request_duration_seconds_count{route="/apps/{app}/token",status="503"} 1"#,
    ] {
        assert!(
            metrics.contains(expected),
            "{expected} missing from\n{metrics}"
        );
    }
}

async fn boom() -> &'static str {
    panic!("boom")
}

#[tokio::test]
async fn a_panicking_handler_answers_500_and_the_router_keeps_serving() {
    let router = tokenmint::http::finish(
        Router::new()
            .route("/boom", get(boom))
            .route("/fine", get(|| async { "fine" })),
        Duration::from_secs(5),
        Default::default(),
    );
    for _ in 0..2 {
        let request = axum::http::Request::get("/boom")
            .body(axum::body::Body::empty())
            .unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), 500);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["code"], "internal");
        assert!(
            !body.to_string().contains("boom"),
            "panic message leaked: {body}"
        );
    }
    let request = axum::http::Request::get("/fine")
        .body(axum::body::Body::empty())
        .unwrap();
    assert_eq!(router.oneshot(request).await.unwrap().status(), 200);
}
