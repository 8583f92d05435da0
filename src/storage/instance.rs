//! This database's own row (`erpsync_instance`): the key page tokens are signed with.
//!
//! The key is 32 random bytes kept in the database, so every server on it (replicas, and
//! a server after its restart) signs and checks with the same one. It is made by the
//! first server that needs it: the row is updated only while its key is empty, then read
//! back, so two servers starting together agree on whichever key was stored first.

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use super::entities::erpsync_instance::{Column, Entity};
use super::Db;
use crate::domain::page_token::PageKey;
use crate::error::{AppError, Result};

/// The key page tokens are signed with, made and stored on first use.
pub async fn page_key(db: &Db) -> Result<PageKey> {
    if let Some(key) = stored(db).await? {
        return Ok(key);
    }
    let fresh = PageKey::generate()
        .map_err(|e| AppError::Internal(anyhow::anyhow!("no randomness for the page key: {e}")))?;
    Entity::update_many()
        .col_expr(Column::PageKey, Expr::value(fresh.to_hex()))
        .filter(Column::PageKey.is_null())
        .exec(db.conn())
        .await?;
    stored(db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("erpsync_instance has no page key after storing one").into())
}

/// The stored key; None before one is made. A stored value that is not a key is an
/// error (someone edited the row), not a reason to make another.
async fn stored(db: &Db) -> Result<Option<PageKey>> {
    let row = Entity::find()
        .one(db.conn())
        .await?
        .ok_or_else(|| anyhow::anyhow!("erpsync_instance is empty"))?;
    row.page_key
        .map(|hex| {
            PageKey::parse(&hex).ok_or_else(|| {
                anyhow::anyhow!("erpsync_instance.page_key is not 64 hex digits").into()
            })
        })
        .transpose()
}
