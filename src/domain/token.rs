//! API tokens: what a bearer may do, and how secrets are made and checked.
//!
//! A token reads `esk_<id>_<secret>`: the public id (`tok_<id>`) finds its row, and the
//! row holds a random salt and SHA-256(salt ‖ token), compared in constant time. The secret
//! is shown once, at issue, and never stored. Tokens carry 256 random bits, so a fast hash
//! is enough (a slow password hash would only slow every request down); the salt makes a
//! stolen table useless for precomputed lookups. Tokens issued before salts (`esk_` and
//! 64 hex digits) are still found by their unsalted hash until revoked.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::tenant::TenantId;
use super::text::hex;
use crate::error::FieldViolation;

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The host CRM: IntegrationHistory, for its listed tenants or all.
    Crm,
    /// An ERP or its middleware: ErpIngest, for exactly one tenant.
    Erp,
    /// The host's backend: Admin (provisioning), for every tenant.
    Admin,
}

impl Role {
    /// The stored and CLI spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Crm => "crm",
            Self::Erp => "erp",
            Self::Admin => "admin",
        }
    }

    /// Parses the stored and CLI spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "crm" => Some(Self::Crm),
            "erp" => Some(Self::Erp),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }
}

/// Which tenants a token reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantScope {
    /// Every tenant, present and future (crm tokens only).
    All,
    /// Exactly these tenants.
    Listed(Vec<TenantId>),
}

impl TenantScope {
    /// Whether the scope covers `tenant`.
    pub fn covers(&self, tenant: &TenantId) -> bool {
        match self {
            Self::All => true,
            Self::Listed(ids) => ids.contains(tenant),
        }
    }
}

/// A verified token: what the bearer of a request may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The token's public id (`tok_…`), safe to log.
    pub token_id: String,
    /// What it is for.
    pub role: Role,
    /// Which tenants it reaches.
    pub scope: TenantScope,
}

impl Grant {
    /// The one tenant of an erp token; None for any other token.
    pub fn erp_tenant(&self) -> Option<&TenantId> {
        match (&self.role, &self.scope) {
            (Role::Erp, TenantScope::Listed(ids)) if ids.len() == 1 => ids.first(),
            _ => None,
        }
    }

    /// Checks a token's shape before it is stored: erp tokens name exactly one tenant,
    /// crm tokens some or all, admin tokens all. The violation names the request field
    /// (`tenant_ids`, or `all_tenants` for an erp token asked for every tenant).
    pub fn validate(role: Role, scope: &TenantScope) -> Result<(), FieldViolation> {
        match (role, scope) {
            (Role::Erp, TenantScope::Listed(ids)) if ids.len() == 1 => Ok(()),
            (Role::Erp, TenantScope::All) => Err(FieldViolation::new(
                "all_tenants",
                "an erp token is for exactly one tenant: name it once (--tenant ID)",
            )),
            (Role::Erp, _) => Err(FieldViolation::new(
                "tenant_ids",
                "an erp token is for exactly one tenant: name it once (--tenant ID)",
            )),
            (Role::Crm, TenantScope::Listed(ids)) if ids.is_empty() => Err(FieldViolation::new(
                "tenant_ids",
                "a crm token needs one or more tenants (--tenant ID, repeatable) or all tenants (--all-tenants)",
            )),
            (Role::Crm, _) => Ok(()),
            (Role::Admin, TenantScope::All) => Ok(()),
            (Role::Admin, _) => Err(FieldViolation::new(
                "tenant_ids",
                "an admin token reaches every tenant: name none",
            )),
        }
    }
}

impl TenantScope {
    /// The scope a request asks for: every tenant with `all_tenants`, or for an admin
    /// token naming none; else the tenants named ([`Grant::validate`] judges the result).
    pub fn requested(role: Role, tenants: Vec<TenantId>, all_tenants: bool) -> Self {
        if all_tenants || (role == Role::Admin && tenants.is_empty()) {
            Self::All
        } else {
            Self::Listed(tenants)
        }
    }
}

/// The most days a token may live: ten years.
pub const MAX_EXPIRES_IN_DAYS: u32 = 3650;
/// The longest label, in characters.
pub const MAX_LABEL_CHARS: usize = 200;

