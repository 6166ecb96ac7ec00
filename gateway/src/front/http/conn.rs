//! Accepting and serving HTTP connections. axum's `serve` has no header-read
//! or idle timeout and no connection cap, so a few hundred slow clients can
//! hold every file descriptor; this loop bounds all three:
//! - at most `max_connections` at once: past that, new connections wait in
//!   the kernel's backlog instead of failing `accept` with EMFILE;
//! - a new connection must finish its TLS handshake and send its first
//!   request head within `header_read_timeout`; on a kept-alive HTTP/1.1
//!   connection a request head that has begun must be done within it too;
//! - a connection with no request in flight is closed after `idle_timeout`;
//! - failing `accept`s back off (from 10 ms, doubling to about 1 s)
//!   instead of spinning.

use std::{
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use axum::extract::ConnectInfo;

use super::App;
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
};
use mcp_gateway_proto::tls::TlsAcceptor;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc},
    time::Instant,
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use super::body::WithGuard;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConnLimits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

/// Serves `app` on `listener` until `stop` fires, then lets each connection
/// finish its requests; returns when all are closed.
///
/// A thread per core accepts and serves, each on a single-threaded runtime
/// of its own: a connection's requests, their provider calls (see
/// `southbound::slot`) and their answers stay on one thread, instead of
/// being handed between the shared runtime's workers (docs/performance.md).
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<mcp_gateway_proto::tls::ReloadingAcceptor>,
    app: App,
    limits: ConnLimits,
    stop: CancellationToken,
) {
    // The serving threads outlive this future unless told: stop them when
    // it is dropped too (a caller's runtime that ends, a select).
    let stop = stop.child_token();
    let _stop_when_dropped = stop.clone().drop_guard();
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let connections = TaskTracker::new();
    let shared = Shared {
        tls,
        app,
        limits,
        stop,
        slots,
        connections,
    };
    let workers = crate::southbound::slot::front_workers();
    let mut threads = Vec::with_capacity(workers);
    let mut done = Vec::with_capacity(workers);
    if workers > 1 {
        for worker in 0..workers {
            let (to_thread, from_acceptor) = mpsc::unbounded_channel();
            let (finished, on_finish) = tokio::sync::oneshot::channel::<()>();
            let shared = shared.clone();
            let started = std::thread::Builder::new()
                .name(format!("mcp-front-{worker}"))
                .spawn(move || serve_on_thread(worker, from_acceptor, shared, finished));
            match started {
                Ok(_) => {
                    threads.push(to_thread);
                    done.push(on_finish);
                }
                Err(e) => tracing::error!(worker, error = %e, "cannot start a serving thread"),
            }
        }
    }
    accept(listener, shared, threads).await;
    for on_finish in done {
        let _ = on_finish.await;
    }
}

/// A connection handed to a serving thread.
type Accepted = (std::net::TcpStream, SocketAddr, OwnedSemaphorePermit);

/// What every serving thread shares.
#[derive(Clone)]
struct Shared {
    tls: Option<mcp_gateway_proto::tls::ReloadingAcceptor>,
    app: App,
    limits: ConnLimits,
    stop: CancellationToken,
    slots: Arc<Semaphore>,
    connections: TaskTracker,
}

impl Shared {
    /// Serves one connection on the current thread's runtime.
    fn spawn(&self, tcp: TcpStream, peer: SocketAddr, slot: OwnedSemaphorePermit) {
        let tls = self.tls.as_ref().map(|a| a.current());
        let (app, stop, limits) = (self.app.clone(), self.stop.clone(), self.limits);
        self.connections.spawn(async move {
            let _slot = slot;
            serve_one(tcp, peer, tls, app, limits, stop).await;
        });
    }
}

/// Serves the connections the acceptor hands over until it stops, then
/// waits for them to close.
fn serve_on_thread(
    worker: usize,
    mut accepted: mpsc::UnboundedReceiver<Accepted>,
    shared: Shared,
    finished: tokio::sync::oneshot::Sender<()>,
) {
    crate::southbound::slot::enter_front_worker(worker);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(worker, error = %e, "cannot start a serving thread's runtime");
            return;
        }
    };
    rt.block_on(async move {
        crate::control::memory::collect_this_thread();
        while let Some((tcp, peer, slot)) = accepted.recv().await {
            match TcpStream::from_std(tcp) {
                Ok(tcp) => shared.spawn(tcp, peer, slot),
                Err(e) => tracing::debug!(%peer, error = %e, "cannot serve a connection"),
            }
        }
        shared.connections.wait().await;
    });
    let _ = finished.send(());
}

