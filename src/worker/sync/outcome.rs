//! What each stage of a run ended with, typed; its `Display` is the stage's outcome as the
//! run's record and log show it ("collect done in 3 ms: ok: 20 records").

use std::fmt;

use crate::domain::abc::{AbcReport, Category, Money, Standing};
use crate::domain::tables::Table;
use crate::storage::abc::Stored;

/// A stage's result.
#[derive(Debug)]
pub(super) enum Outcome {
    /// collect: records waiting for delivery, all tables together.
    Collected { records: u64 },
    /// validate: records were judged when staged.
    Validated,
    /// delete_guard: per guarded table, deletions superseded and held.
    Guarded(Vec<Guarded>),
    /// push: delivered, or stopped by shutdown in a table.
    Pushed { stopped_in: Option<Table> },
    /// abc: the analysis, described.
    Analysed { description: String },
    /// categorize: nothing to categorize (no analysis this run).
    NotCategorized,
    /// categorize: applied or held by the shift guard.
    Categorized(Categorized),
    /// finish: the reconciliation counted.
    Reconciled,
}

/// What the delete guard did to one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Guarded {
    /// A CRM table: companies or contacts.
    pub table: Table,
    /// Waiting deletions whose records the ERP sent again.
    pub superseded: usize,
    /// Deletions this run must not apply.
    pub held: usize,
    /// Deletions of records a discard keeps in the CRM, ignored.
    pub kept: usize,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Collected { records } => write!(f, "ok: {records} records"),
            Self::Validated => f.write_str(
                "ok: records were validated when staged; rejections are in the request log",
            ),
            Self::Guarded(tables) => {
                let mut notes = Vec::new();
                for g in tables {
                    if g.superseded > 0 {
                        notes.push(format!("{} {} deletions superseded", g.superseded, g.table));
                    }
                    if g.held > 0 {
                        notes.push(format!("{} {} deletions held", g.held, g.table));
                    }
                    if g.kept > 0 {
                        notes.push(format!(
                            "{} {} deletions of kept records ignored",
                            g.kept, g.table
                        ));
                    }
                }
                if notes.is_empty() {
                    f.write_str("ok")
                } else {
                    f.write_str(&notes.join(", "))
                }
            }
            Self::Pushed { stopped_in: None } => f.write_str("ok"),
            Self::Pushed {
                stopped_in: Some(table),
            } => write!(f, "stopped by shutdown in {table}"),
            Self::Analysed { description } => write!(f, "ok: {description}"),
            Self::NotCategorized => f.write_str("skipped: no analysis"),
            Self::Categorized(Categorized::Applied(a)) => write!(
                f,
                "ok: {} companies sent to the CRM ({} changed class, {} changed lifecycle)",
                a.sent, a.class_changes, a.lifecycle_changes
            ),
            Self::Categorized(Categorized::Held { changed, base }) => {
                write!(f, "held: {changed} of {base} companies would change class")
            }
            Self::Reconciled => f.write_str("ok"),
        }
    }
}

/// What applying a classification did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// Companies whose categories changed (and were sent to the CRM).
    pub sent: u64,
    /// Companies whose class changed.
    pub class_changes: u64,
    /// Companies whose lifecycle changed.
    pub lifecycle_changes: u64,
}

/// What the categorize stage did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Categorized {
    /// The categories were applied.
    Applied(Applied),
    /// The shift guard held the classification.
    Held {
        /// Companies classified before whose class would change…
        changed: u64,
        /// …of this many.
        base: u64,
    },
}

/// What the abc stage computed, for the categorize stage.
#[derive(Debug, Clone)]
pub struct Analysis {
    /// The report (state set by categorize).
    pub report: AbcReport,
    /// Every live company's new categories.
    pub categories: Vec<Category>,
    /// Companies named by invoices or orders that are not in the CRM, and their revenue.
    pub orphans: (u64, Money),
    /// The stored categories of each company of `categories` (same order), if any.
    pub previous: Vec<Option<Stored>>,
    /// Companies with stored categories that are no longer live.
    pub removed: Vec<String>,
    /// Where the classification ranked each company of `categories` (same order).
    pub standings: Vec<Option<Standing>>,
}

impl Analysis {
    /// One line for the run log: the classes, their shares and the window.
    pub fn describe(&self) -> String {
        let r = &self.report;
        let classes: Vec<String> = r
            .summary
            .iter()
            .map(|s| match s.class {
                Some(c) => format!("{}: {} ({} %)", c.as_str(), s.companies, s.share),
                None => format!("no revenue: {}", s.companies),
            })
            .collect();
        format!(
            "{} companies by {} revenue {}..{}: {}",
            r.companies,
            r.basis.table().as_str(),
            r.window_from,
            r.window_to,
            classes.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_read_as_the_run_record_shows_them() {
        let guarded = Outcome::Guarded(vec![
            Guarded {
                table: Table::Company,
                superseded: 2,
                held: 60,
                kept: 0,
            },
            Guarded {
                table: Table::Contact,
                superseded: 0,
                held: 0,
                kept: 100,
            },
        ]);
        assert_eq!(
            guarded.to_string(),
            "2 company deletions superseded, 60 company deletions held, \
             100 contact deletions of kept records ignored"
        );
        assert_eq!(Outcome::Guarded(Vec::new()).to_string(), "ok");
        assert_eq!(
            Outcome::Collected { records: 20 }.to_string(),
            "ok: 20 records"
        );
        assert_eq!(
            Outcome::Pushed {
                stopped_in: Some(Table::Contact)
            }
            .to_string(),
            "stopped by shutdown in contact"
        );
        let applied = Outcome::Categorized(Categorized::Applied(Applied {
            sent: 20,
            class_changes: 0,
            lifecycle_changes: 20,
        }));
        assert_eq!(
            applied.to_string(),
            "ok: 20 companies sent to the CRM (0 changed class, 20 changed lifecycle)"
        );
        let held = Outcome::Categorized(Categorized::Held {
            changed: 7,
            base: 10,
        });
        assert_eq!(
            held.to_string(),
            "held: 7 of 10 companies would change class"
        );
    }
}
