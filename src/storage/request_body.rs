//! How a request body is kept in `request_log`: as it came, or LZ4-compressed from 1 KiB
//! on. Written by the table's queries (`storage::request_log`) and read back by them, by
//! the export's bulk pages (`bulk::request_log`), the trail and the purge's export: one
//! encoding, so it sits below all of them.

use crate::error::Result;

/// Bodies from this size on are stored LZ4-compressed; smaller ones would not gain.
const COMPRESS_FROM: usize = 1024;

/// A request body in its stored form. Encoding (compression) is the costly part of
/// writing a log row, so callers can do it before they open the write transaction.
#[derive(Debug, Clone)]
pub struct StoredBody {
    pub(in crate::storage) bytes: Vec<u8>,
    pub(in crate::storage) compressed: bool,
}

impl StoredBody {
    /// Encodes `body` (already cut to the cap).
    pub fn encode(body: &str) -> Self {
        if body.len() >= COMPRESS_FROM {
            Self {
                bytes: lz4_flex::compress_prepend_size(body.as_bytes()),
                compressed: true,
            }
        } else {
            Self {
                bytes: body.as_bytes().to_vec(),
                compressed: false,
            }
        }
    }
}

/// The request body back from its stored form.
pub(crate) fn decode_body(bytes: &[u8], compressed: bool) -> Result<String> {
    let raw = if compressed {
        lz4_flex::decompress_size_prepended(bytes)
            .map_err(|e| anyhow::anyhow!("stored request body does not decompress: {e}"))?
    } else {
        bytes.to_vec()
    };
    String::from_utf8(raw)
        .map_err(|e| anyhow::anyhow!("stored request body is not UTF-8: {e}").into())
}
