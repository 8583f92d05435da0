//! `tenant_sink`: the CrmSink a tenant delivers to instead of the server's `--crm-sink`,
//! at most one row per tenant.

use sea_orm::entity::prelude::*;
use sea_orm::sea_query::OnConflict;

/// A tenant's own sink.
#[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "tenant_sink")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: String,
    /// `grpc://`, `grpcs://` or `https://` host:port.
    #[sea_orm(column_type = "Text")]
    pub address: String,
    /// The secret sent as `authorization: Bearer …`, sealed with the operator's key
    /// (see `domain::secret`); None without one.
    #[sea_orm(column_type = "Text", nullable)]
    pub sealed_secret: Option<String>,
    pub updated_at: DateTimeUtc,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("tenant_sink")
            .field("tenant_id", &self.tenant_id)
            .field("address", &self.address)
            .field("has_secret", &self.sealed_secret.is_some())
            .finish()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Entity {
    /// A new sink replaces the tenant's earlier one.
    pub fn replace_earlier() -> OnConflict {
        OnConflict::column(Column::TenantId)
            .update_columns([Column::Address, Column::SealedSecret, Column::UpdatedAt])
            .to_owned()
    }
}
