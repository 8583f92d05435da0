//! Queries of `api_token` and `api_token_tenant`.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    QueryTrait,
};

use super::{
    entities::{api_token, api_token_tenant, tenant},
    Db,
};
use crate::domain::tenant::TenantId;
use crate::domain::token::{
    hashes_match, legacy_hash, salted_hash, Grant, NewToken, Presented, Role, TenantScope,
};
use crate::error::{AppError, Result};

pub use crate::domain::token::TokenInfo;

/// How stale a token's `last_used_at` may get before a call writes it again: one write
/// a minute per token at most, not one per call.
const LAST_USED_EVERY: chrono::TimeDelta = chrono::TimeDelta::minutes(1);

/// What is stored of a token besides its hash and grant.
#[derive(Debug, Clone, Default)]
pub struct Issued<'a> {
    /// When it stops working, if it does.
    pub expires_at: Option<DateTime<Utc>>,
    /// What the issuer called it ("" for nothing: stored as NULL).
    pub label: &'a str,
}

/// Stores a token's salted hash with its role, tenants and expiry, without a label;
/// `NotFound` for an unknown tenant.
pub async fn insert(
    db: &Db,
    token: &NewToken,
    grant: &Grant,
    expires_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<()> {
    let issued = Issued {
        expires_at,
        label: "",
    };
    insert_labeled(db, token, grant, issued, now).await
}

/// Stores a token's salted hash with its role, tenants, expiry and label; `NotFound` for
/// an unknown tenant.
pub async fn insert_labeled(
    db: &Db,
    token: &NewToken,
    grant: &Grant,
    issued: Issued<'_>,
    now: DateTime<Utc>,
) -> Result<()> {
    let txn = db.begin_write().await?;
    if let TenantScope::Listed(ids) = &grant.scope {
        for id in ids {
            if tenant::Entity::find_by_id(id.as_str())
                .one(&*txn)
                .await?
                .is_none()
            {
                return Err(AppError::NotFound(format!("tenant {id} not found")));
            }
        }
    }
    api_token::Entity::insert(api_token::ActiveModel {
        id: Set(token.id.clone()),
        token_hash: Set(token.hash.clone()),
        role: Set(grant.role.as_str().to_owned()),
        all_tenants: Set(grant.scope == TenantScope::All),
        created_at: Set(now),
        revoked_at: Set(None),
        token_salt: Set(Some(token.salt.clone())),
        expires_at: Set(issued.expires_at),
        last_used_at: Set(None),
        label: Set((!issued.label.is_empty()).then(|| issued.label.to_owned())),
    })
    .exec(&*txn)
    .await?;
    if let TenantScope::Listed(ids) = &grant.scope {
        api_token_tenant::Entity::insert_many(ids.iter().map(|id| api_token_tenant::ActiveModel {
            token_id: Set(token.id.clone()),
            tenant_id: Set(id.as_str().to_owned()),
        }))
        .exec(&*txn)
        .await?;
    }
    txn.commit().await?;
    Ok(())
}

/// What the presented token may do at `now`; None when it is unknown, does not match,
/// is revoked or has expired. A match marks the token used (at most once a minute, in the
/// background: the call does not wait for that write).
pub async fn find_grant(
    db: &Db,
    presented: &Presented<'_>,
    now: DateTime<Utc>,
) -> Result<Option<Grant>> {
    let found = match presented {
        Presented::Salted { id, secret } => api_token::Entity::find_by_id(id.as_str())
            .one(db.conn())
            .await?
            .filter(|t| {
                t.token_salt
                    .as_deref()
                    .is_some_and(|salt| hashes_match(&salted_hash(salt, secret), &t.token_hash))
            }),
        Presented::Legacy(secret) => {
            api_token::Entity::find()
                .filter(api_token::Column::TokenHash.eq(legacy_hash(secret)))
                .filter(api_token::Column::TokenSalt.is_null())
                .one(db.conn())
                .await?
        }
    };
    let Some(token) = found.filter(|t| t.revoked_at.is_none()) else {
        return Ok(None);
    };
    if token.expires_at.is_some_and(|at| at <= now) {
        tracing::info!(token = %token.id, "expired token refused");
        return Ok(None);
    }
    let last_used = token.last_used_at;
    let grant = grant_of(db, token).await?;
    // A token read just before its last tenant was removed (Admin.DeleteTenant takes
    // such tokens with it): its tenant links are gone by now, and so is the token.
    if matches!(&grant.scope, TenantScope::Listed(ids) if ids.is_empty()) {
        return Ok(None);
    }
    if last_used.is_none_or(|at| now - at >= LAST_USED_EVERY) {
        let (db, id) = (db.clone(), grant.token_id.clone());
        tokio::spawn(async move {
            if let Err(e) = mark_used(&db, &id, now).await {
                tracing::warn!(token = %id, error = %e, "cannot record a token's last use");
            }
        });
    }
    Ok(Some(grant))
}

async fn mark_used(db: &Db, id: &str, now: DateTime<Utc>) -> Result<()> {
    let txn = db.begin_write().await?;
    api_token::Entity::update_many()
        .col_expr(
            api_token::Column::LastUsedAt,
            sea_orm::sea_query::Expr::value(now),
        )
        .filter(api_token::Column::Id.eq(id))
        .exec(&*txn)
        .await?;
    txn.commit().await
}

/// Every token, oldest first.
pub async fn list(db: &Db) -> Result<Vec<TokenInfo>> {
    let rows = api_token::Entity::find()
        .order_by_asc(api_token::Column::CreatedAt)
        .order_by_asc(api_token::Column::Id)
        .all(db.conn())
        .await?;
    infos(db, rows).await
}

/// Which tokens a listing shows.
#[derive(Debug, Clone, Copy)]
pub struct TokenFilter<'a> {
    /// Only tokens reaching this tenant (those of every tenant included).
    pub tenant: Option<&'a TenantId>,
    /// Revoked and expired tokens too.
    pub include_inactive: bool,
    /// The instant "expired" is judged at.
    pub now: DateTime<Utc>,
}

