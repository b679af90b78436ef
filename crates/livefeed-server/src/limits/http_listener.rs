//! The HTTP listener: accepts connections through the [`ConnectionGate`] and serves each one
//! with hyper's HTTP/1.1 server (browsers speak HTTP/2 only over TLS; plain-text HTTP/2 would
//! also need a protocol sniff that no timeout covers), under three timeouts:
//!
//! - header read: a request head must arrive whole within it, and a keep-alive connection may
//!   wait that long for its next request (hyper's `header_read_timeout` runs from the moment a
//!   request may start): silent and slowloris connections are closed;
//! - body progress: a request body must deliver a chunk at least that often (a huge
//!   `Content-Length` followed by a trickle is cut);
//! - shedding: a connection the gate sheds (idle while the listener is full) is closed.
//!
//! A connection the gate refuses gets one plain-text answer (429 for its address's cap, 503
//! when full) and is closed. `ConnectInfo<Conn>` is set on every request as axum's own server
//! does.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

use crate::api::http::Conn;
use crate::limits::conn_gate::{Activity, ConnectionGate, Permit, Refusal, SlowRefusal};

/// The timeouts of HTTP connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpTimeouts {
    /// For a whole request head, and between requests on a kept-alive connection.
    pub header: Duration,
    /// Between two chunks of a request body.
    pub body: Duration,
}

impl Default for HttpTimeouts {
    fn default() -> Self {
        HttpTimeouts {
            header: Duration::from_secs(10),
            body: Duration::from_secs(10),
        }
    }
}

/// Accepts and serves connections on `listener` until the task is aborted.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    gate: Arc<ConnectionGate>,
    timeouts: HttpTimeouts,
) {
    let router = router.layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
        timeouts.body,
    ));
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors despite the budget (another part of the process used
                // them): wait for some to free rather than spin.
                let nobody = SocketAddr::from(([0, 0, 0, 0], 0));
                gate.log()
                    .note("http", "connections not accepted", &e.to_string(), nobody);
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        match gate.admit(remote) {
            Ok(permit) => {
                tokio::spawn(serve_connection(
                    stream,
                    remote,
                    router.clone(),
                    permit,
                    timeouts,
                ));
            }
            Err(refusal) => {
                tokio::spawn(refuse(stream, refusal, gate.slow_refusal()));
            }
        }
    }
}

/// Serves one admitted connection until it ends, times out or is shed.
async fn serve_connection(
    stream: TcpStream,
    remote: SocketAddr,
    router: Router,
    permit: Permit,
    timeouts: HttpTimeouts,
) {
    let _ = stream.set_nodelay(true);
    let conn = Conn {
        local: stream.local_addr().ok(),
        remote,
    };
    let service = TowerToHyperService::new(router.map_request(
        move |mut req: axum::http::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo(conn));
            req
        },
    ));
    let io = TokioIo::new(Tracked {
        stream,
        activity: permit.activity.clone(),
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.header)
        .serve_connection(io, service)
        .with_upgrades();
    tokio::select! {
        result = connection => {
            if let Err(e) = result {
                tracing::debug!(%remote, error = %e, "HTTP connection ended");
            }
        }
        _ = permit.cancel.cancelled() => {
            tracing::debug!(%remote, "HTTP connection shed (idle while the server was full)");
        }
    }
}

/// Answers a refused connection with its reason and closes it.
async fn refuse(mut stream: TcpStream, refusal: Refusal, slow: Option<SlowRefusal>) {
    let status = match refusal {
        Refusal::PerAddress { .. } => "429 Too Many Requests",
        Refusal::Full { .. } => "503 Service Unavailable",
    };
    let body = format!("connection refused: {refusal}\n");
    let reply = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), stream.write_all(reply.as_bytes())).await;
    let _ = stream.shutdown().await;
    // Read (briefly, a bounded amount) what the client sent before closing: closing with unread
    // bytes resets the connection, and the client might never see the answer. Only for a few
    // at a time: under a flood of refusals, each held descriptor counts.
    if slow.is_some() {
        let mut sink = [0u8; 4096];
        let _ = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut sink)).await;
    }
}

/// A TCP stream that reports every byte it moves to its connection's [`Activity`].
struct Tracked {
    stream: TcpStream,
    activity: Activity,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
