//! Secrets: sealed at rest (a View source's connection URL, which carries the ERP
//! database's password, is stored encrypted with the operator's key, never in clear), and
//! kept out of logs and messages (every database URL erpsync shows, its own included,
//! goes through [`redact_url`]).
//!
//! XChaCha20-Poly1305 (random 24-byte nonces, so a key may seal any number of values),
//! bound to what the value belongs to (the tenant id): a sealed value copied into
//! another tenant's row does not open.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use super::text::{hex, unhex};

/// How a sealed value starts; anything else is a value stored before sealing existed.
const PREFIX: &str = "sealed:v1:";
const NONCE: usize = 24;
const TAG: usize = 16;

/// The operator's 32-byte key (`ERPSYNC_SECRET_KEY` or `--secret-key-file`, 64 hex digits).
#[derive(Clone)]
pub struct SecretKey([u8; 32]);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(***)")
    }
}

impl SecretKey {
    /// Parses 64 hexadecimal digits (surrounding white space ignored), as
    /// `openssl rand -hex 32` prints them.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let bytes = unhex(text)
            .filter(|b| b.len() == 32)
            .ok_or_else(|| {
                format!(
                    "the secret key must be 64 hexadecimal digits (32 bytes, e.g. from `openssl rand -hex 32`), got {} characters",
                    text.chars().count()
                )
            })?;
        let mut key = [0; 32];
        key.copy_from_slice(&bytes);
        Ok(Self(key))
    }

    /// A new random key.
    pub fn generate() -> Self {
        let mut key = [0; 32];
        getrandom::fill(&mut key).expect("the operating system's random source works");
        Self(key)
    }

    /// `plain` encrypted for `owner`, as text fit for a database column.
    pub fn seal(&self, plain: &str, owner: &str) -> String {
        let mut nonce = [0; NONCE];
        getrandom::fill(&mut nonce).expect("the operating system's random source works");
        let sealed = XChaCha20Poly1305::new((&self.0).into())
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plain.as_bytes(),
                    aad: owner.as_bytes(),
                },
            )
            .expect("encrypting a short text in memory cannot fail");
        format!("{PREFIX}{}{}", hex(&nonce), hex(&sealed))
    }

    /// The text [`SecretKey::seal`] sealed for `owner`; an error when it was sealed with
    /// another key, for another owner, or was altered.
    pub fn open(&self, sealed: &str, owner: &str) -> Result<String, String> {
        let wrong = || {
            "the sealed value does not open with this key (sealed with another \
             ERPSYNC_SECRET_KEY, or altered)"
                .to_owned()
        };
        let bytes = sealed
            .strip_prefix(PREFIX)
            .and_then(unhex)
            .filter(|b| b.len() >= NONCE + TAG)
            .ok_or_else(wrong)?;
        let (nonce, msg) = bytes.split_at(NONCE);
        let nonce = XNonce::try_from(nonce).map_err(|_| wrong())?;
        let plain = XChaCha20Poly1305::new((&self.0).into())
            .decrypt(
                &nonce,
                Payload {
                    msg,
                    aad: owner.as_bytes(),
                },
            )
            .map_err(|_| wrong())?;
        String::from_utf8(plain).map_err(|_| wrong())
    }
}

/// Whether `secret` fits an `authorization: Bearer` header as it is: printable ASCII,
/// no spaces or control characters (an empty one does not).
pub fn header_safe(secret: &str) -> bool {
    !secret.is_empty() && secret.bytes().all(|b| b.is_ascii_graphic())
}

