//! Slow clients: connections that stall in the headers, in the body or idle between requests are
//! answered 408 or closed once their deadline passes, and while a thousand of them are open
//! WeCom's pushes keep being answered `success`.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::helpers::{Options, SUITE_ID, TestApp, spawn_app, suite_path};

const SLOW_CONNECTIONS: usize = 1000;

fn ticket() -> String {
    format!(
        "<xml><SuiteId><![CDATA[{SUITE_ID}]]></SuiteId><InfoType><![CDATA[suite_ticket]]></InfoType>\
         <TimeStamp>1403610513</TimeStamp><SuiteTicket><![CDATA[t]]></SuiteTicket></xml>"
    )
}

/// What a stalled connection got from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// A response with this status, then the connection was closed.
    Answered { status: u16, closed: bool },
    /// Closed without a response.
    Closed,
    /// Still open and silent when the test stopped waiting.
    Open,
}

/// Waits until `deadline` for the server to answer or close; returns what happened and when.
async fn fate(stream: &mut TcpStream, deadline: Instant) -> (Fate, Instant) {
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let until = tokio::time::Instant::from_std(deadline);
    let mut answered_at = None;
    loop {
        match tokio::time::timeout_at(until, stream.read(&mut buf)).await {
            Err(_) => break,
            Ok(Ok(0) | Err(_)) => {
                let closed_at = Instant::now();
                let fate = match status_of(&answer) {
                    Some(status) => Fate::Answered {
                        status,
                        closed: true,
                    },
                    None => Fate::Closed,
                };
                return (fate, answered_at.unwrap_or(closed_at));
            }
            Ok(Ok(n)) => {
                answer.extend_from_slice(&buf[..n]);
                answered_at.get_or_insert_with(Instant::now);
            }
        }
    }
    let fate = match status_of(&answer) {
        Some(status) => Fate::Answered {
            status,
            closed: false,
        },
        None => Fate::Open,
    };
    (fate, answered_at.unwrap_or_else(Instant::now))
}

fn status_of(answer: &[u8]) -> Option<u16> {
    let text = String::from_utf8_lossy(answer);
    text.split(' ').nth(1).and_then(|code| code.parse().ok())
}

/// Headers of a valid push announcing a 64 KiB body, and its first bytes: then nothing.
fn stalled_request(query: &str) -> String {
    format!(
        "POST {}?{query} HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n\
         Content-Length: 65536\r\n\r\n<xml><Encrypt><![CDATA[",
        suite_path()
    )
}

async fn open_stalled(
    addr: SocketAddr,
    request: String,
    count: usize,
) -> Vec<(TcpStream, Instant)> {
    let mut opening = JoinSet::new();
    for _ in 0..count {
        let request = request.clone();
        opening.spawn(async move {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            stream.write_all(request.as_bytes()).await.unwrap();
            (stream, Instant::now())
        });
    }
    let mut streams = Vec::with_capacity(count);
    while let Some(opened) = opening.join_next().await {
        streams.push(opened.unwrap());
    }
    streams
}

fn is_silent(stream: &TcpStream) -> bool {
    let mut probe = [0u8; 1];
    matches!(stream.try_read(&mut probe), Err(e) if e.kind() == ErrorKind::WouldBlock)
}

