//! Test support for services that talk to RabbitMQ (feature `testkit`, dev-dependencies only).
//!
//! Tests share one real broker, so they cannot stop it to see what a service does when the broker
//! goes away. [`FaultProxy`] sits between the service and the broker instead and can
//! - [`cut`](FaultProxy::cut): drop every proxied connection and refuse new ones (broker down),
//! - [`stall`](FaultProxy::stall): keep connections open but hold back every byte from the broker
//!   (a broker that accepts publishes and never confirms),
//! - [`restore`](FaultProxy::restore): forward normally again (held bytes flow on),
//!
//! and counts the connections it accepted ([`accepted`](FaultProxy::accepted)), which is how a
//! test sees how often a service tries to connect.
//!
//! [`test_namespace`] gives each test its own exchange/queue prefix, and [`LogRecorder`] keeps
//! the log lines a test wants to assert on.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::topology::Namespace;

/// `AMQP_URL` from the environment, or the local broker ([`crate::DEFAULT_AMQP_URL`]).
pub fn amqp_url() -> String {
    std::env::var("AMQP_URL").unwrap_or_else(|_| crate::DEFAULT_AMQP_URL.into())
}

/// A fresh namespace such as `t0193ab….`: unique per call, valid in AMQP names.
pub fn test_namespace() -> Namespace {
    let prefix = format!("t{}.", uuid::Uuid::now_v7().simple());
    Namespace::new(&prefix).unwrap_or_default()
}

/// What the proxy does with traffic right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyMode {
    /// Forward both ways.
    Forward,
    /// Forward client → broker; hold back broker → client.
    Stall,
    /// Close every connection; accept and immediately close new ones.
    Refuse,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Control {
    mode: ProxyMode,
    /// Bumped by `cut`, so connections opened before it close even if restored at once.
    generation: u64,
}

/// A TCP proxy to one upstream address whose forwarding can be cut or stalled. Dropping it stops
/// accepting (existing connections close once their peers do).
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    control: watch::Sender<Control>,
    generation: Arc<AtomicU64>,
    accepted: Arc<AtomicU64>,
    accept: JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.control.send_modify(|c| c.mode = ProxyMode::Refuse);
    }
}

impl FaultProxy {
    /// Listens on a free local port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (control, rx) = watch::channel(Control {
            mode: ProxyMode::Forward,
            generation: 0,
        });
        let accepted = Arc::new(AtomicU64::new(0));
        let accept = tokio::spawn(accept_loop(listener, upstream, rx, accepted.clone()));
        Ok(Self {
            addr,
            control,
            generation: Arc::new(AtomicU64::new(0)),
            accepted,
            accept,
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `url` (an `amqp://` URL) rewritten to go through the proxy.
    pub fn amqp_url(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").unwrap_or(("amqp", url));
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let userinfo = authority
            .rsplit_once('@')
            .map(|(user, _)| format!("{user}@"))
            .unwrap_or_default();
        format!("{scheme}://{userinfo}{}/{path}", self.addr)
    }

    /// Drops every connection and refuses new ones until [`restore`](Self::restore).
    pub fn cut(&self) {
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        self.control.send_replace(Control {
            mode: ProxyMode::Refuse,
            generation,
        });
    }

    /// Holds back broker → client bytes until [`restore`](Self::restore).
    pub fn stall(&self) {
        self.control.send_modify(|c| c.mode = ProxyMode::Stall);
    }

    /// Forwards normally again.
    pub fn restore(&self) {
        self.control.send_modify(|c| c.mode = ProxyMode::Forward);
    }

    /// The current mode.
    pub fn mode(&self) -> ProxyMode {
        self.control.borrow().mode
    }

    /// How many client connections the proxy has accepted so far (refused ones included).
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    control: watch::Receiver<Control>,
    accepted: Arc<AtomicU64>,
) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        accepted.fetch_add(1, Ordering::SeqCst);
        let current = *control.borrow();
        if current.mode == ProxyMode::Refuse {
            drop(client);
            continue;
        }
        let control = control.clone();
        tokio::spawn(async move {
            if let Ok(server) = TcpStream::connect(upstream).await {
                proxy_connection(client, server, control, current.generation).await;
            }
        });
    }
}

/// Copies both directions until either side closes or the connection is cut.
async fn proxy_connection(
    client: TcpStream,
    server: TcpStream,
    control: watch::Receiver<Control>,
    generation: u64,
) {
    drop(client.set_nodelay(true));
    drop(server.set_nodelay(true));
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let upstream = pump(
        client_read,
        server_write,
        control.clone(),
        generation,
        false,
    );
    let downstream = pump(server_read, client_write, control.clone(), generation, true);
    tokio::select! {
        () = upstream => {}
        () = downstream => {}
        () = cut_signal(control, generation) => {}
    }
}

