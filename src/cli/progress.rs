//! Progress of a run or a download on stderr: a bar (indicatif) when stderr is a
//! terminal that takes ANSI escapes ([`crate::colour`]: not under `NO_COLOR`), else a plain
//! line each time it moves, so logs of scripts stay readable.
//! What the command prints on stdout is untouched (a bar is hidden while it prints).

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// A progress display.
pub enum Progress {
    /// A terminal: one bar, redrawn in place.
    Bar(ProgressBar),
    /// Not a terminal: a line per change.
    Lines {
        /// The last line written (a poll that finds no change writes nothing).
        last: String,
    },
}

impl Progress {
    /// A bar when stderr takes ANSI escapes, plain lines otherwise.
    pub fn new() -> Self {
        if crate::colour::enabled(crate::colour::Stream::Stderr) {
            let bar = ProgressBar::new_spinner();
            bar.enable_steady_tick(Duration::from_millis(120));
            Self::Bar(bar)
        } else {
            Self::Lines {
                last: String::new(),
            }
        }
    }

    /// Prints `line` on stdout without tearing the bar.
    pub fn println(&self, line: &str) {
        match self {
            Self::Bar(bar) => bar.suspend(|| println!("{line}")),
            Self::Lines { .. } => println!("{line}"),
        }
    }

    /// A run in `stage` (on `table`), `done` of `total` records (total 0: unknown, and
    /// `done` is shown alone when it moved).
    pub fn stage(&mut self, stage: &str, table: &str, done: u64, total: u64) {
        let what = if table.is_empty() {
            stage.to_owned()
        } else {
            format!("{stage} [{table}]")
        };
        match self {
            Self::Bar(bar) => {
                if total > 0 {
                    bar.set_style(bar_style(
                        "{spinner} {msg:<24} [{bar:30}] {pos}/{len} ({elapsed})",
                    ));
                    bar.set_length(total);
                    bar.set_position(done.min(total));
                } else if done > 0 {
                    bar.set_style(bar_style("{spinner} {msg:<24} {pos} records ({elapsed})"));
                    bar.set_position(done);
                } else {
                    bar.set_style(bar_style("{spinner} {msg:<24} ({elapsed})"));
                }
                bar.set_message(what);
            }
            Self::Lines { last } => {
                let line = if total > 0 {
                    format!("progress: {what} {done}/{total}")
                } else if done > 0 {
                    format!("progress: {what} {done} records")
                } else {
                    format!("progress: {what}")
                };
                if *last != line {
                    eprintln!("{line}");
                    *last = line;
                }
            }
        }
    }

    /// A download that has received `bytes` so far (0: waiting for the first).
    pub fn bytes(&mut self, bytes: u64) {
        match self {
            Self::Bar(bar) => {
                if bytes == 0 {
                    bar.set_style(bar_style("{spinner} {msg} ({elapsed})"));
                    bar.set_message("the server is building the workbook");
                } else {
                    bar.set_style(bar_style("{spinner} received {bytes} ({bytes_per_sec})"));
                    bar.set_position(bytes);
                }
            }
            Self::Lines { last } => {
                let line = if bytes == 0 {
                    "progress: the server is building the workbook".to_owned()
                } else {
                    format!("progress: received {bytes} bytes")
                };
                if *last != line {
                    eprintln!("{line}");
                    *last = line;
                }
            }
        }
    }

    /// Takes the bar off the terminal.
    pub fn finish(self) {
        if let Self::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

fn bar_style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
        .progress_chars("=> ")
}
