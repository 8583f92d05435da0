//! Page tokens: opaque to callers and checked when they come back. A token names the
//! position after which the next page starts, signed with the server's page key
//! (HMAC-SHA256 over the listing, the tenant and the position): a token of another
//! listing or another tenant, a hand-made position or garbage is refused as
//! INVALID_ARGUMENT instead of silently starting somewhere. The key is secret and shared
//! by every server on the database (`storage::instance`), so only erpsync can make a
//! token, and one made by a replica or before a restart still pages. Tokens of the
//! earlier, unkeyed format are refused the same way: the caller starts at page one.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::tenant::TenantId;
use super::text::{hex, unhex};
use crate::error::FieldViolation;

/// The listings that page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// ListRuns: position "<started_at micros>:<run id>".
    Runs,
    /// ListPendingDeletes: position is an external id.
    PendingDeletes,
    /// ListCompanies: position is an external id.
    Companies,
    /// Admin.ListTenants (across tenants): position is a tenant id.
    Tenants,
    /// Admin.ListTokens (of one tenant, or across tenants): position is
    /// "<created_at micros>:<token id>".
    Tokens,
    /// GetRecordTrace (one record's events, newest first): position is
    /// "<table>\n<external id>\n<trail id>".
    RecordTrace,
}

impl Listing {
    fn tag(self) -> &'static str {
        match self {
            Self::Runs => "runs",
            Self::PendingDeletes => "pending_deletes",
            Self::Companies => "companies",
            Self::Tenants => "tenants",
            Self::Tokens => "tokens",
            Self::RecordTrace => "record_trace",
        }
    }
}

/// Whose listing a token pages: one tenant's, or one across every tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    /// One tenant's listing.
    Tenant(&'a TenantId),
    /// A listing across tenants (no tenant id is empty, so the two never meet).
    Every,
}

impl Scope<'_> {
    fn as_str(&self) -> &str {
        match self {
            Self::Tenant(t) => t.as_str(),
            Self::Every => "",
        }
    }
}

impl<'a> From<&'a TenantId> for Scope<'a> {
    fn from(t: &'a TenantId) -> Self {
        Self::Tenant(t)
    }
}

/// What a refused token is told.
pub const NOT_ISSUED: &str = "not a page token this server issued for this listing";

/// Bytes of the HMAC a token carries: 128 bits, past any guessing.
const TAG: usize = 16;

/// The 32-byte key page tokens are signed with.
#[derive(Clone, PartialEq, Eq)]
pub struct PageKey([u8; 32]);

impl std::fmt::Debug for PageKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PageKey(***)")
    }
}

impl PageKey {
    /// A new key from the operating system's randomness.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut key = [0; 32];
        getrandom::fill(&mut key)?;
        Ok(Self(key))
    }

    /// A stored key: 64 hexadecimal digits.
    pub fn parse(text: &str) -> Option<Self> {
        let bytes = unhex(text)?;
        Some(Self(bytes.try_into().ok()?))
    }

    /// The key as stored.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// The token for the page after `position` in `scope`'s `listing`.
    pub fn encode<'a>(
        &self,
        listing: Listing,
        scope: impl Into<Scope<'a>>,
        position: &str,
    ) -> String {
        let payload = hex(position.as_bytes());
        let tag = self
            .mac(listing, scope.into(), &payload)
            .finalize()
            .into_bytes();
        format!("{payload}.{}", hex(&tag[..TAG]))
    }

    /// The position a token of `scope`'s `listing` names; None for "" (the first page).
    pub fn decode<'a>(
        &self,
        listing: Listing,
        scope: impl Into<Scope<'a>>,
        token: &str,
    ) -> Result<Option<String>, &'static str> {
        if token.is_empty() {
            return Ok(None);
        }
        let (payload, tag) = token.rsplit_once('.').ok_or(NOT_ISSUED)?;
        let tag = unhex(tag).filter(|t| t.len() == TAG).ok_or(NOT_ISSUED)?;
        // Compared in constant time.
        self.mac(listing, scope.into(), payload)
            .verify_truncated_left(&tag)
            .map_err(|_| NOT_ISSUED)?;
        let bytes = unhex(payload).ok_or(NOT_ISSUED)?;
        String::from_utf8(bytes).map(Some).map_err(|_| NOT_ISSUED)
    }

    /// The HMAC of a token's parts, each ended by a NUL (which none of them holds).
    fn mac(&self, listing: Listing, scope: Scope<'_>, payload: &str) -> Hmac<Sha256> {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        for part in [
            "erpsync page token v2",
            listing.tag(),
            scope.as_str(),
            payload,
        ] {
            mac.update(part.as_bytes());
            mac.update(&[0]);
        }
        mac
    }
}

