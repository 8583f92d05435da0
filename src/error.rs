//! One error type for the whole service and the single place it becomes a gRPC status.
//! Client errors keep their precise code and message; everything else is logged with its
//! cause chain and answered with a generic message.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// What callers see of an internal error.
const INTERNAL_MESSAGE: &str = "internal error; the server log has the details";

/// Result with [`AppError`].
pub type Result<T, E = AppError> = std::result::Result<T, E>;

/// One invalid request field: what the google.rpc.BadRequest details carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// Path of the field, as named in the API ("schedule.daily_times[0]").
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
    /// The database failed.
    #[error("database error")]
    Database(#[from] sea_orm::DbErr),
    /// Anything else that is not the caller's fault.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// The longest message a caller is answered with, in characters: a message that quotes
/// input is bounded even where the input was not cut first (gRPC puts the message in a
/// header, which clients limit to a few KiB).
const MAX_MESSAGE_CHARS: usize = 1024;

/// `message`, cut to [`MAX_MESSAGE_CHARS`].
fn bounded(message: String) -> String {
    if message.chars().count() <= MAX_MESSAGE_CHARS {
        return message;
    }
    let mut cut: String = message.chars().take(MAX_MESSAGE_CHARS).collect();
    cut.push_str("… (message cut)");
    cut
}

fn describe(violations: &[FieldViolation]) -> String {
    violations
        .iter()
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ")
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
            Self::ResourceExhausted(_) | Self::RateLimited { .. } => Code::ResourceExhausted,
            Self::DeadlineExceeded(_) => Code::DeadlineExceeded,
            Self::Unimplemented(_) => Code::Unimplemented,
            Self::FailedPrecondition(_) => Code::FailedPrecondition,
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
            _ => "INTERNAL",
        }
    }

    /// The HTTP status equivalent to the gRPC code.
    pub fn http_status(&self) -> u16 {
        if let Self::RateLimited { .. } = self {
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
            _ => 500,
        }
    }

    /// The message a caller may see: the error itself for client errors, a generic one
    /// for internal errors (whose details go to the server log only).
    pub fn public_message(&self) -> String {
        match self {
            Self::Database(_) | Self::Internal(_) => INTERNAL_MESSAGE.to_owned(),
            other => bounded(other.to_string()),
        }
    }

    /// The message a run's log shows: the whole cause chain, since the run log is where
    /// an operator looks for why a run failed.
    pub fn run_message(&self) -> String {
        match self {
            Self::Database(e) => format!("database error: {e}"),
            Self::Internal(e) => format!("{e:#}"),
            other => other.to_string(),
        }
    }

    /// How long a rate-limited caller should wait (HTTP `Retry-After`).
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Self::RateLimited { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// A database error that is really a uniqueness conflict becomes `AlreadyExists`.
    pub fn on_conflict(err: sea_orm::DbErr, what: impl FnOnce() -> String) -> Self {
        match err.sql_err() {
            Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => Self::AlreadyExists(what()),
            _ => Self::Database(err),
        }
    }
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
                for v in violations {
                    details.add_bad_request_violation(v.field.clone(), v.description.clone());
                }
                tracing::debug!(code = ?code, error = %err, "client error");
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
