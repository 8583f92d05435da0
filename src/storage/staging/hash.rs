//! What tells a staged version from another: the hash of its content, and the distinct
//! one a version restored from the CRM gets. Staging compares with it; delivery marks by
//! it.

use chrono::{DateTime, Utc};

use crate::domain::hash::Fnv1a;

/// FNV-1a over what makes a version distinct: stable across builds and platforms, so a
/// re-sent batch is recognised as unchanged after an upgrade too.
pub(super) fn content_hash(fields: &str, updated_at: Option<DateTime<Utc>>, deleted: bool) -> i64 {
    let mut h = Fnv1a::default();
    h.feed(fields.as_bytes());
    h.feed(
        &updated_at
            .map_or(i64::MIN, |t| t.timestamp_micros())
            .to_le_bytes(),
    );
    h.feed(&[u8::from(deleted)]);
    h.finish()
}

/// The content hash of a version restored from the CRM (a discarded deletion): never the
/// hash of a version the ERP sends, so the ERP sending the record again, even unchanged,
/// stages a change (which ends the keep: `pending_deletes::supersede`).
pub(super) fn restored_hash(fields: &str, updated_at: Option<DateTime<Utc>>) -> i64 {
    let mut h = Fnv1a::default();
    h.feed(b"restored from the CRM\0");
    h.feed(&content_hash(fields, updated_at, false).to_le_bytes());
    h.finish()
}
