//! The request log: every request that reached a tenant, with its response (the data
//! behind the Histórico tab and its Excel export).

use chrono::{DateTime, Utc};

use super::credential::redact_credentials;
use super::tenant::TenantId;

/// How a request arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// ErpIngest over gRPC.
    Grpc,
    /// `POST /erp/v1/{table}` with JSON.
    Http,
    /// A read of an ERP's SQL view by a View integration's run.
    View,
}

impl Transport {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Grpc => "grpc",
            Self::Http => "http",
            Self::View => "view",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "grpc" => Some(Self::Grpc),
            "http" => Some(Self::Http),
            "view" => Some(Self::View),
            _ => None,
        }
    }
}

/// One logged request.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestLogEntry {
    /// Opaque id, also answered to the client as `request_id`.
    pub id: String,
    /// The tenant it reached.
    pub tenant: TenantId,
    /// When it arrived.
    pub received_at: DateTime<Utc>,
    /// "ErpIngest/Push" or "POST /erp/v1/company", ….
    pub endpoint: String,
    /// The ERP table, when the request named one.
    pub table: Option<String>,
    /// gRPC or HTTP.
    pub transport: Transport,
    /// The gRPC code name of the answer ("OK", "INVALID_ARGUMENT", …).
    pub status: String,
    /// The HTTP status of the answer (the equivalent one for gRPC calls).
    pub http_status: u16,
    /// Time from arrival to answer.
    pub duration_ms: u64,
    /// Records kept.
    pub accepted: u32,
    /// Records rejected.
    pub rejected: u32,
    /// Unknown fields reported in the answer's `warnings` (kept records' fields their
    /// table does not know).
    pub warnings: u32,
    /// The error message of a failed request.
    pub error: Option<String>,
    /// The request body, cut at the configured cap.
    pub request_body: String,
    /// Whether `request_body` was cut.
    pub request_truncated: bool,
    /// The response body exactly as answered (JSON).
    pub response_body: String,
}

/// Cuts `body` to at most `cap` bytes (on a character boundary) and marks the cut, so a
/// reader never mistakes a cut body for a whole one. Returns the text and whether it was cut.
/// Credentials in it are masked first (see [`redact_credentials`]): every stored body goes
/// through here.
pub fn cut_body(body: &str, cap: usize) -> (String, bool) {
    let body = redact_credentials(body);
    let body = body.as_ref();
    if body.len() <= cap {
        return (body.to_owned(), false);
    }
    let mut end = cap;
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    (
        format!(
            "{}…[cut: {} bytes in all, the first {end} kept]",
            &body[..end],
            body.len()
        ),
        true,
    )
}

#[cfg(test)]
mod tests {
    use super::cut_body;

    #[test]
    fn bodies_past_the_cap_are_cut_on_a_char_boundary_and_marked() {
        assert_eq!(cut_body("abc", 3), ("abc".to_owned(), false));
        let (cut, was) = cut_body("ãããã", 3);
        assert!(was);
        assert!(cut.starts_with('ã') && !cut.starts_with("ãã"));
        assert!(
            cut.ends_with("…[cut: 8 bytes in all, the first 2 kept]"),
            "{cut}"
        );
    }
}
