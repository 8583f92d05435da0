//! What flows through an export: pages of rows from the reader to the writer, the file in
//! chunks from the writer to the caller, and why the writer stopped before the end.

use std::io::{self, Write};

use tokio::sync::mpsc;

use crate::domain::crm::PendingDelete;
use crate::domain::request_log::RequestLogEntry;
use crate::domain::run::{RunSummary, TableCounts};
use crate::error::{AppError, Result};

/// Largest `data` of one chunk.
pub const CHUNK_BYTES: usize = 1 << 20;
/// The media type of an .xlsx file.
pub const CONTENT_TYPE: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// A piece of the file; the first one names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The file name, on the first chunk only.
    pub filename: Option<String>,
    /// The media type, on the first chunk only.
    pub content_type: Option<&'static str>,
    /// At most [`CHUNK_BYTES`] of the file.
    pub data: Vec<u8>,
}

/// A page of rows on its way from the reader to the writer.
pub(super) enum Page {
    Requests(Vec<RequestLogEntry>),
    Deletes(usize, Vec<PendingDelete>),
    Runs(Vec<(RunSummary, Vec<TableCounts>)>),
}

/// Why the writer stopped before the end.
pub(super) enum Stop {
    /// The caller closed the stream: nobody to tell.
    CallerLeft,
    /// Something failed: the caller gets the error.
    Failed(AppError),
}

impl From<AppError> for Stop {
    fn from(e: AppError) -> Self {
        Self::Failed(e)
    }
}

/// The `Write` the zip is streamed into: cuts it into chunks and hands each to the
/// caller's channel, waiting while the caller is slow (the channel is bounded).
pub(super) struct ChunkWriter {
    tx: mpsc::Sender<Result<Chunk>>,
    buf: Vec<u8>,
    filename: Option<String>,
    sent: u64,
}

impl ChunkWriter {
    pub(super) fn new(tx: mpsc::Sender<Result<Chunk>>, filename: String) -> Self {
        Self {
            tx,
            buf: Vec::with_capacity(CHUNK_BYTES),
            filename: Some(filename),
            sent: 0,
        }
    }

    fn send(&mut self) -> io::Result<()> {
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK_BYTES));
        self.sent += data.len() as u64;
        let filename = self.filename.take();
        let content_type = filename.is_some().then_some(CONTENT_TYPE);
        self.tx
            .blocking_send(Ok(Chunk {
                filename,
                content_type,
                data,
            }))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the caller left"))
    }

    /// Sends what is left; returns the file's size.
    pub(super) fn finish(mut self) -> io::Result<u64> {
        if !self.buf.is_empty() || self.filename.is_some() {
            self.send()?;
        }
        Ok(self.sent)
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = (CHUNK_BYTES - self.buf.len()).min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK_BYTES {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Chunks go out full; `finish` sends the last one.
        Ok(())
    }
}
