//! The token service: bearer-token authentication (the edge, `crate::edge`, hands it the
//! `authorization` value of every gRPC and HTTP call; a failure counts against the
//! caller's address), per-tenant authorization, push rates, and issuing, listing and
//! revoking tokens (the operator's commands and Admin alike).

use crate::domain::page_token::{Listing, Scope};
use crate::domain::tenant::TenantId;
use crate::domain::token::{parse_token_id, presented, Grant, Role, TokenRequest};
use crate::error::{AppError, FieldViolation, Result};
use crate::paging::{timed, timed_position, Page, Pager};

use crate::clock::SharedClock;
use crate::domain::token::{legacy_hash, NewToken, Presented, TokenInfo};
use crate::storage::{tokens, Db};
use crate::throttle::{RateLimits, Throttle};

/// The token service: who a caller is, and whether they may push now; cheap to clone.
#[derive(Clone, Debug)]
pub struct Tokens {
    db: Db,
    throttle: Throttle,
    /// The token listing's page tokens.
    pager: Pager,
    /// What expiry, revocation and issue instants are read by.
    clock: SharedClock,
}

impl Tokens {
    /// Tokens stored in `db`, with failed authentications and pushes limited by
    /// `throttle`, expiring by `clock`.
    pub fn new(db: Db, throttle: Throttle, clock: SharedClock) -> Self {
        Self {
            pager: Pager::new(db.clone()),
            db,
            throttle,
            clock,
        }
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

    /// Tokens for the operator's commands, which authenticate nobody: no rate limits, the
    /// system's clock.
    pub fn unthrottled(db: Db) -> Self {
        let off = RateLimits {
            failed_auth_per_sec: 0,
            failed_auth_global_per_sec: 0,
            pushes_per_sec: 0,
            ..RateLimits::default()
        };
        Self::new(db, Throttle::new(off), crate::clock::system())
    }

    /// Issues the token `request` asks for: the new token (its secret is shown once;
    /// only its salted hash is stored) and the token as listed. INVALID_ARGUMENT naming
    /// every bad field (a scope the role cannot have, the expiry, the label), NOT_FOUND
    /// for an unknown tenant; nothing is stored then.
    pub async fn issue(&self, request: TokenRequest) -> Result<(NewToken, TokenInfo)> {
        request.check().map_err(AppError::InvalidFields)?;
        let new = NewToken::generate()
            .map_err(|e| AppError::Internal(anyhow::anyhow!("no randomness for the token: {e}")))?;
        let grant = Grant {
            token_id: new.id.clone(),
            role: request.role,
            scope: request.scope,
        };
        let now = self.clock.now();
        let expires_at = request
            .expires_in_days
            .map(|d| now + chrono::TimeDelta::days(i64::from(d)));
        let issued = tokens::Issued {
            expires_at,
            label: &request.label,
        };
        tokens::insert_labeled(&self.db, &new, &grant, issued, now).await?;
        tracing::info!(token = %new.id, role = grant.role.as_str(), "token issued");
        let info = TokenInfo {
            grant,
            created_at: now,
            revoked_at: None,
            expires_at,
            last_used_at: None,
            label: request.label,
        };
        Ok((new, info))
    }

    /// Revokes the token `token` names: the token itself, or its id (a token issued
    /// before salts, by its hash); false when no active token matches.
    pub async fn revoke(&self, token: &str) -> Result<bool> {
        let key = match presented(token) {
            Some(Presented::Salted { id, .. }) => id,
            Some(Presented::Legacy(secret)) => legacy_hash(secret),
            None => token.to_owned(),
        };
        tokens::revoke(&self.db, &key, self.clock.now()).await
    }

    /// Revokes the token with public id `id` (`tok_…`); false when it is unknown or
    /// revoked already. INVALID_ARGUMENT naming `token_id` for anything else.
    pub async fn revoke_id(&self, id: &str) -> Result<bool> {
        let id = parse_token_id(id)
            .map_err(|e| AppError::InvalidFields(vec![FieldViolation::new("token_id", e)]))?;
        let revoked = tokens::revoke(&self.db, id, self.clock.now()).await?;
        if revoked {
            tracing::info!(token = %id, "token revoked");
        }
        Ok(revoked)
    }

    /// Every token, revoked and expired ones included.
    pub async fn list(&self) -> Result<Vec<TokenInfo>> {
        tokens::list(&self.db).await
    }

    /// A page of the tokens reaching `tenant` (every token for None; those of every
    /// tenant included), newest first; revoked and expired ones with `include_inactive`.
    /// NOT_FOUND for an unknown tenant.
    pub async fn page(
        &self,
        tenant: Option<&TenantId>,
        include_inactive: bool,
        page_size: u64,
        page_token: &str,
    ) -> Result<Page<TokenInfo>> {
        let scope = tenant.map_or(Scope::Every, Scope::Tenant);
        let position = self
            .pager
            .position(Listing::Tokens, scope, page_token)
            .await?;
        let before = position.as_deref().map(timed_position).transpose()?;
        if let Some(tenant) = tenant {
            crate::storage::tenants::require(&self.db, tenant).await?;
        }
        let filter = tokens::TokenFilter {
            tenant,
            include_inactive,
            now: self.clock.now(),
        };
        let items = tokens::page(&self.db, filter, before, page_size).await?;
        self.pager
            .page(items, page_size, (Listing::Tokens, scope), |last| {
                timed(last.created_at, &last.grant.token_id)
            })
            .await
    }

    /// Counts a push against the token's rate (RESOURCE_EXHAUSTED past it).
    pub fn push_allowed(&self, grant: &Grant) -> Result<()> {
        self.throttle.push(&grant.token_id)
    }

    async fn verify(&self, header: Option<&str>) -> Result<Grant> {
        verify(&self.db, header, self.clock.now()).await
    }
}

async fn verify(
    db: &Db,
    header: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Grant> {
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
    tokens::find_grant(db, &presented, now)
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
