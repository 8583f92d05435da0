//! Credentials in text erpsync keeps: a pushed body goes to the request log and its Excel
//! export, and a free-text field is staged and delivered to the CRM, where everyone who
//! reads the Histórico or the record sees it. A credential an ERP put there by mistake is
//! replaced by `***` before it is stored ([`redact_credentials`]).
//!
//! Three shapes are masked, however they are written:
//! * an erpsync token, `esk_` followed by at least 8 hex digits (and the rest of the
//!   token): upper-case, inside a word, percent-encoded (`esk%5F…`, `%65sk_…`),
//!   JSON-escaped (`esk\u005f…`) or split by invisible characters (zero-width spaces and
//!   joiners, word joiner, BOM, soft hyphen, …);
//! * `Bearer <credential>` (any case, the same encodings): a JWT (`a.b.c`) or anything of
//!   16 characters or more; "Bearer Ltda" or "bearer of news" stay;
//! * `Basic <base64>` whose base64 decodes to `user:password`; "Basic Foods" stays.
//!
//! The text is read as a reader would take it (encodings decoded, invisible characters
//! skipped) and the credential's own characters, as written, are replaced; the rest is
//! kept byte for byte (a JSON body stays JSON: escapes are never cut).

use std::borrow::Cow;
use std::ops::Range;

/// What replaces a credential.
const MASK: &str = "***";
/// The shortest text after "Bearer " taken for a credential unless it is a JWT.
const MIN_BEARER: usize = 16;
/// Hex digits after "esk_" that make a token.
const MIN_ESK_HEX: usize = 8;

/// `text` with every credential-shaped part replaced by `***` (see the module's doc);
/// borrowed when nothing was masked.
pub fn redact_credentials(text: &str) -> Cow<'_, str> {
    let masks = credentials(text);
    if masks.is_empty() {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for m in masks {
        out.push_str(&text[at..m.start]);
        out.push_str(MASK);
        at = m.end;
    }
    out.push_str(&text[at..]);
    Cow::Owned(out)
}