#[tokio::test]
async fn slow_bodies_get_408_while_valid_callbacks_keep_being_answered() {
    let body_timeout = Duration::from_secs(3);
    let app = spawn_app(Options {
        body_timeout: Some(body_timeout),
        ..Options::default()
    })
    .await;
    let query = TestApp::suite_push(&ticket()).query;

    let started = Instant::now();
    let slow = open_stalled(app.addr, stalled_request(&query), SLOW_CONNECTIONS).await;
    let all_open = Instant::now();
    eprintln!(
        "{SLOW_CONNECTIONS} stalled connections open in {:?}",
        all_open - started
    );

    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let sent = Instant::now();
        let response = app
            .post(&suite_path(), &TestApp::suite_push(&ticket()))
            .await;
        slowest = slowest.max(sent.elapsed());
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), "success");
    }
    eprintln!("20 valid callbacks answered `success`, the slowest in {slowest:?}");
    let silent = slow.iter().filter(|(stream, _)| is_silent(stream)).count();
    assert_eq!(
        silent, SLOW_CONNECTIONS,
        "every stalled connection was still open while the valid callbacks were answered"
    );

    let deadline = Instant::now() + body_timeout + Duration::from_secs(10);
    let mut waiting = JoinSet::new();
    for (mut stream, sent) in slow {
        waiting.spawn(async move {
            let (fate, at) = fate(&mut stream, deadline).await;
            (fate, at.saturating_duration_since(sent))
        });
    }
    let (mut answered_408, mut closed, mut open, mut other) = (0, 0, 0, Vec::new());
    let (mut earliest, mut latest) = (Duration::MAX, Duration::ZERO);
    while let Some(result) = waiting.join_next().await {
        let (fate, after) = result.unwrap();
        match fate {
            Fate::Answered {
                status: 408,
                closed: true,
            } => answered_408 += 1,
            Fate::Closed => closed += 1,
            Fate::Open => open += 1,
            other_fate @ Fate::Answered { .. } => other.push(other_fate),
        }
        if fate != Fate::Open {
            earliest = earliest.min(after);
            latest = latest.max(after);
        }
    }
    eprintln!(
        "stalled connections: {answered_408} answered 408 and closed, {closed} closed, \
         {open} still open"
    );
    if open < SLOW_CONNECTIONS {
        eprintln!("the others ended {earliest:?}..{latest:?} after their headers");
    }
    assert_eq!(
        open, 0,
        "stalled connections still open after the body timeout"
    );
    assert!(other.is_empty(), "unexpected answers: {other:?}");
    assert_eq!(answered_408 + closed, SLOW_CONNECTIONS);
    assert!(
        earliest >= body_timeout.saturating_sub(Duration::from_millis(100)),
        "a stalled body was cut before the timeout: {earliest:?}"
    );

    let metrics = app.metrics().await;
    let line = format!(
        "ingress_requests_total{{outcome=\"too_slow\",route=\"suite_post\"}} {answered_408}"
    );
    assert!(metrics.contains(&line), "{line}\n{metrics}");
    let line = format!("ingress_rejections_total{{cause=\"too_slow\"}} {answered_408}");
    assert!(metrics.contains(&line), "{line}");
    app.stop().await;
}

fn is_408_or_closed(fate: Fate) -> bool {
    matches!(
        fate,
        Fate::Closed
            | Fate::Answered {
                status: 408,
                closed: true
            }
    )
}

/// Sends one valid push on a fresh connection and reads its answer, leaving the connection open
/// on the client's side.
async fn push_on_new_connection(app: &TestApp) -> TcpStream {
    let push = TestApp::suite_push(&ticket());
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let request = format!(
        "POST {}?{} HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{}",
        suite_path(),
        push.query,
        push.body.len(),
        push.body
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).ends_with("success") {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed before the answer");
        answer.extend_from_slice(&buf[..n]);
    }
    assert_eq!(status_of(&answer), Some(200));
    stream
}

#[tokio::test]
async fn slow_headers_and_idle_connections_are_closed() {
    let header_timeout = Duration::from_secs(1);
    let app = spawn_app(Options {
        header_timeout: Some(header_timeout),
        ..Options::default()
    })
    .await;
    let margin = Duration::from_secs(2);

    // Half a request head, then nothing.
    let mut half_head = TcpStream::connect(app.addr).await.unwrap();
    half_head
        .write_all(format!("POST {} HTTP/1.1\r\nHost: x\r\n", suite_path()).as_bytes())
        .await
        .unwrap();
    // Connected, nothing sent.
    let mut silent = TcpStream::connect(app.addr).await.unwrap();
    let sent = Instant::now();
    let (half_head_fate, _) = fate(&mut half_head, sent + header_timeout + margin).await;
    assert!(
        is_408_or_closed(half_head_fate),
        "half a head: {half_head_fate:?}"
    );
    let (silent_fate, ended) = fate(&mut silent, sent + header_timeout + margin).await;
    assert!(
        is_408_or_closed(silent_fate),
        "a silent connection: {silent_fate:?}"
    );
    eprintln!(
        "half a head: {half_head_fate:?}; a silent connection: {silent_fate:?} after {:?}",
        ended - sent
    );

    // Keep-alive is off by default: the connection closes after its answer, so a next request
    // cannot be started on it (actix bounds only a connection's first request head).
    let mut answered = push_on_new_connection(&app).await;
    let answered_at = Instant::now();
    let (after_answer, closed_at) = fate(&mut answered, answered_at + margin).await;
    assert_eq!(
        after_answer,
        Fate::Closed,
        "the connection after its answer"
    );
    eprintln!(
        "without keep-alive the connection closed {:?} after its answer",
        closed_at - answered_at
    );
    app.stop().await;

    // With keep-alive, an idle connection is closed when it runs out.
    let app = spawn_app(Options {
        keep_alive_secs: Some(1),
        ..Options::default()
    })
    .await;
    let mut kept = push_on_new_connection(&app).await;
    let idle_from = Instant::now();
    let (kept_fate, closed_at) = fate(&mut kept, idle_from + Duration::from_secs(1) + margin).await;
    assert_eq!(kept_fate, Fate::Closed, "an idle kept-alive connection");
    eprintln!(
        "an idle kept-alive connection closed after {:?}",
        closed_at - idle_from
    );
    app.stop().await;
}
