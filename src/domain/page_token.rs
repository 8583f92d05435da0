//! Page tokens: opaque to callers and checked when they come back. A token names the
//! listing it belongs to and the position after which the next page starts, with a
//! checksum: a token of another listing, a hand-made position or garbage is refused as
//! INVALID_ARGUMENT instead of silently starting somewhere.

use sha2::{Digest, Sha256};

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
}

impl Listing {
    fn tag(self) -> &'static str {
        match self {
            Self::Runs => "runs",
            Self::PendingDeletes => "pending_deletes",
            Self::Companies => "companies",
        }
    }
}

/// What a refused token is told.
pub const NOT_ISSUED: &str = "not a page token this server issued for this listing";

/// The token for the page after `position` in `listing`.
pub fn encode(listing: Listing, position: &str) -> String {
    let payload = hex(position.as_bytes());
    format!("{payload}.{}", check(listing, &payload))
}

/// The position a token names; None for "" (the first page).
pub fn decode(listing: Listing, token: &str) -> Result<Option<String>, &'static str> {
    if token.is_empty() {
        return Ok(None);
    }
    let (payload, sum) = token.rsplit_once('.').ok_or(NOT_ISSUED)?;
    if sum != check(listing, payload) {
        return Err(NOT_ISSUED);
    }
    let bytes = unhex(payload).ok_or(NOT_ISSUED)?;
    String::from_utf8(bytes).map(Some).map_err(|_| NOT_ISSUED)
}

fn check(listing: Listing, payload: &str) -> String {
    let mut h = Sha256::new();
    h.update(listing.tag().as_bytes());
    h.update([0]);
    h.update(payload.as_bytes());
    hex(&h.finalize()[..6])
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

    #[test]
    fn tokens_round_trip_and_belong_to_their_listing() {
        let t = encode(Listing::Companies, "C-001/ã");
        assert_eq!(decode(Listing::Companies, &t), Ok(Some("C-001/ã".into())));
        assert_eq!(decode(Listing::PendingDeletes, &t), Err(NOT_ISSUED));
        assert_eq!(decode(Listing::Companies, ""), Ok(None));
        for bad in [
            "C-001",
            "zz.zz",
            ".",
            "00.000000000000",
            &t[1..],
            &format!("{t}0"),
        ] {
            assert_eq!(decode(Listing::Companies, bad), Err(NOT_ISSUED), "{bad:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]
        #[test]
        fn any_text_decodes_to_an_answer_never_a_panic(token in ".{0,200}") {
            let _ = decode(Listing::Runs, &token);
        }

        #[test]
        fn every_position_round_trips(position in ".{0,300}") {
            let t = encode(Listing::Runs, &position);
            prop_assert_eq!(decode(Listing::Runs, &t), Ok(Some(position)));
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
