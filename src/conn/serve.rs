//! Serving each accepted connection: HTTP/1.1 or HTTP/2 (hyper, told apart by the
//! preface), every request handed to the routes with the client's address and the
//! connection's [`Activity`] on it, and the connection held to its deadlines. A
//! connection past one is shut down gracefully (HTTP/2: GOAWAY, so a client that was
//! about to call knows to reconnect; HTTP/1.1: closed after its last answer), and closed
//! outright if it is still open [`CLOSE_GRACE`] later.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::sync::watch;
use tokio_stream::{Stream, StreamExt};
use tonic::body::Body;
use tonic::codegen::{http, Service};
use tonic::service::Routes;
use tonic::transport::server::{Connected, TcpConnectInfo};

use super::activity::Activity;
use super::activity::{Deadlines, OpenCall};
use super::io::Conn;
use super::limits::ConnLimits;
use super::slots::ConnStats;
use crate::error::AppError;

/// How a connection's calls are served.
#[derive(Debug, Clone, Copy)]
pub struct Http {
    /// The connections' limits.
    pub limits: ConnLimits,
    /// A call must have its answer under way by then (bounds a body trickled in); one
    /// that has not is answered UNAVAILABLE (HTTP 503) with a retry hint.
    pub request_timeout: Duration,
}

/// How long a connection past its deadlines has to close after it was told to.
pub const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// How often the server pings an HTTP/2 connection (a dead peer is found by the ping
/// that goes unanswered).
const HTTP2_PING: Duration = Duration::from_secs(30);
/// How long a ping may go unanswered before the connection is closed.
const HTTP2_PING_TIMEOUT: Duration = Duration::from_secs(20);
/// Most calls open at once on one HTTP/2 connection.
const MAX_STREAMS_PER_CONNECTION: u32 = 128;
/// Most header bytes of one HTTP/2 request.
const MAX_HEADER_LIST: u32 = 16 * 1024;
/// Most streams of one connection that the server resets for its errors.
const MAX_LOCAL_ERROR_RESETS: usize = 1024;

/// Serves `routes` on every connection of `incoming` until `shutdown` completes; then
/// accepts no more, shuts every connection down gracefully and waits for them (a
/// follower of a live log is told to go by the log, not here).
pub async fn serve(
    incoming: impl Stream<Item = Conn>,
    routes: Routes,
    http: Http,
    stats: Arc<ConnStats>,
    shutdown: impl Future<Output = ()>,
) {
    let protocol = protocol();
    let routes = routes.prepare();
    let (stop, stopped) = watch::channel(());
    // Boxed, so that it can be dropped (the listener closed) before the drain.
    let mut incoming = Box::pin(incoming);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            conn = incoming.next() => match conn {
                Some(conn) => {
                    let call = PerConnection {
                        routes: routes.clone(),
                        peer: conn.connect_info(),
                        activity: conn.activity().clone(),
                        request_timeout: http.request_timeout,
                    };
                    tokio::spawn(serve_connection(
                        conn,
                        call,
                        protocol.clone(),
                        http.limits,
                        stats.clone(),
                        stopped.clone(),
                    ));
                }
                None => break,
            },
        }
    }
    drop(incoming);
    drop(stopped);
    let _ = stop.send(());
    stop.closed().await;
}

/// HTTP/1.1 and HTTP/2 as erpsync serves them.
fn protocol() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http2()
        .timer(TokioTimer::new())
        // Pushed batches are hundreds of KiB: HTTP/2's default 64 KiB window would make
        // each one wait on several window updates.
        .initial_stream_window_size(4 << 20)
        .initial_connection_window_size(8 << 20)
        .keep_alive_interval(HTTP2_PING)
        .keep_alive_timeout(HTTP2_PING_TIMEOUT)
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
        .max_local_error_reset_streams(MAX_LOCAL_ERROR_RESETS)
        .max_header_list_size(MAX_HEADER_LIST);
    // hyper bounds the time to read an HTTP/1.1 request's headers only with a timer.
    builder.http1().timer(TokioTimer::new());
    builder
}

/// Serves one connection until it ends, the server stops, or it outlives its deadlines.
async fn serve_connection(
    conn: Conn,
    call: PerConnection,
    protocol: auto::Builder<TokioExecutor>,
    limits: ConnLimits,
    stats: Arc<ConnStats>,
    mut stopped: watch::Receiver<()>,
) {
    let activity = conn.activity().clone();
    let deadlines = Deadlines {
        first_call: limits.first_call_timeout,
        idle: limits.idle_timeout,
    };
    let served = protocol.serve_connection(TokioIo::new(conn), call);
    tokio::pin!(served);
    let mut shutting_down = false;
    // Set once the connection is told to go for outliving a deadline.
    let mut close_by: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            outcome = served.as_mut() => {
                if let Err(e) = outcome {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            _ = stopped.changed(), if !shutting_down => {
                shutting_down = true;
                served.as_mut().graceful_shutdown();
            }
            why = activity.expired(deadlines), if !shutting_down => {
                shutting_down = true;
                stats.closed(why);
                tracing::debug!(reason = why.as_str(), "closing a connection");
                served.as_mut().graceful_shutdown();
                close_by = Some(tokio::time::Instant::now() + CLOSE_GRACE);
            }
            () = sleep_until(close_by), if close_by.is_some() => return,
        }
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Hands one connection's requests to the routes.
#[derive(Clone)]
struct PerConnection {
    routes: Routes,
    peer: TcpConnectInfo,
    activity: Activity,
    request_timeout: Duration,
}

impl hyper::service::Service<http::Request<Incoming>> for PerConnection {
    type Response = http::Response<TrackedBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, req: http::Request<Incoming>) -> Self::Future {
        let mut req = req.map(Body::new);
        let grpc = crate::http::is_grpc(&req);
        req.extensions_mut().insert(self.peer.clone());
        req.extensions_mut().insert(self.activity.clone());
        let open = self.activity.call_opened();
        let mut routes = self.routes.clone();
        let request_timeout = self.request_timeout;
        Box::pin(async move {
            let answer = tokio::time::timeout(request_timeout, async {
                std::future::poll_fn(|cx| {
                    Service::<http::Request<Body>>::poll_ready(&mut routes, cx)
                })
                .await?;
                routes.call(req).await
            })
            .await;
            let response = match answer {
                Ok(Ok(response)) => response,
                Ok(Err(never)) => match never {},
                // In the caller's transport: a gRPC status, or the HTTP route's JSON error.
                Err(_) => {
                    let err = AppError::TooSlow(format!(
                        "no answer within the server's {} s deadline; try again",
                        request_timeout.as_secs()
                    ));
                    if grpc {
                        tonic::Status::from(err).into_http()
                    } else {
                        crate::http::answer(&err).map(Body::new)
                    }
                }
            };
            Ok(response.map(|body| TrackedBody { body, _open: open }))
        })
    }
}

/// An answer's body, holding its call open until it is sent (or dropped).
struct TrackedBody {
    body: Body,
    _open: OpenCall,
}

impl HttpBody for TrackedBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
