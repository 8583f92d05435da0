//! What the CRM receives: companies and contacts, built from staged records.

use std::fmt;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::tables::Table;
use crate::error::{AppError, FieldViolation, Result};

/// A company as delivered to the CRM.
#[derive(Debug, Clone, PartialEq)]
pub struct CrmCompany {
    /// The ERP's id.
    pub external_id: String,
    /// Name.
    pub name: String,
    /// CNPJ, normalized.
    pub document: String,
    /// The seller's external id (the portfolio); empty when none.
    pub seller_id: String,
    /// City.
    pub city: String,
    /// State (UF).
    pub state: String,
    /// E-mail.
    pub email: String,
    /// Phone.
    pub phone: String,
    /// Every field as staged.
    pub fields: Map<String, Value>,
    /// The version delivered (default when read back from the CRM's tables).
    pub version: RecordVersion,
}

/// A contact as delivered to the CRM.
#[derive(Debug, Clone, PartialEq)]
pub struct CrmContact {
    /// The ERP's id.
    pub external_id: String,
    /// Name.
    pub name: String,
    /// CPF, normalized; empty when none.
    pub document: String,
    /// The company's external id; empty when none.
    pub company_id: String,
    /// E-mail.
    pub email: String,
    /// Phone.
    pub phone: String,
    /// Every field as staged.
    pub fields: Map<String, Value>,
    /// The version delivered (default when read back from the CRM's tables).
    pub version: RecordVersion,
}

/// One version of a record as the CRM receives it: the same whenever that version is
/// sent, in any run, so a host recognizes a repeat (and an out-of-order update).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordVersion {
    /// The staged version's content hash (fields, updated_at, deleted).
    pub content_hash: i64,
    /// The ERP's last change, when it sent one.
    pub updated_at: Option<DateTime<Utc>>,
    /// The ingest request that last changed the record (empty for categories).
    pub request_id: String,
}

impl RecordVersion {
    /// The content hash as the CRM sees it: 16 lower-case hex digits.
    pub fn hash_hex(&self) -> String {
        format!(
            "{:016x}",
            u64::from_ne_bytes(self.content_hash.to_ne_bytes())
        )
    }
}

/// A deletion as delivered to the CRM: the record's id and its tombstone's version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deletion {
    /// The ERP's id.
    pub external_id: String,
    /// The staged tombstone's version.
    pub version: RecordVersion,
}

/// A batch's idempotency key: SHA-256 over the call (`method`, e.g. "UpsertCompanies"),
/// the tenant and each record's external id and version, in order; 32 hex digits. The
/// same batch of the same versions has the same key in any run; any other batch has
/// another.
pub fn batch_key<'a>(
    method: &str,
    tenant: &str,
    records: impl IntoIterator<Item = (&'a str, &'a RecordVersion)>,
) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    // Every part is length-prefixed: parts cannot run into each other.
    let mut part = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    part(method.as_bytes());
    part(tenant.as_bytes());
    for (id, v) in records {
        part(id.as_bytes());
        part(&v.content_hash.to_le_bytes());
        part(
            &v.updated_at
                .map_or(i64::MIN, |t| t.timestamp_micros())
                .to_le_bytes(),
        );
        part(v.request_id.as_bytes());
    }
    h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn text(fields: &Map<String, Value>, key: &str) -> String {
    match fields.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

impl CrmCompany {
    /// The company of a staged `company` record.
    pub fn from_staged(external_id: &str, fields: Map<String, Value>) -> Self {
        Self {
            external_id: external_id.to_owned(),
            name: text(&fields, "name"),
            document: text(&fields, "document"),
            seller_id: text(&fields, "seller_id"),
            city: text(&fields, "city"),
            state: text(&fields, "state"),
            email: text(&fields, "email"),
            phone: text(&fields, "phone"),
            fields,
            version: RecordVersion::default(),
        }
    }
}

impl CrmContact {
    /// The contact of a staged `contact` record.
    pub fn from_staged(external_id: &str, fields: Map<String, Value>) -> Self {
        Self {
            external_id: external_id.to_owned(),
            name: text(&fields, "name"),
            document: text(&fields, "document"),
            company_id: text(&fields, "company_id"),
            email: text(&fields, "email"),
            phone: text(&fields, "phone"),
            fields,
            version: RecordVersion::default(),
        }
    }
}

impl Pending {
    /// The company this staged `company` record is, with its version.
    pub fn into_company(self) -> CrmCompany {
        CrmCompany {
            version: self.version,
            ..CrmCompany::from_staged(&self.external_id, self.fields)
        }
    }

    /// The contact this staged `contact` record is, with its version.
    pub fn into_contact(self) -> CrmContact {
        CrmContact {
            version: self.version,
            ..CrmContact::from_staged(&self.external_id, self.fields)
        }
    }
}

/// A held deletion.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingDelete {
    /// Company or contact.
    pub table: Table,
    /// The record's id in the ERP.
    pub external_id: String,
    /// Its name in the CRM.
    pub name: String,
    /// Its document in the CRM.
    pub document: String,
    /// The run that held it.
    pub detected_run_id: String,
    /// When it was held.
    pub detected_at: DateTime<Utc>,
    /// Waiting (held or approved) or final.
    pub state: DeleteState,
    /// When it entered its state (the detection time while HELD).
    pub state_changed_at: DateTime<Utc>,
    /// Who made the last state change: a token's label (else its id), [`DECIDED_BY_RUN`]
    /// or [`DECIDED_BY_ERP`]; empty for a change recorded before this was.
    pub decided_by: String,
    /// The run that made the last state change (held, applied, superseded); empty for a
    /// person's decision.
    pub decided_run_id: String,
    /// DISCARDED and kept in the CRM: later runs do not hold its deletion again, until
    /// the ERP sends the record again (then it is no longer kept, still DISCARDED) or
    /// someone reopens it.
    pub kept: bool,
}