/// `url` with any password (`user:secret@`, `?password=secret`) replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut out = match base.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = match rest.find('/') {
                Some(i) => rest.split_at(i),
                None => (rest, ""),
            };
            let authority = match authority.rsplit_once('@') {
                Some((userinfo, host)) => match userinfo.split_once(':') {
                    Some((user, _)) => format!("{user}:***@{host}"),
                    None => format!("{userinfo}@{host}"),
                },
                None => authority.to_owned(),
            };
            format!("{scheme}://{authority}{path}")
        }
        None => base.to_owned(),
    };
    if let Some(q) = query {
        let pairs: Vec<String> = q
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if k.to_ascii_lowercase().contains("pass") => format!("{k}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    out
}

/// The secret parts of `url` (password in the userinfo or in the query), to scrub from
/// error messages a driver might build with them.
pub fn url_secrets(url: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    if let Some((_, rest)) = base.split_once("://") {
        let authority = rest.split('/').next().unwrap_or_default();
        if let Some((userinfo, _)) = authority.rsplit_once('@') {
            if let Some((_, password)) = userinfo.split_once(':') {
                out.push(password.to_owned());
            }
        }
    }
    for pair in query.unwrap_or_default().split('&') {
        if let Some((k, v)) = pair.split_once('=') {
            if k.to_ascii_lowercase().contains("pass") {
                out.push(v.to_owned());
            }
        }
    }
    out.retain(|s| !s.is_empty());
    out
}

/// `message` with every secret of `url` replaced by `***`.
pub fn scrub(message: &str, url: &str) -> String {
    url_secrets(url)
        .iter()
        .fold(message.to_owned(), |m, s| m.replace(s.as_str(), "***"))
}

/// Whether `stored` is a sealed value (as opposed to one stored in clear before).
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_survive_redaction() {
        assert_eq!(
            redact_url("postgres://erp:s3cret@db:5432/erp?sslmode=require"),
            "postgres://erp:***@db:5432/erp?sslmode=require"
        );
        assert_eq!(
            redact_url("mysql://root@127.0.0.1:3306/test"),
            "mysql://root@127.0.0.1:3306/test"
        );
        assert_eq!(
            redact_url("postgres://db/erp?user=erp&password=s3cret"),
            "postgres://db/erp?user=erp&password=***"
        );
        assert_eq!(
            redact_url("sqlite:///tmp/erp.db?mode=ro"),
            "sqlite:///tmp/erp.db?mode=ro"
        );
        // A password holding '@' is cut at the last one.
        assert_eq!(
            redact_url("postgres://u:p@ss@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(
            scrub(
                "failed for postgres://u:p@ss@h/db (p@ss)",
                "postgres://u:p@ss@h/db"
            ),
            "failed for postgres://u:***@h/db (***)"
        );
    }

    #[test]
    fn every_database_url_is_shown_without_its_password() {
        for (url, shown) in [
            ("postgres://u:p@h/db", "postgres://u:***@h/db"),
            (
                "postgres://h/db?password=p&x=1",
                "postgres://h/db?password=***&x=1",
            ),
            ("mysql://u:p@h/db", "mysql://u:***@h/db"),
            ("sqlite://data/x.db", "sqlite://data/x.db"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn a_sealed_value_opens_with_its_key_and_owner_only() {
        let key = SecretKey::generate();
        let url = "postgres://erp:s3cr3t@erp.example.com/erp";
        let sealed = key.seal(url, "acme");
        assert!(is_sealed(&sealed));
        assert!(!sealed.contains("s3cr3t"));
        assert_ne!(
            sealed,
            key.seal(url, "acme"),
            "every seal has its own nonce"
        );
        assert_eq!(key.open(&sealed, "acme").unwrap(), url);
        assert!(key.open(&sealed, "other").is_err());
        assert!(SecretKey::generate().open(&sealed, "acme").is_err());
        let mut altered = sealed.clone().into_bytes();
        let last = altered.len() - 1;
        altered[last] = if altered[last] == b'0' { b'1' } else { b'0' };
        assert!(key
            .open(&String::from_utf8(altered).unwrap(), "acme")
            .is_err());
        assert!(key.open("postgres://in-clear", "acme").is_err());
    }

    #[test]
    fn keys_parse_from_64_hex_digits_only() {
        let key = SecretKey::generate();
        let again = SecretKey::parse(&format!("  {}\n", hex(&key.0))).unwrap();
        assert_eq!(again.0, key.0);
        for bad in ["", "abc", &"g".repeat(64), &"a".repeat(62), &"a".repeat(66)] {
            assert!(SecretKey::parse(bad).is_err(), "{bad:?} parsed");
        }
        assert_eq!(format!("{key:?}"), "SecretKey(***)");
    }
}
