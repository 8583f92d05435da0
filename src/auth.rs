//! The token service: bearer-token authentication (the edge, `crate::edge`, hands it the
//! `authorization` value of every gRPC and HTTP call; a failure counts against the
//! caller's address), per-tenant authorization, push rates, and the operator's token
//! commands (issue, revoke, list).

use crate::domain::tenant::TenantId;
use crate::domain::token::{presented, Grant, Role};
use crate::error::{AppError, Result};
use chrono::{DateTime, Utc};

use crate::domain::token::{legacy_hash, NewToken, Presented, TenantScope, TokenInfo};
use crate::storage::{tokens, Db};
use crate::throttle::{RateLimits, Throttle};

/// The token service: who a caller is, and whether they may push now; cheap to clone.
#[derive(Clone, Debug)]
pub struct Tokens {
    db: Db,
    throttle: Throttle,
}

impl Tokens {
    /// Tokens stored in `db`, with failed authentications and pushes limited by `throttle`.
    pub fn new(db: Db, throttle: Throttle) -> Self {
        Self { db, throttle }
    }

    /// Checks an `authorization` header value (gRPC metadata or HTTP header alike) sent
    /// from `peer`: an address (or server) that has spent its failed authentications is
    /// refused before the token is even read, and a failure counts against both (see
    /// [`crate::throttle`]). `header` is None when absent, `Err(())` when it is not text.
    pub async fn authenticate(
        &self,
        header: Option<std::result::Result<&str, ()>>,
        peer: Option<std::net::IpAddr>,
    ) -> Result<Grant> {
        self.throttle.admit_auth(peer)?;
        let verified = match header {
            Some(Err(())) => Err(AppError::Unauthenticated(
                "authorization is not text".into(),
            )),
            Some(Ok(text)) => self.verify(Some(text)).await,
            None => self.verify(None).await,
        };
        match verified {
            Err(err @ AppError::Unauthenticated(_)) => {
                self.throttle.failed_auth(peer);
                Err(err)
            }
            other => other,
        }
    }

    /// Tokens for the operator's commands, which authenticate nobody: no rate limits.
    pub fn unthrottled(db: Db) -> Self {
        let off = RateLimits {
            failed_auth_per_sec: 0,
            failed_auth_global_per_sec: 0,
            pushes_per_sec: 0,
            ..RateLimits::default()
        };
        Self::new(db, Throttle::new(off))
    }

    /// Issues a token of `role` for `scope`, expiring after `expires_in_days` if given:
    /// the new token (its secret is shown once; only its salted hash is stored), its
    /// grant and its expiry. INVALID_ARGUMENT for a scope the role cannot have, NOT_FOUND
    /// for an unknown tenant.
    pub async fn issue(
        &self,
        role: Role,
        scope: TenantScope,
        expires_in_days: Option<u32>,
    ) -> Result<(NewToken, Grant, Option<DateTime<Utc>>)> {
        Grant::validate(role, &scope).map_err(AppError::InvalidArgument)?;
        let new = NewToken::generate()
            .map_err(|e| AppError::Internal(anyhow::anyhow!("no randomness for the token: {e}")))?;
        let grant = Grant {
            token_id: new.id.clone(),
            role,
            scope,
        };
        let now = Utc::now();
        let expires_at = expires_in_days.map(|d| now + chrono::TimeDelta::days(i64::from(d)));
        tokens::insert(&self.db, &new, &grant, expires_at, now).await?;
        Ok((new, grant, expires_at))
    }

    /// Revokes the token `token` names: the token itself, or its id (a token issued
    /// before salts, by its hash); false when no active token matches.
    pub async fn revoke(&self, token: &str) -> Result<bool> {
        let key = match presented(token) {
            Some(Presented::Salted { id, .. }) => id,
            Some(Presented::Legacy(secret)) => legacy_hash(secret),
            None => token.to_owned(),
        };
        tokens::revoke(&self.db, &key, Utc::now()).await
    }

    /// Every token, revoked and expired ones included.
    pub async fn list(&self) -> Result<Vec<TokenInfo>> {
        tokens::list(&self.db).await
    }

    /// Counts a push against the token's rate (RESOURCE_EXHAUSTED past it).
    pub fn push_allowed(&self, grant: &Grant) -> Result<()> {
        self.throttle.push(&grant.token_id)
    }

    async fn verify(&self, header: Option<&str>) -> Result<Grant> {
        verify(&self.db, header).await
    }
}

async fn verify(db: &Db, header: Option<&str>) -> Result<Grant> {
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
    tokens::find_grant(db, &presented, chrono::Utc::now())
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
