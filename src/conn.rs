//! Accepted connections, bounded: at most a set number open at once (one more is closed
//! as soon as it is accepted, before it costs a task or a buffer), and each closed after
//! a set time without a byte either way. Without these, 20 000 idle connections used up
//! the server's file descriptors and new clients timed out.
//!
//! Silence is bytes on the wire: HTTP/2 keep-alive pings (see `app`) and StreamLogs
//! heartbeats keep healthy connections alive, so only dead or idle ones go.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_stream::Stream;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// Connection limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// Most connections open at once.
    pub max_connections: usize,
    /// A connection with no byte read or written for this long is closed.
    pub idle_timeout: Duration,
}

/// Default [`ConnLimits::max_connections`]: well under a default 1024-descriptor limit
/// with room for the database pool and files.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
/// Default [`ConnLimits::idle_timeout`]: longer than a call may take to answer.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(180);

impl Default for ConnLimits {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

/// The listener's connections, with Nagle's algorithm off (a small answer goes out at
/// once) and the limits applied.
pub fn incoming(listener: TcpListener, limits: ConnLimits) -> impl Stream<Item = io::Result<Conn>> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    admitted(listener, move |stream| {
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(
                max = limits.max_connections,
                "connection refused: the server has its most connections open"
            );
            return None;
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        Some(Conn {
            io: stream,
            _permit: permit,
            idle: limits.idle_timeout,
            deadline: Box::pin(tokio::time::sleep(limits.idle_timeout)),
        })
    })
}

/// Accepted sockets mapped by `admit` (None closes the socket at once).
fn admitted(
    listener: TcpListener,
    admit: impl Fn(TcpStream) -> Option<Conn> + Send + 'static,
) -> impl Stream<Item = io::Result<Conn>> {
    use tokio_stream::StreamExt;
    tokio_stream::wrappers::TcpListenerStream::new(listener).filter_map(move |accepted| {
        match accepted {
            Ok(stream) => admit(stream).map(Ok),
            Err(e) => Some(Err(e)),
        }
    })
}

/// One accepted connection: its socket, its slot, and its silence deadline.
pub struct Conn {
    io: TcpStream,
    _permit: OwnedSemaphorePermit,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl Conn {
    fn touched(&mut self) {
        let next = Instant::now() + self.idle;
        self.deadline.as_mut().reset(next);
    }

    /// Ready with an error once the connection has been silent too long.
    fn poll_silence(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        self.deadline.as_mut().poll(cx).map(|()| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no byte for {} s", self.idle.as_secs()),
            )
        })
    }
}

impl Connected for Conn {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.io.connect_info()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    this.touched();
                }
                Poll::Ready(r)
            }
            Poll::Pending => this.poll_silence(cx).map(Err),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    this.touched();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            // A peer that stops reading holds the write: silence counts here too.
            Poll::Pending => this.poll_silence(cx).map(Err),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write_vectored(cx, bufs) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    this.touched();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.poll_silence(cx).map(Err),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
