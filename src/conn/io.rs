//! One accepted connection as hyper reads and writes it: its socket (in clear or under
//! TLS), its slot, its [`Activity`], and its silence deadline: a connection with no byte
//! either way for the idle timeout is closed (a peer gone, or one that stopped reading
//! mid-answer). HTTP/2 keep-alive pings and StreamLogs heartbeats are bytes, so this
//! deadline alone does not close a connection that only answers pings: [`Activity`] does.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tokio_rustls::server::TlsStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

use super::activity::Activity;
use super::slots::Slot;

/// A socket, in clear or under TLS.
pub(super) enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// One accepted connection: its socket, its slot, and its silence deadline.
pub struct Conn {
    io: Io,
    _slot: Slot,
    activity: Activity,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl Conn {
    pub(super) fn new(io: Io, slot: Slot, idle: Duration) -> Self {
        Self {
            io,
            _slot: slot,
            activity: Activity::new(),
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
        }
    }

    /// What the connection has done with its slot.
    pub fn activity(&self) -> &Activity {
        &self.activity
    }

    fn touched(&mut self) {
        let next = Instant::now() + self.idle;
        self.deadline.as_mut().reset(next);
    }

    /// A write's outcome, with the silence deadline kept: bytes out count as activity, and
    /// a peer that stops reading (the write waits) is as silent as one that stops writing.
    fn after_write(
        &mut self,
        wrote: Poll<io::Result<usize>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        match wrote {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    self.touched();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => self.poll_silence(cx).map(Err),
        }
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

/// The same call on whichever socket `io` is.
macro_rules! on_io {
    ($io:expr, $s:ident => $call:expr) => {
        match $io {
            Io::Plain($s) => $call,
            Io::Tls($s) => $call,
        }
    };
}

impl Connected for Conn {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        match &self.io {
            Io::Plain(s) => s.connect_info(),
            Io::Tls(s) => s.get_ref().0.connect_info(),
        }
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
        match on_io!(&mut this.io, s => Pin::new(s).poll_read(cx, buf)) {
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
        let wrote = on_io!(&mut this.io, s => Pin::new(s).poll_write(cx, buf));
        this.after_write(wrote, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let wrote = on_io!(&mut this.io, s => Pin::new(s).poll_write_vectored(cx, bufs));
        this.after_write(wrote, cx)
    }

    fn is_write_vectored(&self) -> bool {
        on_io!(&self.io, s => s.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        on_io!(&mut self.get_mut().io, s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        on_io!(&mut self.get_mut().io, s => Pin::new(s).poll_shutdown(cx))
    }
}
