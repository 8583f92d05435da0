//! The rules, in plain Rust: no tonic, no sea-orm. Everything here is unit- and
//! property-tested on its own, and every other layer calls into it.

pub mod abc;
pub mod alert;
pub mod batch;
pub mod credential;
pub mod crm;
pub mod due;
pub mod export;
pub mod field_names;
pub mod freshness;
pub mod hash;
pub(crate) mod hostile_props;
pub mod language;
pub mod page_token;
pub mod record;
pub mod request_log;
pub mod retention;
pub mod run;
pub mod run_status;
pub mod schedule;
pub mod secret;
pub mod tables;
pub mod tenant;
pub mod text;
pub mod token;
pub mod trail;
pub mod view;
pub mod view_source;
pub mod window;
