//! Accepted connections, under TLS when configured, and bounded: at most a set number open at once (one more is closed
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

use std::path::PathBuf;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;
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

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// TLS on the listener: the server's certificate chain and key (PEM), and the CA whose
/// client certificates every connection must then present (mutual TLS), if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM: PKCS#8, RSA or SEC1).
    pub key: PathBuf,
    /// CA certificates (PEM) that sign the clients' certificates.
    pub client_ca: Option<PathBuf>,
}

/// A TLS acceptor for `files`, offering HTTP/2 and HTTP/1.1 (ALPN): gRPC clients and
/// plain HTTP/1.1 clients of the JSON route alike.
pub fn tls_acceptor(files: &TlsFiles) -> anyhow::Result<TlsAcceptor> {
    use anyhow::Context;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio_rustls::rustls::{self, server::WebPkiClientVerifier, RootCertStore};

    let read_certs = |path: &PathBuf| -> anyhow::Result<Vec<CertificateDer<'static>>> {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .with_context(|| format!("cannot read certificates from {}", path.display()))?;
        anyhow::ensure!(!certs.is_empty(), "{} holds no certificate", path.display());
        Ok(certs)
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match &files.client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs(ca)? {
                roots
                    .add(cert)
                    .with_context(|| format!("a certificate of {} is not a CA", ca.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .with_context(|| format!("client CA {}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .with_context(|| format!("cannot read a private key from {}", files.key.display()))?;
    let mut config = builder
        .with_single_cert(read_certs(&files.cert)?, key)
        .context("the TLS certificate and key do not go together")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The listener's connections, with Nagle's algorithm off (a small answer goes out at
/// once), the limits applied and, with `tls`, the handshake done (each in a task of its
/// own, bounded in time, so a slow client holds up no other). Accepting stops when the
/// server drops the stream.
pub fn incoming(
    listener: TcpListener,
    limits: ConnLimits,
    tls: Option<TlsAcceptor>,
) -> impl Stream<Item = io::Result<Conn>> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(accept(listener, limits, tls, tx));
    ReceiverStream::new(rx)
}

async fn accept(
    listener: TcpListener,
    limits: ConnLimits,
    tls: Option<TlsAcceptor>,
    tx: mpsc::Sender<io::Result<Conn>>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let accepted = tokio::select! {
            () = tx.closed() => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors and the like: wait a moment instead of spinning.
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(
                max = limits.max_connections,
                "connection refused: the server has its most connections open"
            );
            continue;
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let idle = limits.idle_timeout;
        match &tls {
            None => {
                if tx
                    .send(Ok(Conn::new(Io::Plain(stream), permit, idle)))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Some(acceptor) => {
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let conn = Conn::new(Io::Tls(Box::new(tls)), permit, idle);
                            let _ = tx.send(Ok(conn)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                });
            }
        }
    }
}

/// A socket, in clear or under TLS.
enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// One accepted connection: its socket, its slot, and its silence deadline.
pub struct Conn {
    io: Io,
    _permit: OwnedSemaphorePermit,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl Conn {
    fn new(io: Io, permit: OwnedSemaphorePermit, idle: Duration) -> Self {
        Self {
            io,
            _permit: permit,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
        }
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
