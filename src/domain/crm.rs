//! What the CRM receives: companies and contacts, built from staged records.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

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
        }
    }
}

/// A held deletion.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingDelete {
    /// company or contact.
    pub table: String,
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
    /// HELD or APPROVED (waiting), APPLIED, DISCARDED or SUPERSEDED (final).
    pub state: String,
    /// When it entered its state (the detection time while HELD).
    pub state_changed_at: DateTime<Utc>,
}

/// Approve (the next run deletes) or discard (the record is restored in staging).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// Apply the deletion at the next run.
    Approve,
    /// Keep the record: restore it in staging as the CRM has it.
    Discard,
}
