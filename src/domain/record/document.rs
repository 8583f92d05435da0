//! Brazilian documents: [`Cnpj`] (companies) and [`Cpf`] (people), built only by parsing.
//!
//! Parsing strips the usual formatting (". / -" and spaces), upper-cases the letters of an
//! alphanumeric CNPJ and checks the mod-11 check digits; the value keeps the bare form
//! ("11222333000181"), which is what erpsync stores and sends on.

use std::fmt;

use super::reason::show;

/// A CNPJ (a company's registration number) with valid check digits: 14 characters, the
/// first 12 digits or upper-case letters, the last two digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cnpj(String);

impl Cnpj {
    /// Parses a CNPJ as ERPs write it ("11.222.333/0001-81", "11222333000181", the
    /// alphanumeric "12.ABC.345/01DE-35"); the error names the value and what is wrong.
    pub fn parse(s: &str) -> Result<Self, String> {
        Self::from_digits(s, document_digits(s)?)
    }

    /// The bare 14 characters.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn from_digits(s: &str, digits: String) -> Result<Self, String> {
        if digits.len() != 14 {
            return Err(format!(
                "{} is not a valid CNPJ: it has {} digits, a CNPJ has 14",
                show(s.trim()),
                digits.len()
            ));
        }
        check(s, "CNPJ", &digits, cnpj_is_valid(&digits))?;
        Ok(Self(digits))
    }
}

impl fmt::Display for Cnpj {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A CPF (a person's taxpayer number) with valid check digits: 11 digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cpf(String);

impl Cpf {
    /// Parses a CPF as ERPs write it ("529.982.247-25", "52998224725"); the error names
    /// the value and what is wrong.
    pub fn parse(s: &str) -> Result<Self, String> {
        Self::from_digits(s, document_digits(s)?)
    }

    /// The bare 11 digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn from_digits(s: &str, digits: String) -> Result<Self, String> {
        let shown = || show(s.trim());
        if digits.len() != 11 {
            return Err(format!(
                "{} is not a valid CPF: it has {} digits, a CPF has 11",
                shown(),
                digits.len()
            ));
        }
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "{} is not a valid CPF: a CPF has digits only",
                shown()
            ));
        }
        check(s, "CPF", &digits, cpf_is_valid(&digits))?;
        Ok(Self(digits))
    }
}

impl fmt::Display for Cpf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A CNPJ or a CPF (a supplier may be a company or a person), told apart by length.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CnpjOrCpf {
    /// 14 characters.
    Cnpj(Cnpj),
    /// 11 digits.
    Cpf(Cpf),
}

impl CnpjOrCpf {
    /// Parses a CNPJ (14 characters once stripped) or a CPF (11).
    pub fn parse(s: &str) -> Result<Self, String> {
        let digits = document_digits(s)?;
        match digits.len() {
            14 => Cnpj::from_digits(s, digits).map(Self::Cnpj),
            11 => Cpf::from_digits(s, digits).map(Self::Cpf),
            n => Err(format!(
                "{} is not a valid CNPJ or CPF: it has {n} digits, a CNPJ has 14 and a CPF 11",
                show(s.trim())
            )),
        }
    }

    /// The bare characters of either.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Cnpj(cnpj) => cnpj.as_str(),
            Self::Cpf(cpf) => cpf.as_str(),
        }
    }
}

impl fmt::Display for CnpjOrCpf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The verdict on a number of the right length: `valid` is its check-digit test, and a
/// failing number is told apart as repeated digits or a typo.
fn check(s: &str, name: &str, digits: &str, valid: bool) -> Result<(), String> {
    if valid {
        Ok(())
    } else if digits.bytes().all(|b| Some(b) == digits.bytes().next()) {
        Err(format!(
            "{} is not a valid {name}: all its digits are the same",
            show(s.trim())
        ))
    } else {
        Err(format!(
            "{} is not a valid {name}: its check digits do not match (typo?)",
            show(s.trim())
        ))
    }
}

const CNPJ_WEIGHTS: [u32; 13] = [6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2];
const CPF_WEIGHTS: [u32; 10] = [11, 10, 9, 8, 7, 6, 5, 4, 3, 2];

/// Whether `digits` (14 characters, no formatting) is a CNPJ with valid check digits.
/// Since July 2026 the Receita Federal also issues alphanumeric CNPJs: the first 12
/// characters may be upper-case letters, each worth its ASCII code minus 48 in the same
/// mod-11 scheme; the two check digits stay digits.
fn cnpj_is_valid(digits: &str) -> bool {
    // First check digit over 12 characters weighs 5,4,3,2,9..2; the second over 13 weighs 6,5,...,2.
    check_digits_valid(digits, &CNPJ_WEIGHTS, true)
}

