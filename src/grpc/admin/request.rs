//! What every Admin call reads from its request alike (the tenant it names) and the type
//! its streaming answers share.

use std::pin::Pin;

use tokio_stream::Stream;
use tonic::Status;

use crate::domain::tenant::TenantId;
use crate::error::{FieldViolation, Result};

/// The tenant a request names; a violation of `tenant_id` when it is not an id.
pub(super) fn tenant_id(id: &str) -> std::result::Result<TenantId, FieldViolation> {
    TenantId::parse(id).map_err(|e| FieldViolation::new("tenant_id", e))
}

/// The request's tenant id; INVALID_ARGUMENT naming `tenant_id` when malformed.
pub(super) fn tenant(id: &str) -> Result<TenantId> {
    tenant_id(id).map_err(|v| crate::error::AppError::InvalidFields(vec![v]))
}

/// What a streaming answer of Admin is.
pub(super) type EventStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;
