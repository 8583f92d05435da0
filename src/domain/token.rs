//! API tokens: what a bearer may do, and how secrets are made and hashed.
//! Only the SHA-256 of a token is ever stored; the secret is shown once, at issue.

use sha2::{Digest, Sha256};

use super::tenant::TenantId;

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The host CRM: IntegrationHistory, for its listed tenants or all.
    Crm,
    /// An ERP or its middleware: ErpIngest, for exactly one tenant.
    Erp,
}

impl Role {
    /// The stored and CLI spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Crm => "crm",
            Self::Erp => "erp",
        }
    }

    /// Parses the stored and CLI spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "crm" => Some(Self::Crm),
            "erp" => Some(Self::Erp),
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

    /// Checks a token's shape before it is stored: erp tokens name exactly one tenant.
    pub fn validate(role: Role, scope: &TenantScope) -> Result<(), String> {
        match (role, scope) {
            (Role::Erp, TenantScope::Listed(ids)) if ids.len() == 1 => Ok(()),
            (Role::Erp, _) => {
                Err("an erp token is for exactly one tenant: pass --tenant ID once".into())
            }
            (Role::Crm, TenantScope::Listed(ids)) if ids.is_empty() => {
                Err("a crm token needs --tenant ID (repeatable) or --all-tenants".into())
            }
            (Role::Crm, _) => Ok(()),
        }
    }
}

/// A freshly made token: the secret goes to the user once, the rest is stored.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// Public id, `tok_` and 12 hex digits.
    pub id: String,
    /// The bearer secret, `esk_` and 64 hex digits.
    pub secret: String,
    /// SHA-256 of the secret, hex.
    pub hash: String,
}

impl NewToken {
    /// Makes a token from the operating system's randomness.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; 38];
        getrandom::fill(&mut bytes)?;
        let secret = format!("esk_{}", hex(&bytes[..32]));
        Ok(Self {
            id: format!("tok_{}", hex(&bytes[32..])),
            hash: hash_secret(&secret),
            secret,
        })
    }
}

/// The stored form of a secret: SHA-256, hex. Tokens carry 256 random bits, so a plain
/// hash is enough; a slow password hash would only slow every request down.
pub fn hash_secret(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_unique_and_hash_to_their_stored_form() {
        let a = NewToken::generate().unwrap();
        let b = NewToken::generate().unwrap();
        assert_ne!(a.secret, b.secret);
        assert_ne!(a.id, b.id);
        assert_eq!(a.hash, hash_secret(&a.secret));
        assert_eq!(a.secret.len(), 4 + 64);
        assert_eq!(a.id.len(), 4 + 12);
        assert_eq!(a.hash.len(), 64);
    }

    #[test]
    fn erp_tokens_name_exactly_one_tenant() {
        let t = |s: &str| TenantId::parse(s).unwrap();
        assert!(Grant::validate(Role::Erp, &TenantScope::Listed(vec![t("a")])).is_ok());
        assert!(Grant::validate(Role::Erp, &TenantScope::All).is_err());
        assert!(Grant::validate(Role::Erp, &TenantScope::Listed(vec![t("a"), t("b")])).is_err());
        assert!(Grant::validate(Role::Crm, &TenantScope::Listed(vec![])).is_err());
        assert!(Grant::validate(Role::Crm, &TenantScope::All).is_ok());
    }
}
