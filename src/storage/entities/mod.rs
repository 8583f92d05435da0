//! sea-orm entities, one per table. They never leave `storage/`.

pub mod alert;
pub mod api_token;
pub mod api_token_tenant;
pub mod crm_company;
pub mod crm_contact;
pub mod erp_count;
pub mod pending_delete;
pub mod run_stage;
pub mod run_table;
pub mod schedule_claim;
pub mod staged_record;
pub mod sync_event;
pub mod sync_lease;
pub mod sync_run;
pub mod tenant;
pub mod tenant_usage;
pub mod view_config;
pub mod view_watermark;
