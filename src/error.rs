//! One error type for the whole service and the single place it becomes a gRPC status.
//! Client errors keep their precise code and message; everything else is logged with its
//! cause chain and answered with a generic message. Database errors are sorted here, once:
//! a database that does not answer is an outage (UNAVAILABLE, retry later), a database
//! that answers but whose every pooled connection is in use is busy (RESOURCE_EXHAUSTED,
//! retry soon: see [`PoolVerdict`] for the one rule), anything else it says is an
//! internal error.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// What callers see of an internal error.
const INTERNAL_MESSAGE: &str = "internal error; the server log has the details";

/// How long a caller is told to wait when the database does not answer.
pub const UNAVAILABLE_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(5);

/// How long a caller is told to wait before it tries another replica when this one drains:
/// short, since the others are up (a client that reconnects reaches one of them).
pub const DRAINING_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// What callers see of a draining replica.
pub const DRAINING_MESSAGE: &str = "this replica is draining; retry on another";

/// What callers see of a database outage.
fn unavailable_message() -> String {
    format!(
        "the database is unreachable; retry in {} s (the server log has the details)",
        UNAVAILABLE_RETRY_AFTER.as_secs()
    )
}

/// How long a caller is told to wait when the server is busy (ingestion's work in flight
/// at its limit, or every database connection in use).
pub const BUSY_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// Result with [`AppError`].
pub type Result<T, E = AppError> = std::result::Result<T, E>;

/// One invalid request field: what the google.rpc.BadRequest details carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// Path of the field, as named in the API (`schedule.daily_times[0]`).
    pub field: String,
    /// What is wrong and what to send instead.
    pub description: String,
}

