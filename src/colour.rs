//! Whether an output stream gets ANSI escape sequences (colours, a progress bar redrawn in
//! place): the one rule for the server's log and every CLI output. Only on a terminal, and
//! never when `NO_COLOR` is set to anything but the empty string (<https://no-color.org>):
//! a log written to a file, piped to another program or collected by a container runtime
//! stays plain text.

use std::ffi::OsStr;
use std::io::IsTerminal;

/// The output stream a caller is about to write to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output (what a command prints).
    Stdout,
    /// Standard error (the server's log, progress, errors).
    Stderr,
}

impl Stream {
    /// Whether the stream is a terminal.
    fn is_terminal(self) -> bool {
        match self {
            Self::Stdout => std::io::stdout().is_terminal(),
            Self::Stderr => std::io::stderr().is_terminal(),
        }
    }
}

/// Whether to colour (or redraw) what is written to `stream`, from this process's
/// environment.
pub fn enabled(stream: Stream) -> bool {
    decide(
        std::env::var_os("NO_COLOR").as_deref(),
        stream.is_terminal(),
    )
}

/// The rule itself: colours on a terminal, unless `NO_COLOR` holds a non-empty value.
pub fn decide(no_color: Option<&OsStr>, terminal: bool) -> bool {
    terminal && no_color.is_none_or(OsStr::is_empty)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_only_on_a_terminal_without_no_color() {
        assert!(decide(None, true));
        assert!(!decide(None, false), "a file or a pipe stays plain");
        assert!(!decide(Some(OsStr::new("1")), true));
        assert!(
            !decide(Some(OsStr::new("0")), true),
            "any non-empty value counts"
        );
        assert!(!decide(Some(OsStr::new("1")), false));
        assert!(
            decide(Some(OsStr::new("")), true),
            "empty is as unset (no-color.org)"
        );
    }
}