/// What the ERP sending records again ended in a table, by external id.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SentAgain {
    /// Waiting (HELD or APPROVED) deletions, now SUPERSEDED.
    pub superseded: Vec<String>,
    /// Records a discard kept in the CRM, no longer kept (still DISCARDED).
    pub unkept: Vec<String>,
}

/// `decided_by` of a change a run made (held, applied).
pub const DECIDED_BY_RUN: &str = "run";

/// `decided_by` of a change the ERP caused (it sent the record again: SUPERSEDED).
pub const DECIDED_BY_ERP: &str = "erp";

/// Approve (the next run deletes), discard (the record is restored in staging and kept
/// in the CRM) or reopen (a kept record's deletion waits for a person again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// Apply the deletion at the next run.
    Approve,
    /// Keep the record: restore it in staging as the CRM has it, and remember the keep
    /// so later runs do not hold its deletion again.
    Discard,
    /// Reverse a discard: the kept record's deletion is HELD again (approve it to delete).
    Reopen,
}

impl Resolution {
    /// The states a deletion may be resolved from.
    pub fn from_states(self) -> &'static [DeleteState] {
        match self {
            Resolution::Approve => &[DeleteState::Held],
            Resolution::Discard => &DeleteState::WAITING,
            Resolution::Reopen => &[DeleteState::Discarded],
        }
    }

    /// The state a resolved deletion enters.
    pub fn to_state(self) -> DeleteState {
        match self {
            Resolution::Approve => DeleteState::Approved,
            Resolution::Discard => DeleteState::Discarded,
            Resolution::Reopen => DeleteState::Held,
        }
    }
}

/// Which held deletions a listing shows: by default the waiting ones (HELD, APPROVED).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteFilter {
    /// The states listed (never empty).
    pub states: Vec<DeleteState>,
    /// Only deletions this run detected or decided.
    pub run_id: Option<String>,
}

impl Default for DeleteFilter {
    fn default() -> Self {
        Self {
            states: DeleteState::WAITING.to_vec(),
            run_id: None,
        }
    }
}

impl DeleteFilter {
    /// The states a request names: none for the waiting ones (HELD and APPROVED), "ALL"
    /// for every one, else each of HELD, APPROVED, APPLIED, DISCARDED, SUPERSEDED (any
    /// case). The violation names `field`.
    pub fn states(names: &[String], field: &str) -> Result<Vec<DeleteState>, FieldViolation> {
        if names.is_empty() {
            return Ok(DeleteState::WAITING.to_vec());
        }
        let mut states = Vec::new();
        for name in names {
            let upper = name.trim().to_ascii_uppercase();
            if upper == "ALL" {
                return Ok(DeleteState::ALL.to_vec());
            }
            let state = DeleteState::parse(&upper).ok_or_else(|| {
                FieldViolation::new(
                    field,
                    format!(
                        "{} is not a state of a held deletion: HELD, APPROVED, APPLIED, \
                         DISCARDED, SUPERSEDED or ALL",
                        super::text::excerpt(name)
                    ),
                )
            })?;
            if !states.contains(&state) {
                states.push(state);
            }
        }
        Ok(states)
    }
}

/// Where a held deletion is in its life: HELD → APPROVED → APPLIED (by the next run), HELD
/// or APPROVED → DISCARDED (record restored), HELD or APPROVED → SUPERSEDED (the ERP sent
/// the record again).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeleteState {
    /// Held by the delete guard, waiting for a person.
    Held,
    /// Approved: the next run applies it.
    Approved,
    /// Delivered to the CRM (final).
    Applied,
    /// Discarded: the record was restored (final).
    Discarded,
    /// The ERP sent the record again (final).
    Superseded,
}

impl DeleteState {
    /// Every state.
    pub const ALL: [DeleteState; 5] = [
        DeleteState::Held,
        DeleteState::Approved,
        DeleteState::Applied,
        DeleteState::Discarded,
        DeleteState::Superseded,
    ];

    /// The states of a deletion still waiting: held, or approved and not yet applied.
    pub const WAITING: [DeleteState; 2] = [DeleteState::Held, DeleteState::Approved];