/// `value` with [`redact_credentials`] applied to every text in it, at any depth (an
/// unknown field of a pushed record, kept as received otherwise).
pub fn redact_json(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(s) => Value::String(redact_credentials(s).into_owned()),
        Value::Array(items) => Value::Array(items.iter().map(redact_json).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), redact_json(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Where the credentials in `text` are, as byte ranges, in order.
fn credentials(text: &str) -> Vec<Range<usize>> {
    let mut found = Vec::new();
    let mut units = Units { text, at: 0 };
    // The last few characters read, lower-cased, to see a keyword end.
    let mut recent: Vec<Unit> = Vec::with_capacity(8);
    while let Some(u) = units.next() {
        if recent.len() == 8 {
            recent.remove(0);
        }
        recent.push(u);
        let Some(keyword) = keyword_ending(&recent) else {
            continue;
        };
        if let Some(range) = keyword.secret_after(units.clone()) {
            units.at = range.end;
            found.push(range);
            recent.clear();
        }
    }
    found
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keyword {
    Esk,
    Bearer,
    Basic,
}

/// The keyword the characters in `recent` end with; "bearer" and "basic" only as words.
fn keyword_ending(recent: &[Unit]) -> Option<Keyword> {
    let ends_with = |word: &str| -> Option<usize> {
        let n = word.chars().count();
        let start = recent.len().checked_sub(n)?;
        recent[start..]
            .iter()
            .zip(word.chars())
            .all(|(u, c)| u.c.to_ascii_lowercase() == c)
            .then_some(start)
    };
    let word_start = |start: usize| start == 0 || !recent[start - 1].c.is_alphanumeric();
    if ends_with("esk_").is_some() {
        return Some(Keyword::Esk);
    }
    match (ends_with("bearer"), ends_with("basic")) {
        (Some(s), _) if word_start(s) => Some(Keyword::Bearer),
        (_, Some(s)) if word_start(s) => Some(Keyword::Basic),
        _ => None,
    }
}

impl Keyword {
    /// The bytes of the credential that follows this keyword in `rest`, if one does.
    fn secret_after(self, mut rest: Units<'_>) -> Option<Range<usize>> {
        if self != Keyword::Esk {
            // At least one separator: white space, or '+' (a space in a query string).
            let mut separated = false;
            let mut look = rest.clone();
            while let Some(u) = look.next() {
                if !(u.c.is_whitespace() || u.c == '+') {
                    break;
                }
                separated = true;
                rest = look.clone();
            }
            if !separated {
                return None;
            }
        }
        let token: Vec<Unit> = rest.take_while(|u| token_char(u.c)).collect();
        let (first, last) = (token.first()?, token.last()?);
        let chars: String = token.iter().map(|u| u.c).collect();
        let secret = match self {
            Keyword::Esk => {
                chars.chars().take_while(char::is_ascii_hexdigit).count() >= MIN_ESK_HEX
            }
            Keyword::Bearer => chars.chars().count() >= MIN_BEARER || is_jwt(&chars),
            Keyword::Basic => decodes_to_user_and_password(&chars),
        };
        secret.then_some(first.start..last.end)
    }
}

/// A character a token, a JWT or base64 is made of.
fn token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~+/=".contains(c)
}

/// `a.b.c`: three or more non-empty parts between dots.
fn is_jwt(s: &str) -> bool {
    let parts: Vec<&str> = s.trim_end_matches('.').split('.').collect();
    parts.len() >= 3 && parts.iter().all(|p| !p.is_empty())
}

/// Whether `s` is base64 (standard or URL-safe, padding optional) of text holding a ':'.
fn decodes_to_user_and_password(s: &str) -> bool {
    let digits = s.trim_end_matches('=');
    let mut bytes = Vec::with_capacity(digits.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in digits.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return false,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            bytes.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    std::str::from_utf8(&bytes).is_ok_and(|t| t.contains(':') && !t.contains('\0'))
}

/// Characters that show nothing (format characters, zero-width spaces and joiners, the
/// BOM, the soft hyphen, variation selectors, tags): read as if absent.
fn invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}'
        | '\u{17B5}' | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{3164}'
        | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}' | '\u{1D173}'..='\u{1D17A}'
        | '\u{E0000}'..='\u{E0FFF}')
}

/// One character as a reader takes it, and the bytes it was written with.
#[derive(Debug, Clone, Copy)]
struct Unit {
    c: char,
    start: usize,
    end: usize,
}

/// The characters of a text, percent-encodings and JSON escapes decoded, invisible ones
/// skipped.
#[derive(Debug, Clone)]
struct Units<'a> {
    text: &'a str,
    at: usize,
}

impl Iterator for Units<'_> {
    type Item = Unit;

    fn next(&mut self) -> Option<Unit> {
        loop {
            let rest = &self.text[self.at..];
            let first = rest.chars().next()?;
            let start = self.at;
            let (c, len) = decode(rest, first);
            self.at += len;
            if !invisible(c) {
                return Some(Unit {
                    c,
                    start,
                    end: self.at,
                });
            }
        }
    }
}

/// The character `rest` starts with (its first char is `first`) and how many bytes it
/// takes: `%XX` (a UTF-8 sequence of them), `\uXXXX` (a surrogate pair of them), `\/`,
/// `\\`, `\"`, `\t`, `\n`, `\r`; else `first` as written.
fn decode(rest: &str, first: char) -> (char, usize) {
    let b = rest.as_bytes();
    match first {
        '%' => percent(b).unwrap_or(('%', 1)),
        '\\' => match b.get(1) {
            Some(b'u') => json_unicode(b).unwrap_or(('\\', 1)),
            Some(b'/') => ('/', 2),
            Some(b'\\') => ('\\', 2),
            Some(b'"') => ('"', 2),
            Some(b't') => ('\t', 2),
            Some(b'n') => ('\n', 2),
            Some(b'r') => ('\r', 2),
            _ => ('\\', 1),
        },
        c => (c, c.len_utf8()),
    }
}

fn hex_value(digits: &[u8]) -> Option<u32> {
    std::str::from_utf8(digits)
        .ok()
        .filter(|d| d.bytes().all(|c| c.is_ascii_hexdigit()))
        .and_then(|d| u32::from_str_radix(d, 16).ok())
}