/// Whether `digits` (exactly 11 ASCII digits, no formatting) is a CPF with valid check digits.
fn cpf_is_valid(digits: &str) -> bool {
    // First check digit over 9 digits weighs 10..2; the second over 10 weighs 11..2.
    check_digits_valid(digits, &CPF_WEIGHTS, false)
}

/// The shared mod-11 scheme: a number of `weights.len() + 1` digits whose last two are check
/// digits; the second check digit uses all weights, the first all but the leading one.
fn check_digits_valid(digits: &str, weights: &[u32], letters: bool) -> bool {
    let len = weights.len() + 1;
    let body_ok = |b: u8| b.is_ascii_digit() || (letters && b.is_ascii_uppercase());
    if digits.len() != len
        || !digits.bytes().take(len - 2).all(body_ok)
        || !digits.bytes().skip(len - 2).all(|b| b.is_ascii_digit())
    {
        return false;
    }
    let values: Vec<u32> = digits.bytes().map(|b| u32::from(b - b'0')).collect();
    // Repeated digits (000…0, 111…1) pass the arithmetic but are not issued numbers.
    if values.windows(2).all(|w| w.first() == w.last()) {
        return false;
    }
    let first_weights = weights.get(1..).unwrap_or_default();
    let first = mod11(&values, first_weights);
    let second = mod11(&values, weights);
    values.get(len - 2) == Some(&first) && values.get(len - 1) == Some(&second)
}

/// One mod-11 check digit over the leading digits, one per weight.
fn mod11(values: &[u32], weights: &[u32]) -> u32 {
    let sum: u32 = values.iter().zip(weights).map(|(v, w)| v * w).sum();
    match sum % 11 {
        0 | 1 => 0,
        r => 11 - r,
    }
}