/// Accepts until `stop`; hands each connection to the next serving thread
/// in turn (the kernel would give a burst of them to whichever thread woke
/// first), or serves it here when there are none.
async fn accept(
    listener: TcpListener,
    shared: Shared,
    threads: Vec<mpsc::UnboundedSender<Accepted>>,
) {
    let (slots, stop, connections) = (
        shared.slots.clone(),
        shared.stop.clone(),
        shared.connections.clone(),
    );
    let mut next = 0usize;
    let mut failures = 0u32;
    let mut backoff =
        crate::backoff::Backoff::new(Duration::from_millis(10), Duration::from_secs(1));
    loop {
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => s.expect("never closed"),
            _ = stop.cancelled() => break,
        };
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    failures += 1;
                    let wait = backoff.next_delay();
                    if failures == 1 {
                        tracing::warn!(error = %e, "accept failed; backing off");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => continue,
                        _ = stop.cancelled() => break,
                    }
                }
            },
            _ = stop.cancelled() => break,
        };
        if failures > 0 {
            tracing::info!(failures, "accepting again");
            failures = 0;
            backoff.reset();
        }
        // Every MCP response is latency-bound: no Nagle (session responses
        // are SSE bodies written in several small chunks).
        let _ = tcp.set_nodelay(true);
        if threads.is_empty() {
            shared.spawn(tcp, peer, slot);
            continue;
        }
        next = (next + 1) % threads.len();
        match tcp.into_std() {
            Ok(tcp) => {
                // A thread that ended drops what it is sent, which closes it.
                let _ = threads[next].send((tcp, peer, slot));
            }
            Err(e) => tracing::debug!(%peer, error = %e, "cannot hand a connection over"),
        }
    }
    drop(threads);
    connections.close();
    connections.wait().await;
}

async fn serve_one(
    tcp: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    app: App,
    limits: ConnLimits,
    stop: CancellationToken,
) {
    let activity = Arc::new(Activity::new());
    let io = Watched {
        io: tcp,
        activity: activity.clone(),
    };
    match tls {
        None => run(io, peer, app, limits, stop, activity).await,
        Some(acceptor) => {
            match tokio::time::timeout(limits.header_read_timeout, acceptor.accept(io)).await {
                Ok(Ok(tls)) => run(tls, peer, app, limits, stop, activity).await,
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        }
    }
}

async fn run<I>(
    io: I,
    peer: SocketAddr,
    app: App,
    limits: ConnLimits,
    stop: CancellationToken,
    activity: Arc<Activity>,
) where
    I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let a = activity.clone();
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        let busy = a.begin(req.version());
        let app = app.clone();
        async move {
            let resp = app.handle(req.map(axum::body::Body::new)).await;
            Ok::<_, std::convert::Infallible>(resp.map(|b| WithGuard::new(b, busy)))
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new());
    // Ours (the watchdog) counts from the first byte of a head, not from
    // the end of the previous response; hyper's would close every idle
    // keep-alive connection after it.
    builder.http1().header_read_timeout(None);
    builder.http2().timer(TokioTimer::new());
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let mut closing = false;
    // After an idle close began: HTTP/2 waits for the client to answer its
    // GOAWAY ping, which a client need not do.
    let mut linger = std::pin::pin!(tokio::time::sleep(Duration::MAX));
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            why = activity.expired(limits), if !closing => {
                tracing::debug!(%peer, why, "closing connection");
                if why != IDLE {
                    // A graceful shutdown would wait for the head to finish.
                    return;
                }
                // Nothing in flight: HTTP/1.1 closes at once, HTTP/2 says GOAWAY.
                conn.as_mut().graceful_shutdown();
                closing = true;
                linger.as_mut().reset(Instant::now() + limits.header_read_timeout);
            }
            _ = &mut linger => {
                tracing::debug!(%peer, "closing connection: the client did not finish closing it");
                return;
            }
            _ = stop.cancelled(), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
        }
    }
}

const IDLE: &str = "idle";

/// What a connection is doing, for its watchdog.
struct Activity {
    state: Mutex<State>,
    changed: Notify,
}

struct State {
    /// Requests whose response is not fully sent.
    busy: usize,
    /// When it last became free (or opened).
    since: Instant,
    /// The first byte of a new request head while free.
    head_started: Option<Instant>,
    served: bool,
    /// HTTP/2 sends frames while no request is open (pings, settings): there
    /// only idleness counts.
    h2: bool,
}

impl Activity {
    fn new() -> Self {
        Self {
            state: Mutex::new(State {
                busy: 0,
                since: Instant::now(),
                head_started: None,
                served: false,
                h2: false,
            }),
            changed: Notify::new(),
        }
    }