impl FieldViolation {
    /// A violation of `field`.
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

/// Every error erpsync answers with.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A request field is invalid; the message names it.
    #[error("{0}")]
    InvalidArgument(String),
    /// Several request fields are invalid.
    #[error("invalid request: {}", describe(.0))]
    InvalidFields(Vec<FieldViolation>),
    /// The thing asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// It exists already.
    #[error("{0}")]
    AlreadyExists(String),
    /// No valid token.
    #[error("{0}")]
    Unauthenticated(String),
    /// A valid token that does not reach this tenant or call.
    #[error("{0}")]
    PermissionDenied(String),
    /// A limit was exceeded.
    #[error("{0}")]
    ResourceExhausted(String),
    /// Too many requests (or failed authentications) in a short time: retry later.
    #[error("{message}")]
    RateLimited {
        /// What was limited, and when to retry.
        message: String,
        /// How long to wait before the next try.
        retry_after: std::time::Duration,
    },
    /// The server is at capacity while the database answers: ingestion's work in flight is
    /// at its limit, or every pooled connection is in use. Transient, answered
    /// RESOURCE_EXHAUSTED / 429 with a retry hint; health stays SERVING.
    #[error("the server is busy: {0}; retry after {ms} ms", ms = BUSY_RETRY_AFTER.as_millis())]
    Busy(String),
    /// The request took too long to arrive (a body sent too slowly).
    #[error("{0}")]
    DeadlineExceeded(String),
    /// The request is valid but the thing is not in a state that allows it.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The call exists in the contract but its issue is still open.
    #[error("{0}")]
    Unimplemented(String),
    /// The CRM sink failed a call (runs only): `status` says how ("UNAVAILABLE:
    /// maintenance"); a `transient` failure (the CRM down, slow or busy) may pass, and
    /// the run retries the batch.
    #[error("CRM sink: {status}")]
    Sink {
        /// The sink's own account of the failure.
        status: String,
        /// Worth retrying.
        transient: bool,
    },
    /// The server did not have an answer under way within the call's deadline
    /// (`--request-timeout-secs`): transient, answered UNAVAILABLE / 503 with a retry hint.
    #[error("{0}")]
    TooSlow(String),
    /// This replica is shutting down (SIGTERM): it starts no run and closes its streams;
    /// answered UNAVAILABLE / 503 with a retry hint, for the client to go to another.
    #[error("{}", DRAINING_MESSAGE)]
    Draining,
    /// The database does not answer (down, unreachable, its connections cut, or none
    /// free in time): transient, answered UNAVAILABLE / 503 with a retry hint.
    #[error("the database is unreachable: {0}")]
    Unavailable(#[source] sea_orm::DbErr),
    /// The database failed.
    #[error("database error")]
    Database(#[source] sea_orm::DbErr),
    /// Anything else that is not the caller's fault.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// The most bytes of a status message (gRPC sends it in a header, which clients limit to a
/// few KiB, and `google.rpc.Status` in the details repeats it): a message that quotes
/// input is bounded even where the input was not cut first.
const MAX_MESSAGE_BYTES: usize = 640;
/// The most bytes of a field violation's field path.
const MAX_FIELD_BYTES: usize = 64;
/// The most bytes of a field violation's description.
const MAX_DESCRIPTION_BYTES: usize = 160;
/// The most field violations the details carry (the message counts the others): with the
/// caps above, a whole status (message and details) stays under 4 kB.
const MAX_VIOLATIONS: usize = 8;

/// `text` cut to at most `max` bytes (at a character boundary), the cut marked.
fn cut(mut text: String, max: usize) -> String {
    const MARK: &str = "…";
    if text.len() <= max {
        return text;
    }
    let mut end = max.saturating_sub(MARK.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(MARK);
    text
}

/// `message`, cut to [`MAX_MESSAGE_BYTES`].
fn bounded(message: String) -> String {
    cut(message, MAX_MESSAGE_BYTES)
}

/// The violations a status carries: at most [`MAX_VIOLATIONS`], each cut to its bounds.
fn bounded_violations(violations: &[FieldViolation]) -> impl Iterator<Item = FieldViolation> + '_ {
    violations
        .iter()
        .take(MAX_VIOLATIONS)
        .map(|v| FieldViolation {
            field: cut(v.field.clone(), MAX_FIELD_BYTES),
            description: cut(v.description.clone(), MAX_DESCRIPTION_BYTES),
        })
}

/// The violations as one message: as many as fit [`MAX_MESSAGE_BYTES`] (at most
/// [`MAX_VIOLATIONS`]), then how many more there are.
fn describe(violations: &[FieldViolation]) -> String {
    // Room kept for "; and N more".
    const BUDGET: usize = MAX_MESSAGE_BYTES - 40;
    let mut text = String::new();
    let mut shown = 0;
    for v in bounded_violations(violations) {
        let item = format!("{}: {}", v.field, v.description);
        if shown > 0 && text.len() + 2 + item.len() > BUDGET {
            break;
        }
        if shown > 0 {
            text.push_str("; ");
        }
        text.push_str(&item);
        shown += 1;
    }
    if violations.len() > shown {
        text.push_str(&format!("; and {} more", violations.len() - shown));
    }
    text
}

impl AppError {
    /// The gRPC code this error answers with.
    pub fn code(&self) -> Code {
        match self {
            Self::InvalidArgument(_) | Self::InvalidFields(_) => Code::InvalidArgument,
            Self::NotFound(_) => Code::NotFound,
            Self::AlreadyExists(_) => Code::AlreadyExists,
            Self::Unauthenticated(_) => Code::Unauthenticated,
            Self::PermissionDenied(_) => Code::PermissionDenied,
            Self::ResourceExhausted(_) | Self::RateLimited { .. } | Self::Busy(_) => {
                Code::ResourceExhausted
            }
            Self::DeadlineExceeded(_) => Code::DeadlineExceeded,
            Self::Unimplemented(_) => Code::Unimplemented,
            Self::FailedPrecondition(_) => Code::FailedPrecondition,
            Self::Unavailable(_) | Self::TooSlow(_) | Self::Draining => Code::Unavailable,
            Self::Database(_) | Self::Internal(_) | Self::Sink { .. } => Code::Internal,
        }
    }

    /// The gRPC code's canonical name ("INVALID_ARGUMENT"), as logged and sent over HTTP.
    pub fn code_name(&self) -> &'static str {
        match self.code() {
            Code::InvalidArgument => "INVALID_ARGUMENT",
            Code::NotFound => "NOT_FOUND",
            Code::AlreadyExists => "ALREADY_EXISTS",
            Code::Unauthenticated => "UNAUTHENTICATED",
            Code::PermissionDenied => "PERMISSION_DENIED",
            Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
            Code::Unimplemented => "UNIMPLEMENTED",
            Code::FailedPrecondition => "FAILED_PRECONDITION",
            Code::Unavailable => "UNAVAILABLE",
            _ => "INTERNAL",
        }
    }

    /// The HTTP status equivalent to the gRPC code.
    pub fn http_status(&self) -> u16 {
        if let Self::RateLimited { .. } | Self::Busy(_) = self {
            return 429;
        }
        match self.code() {
            Code::InvalidArgument => 400,
            Code::Unauthenticated => 401,
            Code::PermissionDenied => 403,
            Code::NotFound => 404,
            Code::AlreadyExists => 409,
            Code::ResourceExhausted => 413,
            Code::DeadlineExceeded => 408,
            Code::Unimplemented => 501,
            Code::FailedPrecondition => 409,
            Code::Unavailable => 503,
            _ => 500,
        }
    }

    /// The message a caller may see: the error itself for client errors, a generic one
    /// for internal errors (whose details go to the server log only).
    pub fn public_message(&self) -> String {
        match self {
            Self::Database(_) | Self::Internal(_) => INTERNAL_MESSAGE.to_owned(),
            Self::Unavailable(_) => unavailable_message(),
            other => bounded(other.to_string()),
        }
    }

    /// The message a run's log shows: the whole cause chain, since the run log is where
    /// an operator looks for why a run failed.
    pub fn run_message(&self) -> String {
        match self {
            Self::Database(e) => format!("database error: {e}"),
            Self::Unavailable(e) => format!("the database is unreachable: {e}"),
            Self::Internal(e) => format!("{e:#}"),
            other => other.to_string(),
        }
    }

    /// How long a rate-limited caller, or one that met a database outage, should wait
    /// (HTTP `Retry-After`, gRPC `google.rpc.RetryInfo`).
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Self::RateLimited { retry_after, .. } => Some(*retry_after),
            Self::Busy(_) => Some(BUSY_RETRY_AFTER),
            Self::Unavailable(_) | Self::TooSlow(_) => Some(UNAVAILABLE_RETRY_AFTER),
            Self::Draining => Some(DRAINING_RETRY_AFTER),
            _ => None,
        }
    }

