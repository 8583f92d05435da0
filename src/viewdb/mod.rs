//! Reading an ERP's SQL views (the View integration type): one read-only connection to
//! the ERP's database (PostgreSQL, MySQL/MariaDB or SQLite), the catalog of a view's
//! columns, and pages of rows read by keyset (never OFFSET), every value as text so that
//! exact decimals stay exact and the same validation as pushed records applies.
//!
//! Errors are plain messages meant for the run log; none carries the URL's secrets.
//! Every connection goes through [`ViewAccess`], which refuses what the operator does not
//! allow and erpsync's own database; the connection itself, its catalog and its pages are
//! in `erp.rs`.

mod access;
mod erp;

pub use access::{Naming, ViewAccess};
pub use erp::{Column, Cursor, ErpDb, PageQuery, PageRow, PageSpec, Param};
