//! `crm_company`: the embedded CRM's companies, by (tenant, external_id). Its multi-row
//! upserts and deletes are in `bulk::crm`.

use sea_orm::entity::prelude::*;
use sea_orm::Select;

/// An embedded CRM company.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "crm_company")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub external_id: String,
    pub name: String,
    pub document: String,
    pub seller_id: String,
    pub city: String,
    pub state: String,
    pub email: String,
    pub phone: String,
    /// A JSON object.
    #[sea_orm(column_type = "Text")]
    pub fields: String,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Entity {
    /// The tenant's companies.
    pub fn of_tenant(tenant: &str) -> Select<Self> {
        Self::find().filter(Column::TenantId.eq(tenant))
    }

    /// One company of the tenant.
    pub fn of_record(tenant: &str, external_id: &str) -> Select<Self> {
        Self::of_tenant(tenant).filter(Column::ExternalId.eq(external_id))
    }
}
