//! Authorization of gRPC calls. Authentication happened at the edge ([`crate::edge`]),
//! which put the caller's [`Grant`] on the request.

use tonic::Request;

use crate::auth::authorize;
use crate::domain::tenant::TenantId;
use crate::domain::token::{Grant, Role};
use crate::error::{AppError, Result};

/// The grant the edge put on the call.
pub fn grant<T>(req: &Request<T>) -> Result<&Grant> {
    req.extensions().get::<Grant>().ok_or_else(|| {
        AppError::Internal(anyhow::anyhow!(
            "a call reached its handler without passing the edge's authentication"
        ))
    })
}

/// Parses the request's tenant id and authorizes the call's grant on it.
pub fn tenant_call<T>(
    req: &Request<T>,
    role: Role,
    service: &str,
    tenant_id: &str,
) -> Result<TenantId> {
    let grant = grant(req)?;
    let tenant = TenantId::parse(tenant_id).map_err(AppError::InvalidArgument)?;
    authorize(grant, role, service, Some(&tenant))?;
    Ok(tenant)
}