async fn cut_signal(mut control: watch::Receiver<Control>, generation: u64) {
    drop(
        control
            .wait_for(|c| c.mode == ProxyMode::Refuse || c.generation != generation)
            .await,
    );
}

/// One direction. The broker → client direction (`stallable`) waits while stalled, both before
/// reading and before writing, so nothing read just before a stall slips through.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut control: watch::Receiver<Control>,
    generation: u64,
    stallable: bool,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if stallable && !wait_unstalled(&mut control, generation).await {
            return;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if stallable && !wait_unstalled(&mut control, generation).await {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Waits until the mode is not `Stall`; false if the connection was cut meanwhile.
async fn wait_unstalled(control: &mut watch::Receiver<Control>, generation: u64) -> bool {
    match control
        .wait_for(|c| c.mode != ProxyMode::Stall || c.generation != generation)
        .await
    {
        Ok(c) => c.mode == ProxyMode::Forward && c.generation == generation,
        Err(_) => false,
    }
}

/// A minimal `tracing` subscriber that records every event at `debug` and above as
/// `(level, "target message field=value …")`. Install it for one test with
/// `tracing::subscriber::set_default(recorder.clone())`.
#[derive(Debug, Clone, Default)]
pub struct LogRecorder {
    lines: Arc<std::sync::Mutex<Vec<(tracing::Level, String)>>>,
    next_span: Arc<AtomicU64>,
}

impl LogRecorder {
    /// Every line recorded so far.
    pub fn lines(&self) -> Vec<(tracing::Level, String)> {
        self.lines.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Lines at `level` or more severe whose target starts with `target`.
    pub fn at_least(&self, level: tracing::Level, target: &str) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|(l, line)| *l <= level && line.starts_with(target))
            .map(|(_, line)| line)
            .collect()
    }

    /// Lines at exactly `level` whose target starts with `target`.
    pub fn at(&self, level: tracing::Level, target: &str) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|(l, line)| *l == level && line.starts_with(target))
            .map(|(_, line)| line)
            .collect()
    }
}

struct LineVisitor<'a>(&'a mut String);

impl tracing::field::Visit for LineVisitor<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let text = if field.name() == "message" {
            format!(" {value:?}")
        } else {
            format!(" {}={value:?}", field.name())
        };
        self.0.push_str(&text);
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        let text = if field.name() == "message" {
            format!(" {value}")
        } else {
            format!(" {}={value}", field.name())
        };
        self.0.push_str(&text);
    }
}

impl tracing::Subscriber for LogRecorder {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        *metadata.level() <= tracing::Level::DEBUG
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(self.next_span.fetch_add(1, Ordering::Relaxed) + 1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let mut line = event.metadata().target().to_owned();
        event.record(&mut LineVisitor(&mut line));
        if let Ok(mut lines) = self.lines.lock() {
            lines.push((*event.metadata().level(), line));
        }
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rewrites_amqp_urls_to_the_proxy() {
        let proxy = FaultProxy::start("127.0.0.1:1".parse().unwrap())
            .await
            .unwrap();
        let url = proxy.amqp_url("amqp://guest:pw@127.0.0.1:5672/%2f");
        assert_eq!(url, format!("amqp://guest:pw@{}/%2f", proxy.addr()));
    }

    #[tokio::test]
    async fn forwards_stalls_and_cuts() {
        let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream_addr = upstream.local_addr().unwrap();
        let echo = tokio::spawn(async move {
            loop {
                let (mut s, _) = upstream.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = [0u8; 16];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let proxy = FaultProxy::start(upstream_addr).await.unwrap();
        assert_eq!(proxy.accepted(), 0);
        let mut conn = TcpStream::connect(proxy.addr()).await.unwrap();
        let mut buf = [0u8; 2];
        conn.write_all(b"hi").await.unwrap();
        conn.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hi");

        proxy.stall();
        conn.write_all(b"yo").await.unwrap();
        let held = tokio::time::timeout(
            std::time::Duration::from_millis(200),
            conn.read_exact(&mut buf),
        )
        .await;
        assert!(held.is_err(), "stalled bytes must not arrive");
        proxy.restore();
        conn.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"yo");

        proxy.cut();
        let mut rest = Vec::new();
        let closed = conn.read_to_end(&mut rest).await;
        assert!(closed.is_err() || rest.is_empty());
        proxy.restore();
        let mut again = TcpStream::connect(proxy.addr()).await.unwrap();
        again.write_all(b"ok").await.unwrap();
        again.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ok");
        assert_eq!(proxy.accepted(), 2);
        echo.abort();
    }
}
