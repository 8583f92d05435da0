//! Text from callers, quoted back safely (a message names what was wrong with an input
//! without echoing all of it: a 100 000-character id must not come back whole), and the
//! one hexadecimal encoding of tokens, salts, sealed values and page tokens.

/// The most characters of a caller's input a message quotes.
pub const EXCERPT_CHARS: usize = 64;

/// `input` quoted for a message: whole when short, else its first [`EXCERPT_CHARS`]
/// characters and how long it was.
pub fn excerpt(input: &str) -> String {
    let total = input.chars().count();
    if total <= EXCERPT_CHARS {
        format!("{input:?}")
    } else {
        let head: String = input.chars().take(EXCERPT_CHARS).collect();
        format!("{head:?}… ({total} characters)")
    }
}

/// The NUL character no database text column takes (PostgreSQL refuses it, SQLite cuts
/// some reads at it): one rule for every backend, checked where input comes in.
pub fn has_nul(input: &str) -> bool {
    input.contains('\0')
}

/// What a message says of a NUL character.
pub const NUL_REASON: &str = "must not contain the NUL character (\\u0000)";

/// `bytes` as lower-case hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The bytes of hexadecimal `text` (either case); None when it is not hex.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_inputs_are_quoted_whole_and_long_ones_cut() {
        assert_eq!(excerpt("acme"), "\"acme\"");
        let long = "é".repeat(100_000);
        let quoted = excerpt(&long);
        assert!(quoted.chars().count() < 100, "{quoted}");
        assert!(quoted.ends_with("(100000 characters)"));
    }

    #[test]
    fn hex_round_trips_and_refuses_what_is_not_hex() {
        assert_eq!(hex(&[0, 0xab, 0xff]), "00abff");
        assert_eq!(unhex("00ABff"), Some(vec![0, 0xab, 0xff]));
        for bad in ["0", "zz", "+f", "é0"] {
            assert_eq!(unhex(bad), None, "{bad:?}");
        }
    }
}
