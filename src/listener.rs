//! The serve loop: it owns its connections. Each connection must send a request's headers
//! within `header_read_timeout_secs` (and may idle between requests for as long: hyper starts
//! that timer whenever a connection waits for the next request head), and connections are
//! capped in all (`max_connections`) and per client address (`max_connections_per_address`,
//! IPv6 per /64; trusted proxies count only toward the total). A connection past a cap is closed
//! at once, never queued. HTTP/1.1 only: a connection that never sends a byte cannot wait out the
//! protocol detection that HTTP/2 would need. On shutdown, idle connections close at once and
//! busy ones after their request.
//!
//! A connection the server closes is closed lingering ([`Lingering`]): the client may still be
//! sending a body nobody will read (an answer such as 413 comes before it), and closing a socket
//! with unread bytes resets the connection, which costs the client the answer already sent.

use crate::core::net::{Cidr, address_key, in_any};
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};

/// What the loop enforces.
#[derive(Debug, Clone)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    /// Proxies: exempt from the per-address cap (all their clients arrive from them).
    pub trusted_proxies: Vec<Cidr>,
}

#[derive(Debug, Default)]
struct Table {
    total: usize,
    per_address: HashMap<String, usize>,
}

#[derive(Debug, Default)]
struct Slots {
    table: Mutex<Table>,
    /// Signalled whenever a connection ends (for shutdown to wait on).
    ended: Notify,
}

/// One open connection's place; giving it back on drop.
struct Slot {
    slots: Arc<Slots>,
    key: Option<String>,
}

impl Slots {
    fn take(self: &Arc<Self>, key: Option<String>, limits: &Limits) -> Option<Slot> {
        let mut t = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        if t.total >= limits.max_connections {
            return None;
        }
        if let Some(k) = &key {
            let n = t.per_address.entry(k.clone()).or_default();
            if *n >= limits.max_connections_per_address {
                return None;
            }
            *n += 1;
        }
        t.total += 1;
        Some(Slot {
            slots: self.clone(),
            key,
        })
    }

    fn open(&self) -> usize {
        self.table.lock().unwrap_or_else(PoisonError::into_inner).total
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut t = self.slots.table.lock().unwrap_or_else(PoisonError::into_inner);
        t.total = t.total.saturating_sub(1);
        if let Some(k) = &self.key {
            if let Some(n) = t.per_address.get_mut(k) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    t.per_address.remove(k);
                }
            }
        }
        drop(t);
        self.slots.ended.notify_waiters();
    }
}