/// A listing's page size: `requested`, or `default` for 0; the violation of
/// `page_size` past `max`.
pub fn page_size(requested: u32, default: u64, max: u64) -> Result<u64, FieldViolation> {
    match u64::from(requested) {
        0 => Ok(default),
        n if n <= max => Ok(n),
        _ => Err(FieldViolation::new(
            "page_size",
            format!("must be at most {max}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tenant(id: &str) -> TenantId {
        TenantId::parse(id).unwrap()
    }

    /// A token of the format before keys: the position and 6 bytes of an unkeyed
    /// SHA-256 anyone can compute.
    fn unkeyed(listing: Listing, position: &str) -> String {
        use sha2::Digest;
        let payload = hex(position.as_bytes());
        let mut h = Sha256::new();
        h.update(listing.tag().as_bytes());
        h.update([0]);
        h.update(payload.as_bytes());
        format!("{payload}.{}", hex(&h.finalize()[..6]))
    }

    #[test]
    fn tokens_round_trip_and_belong_to_their_listing_tenant_and_key() {
        let key = PageKey::generate().unwrap();
        let acme = tenant("acme");
        let t = key.encode(Listing::Companies, &acme, "C-001/ã");
        assert_eq!(
            key.decode(Listing::Companies, &acme, &t),
            Ok(Some("C-001/ã".into()))
        );
        assert_eq!(
            key.decode(Listing::PendingDeletes, &acme, &t),
            Err(NOT_ISSUED)
        );
        assert_eq!(
            key.decode(Listing::Companies, &tenant("globex"), &t),
            Err(NOT_ISSUED)
        );
        let other = PageKey::generate().unwrap();
        assert_eq!(other.decode(Listing::Companies, &acme, &t), Err(NOT_ISSUED));
        assert_eq!(key.decode(Listing::Companies, &acme, ""), Ok(None));
        let stored = PageKey::parse(&key.to_hex()).unwrap();
        assert_eq!(
            stored.decode(Listing::Companies, &acme, &t),
            Ok(Some("C-001/ã".into()))
        );
        for bad in [
            "C-001",
            "zz.zz",
            ".",
            "00.000000000000",
            &unkeyed(Listing::Companies, "C-001/ã"),
            &unkeyed(Listing::Companies, "ZZZ"),
            &t[1..],
            &format!("{t}0"),
            &t[..t.len() - 2],
        ] {
            assert_eq!(
                key.decode(Listing::Companies, &acme, bad),
                Err(NOT_ISSUED),
                "{bad:?}"
            );
        }
        assert_eq!(format!("{key:?}"), "PageKey(***)");
        let every = key.encode(Listing::Tokens, Scope::Every, "1:tok_a");
        assert_eq!(
            key.decode(Listing::Tokens, Scope::Every, &every),
            Ok(Some("1:tok_a".into()))
        );
        assert_eq!(key.decode(Listing::Tokens, &acme, &every), Err(NOT_ISSUED));
        assert_eq!(
            key.decode(Listing::Tenants, Scope::Every, &every),
            Err(NOT_ISSUED)
        );
        assert!(PageKey::parse("ab").is_none());
        assert!(PageKey::parse(&"g".repeat(64)).is_none());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]
        #[test]
        fn any_text_decodes_to_an_answer_never_a_panic(token in ".{0,200}") {
            let key = PageKey([7; 32]);
            let _ = key.decode(Listing::Runs, &tenant("acme"), &token);
        }

        #[test]
        fn every_position_round_trips(position in ".{0,300}") {
            let key = PageKey([7; 32]);
            let t = key.encode(Listing::Runs, &tenant("acme"), &position);
            prop_assert_eq!(key.decode(Listing::Runs, &tenant("acme"), &t), Ok(Some(position)));
        }

        #[test]
        fn a_changed_position_is_refused(position in "[a-z0-9]{1,40}", other in "[a-z0-9]{1,40}") {
            prop_assume!(position != other);
            let key = PageKey([7; 32]);
            let t = key.encode(Listing::Companies, &tenant("acme"), &position);
            let (_, tag) = t.rsplit_once('.').unwrap();
            let forged = format!("{}.{tag}", hex(other.as_bytes()));
            prop_assert_eq!(key.decode(Listing::Companies, &tenant("acme"), &forged), Err(NOT_ISSUED));
        }
    }

    #[test]
    fn page_size_takes_the_default_for_zero_and_refuses_past_the_most() {
        assert_eq!(page_size(0, 20, 200), Ok(20));
        assert_eq!(page_size(1, 20, 200), Ok(1));
        assert_eq!(page_size(200, 20, 200), Ok(200));
        let err = page_size(201, 20, 200).unwrap_err();
        assert_eq!(err, FieldViolation::new("page_size", "must be at most 200"));
    }
}
