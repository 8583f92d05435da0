//! Bearer-token authentication and per-tenant authorization, whatever the transport:
//! gRPC (`grpc::auth` reads the metadata) and HTTP (`http` reads the header) hand the
//! `authorization` value here; a failure counts against the caller's address.

use crate::domain::tenant::TenantId;
use crate::domain::token::{presented, Grant, Role};
use crate::error::{AppError, Result};
use crate::state::AppState;
use crate::storage::tokens;

/// Checks an `authorization` header value (gRPC metadata or HTTP header alike) sent from
/// `peer`: a failure counts against the address's limit (see [`crate::throttle`]).
pub async fn authenticate_header(
    state: &AppState,
    header: Option<&str>,
    peer: Option<std::net::IpAddr>,
) -> Result<Grant> {
    match verify(state, header).await {
        Err(err @ AppError::Unauthenticated(_)) => Err(state.throttle.failed_auth(peer, err)),
        other => other,
    }
}

async fn verify(state: &AppState, header: Option<&str>) -> Result<Grant> {
    let header = header.ok_or_else(|| {
        AppError::Unauthenticated(
            "missing authorization: send \"authorization: Bearer <token>\"".into(),
        )
    })?;
    let secret = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            AppError::Unauthenticated("authorization must be \"Bearer <token>\"".into())
        })?;
    let invalid = || AppError::Unauthenticated("invalid or revoked token".into());
    let presented = presented(secret).ok_or_else(invalid)?;
    tokens::find_grant(&state.db, &presented, chrono::Utc::now())
        .await?
        .ok_or_else(invalid)
}

/// Checks that `grant` may call a `service` of `role` on `tenant`.
pub fn authorize(
    grant: &Grant,
    role: Role,
    service: &str,
    tenant: Option<&TenantId>,
) -> Result<()> {
    if grant.role != role {
        return Err(AppError::PermissionDenied(format!(
            "token {} has role {}; {service} needs a token of role {}",
            grant.token_id,
            grant.role.as_str(),
            role.as_str()
        )));
    }
    if let Some(tenant) = tenant {
        if !grant.scope.covers(tenant) {
            return Err(AppError::PermissionDenied(format!(
                "token {} does not grant access to tenant {tenant}",
                grant.token_id
            )));
        }
    }
    Ok(())
}