/// Serve `app` on `listener` until `shutdown` resolves, then finish what is in flight.
pub async fn serve(
    listener: TcpListener,
    app: crate::server::App,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let slots = Arc::new(Slots::default());
    let (closing_tx, closing_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was taken: wait
                    // a moment rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let key = (!in_any(&limits.trusted_proxies, peer.ip())).then(|| address_key(peer.ip()));
        let Some(slot) = slots.take(key, &limits) else {
            metrics::counter!("keygate_connections_refused_total").increment(1);
            tracing::debug!(peer = %peer.ip(), "connection refused: at the connection cap");
            drop(stream);
            continue;
        };
        let app = app.clone();
        let mut closing = closing_rx.clone();
        let timeout = limits.header_read_timeout;
        tokio::spawn(async move {
            let _slot = slot;
            let _ = stream.set_nodelay(true);
            let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                app.serve(req)
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(timeout)
                .keep_alive(true)
                .serve_connection(TokioIo::new(Lingering::new(stream)), service);
            tokio::pin!(conn);
            let mut dog = Watchdog::default();
            let result = tokio::select! {
                r = dog.guard(conn.as_mut()) => r,
                _ = async { closing.wait_for(|c| *c).await.map(|_| ()) } => {
                    conn.as_mut().graceful_shutdown();
                    dog.guard(conn.as_mut()).await
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    let _ = closing_tx.send(true);
    loop {
        let ended = slots.ended.notified();
        if slots.open() == 0 {
            return Ok(());
        }
        ended.await;
    }
}

/// How long a closing connection waits for more of what its client sends before it closes
/// anyway, and how long it lingers at most (Apache's lingering close: 2 s and 30 s; a shorter
/// whole here, as a lingering connection keeps its slot and shutdown waits for it).
const LINGER_IDLE: Duration = Duration::from_secs(2);
const LINGER_MAX: Duration = Duration::from_secs(10);

/// A connection's socket, closed lingering (RFC 9112, section 9.6): when hyper shuts the
/// connection down (its answer written, keep-alive over), the write half is shut first, so the
/// client reads the answer and an end of stream, and what the client still sends is read and
/// dropped until it closes its side, pauses [`LINGER_IDLE`], or [`LINGER_MAX`] has passed. Only
/// then is the socket closed, with nothing unread in it: no reset overtakes the answer. A
/// connection that ends in an error (a header-read timeout, a reset) is closed at once.
struct Lingering {
    stream: TcpStream,
    linger: Option<Linger>,
}

struct Linger {
    idle: Pin<Box<tokio::time::Sleep>>,
    until: tokio::time::Instant,
}

impl Lingering {
    fn new(stream: TcpStream) -> Self {
        Self { stream, linger: None }
    }
}

impl AsyncRead for Lingering {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Lingering {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let linger = match &mut this.linger {
            Some(l) => l,
            None => {
                ready!(Pin::new(&mut this.stream).poll_shutdown(cx))?;
                let now = tokio::time::Instant::now();
                this.linger.insert(Linger {
                    idle: Box::pin(tokio::time::sleep_until(now + LINGER_IDLE)),
                    until: now + LINGER_MAX,
                })
            }
        };
        let mut scratch = [0u8; 4096];
        loop {
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut this.stream).poll_read(cx, &mut buf) {
                // The client closed its side (or the socket failed): nothing is left unread.
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Err(_)) => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => {
                    let now = tokio::time::Instant::now();
                    if now >= linger.until {
                        return Poll::Ready(Ok(()));
                    }
                    linger.idle.as_mut().reset((now + LINGER_IDLE).min(linger.until));
                }
                Poll::Pending => break,
            }
        }
        std::future::Future::poll(linger.idle.as_mut(), cx).map(Ok)
    }
}

/// The request deadline of one connection (see [`Watchdog`]): HTTP/1.1 serves one request at a
/// time, so one slot per connection holds the deadline of the request in flight.
#[derive(Debug, Default)]
pub struct Deadline {
    /// Nanoseconds after [`base`] (plus one); 0 when no request is in flight.
    at: AtomicU64,
    /// Set by the watchdog once `at` has passed: the request should answer its timeout.
    expired: AtomicBool,
}

tokio::task_local! {
    /// The deadline slot of the connection whose task is being polled.
    static DEADLINE: Arc<Deadline>;
}

fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

fn nanos(t: Instant) -> u64 {
    u64::try_from(t.saturating_duration_since(base()).as_nanos()).unwrap_or(u64::MAX - 1) + 1
}

impl Deadline {
    /// The slot of the connection serving the current request, when it is served by [`serve`]
    /// (`None` elsewhere: the caller then needs a timer of its own).
    pub fn current() -> Option<Arc<Deadline>> {
        DEADLINE.try_with(Arc::clone).ok()
    }

    /// A request starts: it should be answered by `at`.
    pub fn start(&self, at: Instant) {
        self.expired.store(false, Ordering::Relaxed);
        self.at.store(nanos(at), Ordering::Relaxed);
    }

    /// The request in flight has its answer.
    pub fn finish(&self) {
        self.at.store(0, Ordering::Relaxed);
    }

    /// Has the request's deadline passed (as the watchdog found)?
    pub fn expired(&self) -> bool {
        self.expired.load(Ordering::Relaxed)
    }
}

/// The request timeout without a timer per request: each connection's task keeps at most one
/// tokio timer, armed at the deadline of the request in flight when it is first seen, and left
/// as it is while later requests come and go (their deadlines are later). When it fires it
/// either re-arms at the current request's deadline (once per timeout period on a busy
/// connection), or, that deadline having passed, marks the slot expired and wakes the task, whose
/// request then answers its timeout (server.rs, `TrackFuture`). Polled in the connection's task
/// right after the connection on every wake-up, so it sees a request as soon as it started.
#[derive(Default)]
struct Watchdog {
    slot: Arc<Deadline>,
    sleep: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
    armed: u64,
}

impl Watchdog {
    /// Drive `fut` (the connection) with this connection's slot in reach of its requests.
    async fn guard<F: std::future::Future>(&mut self, fut: F) -> F::Output {
        let slot = self.slot.clone();
        let mut fut = std::pin::pin!(DEADLINE.scope(slot, fut));
        std::future::poll_fn(|cx| {
            if let std::task::Poll::Ready(out) = fut.as_mut().poll(cx) {
                return std::task::Poll::Ready(out);
            }
            self.poll_watch(cx);
            std::task::Poll::Pending
        })
        .await
    }

    fn poll_watch(&mut self, cx: &mut std::task::Context<'_>) {
        loop {
            let at = self.slot.at.load(Ordering::Relaxed);
            if at == 0 {
                return;
            }
            let when = |at: u64| tokio::time::Instant::from_std(base() + Duration::from_nanos(at - 1));
            let sleep = match &mut self.sleep {
                Some(s) if self.armed <= at => s,
                slot => {
                    self.armed = at;
                    slot.insert(Box::pin(tokio::time::sleep_until(when(at))))
                }
            };
            if sleep.as_mut().poll(cx).is_pending() {
                return;
            }
            if nanos(Instant::now()) >= at {
                self.slot.expired.store(true, Ordering::Relaxed);
                self.sleep = None;
                cx.waker().wake_by_ref();
                return;
            }
            // Fired for an earlier request: wait for this one's deadline.
            self.armed = at;
            sleep.as_mut().reset(when(at));
        }
    }
}