/// A page of tokens that pass `filter`, newest first (by issue time, then id), issued
/// before the (created_at, id) of the previous page's last token.
pub async fn page(
    db: &Db,
    filter: TokenFilter<'_>,
    before: Option<(DateTime<Utc>, String)>,
    limit: u64,
) -> Result<Vec<TokenInfo>> {
    let mut q = api_token::Entity::find();
    if let Some(tenant) = filter.tenant {
        let listed = api_token_tenant::Entity::find()
            .select_only()
            .column(api_token_tenant::Column::TokenId)
            .filter(api_token_tenant::Column::TenantId.eq(tenant.as_str()))
            .into_query();
        q = q.filter(
            Condition::any()
                .add(api_token::Column::AllTenants.eq(true))
                .add(api_token::Column::Id.in_subquery(listed)),
        );
    }
    if !filter.include_inactive {
        q = q.filter(api_token::Column::RevokedAt.is_null()).filter(
            Condition::any()
                .add(api_token::Column::ExpiresAt.is_null())
                .add(api_token::Column::ExpiresAt.gt(filter.now)),
        );
    }
    if let Some((at, id)) = before {
        q = q.filter(
            Condition::any()
                .add(api_token::Column::CreatedAt.lt(at))
                .add(
                    Condition::all()
                        .add(api_token::Column::CreatedAt.eq(at))
                        .add(api_token::Column::Id.lt(id)),
                ),
        );
    }
    let rows = q
        .order_by_desc(api_token::Column::CreatedAt)
        .order_by_desc(api_token::Column::Id)
        .limit(limit)
        .all(db.conn())
        .await?;
    infos(db, rows).await
}

/// The listing form of stored tokens (their tenants read per token).
async fn infos(db: &Db, rows: Vec<api_token::Model>) -> Result<Vec<TokenInfo>> {
    let mut out = Vec::with_capacity(rows.len());
    for token in rows {
        let (created_at, revoked_at) = (token.created_at, token.revoked_at);
        let (expires_at, last_used_at) = (token.expires_at, token.last_used_at);
        let label = token.label.clone().unwrap_or_default();
        out.push(TokenInfo {
            grant: grant_of(db, token).await?,
            created_at,
            revoked_at,
            expires_at,
            last_used_at,
            label,
        });
    }
    Ok(out)
}

/// Revokes the token with this public id or this (legacy) hash; false when none matched
/// or it was already revoked.
pub async fn revoke(db: &Db, id_or_hash: &str, now: DateTime<Utc>) -> Result<bool> {
    let res = api_token::Entity::update_many()
        .col_expr(
            api_token::Column::RevokedAt,
            sea_orm::sea_query::Expr::value(now),
        )
        .filter(
            api_token::Column::Id
                .eq(id_or_hash)
                .or(api_token::Column::TokenHash.eq(id_or_hash)),
        )
        .filter(api_token::Column::RevokedAt.is_null())
        .exec(db.conn())
        .await?;
    Ok(res.rows_affected > 0)
}

async fn grant_of(db: &Db, token: api_token::Model) -> Result<Grant> {
    let role = Role::parse(&token.role).ok_or_else(|| {
        anyhow::anyhow!(
            "stored token {} has unknown role {:?}",
            token.id,
            token.role
        )
    })?;
    let scope = if token.all_tenants {
        TenantScope::All
    } else {
        let ids = api_token_tenant::Entity::find()
            .filter(api_token_tenant::Column::TokenId.eq(&token.id))
            .all(db.conn())
            .await?
            .into_iter()
            .map(|row| TenantId::parse(&row.tenant_id).map_err(|e| anyhow::anyhow!(e)))
            .collect::<Result<Vec<_>, _>>()?;
        TenantScope::Listed(ids)
    };
    Ok(Grant {
        token_id: token.id,
        role,
        scope,
    })
}

/// How a decision made with the token `id` is recorded: its label, else its id (also for
/// a token gone since).
pub async fn decider_name(db: &Db, id: &str) -> Result<String> {
    let label: Option<Option<String>> = api_token::Entity::find_by_id(id)
        .select_only()
        .column(api_token::Column::Label)
        .into_tuple()
        .one(db.conn())
        .await?;
    Ok(label
        .flatten()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| id.to_owned()))
}