    fn read(&self) {
        let mut s = self.state.lock().expect("activity");
        if s.busy == 0 && s.head_started.is_none() {
            s.head_started = Some(Instant::now());
            drop(s);
            // The watchdog sleeps towards the idle deadline: the header
            // deadline is sooner.
            self.changed.notify_one();
        }
    }

    fn begin(self: &Arc<Self>, version: http::Version) -> Busy {
        let mut s = self.state.lock().expect("activity");
        s.busy += 1;
        s.served = true;
        s.head_started = None;
        s.h2 |= version == http::Version::HTTP_2;
        drop(s);
        self.changed.notify_one();
        Busy(self.clone())
    }

    /// When the connection is due to close, if it stays as it is.
    fn deadline(&self, limits: ConnLimits) -> Option<(Instant, &'static str)> {
        let s = self.state.lock().expect("activity");
        if s.busy > 0 {
            return None;
        }
        Some(match (s.served, s.head_started) {
            (false, _) => (s.since + limits.header_read_timeout, "no request in time"),
            (true, Some(t)) if !s.h2 => (t + limits.header_read_timeout, "request head too slow"),
            _ => (s.since + limits.idle_timeout, IDLE),
        })
    }

    /// Resolves when a deadline passes with nothing changed; says which.
    async fn expired(&self, limits: ConnLimits) -> &'static str {
        loop {
            match self.deadline(limits) {
                None => self.changed.notified().await,
                Some((at, why)) => {
                    if Instant::now() >= at {
                        return why;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep_until(at) => {}
                        _ = self.changed.notified() => {}
                    }
                }
            }
        }
    }
}

/// One request in flight; dropped when its response is sent or abandoned.
pub(crate) struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let mut s = self.0.state.lock().expect("activity");
        s.busy -= 1;
        if s.busy == 0 {
            s.since = Instant::now();
            s.head_started = None;
        }
        drop(s);
        self.0.changed.notify_one();
    }
}

/// The socket, noting when bytes arrive.
struct Watched {
    io: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.read();
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ConnLimits = ConnLimits {
        header_read_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(60),
        max_connections: 1,
    };

    #[tokio::test(start_paused = true)]
    async fn a_new_connection_gets_the_header_timeout_then_idle_between_requests() {
        let a = Arc::new(Activity::new());
        assert_eq!(a.deadline(LIMITS).unwrap().1, "no request in time");
        let t0 = Instant::now();
        assert_eq!(a.expired(LIMITS).await, "no request in time");
        assert_eq!(Instant::now() - t0, Duration::from_secs(10));

        let a = Arc::new(Activity::new());
        let busy = a.begin(http::Version::HTTP_11);
        assert!(a.deadline(LIMITS).is_none(), "never cut mid-request");
        tokio::time::advance(Duration::from_secs(600)).await;
        drop(busy);
        let t1 = Instant::now();
        assert_eq!(a.expired(LIMITS).await, "idle");
        assert_eq!(Instant::now() - t1, Duration::from_secs(60));
    }

    #[tokio::test(start_paused = true)]
    async fn a_dribbled_head_is_cut_after_the_header_timeout() {
        let a = Arc::new(Activity::new());
        drop(a.begin(http::Version::HTTP_11));
        tokio::time::advance(Duration::from_secs(30)).await;
        a.read(); // the next head begins
        let t = Instant::now();
        assert_eq!(a.expired(LIMITS).await, "request head too slow");
        assert_eq!(Instant::now() - t, Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_begun_while_the_watchdog_sleeps_gets_the_header_timeout() {
        let a = Arc::new(Activity::new());
        drop(a.begin(http::Version::HTTP_11));
        let w = {
            let a = a.clone();
            tokio::spawn(async move { a.expired(LIMITS).await })
        };
        tokio::time::advance(Duration::from_secs(5)).await;
        a.read();
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(w.is_finished(), "still waiting for the idle deadline");
        assert_eq!(w.await.unwrap(), "request head too slow");
    }

    #[tokio::test(start_paused = true)]
    async fn http2_frames_between_requests_do_not_count_as_a_head() {
        let a = Arc::new(Activity::new());
        drop(a.begin(http::Version::HTTP_2));
        a.read(); // a ping
        assert_eq!(a.deadline(LIMITS).unwrap().1, "idle");
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_starting_wakes_the_watchdog() {
        let a = Arc::new(Activity::new());
        let w = {
            let a = a.clone();
            tokio::spawn(async move { a.expired(LIMITS).await })
        };
        tokio::time::advance(Duration::from_secs(5)).await;
        let busy = a.begin(http::Version::HTTP_11);
        tokio::time::advance(Duration::from_secs(100)).await;
        assert!(!w.is_finished(), "busy connections do not expire");
        drop(busy);
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(w.await.unwrap(), "idle");
    }
}
