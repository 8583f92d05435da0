//! Text from callers, quoted back safely (a message names what was wrong with an input
//! without echoing all of it: a 100 000-character id must not come back whole), and the
//! one hexadecimal encoding of tokens, salts, sealed values and page tokens.

use crate::error::FieldViolation;

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

/// The longest id a request may name, in characters: a run, a record's external id, a
/// seller, a stage, a table. Real ones are far shorter (run ids are 36, table ids at most
/// 20); an ERP's own ids fit with room to spare.
pub const MAX_ID_CHARS: usize = 200;
/// The longest short form a request may send, in characters: a time zone, a civil date,
/// a time of day, a cron expression, a page token, an ABC basis. Real ones are under 100.
pub const MAX_SHORT_CHARS: usize = 200;
/// The longest long form a request may send, in characters: a connection URL, a View
/// watermark.
pub const MAX_LONG_CHARS: usize = 2048;

/// The one rule for a request's text field before it is parsed or reaches a query: no NUL
/// character (no database text column takes it, and the backends differ on it) and at
/// most `max_chars` characters. The violation names `field`.
pub fn check(field: &str, value: &str, max_chars: usize) -> Result<(), FieldViolation> {
    if has_nul(value) {
        return Err(FieldViolation::new(field, NUL_REASON));
    }
    let chars = value.chars().count();
    if chars > max_chars {
        return Err(FieldViolation::new(
            field,
            format!("must be at most {max_chars} characters, got {chars}"),
        ));
    }
    Ok(())
}

/// A span as a person writes it: "45 s", "1 min", "1 h 30 min", "24 h", "3 d 4 h".
pub fn human_duration(d: chrono::Duration) -> String {
    let secs = d.num_seconds().max(0);
    let (days, hours, mins) = (secs / 86_400, secs % 86_400 / 3_600, secs % 3_600 / 60);
    let join = |big: i64, big_unit: &str, small: i64, small_unit: &str| {
        if small == 0 {
            format!("{big} {big_unit}")
        } else {
            format!("{big} {big_unit} {small} {small_unit}")
        }
    };
    match secs {
        0..60 => format!("{secs} s"),
        60..3_600 => format!("{mins} min"),
        // Up to two days, hours read best ("24 h", "36 h").
        3_600..172_800 => join(secs / 3_600, "h", mins, "min"),
        _ => join(days, "d", hours, "h"),
    }
}

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
    fn request_text_is_refused_for_a_nul_or_its_length_naming_the_field() {
        assert!(check("run_id", "r-1", MAX_ID_CHARS).is_ok());
        let nul = check("run_id", "r\0", MAX_ID_CHARS).unwrap_err();
        assert_eq!(
            (nul.field.as_str(), nul.description.as_str()),
            ("run_id", NUL_REASON)
        );
        let long = check("stage", &"é".repeat(MAX_ID_CHARS + 1), MAX_ID_CHARS).unwrap_err();
        assert_eq!(long.field, "stage");
        assert_eq!(long.description, "must be at most 200 characters, got 201");
        assert!(check("stage", &"é".repeat(MAX_ID_CHARS), MAX_ID_CHARS).is_ok());
    }

    #[test]
    fn durations_read_as_a_person_writes_them() {
        let d = chrono::Duration::seconds;
        for (secs, text) in [
            (0, "0 s"),
            (45, "45 s"),
            (60, "1 min"),
            (90, "1 min"),
            (5_400, "1 h 30 min"),
            (86_400, "24 h"),
            (129_600, "36 h"),
            (259_200, "3 d"),
            (273_600, "3 d 4 h"),
            (31_536_000, "365 d"),
        ] {
            assert_eq!(human_duration(d(secs)), text, "{secs} s");
        }
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
