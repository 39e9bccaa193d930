//! A live per-service progress view for `up`, `scale` and `down`.
//!
//! On a terminal the block of rows is redrawn in place (ANSI cursor-up and
//! erase-line; no crate needed for that). Anywhere else (pipes, CI logs) a
//! row is printed as a plain line only when its text changed, so logs stay
//! readable. Progress goes to stderr: stdout stays clean for `--output json`.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};

/// One line of the view: a label (service name) and its current status text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub label: String,
    pub text: String,
}

pub struct Progress {
    tty: bool,
    /// Rows drawn by the last redraw (TTY mode), to move the cursor back up.
    drawn: usize,
    /// Last text printed per label (plain mode), to print only changes.
    last: BTreeMap<String, String>,
}

impl Progress {
    /// A view on stderr; redraws in place when stderr is a terminal.
    pub fn stderr() -> Progress {
        Progress::new(std::io::stderr().is_terminal())
    }

    pub fn new(tty: bool) -> Progress {
        Progress {
            tty,
            drawn: 0,
            last: BTreeMap::new(),
        }
    }

    pub fn update(&mut self, rows: &[Row]) {
        let text = if self.tty {
            let t = redraw(self.drawn, rows);
            self.drawn = rows.len();
            t
        } else {
            changed_lines(&mut self.last, rows)
        };
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(text.as_bytes());
        let _ = err.flush();
    }

    /// Print a message line below the view (it stays; the view restarts under it).
    pub fn note(&mut self, message: &str) {
        self.drawn = 0;
        eprintln!("{message}");
    }
}

/// The escape sequence that replaces the previous `drawn` rows with `rows`.
fn redraw(drawn: usize, rows: &[Row]) -> String {
    let mut out = String::new();
    if drawn > 0 {
        out.push_str(&format!("\x1b[{drawn}A"));
    }
    let width = label_width(rows);
    for row in rows {
        out.push_str(&format!("\x1b[2K{:width$}  {}\n", row.label, row.text));
    }
    // Rows that disappeared since the last draw are blanked.
    for _ in rows.len()..drawn {
        out.push_str("\x1b[2K\n");
    }
    if drawn > rows.len() {
        out.push_str(&format!("\x1b[{}A", drawn - rows.len()));
    }
    out
}

/// Plain lines for the rows whose text changed since last printed.
fn changed_lines(last: &mut BTreeMap<String, String>, rows: &[Row]) -> String {
    let mut out = String::new();
    for row in rows {
        if last.get(&row.label) != Some(&row.text) {
            out.push_str(&format!("{}: {}\n", row.label, row.text));
            last.insert(row.label.clone(), row.text.clone());
        }
    }
    out
}

fn label_width(rows: &[Row]) -> usize {
    rows.iter().map(|r| r.label.len()).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(label: &str, text: &str) -> Row {
        Row {
            label: label.into(),
            text: text.into(),
        }
    }

    #[test]
    fn plain_mode_prints_only_changes() {
        let mut last = BTreeMap::new();
        let first = changed_lines(&mut last, &[row("web", "0/3"), row("db", "0/1")]);
        assert_eq!(first, "web: 0/3\ndb: 0/1\n");
        let second = changed_lines(&mut last, &[row("web", "1/3"), row("db", "0/1")]);
        assert_eq!(second, "web: 1/3\n");
        assert_eq!(changed_lines(&mut last, &[row("web", "1/3")]), "");
    }

    #[test]
    fn tty_mode_moves_up_over_the_previous_block() {
        let first = redraw(0, &[row("web", "0/3"), row("db", "0/1")]);
        assert!(!first.contains("\x1b[2A"));
        assert!(first.contains("web  0/3\n"));
        let second = redraw(2, &[row("web", "3/3")]);
        assert!(second.starts_with("\x1b[2A"));
        // One row vanished: it is blanked and the cursor returns above it.
        assert!(second.ends_with("\x1b[2K\n\x1b[1A"));
    }
}
