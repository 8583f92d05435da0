//! How many connections may be open, from one address and in all, and how long one may
//! take to shake hands, to be admitted and to stay idle; with their defaults.

use std::time::Duration;

/// Connection limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// Most connections open at once.
    pub max_connections: usize,
    /// Most connections open at once from one client address (at most
    /// `max_connections`, whatever it says).
    pub max_per_address: usize,
    /// A connection with no call open (or no byte either way) for this long is closed.
    pub idle_timeout: Duration,
    /// A connection none of whose calls passed the edge within this long is closed.
    pub first_call_timeout: Duration,
    /// A TLS handshake must finish within this long.
    pub handshake_timeout: Duration,
}

/// Default [`ConnLimits::max_connections`]: well under a default 1024-descriptor limit
/// with room for the database pool and files.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
/// Default [`ConnLimits::max_per_address`]: an eighth of the connections. A gRPC client
/// needs one connection; an HTTP/1.1 middleware one per push in flight.
pub const DEFAULT_MAX_PER_ADDRESS: usize = 64;
/// Default [`ConnLimits::idle_timeout`]: longer than a call may take to answer.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(180);
/// Default [`ConnLimits::first_call_timeout`]: a client with a purpose calls at once.
pub const DEFAULT_FIRST_CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Default [`ConnLimits::handshake_timeout`].
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

impl Default for ConnLimits {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_per_address: DEFAULT_MAX_PER_ADDRESS,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            first_call_timeout: DEFAULT_FIRST_CALL_TIMEOUT,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }
}