    /// A database error that is really a uniqueness conflict becomes `AlreadyExists`.
    pub fn on_conflict(err: sea_orm::DbErr, what: impl FnOnce() -> String) -> Self {
        match err.sql_err() {
            Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => Self::AlreadyExists(what()),
            _ => Self::from(err),
        }
    }
}

/// The one place database errors are sorted: a pool timeout while the database answers
/// and every connection is in use is [`AppError::Busy`] (see [`PoolVerdict`]); a database
/// that does not answer is [`AppError::Unavailable`], whatever query met it; a row referring to a tenant (or
/// run) that is gone — removed while the write was under way (DeleteTenant) — is
/// [`AppError::NotFound`]; everything else stays [`AppError::Database`].
impl From<sea_orm::DbErr> for AppError {
    fn from(err: sea_orm::DbErr) -> Self {
        if pool_timeout(&err) {
            let busy = POOL_VERDICT.try_with(|v| v.busy()).unwrap_or(false);
            crate::metrics::db_pool_timeout(busy);
            if busy {
                tracing::debug!(error = %err, "every database connection in use; answered busy");
                return Self::Busy("every database connection is in use".into());
            }
        }
        if unreachable(&err) {
            Self::Unavailable(err)
        } else if matches!(
            err.sql_err(),
            Some(sea_orm::SqlErr::ForeignKeyConstraintViolation(_))
        ) {
            Self::NotFound(GONE_MESSAGE.into())
        } else {
            Self::Database(err)
        }
    }
}

impl AppError {
    /// Whether this is PostgreSQL's deadlock (40P01): the transaction was rolled back and
    /// may be tried again.
    pub fn is_deadlock(&self) -> bool {
        use sea_orm::{DbErr, RuntimeErr};
        let Self::Database(
            DbErr::Exec(RuntimeErr::SqlxError(sqlx::Error::Database(d)))
            | DbErr::Query(RuntimeErr::SqlxError(sqlx::Error::Database(d))),
        ) = self
        else {
            return false;
        };
        d.code().as_deref() == Some("40P01")
    }
}

