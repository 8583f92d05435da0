//! The reconciliation table `erpsync overview` prints (`Overview.tables`): per ERP table,
//! what the ERP reported, what is staged, what the CRM holds, and the last finished run's
//! counts, in aligned columns a person reads at a glance.

use crate::grpc::pb::RunTable;

/// The columns, in order; the first is left-aligned, the counts right-aligned.
const HEADER: [&str; 10] = [
    "table", "erp", "staged", "crm", "received", "inserted", "updated", "deleted", "held",
    "rejected",
];

/// Shown for a count that does not exist: the ERP never reported one, or the CRM does not
/// hold the table.
const NONE: &str = "-";

/// The overview's reconciliation lines, each ending with a newline: a title, then an
/// aligned table, or one line saying there is none yet.
pub(super) fn table(tables: &[RunTable]) -> String {
    if tables.is_empty() {
        return "reconciliation:    none yet (no finished run)\n".to_owned();
    }
    let rows: Vec<[String; 10]> = tables.iter().map(row).collect();
    let mut out = String::from("reconciliation:    as of the last finished run\n");
    out.push_str(&aligned(&rows));
    out
}

/// One table's cells, in [`HEADER`]'s order.
fn row(t: &RunTable) -> [String; 10] {
    let erp = t
        .erp_count
        .map_or_else(|| NONE.to_owned(), |n| n.to_string());
    // Only the tables the CRM holds have a count time (companies and contacts).
    let crm = if t.crm_counted_at.is_some() || t.crm_count > 0 {
        t.crm_count.to_string()
    } else {
        NONE.to_owned()
    };
    [
        t.table.clone(),
        erp,
        t.staged_count.to_string(),
        crm,
        t.received.to_string(),
        t.inserted.to_string(),
        t.updated.to_string(),
        t.deleted.to_string(),
        t.held.to_string(),
        t.rejected.to_string(),
    ]
}

/// The header and `rows`, each column as wide as its widest cell, two spaces apart, every
/// line indented by two spaces and ended by a newline (no trailing spaces).
fn aligned(rows: &[[String; 10]]) -> String {
    let mut widths = HEADER.map(|h| h.chars().count());
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let header = HEADER.map(str::to_owned);
    let mut out = String::new();
    for r in std::iter::once(&header).chain(rows) {
        let mut line = String::from(" ");
        for (i, (cell, w)) in r.iter().zip(widths).enumerate() {
            line.push(' ');
            if i == 0 {
                line.push_str(&format!("{cell:<w$}"));
            } else {
                line.push_str(&format!(" {cell:>w$}"));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_table(table: &str, erp: Option<u64>, crm_held: bool) -> RunTable {
        RunTable {
            table: table.into(),
            received: 1234,
            inserted: 1200,
            updated: 30,
            deleted: 4,
            held: 0,
            rejected: 2,
            erp_count: erp,
            staged_count: 1230,
            crm_count: if crm_held { 1226 } else { 0 },
            crm_counted_at: crm_held.then(prost_types::Timestamp::default),
            ..RunTable::default()
        }
    }

    #[test]
    fn columns_line_up_with_a_dash_for_counts_that_do_not_exist() {
        let text = table(&[
            run_table("company", Some(1240), true),
            run_table("invoice_item", None, false),
        ]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "reconciliation:    as of the last finished run");
        assert_eq!(
            &lines[1..],
            [
                "  table          erp  staged   crm  received  inserted  updated  deleted  held  rejected",
                "  company       1240    1230  1226      1234      1200       30        4     0         2",
                "  invoice_item     -    1230     -      1234      1200       30        4     0         2",
            ]
        );
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn no_run_yet_says_so_on_one_line() {
        assert_eq!(
            table(&[]),
            "reconciliation:    none yet (no finished run)\n"
        );
    }
}
