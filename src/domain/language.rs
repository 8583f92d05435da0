//! The languages the field catalogue answers in: Brazilian Portuguese (the "Dados ERP"
//! page's, the default) and English; how a request names one.

/// A language of the catalogue's labels and descriptions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Language {
    /// Brazilian Portuguese ("pt-BR"), the default.
    #[default]
    PtBr,
    /// English ("en").
    En,
}

impl Language {
    /// Every language, the default first.
    pub const ALL: [Language; 2] = [Language::PtBr, Language::En];

    /// Its BCP 47 tag, as answered.
    pub const fn tag(self) -> &'static str {
        match self {
            Language::PtBr => "pt-BR",
            Language::En => "en",
        }
    }

    /// The language a BCP 47 tag names ("pt-BR", "pt", "en", "en-US", in any case);
    /// `None` for any other.
    pub fn parse(tag: &str) -> Option<Language> {
        let primary = tag.trim().split(['-', '_']).next().unwrap_or_default();
        if primary.eq_ignore_ascii_case("pt") {
            Some(Language::PtBr)
        } else if primary.eq_ignore_ascii_case("en") {
            Some(Language::En)
        } else {
            None
        }
    }

    /// The language a request asks for: its explicit `language` field when set (an
    /// unknown one is an error, the message naming the accepted values), else the best
    /// of an `Accept-Language` header that erpsync speaks, else pt-BR. A header is only
    /// a preference (browsers send many languages), so one naming none of them falls back.
    pub fn choose(explicit: &str, accept_language: Option<&str>) -> Result<Language, String> {
        if !explicit.trim().is_empty() {
            return Language::parse(explicit).ok_or_else(|| {
                format!(
                    "unknown language {}: use \"pt-BR\" (the default) or \"en\"",
                    super::text::excerpt(explicit)
                )
            });
        }
        Ok(accept_language
            .and_then(Language::from_accept_language)
            .unwrap_or_default())
    }

    /// The preferred language of an `Accept-Language` header that erpsync speaks: the
    /// highest `q` (1 when absent), the first listed on a tie; `q=0` means "not this".
    pub fn from_accept_language(header: &str) -> Option<Language> {
        let mut best: Option<(f32, Language)> = None;
        for item in header.split(',') {
            let mut parts = item.split(';');
            let tag = parts.next().unwrap_or_default().trim();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let Some(language) = Language::parse(tag) else {
                continue;
            };
            if q > 0.0 && best.is_none_or(|(b, _)| q > b) {
                best = Some((q, language));
            }
        }
        best.map(|(_, l)| l)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_parse_by_their_primary_subtag_in_any_case() {
        for (tag, want) in [
            ("pt-BR", Some(Language::PtBr)),
            ("pt", Some(Language::PtBr)),
            ("PT_br", Some(Language::PtBr)),
            ("en", Some(Language::En)),
            ("en-US", Some(Language::En)),
            ("es", None),
            ("english", None),
            ("", None),
        ] {
            assert_eq!(Language::parse(tag), want, "{tag:?}");
        }
        for l in Language::ALL {
            assert_eq!(Language::parse(l.tag()), Some(l));
        }
    }

    #[test]
    fn the_explicit_field_wins_and_an_unknown_one_is_refused() {
        assert_eq!(Language::choose("en", Some("pt-BR")), Ok(Language::En));
        assert_eq!(
            Language::choose("", Some("en-GB,en;q=0.9")),
            Ok(Language::En)
        );
        assert_eq!(Language::choose("", None), Ok(Language::PtBr));
        assert_eq!(Language::choose("  ", Some("fr, de")), Ok(Language::PtBr));
        let err = Language::choose("klingon", None).unwrap_err();
        assert!(
            err.contains("\"klingon\"") && err.contains("pt-BR"),
            "{err}"
        );
    }

    #[test]
    fn accept_language_takes_the_highest_quality_erpsync_speaks() {
        let pick = Language::from_accept_language;
        assert_eq!(pick("fr-FR, en;q=0.8, pt;q=0.9"), Some(Language::PtBr));
        assert_eq!(pick("de, en-US;q=0.5"), Some(Language::En));
        assert_eq!(pick("en;q=0, pt-BR;q=0.1"), Some(Language::PtBr));
        assert_eq!(pick("*"), None);
        assert_eq!(pick(""), None);
        assert_eq!(pick("en;q=abc"), Some(Language::En));
    }
}
