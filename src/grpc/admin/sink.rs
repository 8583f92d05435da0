//! Admin.SetTenantSink: the request read and checked, the answer built; the rules are
//! [`crate::worker::tenant_sink`]'s.

use super::super::pb;
use super::request::tenant;
use crate::error::{AppError, FieldViolation, Result};
use crate::worker::tenant_sink::Sinks;

/// Sets (or with `clear`, removes) the tenant's own sink.
pub(super) async fn set_tenant_sink(
    sinks: &Sinks,
    req: pb::SetTenantSinkRequest,
) -> Result<pb::TenantSink> {
    let tenant = tenant(&req.tenant_id)?;
    let view = if req.clear {
        if !req.address.is_empty() || !req.secret.is_empty() {
            return Err(AppError::InvalidFields(vec![FieldViolation::new(
                "clear",
                "clear removes the tenant's sink: send it without address or secret",
            )]));
        }
        sinks.clear(&tenant).await?
    } else {
        sinks.set(&tenant, &req.address, &req.secret).await?
    };
    Ok(super::super::convert::tenant_sink(view))
}
