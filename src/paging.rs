//! Listings' pages: a page of items and the signed token of the next one
//! ([`crate::domain::page_token`]), with the database's page key read once per handle.
//! Shared by the services that page (History, Tenants, Tokens), so a token is made and
//! checked by one rule.

use std::sync::Arc;

use tokio::sync::OnceCell;

use chrono::{DateTime, Utc};

use crate::domain::page_token::{self, Listing, PageKey, Scope};
use crate::error::{AppError, FieldViolation, Result};
use crate::storage::{instance, Db};

/// A page of a listing and the token of the next one ("" after the last).
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The page's items.
    pub items: Vec<T>,
    /// The token of the next page; empty when this one is the last.
    pub next_page_token: String,
}

/// Makes and reads page tokens with the database's page key; cheap to clone.
#[derive(Clone, Debug)]
pub struct Pager {
    db: Db,
    /// The database's page key, read on first use (see [`instance::page_key`]).
    key: Arc<OnceCell<PageKey>>,
}

impl Pager {
    /// Page tokens signed with `db`'s page key.
    pub fn new(db: Db) -> Self {
        Self {
            db,
            key: Arc::default(),
        }
    }

    /// The page key, read (and made, on a new database) once.
    async fn key(&self) -> Result<&PageKey> {
        self.key
            .get_or_try_init(|| instance::page_key(&self.db))
            .await
    }

    /// The position `token` names in `scope`'s `listing`; None for the first page.
    /// INVALID_ARGUMENT naming `page_token` for a token this server did not issue there.
    pub async fn position(
        &self,
        listing: Listing,
        scope: Scope<'_>,
        token: &str,
    ) -> Result<Option<String>> {
        if token.is_empty() {
            return Ok(None);
        }
        self.key()
            .await?
            .decode(listing, scope, token)
            .map_err(|e| AppError::InvalidFields(vec![FieldViolation::new("page_token", e)]))
    }

    /// A page of `scope`'s `listing` read with `page_size`: a full page names its last
    /// item's position (`position`) as the next page's token; a shorter one is the last.
    pub async fn page<T>(
        &self,
        items: Vec<T>,
        page_size: u64,
        (listing, scope): (Listing, Scope<'_>),
        position: impl Fn(&T) -> String,
    ) -> Result<Page<T>> {
        let next_page_token = match items.last() {
            Some(last) if items.len() as u64 == page_size => {
                self.key().await?.encode(listing, scope, &position(last))
            }
            _ => String::new(),
        };
        Ok(Page {
            items,
            next_page_token,
        })
    }
}

/// The position of an item listed newest first by time then id: "<micros>:<id>".
pub fn timed(at: DateTime<Utc>, id: &str) -> String {
    format!("{}:{id}", at.timestamp_micros())
}

/// The instant and id of a [`timed`] position.
pub fn timed_position(position: &str) -> Result<(DateTime<Utc>, String)> {
    let bad = || {
        AppError::InvalidFields(vec![FieldViolation::new(
            "page_token",
            page_token::NOT_ISSUED,
        )])
    };
    let (micros, id) = position.split_once(':').ok_or_else(bad)?;
    let at = micros
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(bad)?;
    Ok((at, id.to_owned()))
}
