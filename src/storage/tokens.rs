//! Queries of `api_token` and `api_token_tenant`.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use super::{
    entities::{api_token, api_token_tenant, tenant},
    Db,
};
use crate::domain::tenant::TenantId;
use crate::domain::token::{Grant, NewToken, Role, TenantScope};
use crate::error::{AppError, Result};

/// A stored token as `erpsync token list` shows it (never the secret).
#[derive(Debug, Clone)]
pub struct TokenInfo {
    /// What the token may do.
    pub grant: Grant,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Stores a token's hash with its role and tenants; `NotFound` for an unknown tenant.
pub async fn insert(db: &Db, token: &NewToken, grant: &Grant, now: DateTime<Utc>) -> Result<()> {
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

/// What the unrevoked token with this hash may do; None when there is no such token.
pub async fn find_grant(db: &Db, hash: &str) -> Result<Option<Grant>> {
    let Some(token) = api_token::Entity::find()
        .filter(api_token::Column::TokenHash.eq(hash))
        .filter(api_token::Column::RevokedAt.is_null())
        .one(db.conn())
        .await?
    else {
        return Ok(None);
    };
    grant_of(db, token).await.map(Some)
}

/// Every token, oldest first.
pub async fn list(db: &Db) -> Result<Vec<TokenInfo>> {
    let mut out = Vec::new();
    for token in api_token::Entity::find()
        .order_by_asc(api_token::Column::CreatedAt)
        .all(db.conn())
        .await?
    {
        let (created_at, revoked_at) = (token.created_at, token.revoked_at);
        out.push(TokenInfo {
            grant: grant_of(db, token).await?,
            created_at,
            revoked_at,
        });
    }
    Ok(out)
}

/// Revokes the token with this public id or this secret's hash; false when none matched
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