/// `%XX`, or the two to four of them that make one UTF-8 character.
fn percent(b: &[u8]) -> Option<(char, usize)> {
    let byte = |i: usize| -> Option<u8> {
        let at = i * 3;
        (b.get(at) == Some(&b'%'))
            .then(|| b.get(at + 1..at + 3))
            .flatten()
            .and_then(hex_value)
            .map(|v| v as u8)
    };
    let lead = byte(0)?;
    let n = match lead {
        0x00..=0x7F => 1,
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF7 => 4,
        _ => return None,
    };
    let bytes: Vec<u8> = (0..n).map(byte).collect::<Option<_>>()?;
    let c = std::str::from_utf8(&bytes).ok()?.chars().next()?;
    Some((c, n * 3))
}

/// `\uXXXX`, or a surrogate pair `\uD8XX\uDCXX`.
fn json_unicode(b: &[u8]) -> Option<(char, usize)> {
    let unit = |at: usize| -> Option<u32> {
        (b.get(at..at + 2) == Some(&b"\\u"[..]))
            .then(|| b.get(at + 2..at + 6))
            .flatten()
            .and_then(hex_value)
    };
    let high = unit(0)?;
    if (0xD800..0xDC00).contains(&high) {
        let low = unit(6).filter(|l| (0xDC00..0xE000).contains(l))?;
        let c = char::from_u32(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))?;
        return Some((c, 12));
    }
    char::from_u32(high).map(|c| (c, 6))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ID: &str = "0a1b2c3d4e5f";
    const SECRET: &str = "9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0";
    const JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl";

    fn token() -> String {
        format!("esk_{ID}_{SECRET}")
    }

    /// The shapes that must be masked: (text, what must not survive).
    fn credentials_table() -> Vec<(String, String)> {
        let t = token();
        let upper = t.to_uppercase();
        let zw = |sep: &str| {
            let (a, b) = t.split_at(2);
            let (b, c) = b.split_at(10);
            format!("{a}{sep}{b}{sep}{c}")
        };
        vec![
            (format!("raw {t} here"), SECRET.into()),
            (format!("raw {upper} here"), SECRET.to_uppercase()),
            (format!("in-word x{t}"), SECRET.into()),
            (format!("url ?k=esk%5F{ID}_{SECRET}"), SECRET.into()),
            (format!("url ?k=esk%5f{ID}%5F{SECRET}"), SECRET.into()),
            (format!("url ?k=%65sk_{ID}_{SECRET}"), SECRET.into()),
            (format!("url ?k=%45%53%4B%5F{ID}_{SECRET}"), SECRET.into()),
            (
                format!(r#"{{"n":"esk\u005f{ID}_{SECRET}"}}"#),
                SECRET.into(),
            ),
            (
                format!(r#"{{"n":"esk\u005F{ID}\u005f{SECRET}"}}"#),
                SECRET.into(),
            ),
            (zw("\u{200B}"), SECRET[..4].into()),
            (zw("\u{200C}"), SECRET[..4].into()),
            (zw("\u{200D}"), SECRET[..4].into()),
            (zw("\u{2060}"), SECRET[..4].into()),
            (zw("\u{FEFF}"), SECRET[..4].into()),
            (zw("\u{00AD}"), SECRET[..4].into()),
            (zw(r"\u200b"), SECRET[..4].into()),
            (zw("%E2%80%8B"), SECRET[..4].into()),
            (format!("e\u{200B}sk_{ID}_{SECRET}"), SECRET.into()),
            (format!("Authorization: Bearer {t}"), SECRET.into()),
            (format!("Bearer {JWT}"), "c2lnbmF0dXJl".into()),
            (format!("bearer {JWT}"), "c2lnbmF0dXJl".into()),
            (format!("BEARER\t{JWT}"), "c2lnbmF0dXJl".into()),
            ("Bearer a.b.c".into(), "a.b.c".into()),
            (format!("BeArEr   {JWT}"), "c2lnbmF0dXJl".into()),
            (
                "Bearer opaque-access-token-123".into(),
                "opaque-access".into(),
            ),
            (format!("Bearer%20{JWT}"), "c2lnbmF0dXJl".into()),
            (format!("Bearer+{JWT}"), "c2lnbmF0dXJl".into()),
            (format!("B\u{200B}earer {JWT}"), "c2lnbmF0dXJl".into()),
            (
                format!(r#"{{"h":"Bearer\u0020{JWT}"}}"#),
                "c2lnbmF0dXJl".into(),
            ),
            // "user:p4ssw0rd" and "admin:hunter2"
            (
                "Basic dXNlcjpwNHNzdzByZA==".into(),
                "dXNlcjpwNHNzdzByZA".into(),
            ),
            (
                "basic YWRtaW46aHVudGVyMg".into(),
                "YWRtaW46aHVudGVyMg".into(),
            ),
            (
                "BASIC YWRtaW46aHVudGVyMg==".into(),
                "YWRtaW46aHVudGVyMg".into(),
            ),
            (
                r#"{"h":"Basic YWRtaW46aHVudGVyMg\u003d\u003d"}"#.into(),
                "YWRtaW46aHVudGVyMg".into(),
            ),
            (
                "Basic%20YWRtaW46aHVudGVyMg==".into(),
                "YWRtaW46aHVudGVyMg".into(),
            ),
        ]
    }

    #[test]
    fn every_credential_shape_is_masked() {
        for (text, secret) in credentials_table() {
            let masked = redact_credentials(&text);
            assert!(!masked.contains(&secret), "{text:?} → {masked:?}");
            assert!(masked.contains(MASK), "{text:?} → {masked:?}");
        }
    }

    #[test]
    fn the_rest_of_the_text_is_kept_byte_for_byte() {
        let t = token();
        assert_eq!(redact_credentials(&format!("a {t} b")), "a esk_*** b");
        assert_eq!(
            redact_credentials(&format!(r#"{{"x":"Bearer {JWT}","y":1}}"#)),
            r#"{"x":"Bearer ***","y":1}"#
        );
        assert_eq!(
            redact_credentials(&format!(r#"{{"n":"esk\u005f{ID}_{SECRET}\"q"}}"#)),
            r#"{"n":"esk\u005f***\"q"}"#
        );
        assert_eq!(
            redact_credentials("Basic YWRtaW46aHVudGVyMg== and more"),
            "Basic *** and more"
        );
        // Masked bodies stay valid JSON.
        for (text, _) in credentials_table() {
            let body = serde_json::json!({ "note": text }).to_string();
            let masked = redact_credentials(&body);
            assert!(
                serde_json::from_str::<serde_json::Value>(&masked).is_ok(),
                "{body} → {masked}"
            );
        }
    }

    #[test]
    fn look_alikes_stay_as_they_are() {
        for text in [
            "Basic Foods Ltda",
            "Basic",
            "basic: yes",
            "Basic Ingredients Comércio",
            "Basic ABCD",
            "Bearer Ltda",
            "Bearer Bonds & Co.",
            "the bearer of this note",
            "bearer",
            "Bearer 2000",
            "forbearer-abcdefghijklmnopqrstuvwxyz",
            "desk_items",
            "desk_2024_report",
            "esk_",
            "esk_abc",
            "Whisk_deadbeef",
            "100% natural, 50%5F off",
            r#"{"path":"C:\\users\\esk","t":"\u00e9"}"#,
            "a\u{200B}b",
        ] {
            assert_eq!(redact_credentials(text), text, "{text:?}");
            assert!(
                matches!(redact_credentials(text), Cow::Borrowed(_)),
                "{text:?}"
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3_000))]
        #[test]
        fn any_text_is_answered_never_a_panic(text in "(.|%[0-9a-fA-F]{2}|\\\\u[0-9a-fA-F]{4}|esk_|Bearer |Basic ){0,40}") {
            let masked = redact_credentials(&text);
            // Masking is stable: a masked text has nothing left to mask.
            prop_assert_eq!(redact_credentials(&masked), masked.clone());
        }
    }
}