/// Strips the usual formatting (". / -" and spaces) from a document, keeping its digits
/// and (for alphanumeric CNPJs) its letters, upper-cased.
fn document_digits(s: &str) -> Result<String, String> {
    let mut digits = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '0'..='9' => digits.push(c),
            'a'..='z' | 'A'..='Z' => digits.push(c.to_ascii_uppercase()),
            '.' | '/' | '-' => {}
            c if c.is_whitespace() => {}
            _ => {
                return Err(format!(
                    "{} is not a valid document: only digits, letters (alphanumeric CNPJ) and the separators . / - are allowed",
                    show(s.trim())
                ))
            }
        }
    }
    Ok(digits)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{ok, one_error};
    use super::super::validate;
    use super::*;
    use crate::domain::tables::find;
    use proptest::prelude::*;
    use serde_json::{json, Map, Value};

    #[test]
    fn alphanumeric_cnpj_of_2026_is_accepted() {
        // The Receita Federal's own example.
        assert!(cnpj_is_valid("12ABC34501DE35"));
        assert!(!cnpj_is_valid("12ABC34501DE36"));
        assert!(!cnpj_is_valid("12ABC34501DE3A"), "check digits stay digits");
        let table = find("company").unwrap();
        let mut fields = Map::new();
        fields.insert("name".into(), "Nova".into());
        fields.insert("document".into(), "12.abc.345/01de-35".into());
        assert_eq!(
            validate(table, &fields).unwrap()["document"],
            "12ABC34501DE35"
        );
        fields.insert("document".into(), "529.982.247-2X".into());
        let contact = find("contact").unwrap();
        assert!(validate(contact, &fields).is_err());
    }

    #[test]
    fn cnpj_check_digits() {
        assert!(cnpj_is_valid("11222333000181"));
        assert!(cnpj_is_valid("11444777000161"));
        assert!(!cnpj_is_valid("11222333000182"));
        assert!(!cnpj_is_valid("11222333000191"));
        assert!(!cnpj_is_valid("00000000000000"));
        assert!(!cnpj_is_valid("11111111111111"));
        assert!(!cnpj_is_valid("1122233300018"));
        assert!(!cnpj_is_valid("112223330001810"));
        assert!(
            !cnpj_is_valid("11.222.333/0001-81"),
            "formatting is stripped by the caller"
        );
        assert!(!cnpj_is_valid("1122233300018a"));
        assert!(!cnpj_is_valid(""));
    }

    #[test]
    fn cpf_check_digits() {
        assert!(cpf_is_valid("52998224725"));
        assert!(!cpf_is_valid("52998224724"));
        assert!(!cpf_is_valid("52998224715"));
        assert!(!cpf_is_valid("11111111111"));
        assert!(!cpf_is_valid("5299822472"));
        assert!(!cpf_is_valid("529.982.247-25"));
    }

    #[test]
    fn mod11_misses_some_single_digit_changes() {
        // Remainders 0 and 1 both give check digit 0, so a few single-digit typos still pass.
        // Kept here so nobody "fixes" the property tests into claiming otherwise.
        assert!(cnpj_is_valid("71046563414800") && cnpj_is_valid("51046563414800"));
        assert!(cpf_is_valid("50478075502") && cpf_is_valid("60478075502"));
    }

    #[test]
    fn documents_in_records() {
        let company = |d: Value| json!({"name": "A", "document": d});
        for good in [
            "11.222.333/0001-81",
            "11222333000181",
            " 11 222 333 0001 81 ",
        ] {
            let out = ok("company", company(json!(good)));
            assert_eq!(
                out.get("document"),
                Some(&json!("11222333000181")),
                "{good}"
            );
        }
        let reason = |id: &str, d: Value| one_error(id, company(d)).reason;
        assert!(reason("company", json!("11.222.333/0001-82")).contains("check digits"));
        assert!(
            reason("company", json!("11.111.111/1111-11")).contains("all its digits are the same")
        );
        assert!(reason("company", json!("1122233300018")).contains("13 digits"));
        assert!(reason("company", json!("11222333000181x")).contains("15 digits"));
        assert!(reason("company", json!("11222333000181#")).contains("only digits, letters"));
        let r = reason("company", json!(11222333000181u64));
        assert!(r.contains("send the document as a string"), "{r}");
        // A company document must be a CNPJ even if it is a valid CPF.
        assert!(reason("company", json!("529.982.247-25")).contains("a CNPJ has 14"));

        assert_eq!(
            ok("supplier", company(json!("529.982.247-25"))).get("document"),
            Some(&json!("52998224725"))
        );
        assert_eq!(
            ok("supplier", company(json!("11.222.333/0001-81"))).get("document"),
            Some(&json!("11222333000181"))
        );
        assert!(reason("supplier", json!("529.982.247-24")).contains("not a valid CPF"));
        assert!(reason("supplier", json!("123")).contains("a CNPJ has 14 and a CPF 11"));

        // A contact's CPF is optional: blank means absent, otherwise it must be valid.
        let out = ok("contact", company(json!("  ")));
        assert!(!out.contains_key("document"));
        assert!(reason("contact", json!("111.111.111-11")).contains("CPF"));
    }

    fn with_check_digits(body: &[u32], weights: &[u32]) -> String {
        let first = mod11(body, weights.get(1..).unwrap_or_default());
        let mut all = body.to_vec();
        all.push(first);
        let second = mod11(&all, weights);
        all.push(second);
        all.iter().map(|d| char::from(b'0' + *d as u8)).collect()
    }

    /// Textbook check-digit computation, written independently of `mod11` on purpose.
    fn reference_valid(digits: &str, first_weights: &[u32]) -> bool {
        let d: Vec<u32> = digits.chars().filter_map(|c| c.to_digit(10)).collect();
        let n = first_weights.len();
        let dv = |upto: usize, ws: &mut dyn Iterator<Item = u32>| {
            let s: u32 = d.iter().take(upto).zip(ws).map(|(a, b)| a * b).sum();
            let r = 11 - s % 11;
            if r >= 10 {
                0
            } else {
                r
            }
        };
        let first = dv(n, &mut first_weights.iter().copied());
        let second = dv(
            n + 1,
            &mut std::iter::once(
                first_weights
                    .first()
                    .map_or(0, |w| if *w == 5 { 6 } else { w + 1 }),
            )
            .chain(first_weights.iter().copied()),
        );
        d.len() == n + 2
            && d.iter().any(|x| Some(x) != d.first())
            && d.get(n) == Some(&first)
            && d.get(n + 1) == Some(&second)
    }

    #[test]
    fn parsing_strips_formatting_and_displays_the_bare_number() {
        let cnpj = Cnpj::parse(" 11.222.333/0001-81 ").expect("valid CNPJ");
        assert_eq!(cnpj.as_str(), "11222333000181");
        assert_eq!(cnpj.to_string(), "11222333000181");
        assert_eq!(
            Cnpj::parse("12.abc.345/01de-35").map(|c| c.to_string()),
            Ok("12ABC34501DE35".to_owned())
        );
        let cpf = Cpf::parse("529.982.247-25").expect("valid CPF");
        assert_eq!(
            (cpf.as_str(), cpf.to_string().as_str()),
            ("52998224725", "52998224725")
        );
        assert_eq!(CnpjOrCpf::parse("529.982.247-25"), Ok(CnpjOrCpf::Cpf(cpf)));
        assert_eq!(
            CnpjOrCpf::parse("11.222.333/0001-81"),
            Ok(CnpjOrCpf::Cnpj(cnpj))
        );
    }

    #[test]
    fn parse_errors_name_the_value_and_the_problem() {
        assert_eq!(
            Cnpj::parse("11.222.333/0001-82"),
            Err(
                "\"11.222.333/0001-82\" is not a valid CNPJ: its check digits do not match (typo?)"
                    .to_owned()
            )
        );
        assert_eq!(
            Cpf::parse(" 111.111.111-11 "),
            Err("\"111.111.111-11\" is not a valid CPF: all its digits are the same".to_owned())
        );
        assert_eq!(
            Cpf::parse("529.982.247-2X"),
            Err("\"529.982.247-2X\" is not a valid CPF: a CPF has digits only".to_owned())
        );
        assert_eq!(
            Cpf::parse("11222333000181"),
            Err("\"11222333000181\" is not a valid CPF: it has 14 digits, a CPF has 11".to_owned())
        );
        assert_eq!(
            CnpjOrCpf::parse("123"),
            Err(
                "\"123\" is not a valid CNPJ or CPF: it has 3 digits, a CNPJ has 14 and a CPF 11"
                    .to_owned()
            )
        );
        assert!(Cnpj::parse("11222333000181#")
            .unwrap_err()
            .contains("only digits, letters"));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn parsers_never_panic(s in super::super::tests::interesting_string()) {
            let _ = document_digits(&s);
            let _ = cnpj_is_valid(&s);
            let _ = cpf_is_valid(&s);
            if let Ok(doc) = CnpjOrCpf::parse(&s) {
                prop_assert_eq!(CnpjOrCpf::parse(doc.as_str()), Ok(doc));
            }
            let _ = Cnpj::parse(&s);
            let _ = Cpf::parse(&s);
        }

        #[test]
        fn generated_cnpjs_are_valid_and_a_changed_digit_is_caught(
            body in prop::collection::vec(0u32..10, 12),
            pos in 0usize..14,
            delta in 1u32..10,
        ) {
            let cnpj = with_check_digits(&body, &CNPJ_WEIGHTS);
            prop_assume!(cnpj.bytes().any(|b| Some(b) != cnpj.bytes().next()));
            prop_assert!(cnpj_is_valid(&cnpj));
            let changed: String = cnpj.chars().enumerate().map(|(i, c)| match c.to_digit(10) {
                Some(d) if i == pos => char::from(b'0' + ((d + delta) % 10) as u8),
                _ => c,
            }).collect();
            let caught = !cnpj_is_valid(&changed);
            if pos >= 12 {
                // A changed check digit never matches the recomputed one.
                prop_assert!(caught, "{} -> {}", cnpj, changed);
            } else {
                // A body digit change is caught unless mod 11 happens to collide (see above).
                prop_assert_eq!(!caught, reference_valid(&changed, &CNPJ_WEIGHTS[1..]), "{} -> {}", cnpj, changed);
            }
        }

        #[test]
        fn generated_cpfs_are_valid_and_a_changed_digit_is_caught(
            body in prop::collection::vec(0u32..10, 9),
            pos in 0usize..11,
            delta in 1u32..10,
        ) {
            let cpf = with_check_digits(&body, &CPF_WEIGHTS);
            prop_assume!(cpf.bytes().any(|b| Some(b) != cpf.bytes().next()));
            prop_assert!(cpf_is_valid(&cpf));
            let changed: String = cpf.chars().enumerate().map(|(i, c)| match c.to_digit(10) {
                Some(d) if i == pos => char::from(b'0' + ((d + delta) % 10) as u8),
                _ => c,
            }).collect();
            if pos >= 9 {
                prop_assert!(!cpf_is_valid(&changed), "{} -> {}", cpf, changed);
            } else {
                prop_assert_eq!(cpf_is_valid(&changed), reference_valid(&changed, &CPF_WEIGHTS[1..]));
            }
        }

        #[test]
        fn a_formatted_valid_cnpj_parses_to_its_digits(body in prop::collection::vec(0u32..10, 12)) {
            let cnpj = with_check_digits(&body, &CNPJ_WEIGHTS);
            prop_assume!(cnpj.bytes().any(|b| Some(b) != cnpj.bytes().next()));
            let formatted = format!("{}.{}.{}/{}-{}", &cnpj[..2], &cnpj[2..5], &cnpj[5..8], &cnpj[8..12], &cnpj[12..]);
            prop_assert_eq!(Cnpj::parse(&formatted).map(|c| c.to_string()), Ok(cnpj));
        }
    }
}