    /// The state's name, as stored and shown ("HELD").
    pub const fn as_str(self) -> &'static str {
        match self {
            DeleteState::Held => "HELD",
            DeleteState::Approved => "APPROVED",
            DeleteState::Applied => "APPLIED",
            DeleteState::Discarded => "DISCARDED",
            DeleteState::Superseded => "SUPERSEDED",
        }
    }

    /// The state a stored name names; `None` for an unknown one.
    pub fn parse(s: &str) -> Option<DeleteState> {
        DeleteState::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

impl fmt::Display for DeleteState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The table a request names for held deletions: only companies and contacts are guarded.
pub fn guarded_table(id: &str) -> Result<Table> {
    Table::parse(id).filter(|t| t.is_crm()).ok_or_else(|| {
        AppError::InvalidArgument(format!(
            "table {id:?}: deletions are guarded for company and contact only"
        ))
    })
}

/// A staged record the CRM has not received in its current version.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    /// The record's id in the ERP.
    pub external_id: String,
    /// Normalized fields.
    pub fields: serde_json::Map<String, serde_json::Value>,
    /// A tombstone.
    pub deleted: bool,
    /// The version (its content hash marks it delivered).
    pub version: RecordVersion,
    /// Whether an earlier version was delivered (an update rather than an insert).
    pub delivered_before: bool,
}

#[cfg(test)]
mod delete_state_tests {
    use super::*;

    #[test]
    fn delete_states_read_back_from_their_stored_names() {
        for s in DeleteState::ALL {
            assert_eq!(DeleteState::parse(s.as_str()), Some(s));
        }
        assert_eq!(DeleteState::parse("held"), None);
        assert_eq!(DeleteState::Held.to_string(), "HELD");
    }

    #[test]
    fn a_listing_names_states_or_all_and_defaults_to_the_waiting_ones() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            DeleteFilter::states(&[], "states").unwrap(),
            DeleteState::WAITING
        );
        assert_eq!(
            DeleteFilter::states(&names(&["all"]), "states").unwrap(),
            DeleteState::ALL
        );
        assert_eq!(
            DeleteFilter::states(&names(&["discarded", "APPLIED", "DISCARDED"]), "states").unwrap(),
            [DeleteState::Discarded, DeleteState::Applied]
        );
        let err = DeleteFilter::states(&names(&["HELD", "gone"]), "states").unwrap_err();
        assert_eq!(err.field, "states");
        assert!(err.description.contains("\"gone\""), "{err:?}");
    }

    #[test]
    fn reopening_takes_a_discarded_deletion_back_to_held() {
        assert_eq!(Resolution::Reopen.from_states(), [DeleteState::Discarded]);
        assert_eq!(Resolution::Reopen.to_state(), DeleteState::Held);
        assert_eq!(Resolution::Discard.from_states(), DeleteState::WAITING);
    }

    #[test]
    fn only_companies_and_contacts_have_guarded_deletions() {
        assert_eq!(guarded_table("company").unwrap(), Table::Company);
        assert_eq!(guarded_table("contact").unwrap(), Table::Contact);
        for bad in ["order", "nope", ""] {
            assert_eq!(
                guarded_table(bad).unwrap_err().to_string(),
                AppError::InvalidArgument(format!(
                    "table {bad:?}: deletions are guarded for company and contact only"
                ))
                .to_string()
            );
        }
    }
}

#[cfg(test)]
mod batch_key_tests {
    use super::*;

    fn v(hash: i64, request: &str) -> RecordVersion {
        RecordVersion {
            content_hash: hash,
            updated_at: None,
            request_id: request.into(),
        }
    }

    #[test]
    fn a_batch_key_follows_the_batch_content_only() {
        let (a, b) = (v(1, "r1"), v(2, "r1"));
        let key = |method: &str, tenant: &str, recs: &[(&str, &RecordVersion)]| {
            batch_key(method, tenant, recs.iter().copied())
        };
        let k = key("UpsertCompanies", "acme", &[("c1", &a), ("c2", &b)]);
        assert_eq!(k.len(), 32);
        assert!(k
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_eq!(k, key("UpsertCompanies", "acme", &[("c1", &a), ("c2", &b)]));
        let others = [
            key("UpsertContacts", "acme", &[("c1", &a), ("c2", &b)]),
            key("UpsertCompanies", "acme2", &[("c1", &a), ("c2", &b)]),
            key("UpsertCompanies", "acme", &[("c2", &b), ("c1", &a)]),
            key("UpsertCompanies", "acme", &[("c1", &a)]),
            key("UpsertCompanies", "acme", &[("c1", &b), ("c2", &b)]),
            // The same content again from a later request (a revert) is a new version.
            key(
                "UpsertCompanies",
                "acme",
                &[("c1", &v(1, "r2")), ("c2", &b)],
            ),
            key(
                "UpsertCompanies",
                "acme",
                &[
                    (
                        "c1",
                        &RecordVersion {
                            updated_at: Some(DateTime::UNIX_EPOCH),
                            ..a.clone()
                        },
                    ),
                    ("c2", &b),
                ],
            ),
        ];
        for o in &others {
            assert_ne!(&k, o);
        }
        assert_eq!(v(-1, "").hash_hex(), "ffffffffffffffff");
        assert_eq!(v(255, "").hash_hex(), "00000000000000ff");
    }
}