/// A token to issue, as asked (the operator's command or Admin.IssueToken alike).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// What it is for.
    pub role: Role,
    /// Which tenants it reaches.
    pub scope: TenantScope,
    /// It stops working this many days after issue; None: never.
    pub expires_in_days: Option<u32>,
    /// What the issuer calls it ("" for nothing).
    pub label: String,
}

impl TokenRequest {
    /// Every violation of the request at once: the scope its role allows, the expiry
    /// within 1..=[`MAX_EXPIRES_IN_DAYS`], the label's length and characters.
    pub fn check(&self) -> Result<(), Vec<FieldViolation>> {
        let mut violations = Vec::new();
        if let Err(v) = Grant::validate(self.role, &self.scope) {
            violations.push(v);
        }
        if self
            .expires_in_days
            .is_some_and(|d| !(1..=MAX_EXPIRES_IN_DAYS).contains(&d))
        {
            violations.push(FieldViolation::new(
                "expires_in_days",
                format!("must be 1 to {MAX_EXPIRES_IN_DAYS} days when set"),
            ));
        }
        if let Err(v) = super::text::check("label", &self.label, MAX_LABEL_CHARS) {
            violations.push(v);
        }
        if violations.is_empty() {
            Ok(())
        } else {
            Err(violations)
        }
    }
}

/// A token's public id as asked for (`tok_` and 12 lowercase hex digits); the reason
/// otherwise.
pub fn parse_token_id(id: &str) -> Result<&str, String> {
    let digits = id.strip_prefix("tok_").unwrap_or_default();
    if digits.len() == 12
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(id)
    } else {
        Err(format!(
            "{} is not a token id: tok_ and 12 lowercase hex digits",
            super::text::excerpt(id)
        ))
    }
}

/// A freshly made token: the secret goes to the user once, the rest is stored.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// Public id, `tok_` and 12 hex digits.
    pub id: String,
    /// The bearer secret, `esk_`, the id's 12 hex digits, `_` and 64 hex digits.
    pub secret: String,
    /// Random salt, 32 hex digits.
    pub salt: String,
    /// SHA-256 of the salt and the secret, hex.
    pub hash: String,
}

impl NewToken {
    /// Makes a token from the operating system's randomness.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; 32 + 6 + 16];
        getrandom::fill(&mut bytes)?;
        let id = hex(&bytes[32..38]);
        let secret = format!("esk_{id}_{}", hex(&bytes[..32]));
        let salt = hex(&bytes[38..]);
        Ok(Self {
            id: format!("tok_{id}"),
            hash: salted_hash(&salt, &secret),
            salt,
            secret,
        })
    }
}

/// What a presented bearer secret is, by its shape alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented<'a> {
    /// `esk_<id>_<secret>`: the row is found by its id.
    Salted {
        /// The public id, `tok_…`.
        id: String,
        /// The whole secret, as hashed.
        secret: &'a str,
    },
    /// `esk_<64 hex>`, issued before salts: found by its unsalted hash.
    Legacy(&'a str),
}

/// The shape of `secret`; None for anything erpsync never issued.
pub fn presented(secret: &str) -> Option<Presented<'_>> {
    let rest = secret.strip_prefix("esk_")?;
    let is_hex = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    };
    match rest.split_once('_') {
        Some((id, key)) if id.len() == 12 && key.len() == 64 && is_hex(id) && is_hex(key) => {
            Some(Presented::Salted {
                id: format!("tok_{id}"),
                secret,
            })
        }
        None if rest.len() == 64 && is_hex(rest) => Some(Presented::Legacy(secret)),
        _ => None,
    }
}

/// The stored form of a salted token: SHA-256 of the salt (its hex text) then the secret, hex.
pub fn salted_hash(salt_hex: &str, secret: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt_hex.as_bytes());
    h.update(secret.as_bytes());
    hex(&h.finalize())
}

