//! sea-orm entities, one per table (a table written only in bulk, `purchase_span`, has
//! none), each with the reusable queries its callers share. They never leave `storage/`.

pub mod abc_held;
pub mod abc_report;
pub mod alert;
pub mod api_token;
pub mod api_token_tenant;
pub mod category_change;
pub mod company_category;
pub mod crm_company;
pub mod crm_contact;
pub mod erp_count;
pub mod erpsync_instance;
pub mod pending_delete;
pub mod request_log;
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
