//! Accepted connections: who may hold one, for how long, and how each is served. Each
//! bound holds against a client that opens connections and does nothing useful with them
//! (without them, 512 idle connections from one address locked every client out):
//!
//! * at most [`ConnLimits::max_connections`] open at once, and at most
//!   [`ConnLimits::max_per_address`] from one client address; one more is closed as soon
//!   as it is accepted, before it costs a task or a buffer, counted, and logged at most
//!   once per [`REFUSAL_LOG_EVERY`] ([`slots`]);
//! * a TLS handshake must finish within [`ConnLimits::handshake_timeout`];
//! * a connection must be admitted within [`ConnLimits::first_call_timeout`]: one of its
//!   calls passed the edge's authentication, or asked health or reflection
//!   ([`Activity::admit`]); otherwise it is closed;
//! * a connection with no call open for [`ConnLimits::idle_timeout`] is closed (HTTP/2:
//!   GOAWAY, then closed), whatever keep-alive pings it answers;
//! * a connection with no byte either way for the idle timeout is closed ([`io`]): a peer
//!   gone, or one that stopped reading mid-answer.
//!
//! [`serve`] runs HTTP/1.1 and HTTP/2 on each connection (hyper), and holds it to these
//! deadlines.

mod activity;
mod io;
mod limits;
mod serve;
mod slots;
mod tls;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;

pub use activity::Activity;
pub use io::Conn;
pub use limits::{
    ConnLimits, DEFAULT_FIRST_CALL_TIMEOUT, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_PER_ADDRESS,
};
pub use serve::{serve, Http};
pub use slots::{ConnCounts, ConnStats, REFUSAL_LOG_EVERY};
pub use tls::{tls_acceptor, TlsFiles};

use io::Io;
use slots::{RefusalLog, Slots};

/// The listener's connections, with Nagle's algorithm off (a small answer goes out at
/// once), the slots taken and, with `tls`, the handshake done (each in a task of its
/// own, bounded in time, so a slow client holds up no other). Refusals and closes are
/// counted in `stats`. Accepting stops when the stream is dropped.
pub fn incoming(
    listener: TcpListener,
    limits: ConnLimits,
    tls: Option<TlsAcceptor>,
    stats: Arc<ConnStats>,
) -> impl Stream<Item = Conn> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(accept(listener, limits, tls, stats, tx));
    ReceiverStream::new(rx)
}

async fn accept(
    listener: TcpListener,
    limits: ConnLimits,
    tls: Option<TlsAcceptor>,
    stats: Arc<ConnStats>,
    tx: mpsc::Sender<Conn>,
) {
    let slots = Slots::new(limits.max_connections, limits.max_per_address);
    let mut refusals = RefusalLog::new(stats.clone());
    loop {
        let accepted = tokio::select! {
            () = tx.closed() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors and the like: wait a moment instead of spinning.
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let slot = match slots.take(peer.ip()) {
            Ok(slot) => slot,
            Err(refusal) => {
                if let Some((at_cap, per_address)) = refusals.note(refusal) {
                    tracing::warn!(
                        at_cap,
                        per_address,
                        max = limits.max_connections,
                        max_per_address = limits.max_per_address,
                        "connections refused since the last such line: the server or their \
                         address had its most connections open"
                    );
                }
                continue;
            }
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let idle = limits.idle_timeout;
        match &tls {
            None => {
                if tx
                    .send(Conn::new(Io::Plain(stream), slot, idle))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Some(acceptor) => {
                let (acceptor, tx, stats) = (acceptor.clone(), tx.clone(), stats.clone());
                tokio::spawn(async move {
                    let handshake = acceptor.accept(stream);
                    match tokio::time::timeout(limits.handshake_timeout, handshake).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send(Conn::new(Io::Tls(Box::new(tls)), slot, idle)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                        Err(_) => {
                            stats.handshake_timed_out();
                            tracing::debug!("TLS handshake timed out");
                        }
                    }
                });
            }
        }
    }
}