/// The stored form of a token issued before salts: SHA-256 of the secret, hex.
pub fn legacy_hash(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// Whether two stored-form hashes are equal, in time that does not depend on where they
/// differ.
pub fn hashes_match(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// A stored token as `erpsync token list` shows it (never the secret).
#[derive(Debug, Clone)]
pub struct TokenInfo {
    /// What the token may do.
    pub grant: Grant,
    /// When it was issued.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When it stops working, if it does.
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When it last authenticated a call (to the minute), if it has.
    pub last_used_at: Option<chrono::DateTime<chrono::Utc>>,
    /// What the issuer called it ("" for nothing).
    pub label: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_unique_salted_and_name_their_id() {
        let a = NewToken::generate().unwrap();
        let b = NewToken::generate().unwrap();
        assert_ne!(a.secret, b.secret);
        assert_ne!(a.id, b.id);
        assert_ne!(a.salt, b.salt);
        assert_eq!(a.hash, salted_hash(&a.salt, &a.secret));
        assert_ne!(a.hash, legacy_hash(&a.secret));
        assert_eq!(a.secret.len(), 4 + 12 + 1 + 64);
        assert_eq!(a.id.len(), 4 + 12);
        assert_eq!(
            presented(&a.secret),
            Some(Presented::Salted {
                id: a.id.clone(),
                secret: &a.secret
            })
        );
    }

    #[test]
    fn only_issued_shapes_are_looked_up() {
        let legacy = format!("esk_{}", "ab".repeat(32));
        assert_eq!(presented(&legacy), Some(Presented::Legacy(&legacy)));
        for bad in [
            "",
            "esk_",
            "Bearer x",
            &format!("esk_{}", "AB".repeat(32)),
            &format!("esk_{}_{}", "a".repeat(11), "b".repeat(64)),
            &format!("esk_{}_{}", "a".repeat(12), "b".repeat(63)),
            &format!("esk_{}_{}_", "a".repeat(12), "b".repeat(64)),
            &format!("tok_{}", "a".repeat(12)),
        ] {
            assert_eq!(presented(bad), None, "{bad:?}");
        }
        assert!(hashes_match("abc", "abc"));
        assert!(!hashes_match("abc", "abd"));
        assert!(!hashes_match("abc", "abcd"));
    }

    #[test]
    fn erp_tokens_name_exactly_one_tenant() {
        let t = |s: &str| TenantId::parse(s).unwrap();
        assert!(Grant::validate(Role::Erp, &TenantScope::Listed(vec![t("a")])).is_ok());
        assert!(Grant::validate(Role::Erp, &TenantScope::All).is_err());
        assert!(Grant::validate(Role::Erp, &TenantScope::Listed(vec![t("a"), t("b")])).is_err());
        assert!(Grant::validate(Role::Crm, &TenantScope::Listed(vec![])).is_err());
        assert!(Grant::validate(Role::Crm, &TenantScope::All).is_ok());
        assert!(Grant::validate(Role::Admin, &TenantScope::All).is_ok());
        let named = Grant::validate(Role::Admin, &TenantScope::Listed(vec![t("a")]));
        assert_eq!(named.unwrap_err().field, "tenant_ids");
        assert_eq!(
            Grant::validate(Role::Erp, &TenantScope::All)
                .unwrap_err()
                .field,
            "all_tenants"
        );
    }

    #[test]
    fn a_token_request_names_every_bad_field() {
        let t = |s: &str| TenantId::parse(s).unwrap();
        let ok = TokenRequest {
            role: Role::Erp,
            scope: TenantScope::requested(Role::Erp, vec![t("a")], false),
            expires_in_days: Some(MAX_EXPIRES_IN_DAYS),
            label: "é".repeat(MAX_LABEL_CHARS),
        };
        assert_eq!(ok.check(), Ok(()));
        let bad = TokenRequest {
            role: Role::Erp,
            scope: TenantScope::requested(Role::Erp, vec![], false),
            expires_in_days: Some(0),
            label: "a\0b".into(),
        };
        let fields: Vec<String> = bad
            .check()
            .unwrap_err()
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(fields, ["tenant_ids", "expires_in_days", "label"]);
        let long = TokenRequest {
            label: "x".repeat(MAX_LABEL_CHARS + 1),
            expires_in_days: Some(MAX_EXPIRES_IN_DAYS + 1),
            ..ok
        };
        assert_eq!(long.check().unwrap_err().len(), 2);
        assert_eq!(
            TenantScope::requested(Role::Admin, vec![], false),
            TenantScope::All
        );
    }

    #[test]
    fn token_ids_are_tok_and_twelve_lowercase_hex_digits() {
        assert_eq!(parse_token_id("tok_0123456789ab"), Ok("tok_0123456789ab"));
        for bad in [
            "",
            "tok_",
            "tok_0123456789AB",
            "tok_0123456789abc",
            "esk_0123456789ab",
            "tok_0123456789ag",
        ] {
            assert!(parse_token_id(bad).is_err(), "{bad:?}");
        }
    }
}
