//! ExportHistory's workbooks: a request for acme, the downloaded stream, and its sheets
//! read back with calamine.

use std::io::Cursor;

use calamine::{Data, Reader, Xlsx};
use chrono::NaiveDate;
use erpsync::grpc::pb::{ExportHistoryRequest, ExportKind};
use tokio_stream::StreamExt;

use super::servers::TestApp;
use super::tenants::authed;

/// What a finished export stream held.
pub(crate) struct Download {
    pub(crate) filename: String,
    pub(crate) content_type: String,
    pub(crate) chunk_sizes: Vec<usize>,
    pub(crate) later_chunks_named: bool,
    pub(crate) bytes: Vec<u8>,
}

/// ExportHistory of acme for `from`..=`to`, `tables` (empty: all), of `kind`.
pub(crate) fn request(
    from: NaiveDate,
    to: NaiveDate,
    tables: &[&str],
    kind: ExportKind,
) -> ExportHistoryRequest {
    ExportHistoryRequest {
        tenant_id: "acme".into(),
        from_date: from.to_string(),
        to_date: to.to_string(),
        tables: tables.iter().map(|t| (*t).to_owned()).collect(),
        kind: kind as i32,
    }
}

/// Runs ExportHistory `req` with `token` and gathers the stream.
pub(crate) async fn download(
    app: &TestApp,
    token: &str,
    req: ExportHistoryRequest,
) -> Result<Download, tonic::Status> {
    let mut stream = app
        .history()
        .await
        .export_history(authed(req, token))
        .await?
        .into_inner();
    let mut d = Download {
        filename: String::new(),
        content_type: String::new(),
        chunk_sizes: Vec::new(),
        later_chunks_named: false,
        bytes: Vec::new(),
    };
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if d.chunk_sizes.is_empty() {
            d.filename = chunk.filename;
            d.content_type = chunk.content_type;
        } else if !chunk.filename.is_empty() || !chunk.content_type.is_empty() {
            d.later_chunks_named = true;
        }
        d.chunk_sizes.push(chunk.data.len());
        d.bytes.extend_from_slice(&chunk.data);
    }
    Ok(d)
}

/// Every sheet of the workbook, in order, with its cells.
pub(crate) fn sheets(bytes: &[u8]) -> Vec<(String, Vec<Vec<Data>>)> {
    let mut wb: Xlsx<_> =
        calamine::open_workbook_from_rs(Cursor::new(bytes.to_vec())).expect("a valid xlsx");
    wb.sheet_names()
        .into_iter()
        .map(|name| {
            let range = wb.worksheet_range(&name).unwrap();
            let rows = range.rows().map(<[Data]>::to_vec).collect();
            (name, rows)
        })
        .collect()
}

/// The rows of sheet `name` of `all`.
pub(crate) fn sheet<'a>(all: &'a [(String, Vec<Vec<Data>>)], name: &str) -> &'a [Vec<Data>] {
    &all.iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no sheet {name}"))
        .1
}

/// A cell's text (empty for an empty cell); any other kind of cell fails the test.
pub(crate) fn text(d: &Data) -> String {
    match d {
        Data::String(s) => s.clone(),
        Data::Empty => String::new(),
        other => panic!("not text: {other:?}"),
    }
}