/// What a write of a tenant removed meanwhile is answered.
const GONE_MESSAGE: &str =
    "the tenant (or its run) this writes to no longer exists: it was removed meanwhile";

/// An error of a query run through sqlx directly, sorted like sea-orm's.
impl From<sqlx::Error> for AppError {
    fn from(err: sqlx::Error) -> Self {
        Self::from(sea_orm::DbErr::Query(sea_orm::RuntimeErr::SqlxError(err)))
    }
}

/// Whether `err` is the pool's acquire timeout: no connection came free, and none could be
/// opened, in time. sqlx says so both when every connection is busy and when the server
/// refuses or ignores new connections (it retries a refused connect until the deadline),
/// so the error alone cannot tell a busy database from a down one: [`PoolVerdict`] does.
fn pool_timeout(err: &sea_orm::DbErr) -> bool {
    use sea_orm::{ConnAcquireErr, DbErr, RuntimeErr};
    match err {
        DbErr::ConnectionAcquire(ConnAcquireErr::Timeout) => true,
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => matches!(e, sqlx::Error::PoolTimedOut),
        _ => false,
    }
}

/// What tells a busy database from a down one when a pool times out; the database
/// handle implements it (`storage::Db`) with THE rule: a pool timeout is busy when the
/// pool is at its maximum (every connection taken, open or being opened: the wait was for
/// one in use) and the health probe, on a connection of its own outside the pool, last got
/// an answer; otherwise it is an outage — the pool had room, so it tried to open a
/// connection and could not, or the probe failed (a database that went away while every
/// connection was taken shows there, within a probe interval). A call is judged by the database of the server
/// that serves it ([`judged_by`]); work outside a call (runs, the scheduler) keeps the
/// cautious reading: an outage.
pub trait PoolVerdict: Send + Sync {
    /// Whether a pool timeout met now means busy rather than down.
    fn busy(&self) -> bool;
}

tokio::task_local! {
    static POOL_VERDICT: std::sync::Arc<dyn PoolVerdict>;
}

/// Runs `call` with its pool timeouts judged by `verdict` (the server's database).
pub async fn judged_by<F: std::future::Future>(
    verdict: std::sync::Arc<dyn PoolVerdict>,
    call: F,
) -> F::Output {
    POOL_VERDICT.scope(verdict, call).await
}

/// Whether `err` says the database did not answer, rather than answered with an error.
fn unreachable(err: &sea_orm::DbErr) -> bool {
    use sea_orm::{DbErr, RuntimeErr};
    match err {
        // No connection free or openable within the pool's acquire timeout, or the pool
        // closed (shutdown).
        DbErr::ConnectionAcquire(_) => true,
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => connection_lost(e),
        _ => false,
    }
}

/// Whether sqlx lost (or never got) its connection to the server. SQLite's own errors
/// (SQLITE_BUSY, SQLITE_IOERR, a corrupt file…) come as `Database` errors with SQLite's
/// codes and stay internal: a file that answers with an error is not an outage. sqlx
/// reports a connection that died as `Io` (reset, EOF); its `Protocol` errors are a live
/// server's unexpected messages, and stay internal too.
fn connection_lost(e: &sqlx::Error) -> bool {
    match e {
        // Refused, reset, cut mid-answer (EOF), timed out: the server is gone. SQLite's one
        // `Io` error is the allocator failing to open a handle, which is no outage.
        sqlx::Error::Io(io) => io.kind() != std::io::ErrorKind::OutOfMemory,
        sqlx::Error::Tls(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => true,
        sqlx::Error::Database(d) => d
            .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
            .is_some_and(|pg| pg_unavailable(pg.code())),
        _ => false,
    }
}

/// PostgreSQL's SQLSTATEs for a server that is going away or not taking connections:
/// connection exceptions (class 08), shutdown by an administrator or a crash, still
/// starting up, and too many connections.
fn pg_unavailable(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300")
}

impl From<AppError> for Status {
    fn from(err: AppError) -> Self {
        let code = err.code();
        match err {
            AppError::Database(_) | AppError::Internal(_) => {
                tracing::error!(error = ?anyhow::Error::from(err), "internal error");
                Status::internal(INTERNAL_MESSAGE)
            }
            AppError::InvalidFields(ref violations) => {
                let mut details = ErrorDetails::new();
                for v in bounded_violations(violations) {
                    details.add_bad_request_violation(v.field, v.description);
                }
                tracing::debug!(code = ?code, error = %err, "client error");
                Status::with_error_details(code, bounded(err.to_string()), details)
            }
            AppError::Unavailable(ref cause) => {
                tracing::warn!(error = %cause, "database unreachable; answered UNAVAILABLE");
                let details = ErrorDetails::with_retry_info(Some(UNAVAILABLE_RETRY_AFTER));
                Status::with_error_details(code, unavailable_message(), details)
            }
            AppError::TooSlow(ref message) => {
                tracing::warn!(error = %message, "a call ran past its deadline; answered UNAVAILABLE");
                let details = ErrorDetails::with_retry_info(Some(UNAVAILABLE_RETRY_AFTER));
                Status::with_error_details(code, bounded(message.clone()), details)
            }
            AppError::Draining => {
                tracing::debug!("answered UNAVAILABLE: draining");
                let details = ErrorDetails::with_retry_info(Some(DRAINING_RETRY_AFTER));
                Status::with_error_details(code, DRAINING_MESSAGE, details)
            }
            AppError::Busy(_) => {
                tracing::debug!(code = ?code, error = %err, "busy");
                let details = ErrorDetails::with_retry_info(Some(BUSY_RETRY_AFTER));
                Status::with_error_details(code, bounded(err.to_string()), details)
            }
            AppError::RateLimited {
                ref message,
                retry_after,
            } => {
                tracing::debug!(code = ?code, error = %message, "rate limited");
                let details = ErrorDetails::with_retry_info(Some(retry_after));
                Status::with_error_details(code, bounded(message.clone()), details)
            }
            other => {
                tracing::debug!(code = ?code, error = %other, "client error");
                Status::new(code, bounded(other.to_string()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Error as IoError, ErrorKind};

    use sea_orm::{ConnAcquireErr, DbErr, RuntimeErr};

    use super::*;

    fn lost_connections() -> Vec<fn() -> sqlx::Error> {
        vec![
            || sqlx::Error::Io(IoError::from(ErrorKind::ConnectionRefused)),
            || sqlx::Error::Io(IoError::from(ErrorKind::ConnectionReset)),
            || sqlx::Error::Io(IoError::new(ErrorKind::UnexpectedEof, "expected 5 bytes")),
            || sqlx::Error::Io(IoError::from(ErrorKind::BrokenPipe)),
            || sqlx::Error::Tls("handshake cut".into()),
            || sqlx::Error::PoolTimedOut,
            || sqlx::Error::PoolClosed,
        ]
    }

    #[test]
    fn a_database_that_does_not_answer_is_an_outage_whatever_query_met_it() {
        let mut errors: Vec<AppError> = vec![
            DbErr::ConnectionAcquire(ConnAcquireErr::Timeout).into(),
            DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed).into(),
        ];
        for make in lost_connections() {
            errors.push(DbErr::Conn(RuntimeErr::SqlxError(make())).into());
            errors.push(DbErr::Exec(RuntimeErr::SqlxError(make())).into());
            errors.push(DbErr::Query(RuntimeErr::SqlxError(make())).into());
            errors.push(make().into());
        }
        for err in errors {
            assert!(matches!(err, AppError::Unavailable(_)), "{err:?}");
            assert_eq!(err.code(), Code::Unavailable, "{err:?}");
            assert_eq!(err.code_name(), "UNAVAILABLE");
            assert_eq!(err.http_status(), 503);
            assert_eq!(err.retry_after(), Some(UNAVAILABLE_RETRY_AFTER));
            assert!(err.public_message().contains("unreachable; retry in 5 s"));
        }
    }

    struct Verdict(bool);

    impl PoolVerdict for Verdict {
        fn busy(&self) -> bool {
            self.0
        }
    }

    #[tokio::test]
    async fn a_pool_timeout_is_busy_only_when_the_servers_database_says_so() {
        let timeouts = || -> Vec<AppError> {
            vec![
                DbErr::ConnectionAcquire(ConnAcquireErr::Timeout).into(),
                sqlx::Error::PoolTimedOut.into(),
            ]
        };
        for err in judged_by(std::sync::Arc::new(Verdict(true)), async { timeouts() }).await {
            assert!(matches!(err, AppError::Busy(_)), "{err:?}");
            assert_eq!(
                (err.code_name(), err.http_status()),
                ("RESOURCE_EXHAUSTED", 429)
            );
            assert_eq!(err.retry_after(), Some(BUSY_RETRY_AFTER));
            let status = Status::from(err);
            assert!(
                status.message().contains("busy") && status.message().contains("1000 ms"),
                "{status:?}"
            );
            let retry = status.get_details_retry_info().expect("RetryInfo");
            assert_eq!(retry.retry_delay, Some(BUSY_RETRY_AFTER));
        }
        let down = judged_by(std::sync::Arc::new(Verdict(false)), async { timeouts() }).await;
        for err in down.into_iter().chain(timeouts()) {
            assert!(matches!(err, AppError::Unavailable(_)), "{err:?}");
        }
        // A lost connection is an outage whatever the verdict.
        let lost = judged_by(std::sync::Arc::new(Verdict(true)), async {
            AppError::from(sqlx::Error::Io(IoError::from(ErrorKind::ConnectionReset)))
        })
        .await;
        assert!(matches!(lost, AppError::Unavailable(_)), "{lost:?}");
    }

    #[test]
    fn other_database_errors_stay_internal() {
        let errors: Vec<AppError> = vec![
            DbErr::Custom("boom".into()).into(),
            DbErr::RecordNotFound("x".into()).into(),
            DbErr::Conn(RuntimeErr::Internal("Disconnected".into())).into(),
            sqlx::Error::RowNotFound.into(),
            sqlx::Error::Protocol("unexpected message".into()).into(),
            sqlx::Error::ColumnNotFound("id".into()).into(),
            // SQLite's one Io error: no memory for a connection handle.
            sqlx::Error::Io(IoError::from(ErrorKind::OutOfMemory)).into(),
        ];
        for err in errors {
            assert!(matches!(err, AppError::Database(_)), "{err:?}");
            assert_eq!(err.code(), Code::Internal);
            assert_eq!(err.http_status(), 500);
            assert_eq!(err.retry_after(), None);
        }
    }

    #[test]
    fn postgres_says_it_is_going_away_or_full_with_these_codes_only() {
        for code in [
            "08000", "08003", "08006", "08001", "57P01", "57P02", "57P03", "53300",
        ] {
            assert!(pg_unavailable(code), "{code}");
        }
        // A unique violation, a dropped database, a missing table, a serialization
        // failure, a disk full: answers, not silence.
        for code in ["23505", "57P04", "42P01", "40001", "53100", "XX000"] {
            assert!(!pg_unavailable(code), "{code}");
        }
    }

    #[test]
    fn an_outage_answers_unavailable_with_retry_info_and_no_cause() {
        let err = AppError::from(sqlx::Error::Io(IoError::new(
            ErrorKind::ConnectionRefused,
            "db.internal:5432 refused",
        )));
        let status = Status::from(err);
        assert_eq!(status.code(), Code::Unavailable);
        assert!(
            status.message().contains("database is unreachable"),
            "{status:?}"
        );
        assert!(!status.message().contains("db.internal"), "{status:?}");
        let retry = status.get_details_retry_info().expect("RetryInfo");
        assert_eq!(retry.retry_delay, Some(UNAVAILABLE_RETRY_AFTER));
    }

    #[test]
    fn a_draining_replica_answers_unavailable_with_a_retry_hint_on_both_transports() {
        let err = AppError::Draining;
        assert_eq!((err.http_status(), err.code_name()), (503, "UNAVAILABLE"));
        assert_eq!(err.retry_after(), Some(DRAINING_RETRY_AFTER));
        let status = Status::from(err);
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(status.message(), DRAINING_MESSAGE);
        let retry = status.get_details_retry_info().expect("RetryInfo");
        assert_eq!(retry.retry_delay, Some(DRAINING_RETRY_AFTER));
    }

    #[test]
    fn a_call_past_its_deadline_answers_unavailable_with_a_retry_hint_on_both_transports() {
        let err = AppError::TooSlow("no answer within the server's 120 s deadline".into());
        assert_eq!((err.http_status(), err.code_name()), (503, "UNAVAILABLE"));
        assert_eq!(err.retry_after(), Some(UNAVAILABLE_RETRY_AFTER));
        let status = Status::from(err);
        assert_eq!(status.code(), Code::Unavailable);
        assert!(status.message().contains("120 s deadline"), "{status:?}");
        let retry = status.get_details_retry_info().expect("RetryInfo");
        assert_eq!(retry.retry_delay, Some(UNAVAILABLE_RETRY_AFTER));
    }

    #[test]
    fn a_status_stays_under_4_kb_however_many_and_long_its_violations() {
        let huge = "é".repeat(100_000);
        let violations = (0..5_000)
            .map(|i| FieldViolation::new(format!("tables[{i}].{huge}"), huge.clone()))
            .collect();
        let status = Status::from(AppError::InvalidFields(violations));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().ends_with(" more"), "{}", status.message());
        let size = status.message().len() + status.details().len();
        assert!(size < 4096, "{size} bytes");
        let bad = status.get_details_bad_request().expect("BadRequest");
        assert_eq!(bad.field_violations.len(), MAX_VIOLATIONS);
        assert!(bad.field_violations[0].field.starts_with("tables[0]."));
        let plain = Status::from(AppError::NotFound(huge));
        assert!(
            plain.message().len() <= MAX_MESSAGE_BYTES,
            "{}",
            plain.message().len()
        );
        let few = AppError::InvalidFields(vec![FieldViolation::new("a", "b"); 10]);
        assert!(few.to_string().ends_with("; and 2 more"), "{few}");
    }

    /// Real SQLite errors, made by the driver: a locked file, a read-only one and a file
    /// that is not a database are answers from a present file, never an outage.
    #[tokio::test]
    async fn sqlite_busy_read_only_and_corrupt_files_are_not_outages() {
        use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
        use sqlx::{ConnectOptions, Connection};

        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("busy.db");
        let opts = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .busy_timeout(std::time::Duration::ZERO);
        let mut holder: SqliteConnection = opts.connect().await.expect("opens");
        sqlx::query("CREATE TABLE t (x)")
            .execute(&mut holder)
            .await
            .expect("creates");
        sqlx::query("BEGIN EXCLUSIVE")
            .execute(&mut holder)
            .await
            .expect("locks");
        let mut other: SqliteConnection = opts.connect().await.expect("opens");
        let busy = sqlx::query("SELECT x FROM t")
            .execute(&mut other)
            .await
            .expect_err("the file is locked");
        let code = busy.as_database_error().and_then(|d| d.code());
        assert_eq!(code.as_deref(), Some("5"), "SQLITE_BUSY: {busy:?}");
        let busy = AppError::from(busy);
        assert_eq!(busy.code(), Code::Internal, "{busy:?}");
        let _ = holder.close().await;
        let _ = other.close().await;

        let mut read_only: SqliteConnection =
            opts.clone().read_only(true).connect().await.expect("opens");
        let refused = sqlx::query("INSERT INTO t VALUES (1)")
            .execute(&mut read_only)
            .await
            .expect_err("read-only");
        let code = refused.as_database_error().and_then(|d| d.code());
        assert_eq!(code.as_deref(), Some("8"), "SQLITE_READONLY: {refused:?}");
        assert_eq!(AppError::from(refused).code(), Code::Internal);

        let garbage = dir.path().join("garbage.db");
        std::fs::write(&garbage, vec![0x5a_u8; 8192]).expect("writes");
        let opened = SqliteConnectOptions::new()
            .filename(&garbage)
            .connect()
            .await;
        let not_a_database = match opened {
            Err(e) => e,
            Ok(mut conn) => sqlx::query("SELECT name FROM sqlite_master")
                .execute(&mut conn)
                .await
                .expect_err("not a database"),
        };
        let code = not_a_database.as_database_error().and_then(|d| d.code());
        assert_eq!(
            code.as_deref(),
            Some("26"),
            "SQLITE_NOTADB: {not_a_database:?}"
        );
        assert_eq!(AppError::from(not_a_database).code(), Code::Internal);
    }
}
