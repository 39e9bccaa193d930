//! Compiler-style diagnostics: file, line, column, the offending line with a
//! caret, what was expected, and a hint. Rendering is done by
//! `annotate-snippets` (the renderer rustc uses), so the layout matches what
//! Rust users already read every day.

use annotate_snippets::{AnnotationKind, Group, Level, Renderer, Snippet};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Error,
    Warning,
}

/// One finding about the input, located in a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// File name as given (path or the name passed to `load_str`).
    pub file: String,
    /// 1-based line; 0 when the finding is not tied to a place in a file.
    pub line: usize,
    /// 1-based column in characters; 0 when not tied to a place.
    pub column: usize,
    /// What is wrong.
    pub message: String,
    /// How to fix it, when we can tell.
    pub help: Option<String>,
    /// The text of the offending line (for the snippet), if known.
    pub source_line: Option<String>,
    /// Width in characters of the offending text (at least 1 when rendered).
    pub width: usize,
    /// Short label under the caret (defaults to the message).
    pub label: Option<String>,
}

impl Diagnostic {
    pub fn error(message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            file: String::new(),
            line: 0,
            column: 0,
            message: message.into(),
            help: None,
            source_line: None,
            width: 1,
            label: None,
        }
    }

    pub fn warning(message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(message)
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    pub fn in_file(mut self, file: impl Into<String>) -> Self {
        self.file = file.into();
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Render this one diagnostic, compiler style.
    pub fn render(&self, color: bool) -> String {
        let renderer = if color {
            Renderer::styled()
        } else {
            Renderer::plain()
        };
        let level = match self.severity {
            Severity::Error => Level::ERROR,
            Severity::Warning => Level::WARNING,
        };
        let title = level.primary_title(self.message.as_str());
        let help_group;
        let mut groups: Vec<Group<'_>> = Vec::new();
        let group = match (&self.source_line, self.line) {
            (Some(text), line) if line > 0 => {
                let start = char_to_byte(text, self.column.saturating_sub(1));
                let end = char_to_byte(text, self.column.saturating_sub(1) + self.width.max(1));
                let end = end.max(start);
                // An empty range at end of line still gets a caret.
                let label = self.label.as_deref().unwrap_or("");
                title.element(
                    Snippet::source(text.as_str())
                        .line_start(line)
                        .path(self.file.as_str())
                        .annotation(AnnotationKind::Primary.span(start..end).label(label)),
                )
            }
            _ => {
                if self.file.is_empty() {
                    Group::with_title(title)
                } else {
                    title.element(annotate_snippets::Origin::path(self.file.as_str()))
                }
            }
        };
        groups.push(group);
        if let Some(help) = &self.help {
            help_group = Group::with_title(Level::HELP.secondary_title(help.as_str()));
            groups.push(help_group);
        }
        renderer.render(&groups)
    }
}

fn char_to_byte(text: &str, chars: usize) -> usize {
    text.char_indices()
        .nth(chars)
        .map(|(i, _)| i)
        .unwrap_or(text.len())
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(false))
    }
}

/// All the errors found in one load, reported together.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn render(&self, color: bool) -> String {
        let mut out = String::new();
        for d in &self.0 {
            out.push_str(&d.render(color));
            out.push_str("\n\n");
        }
        let errors = self.0.iter().filter(|d| d.is_error()).count();
        if errors > 0 {
            let s = if errors == 1 { "" } else { "s" };
            out.push_str(&format!(
                "error: the stack could not be loaded ({errors} error{s})"
            ));
        }
        out.trim_end().to_string()
    }

    pub fn has_errors(&self) -> bool {
        self.0.iter().any(Diagnostic::is_error)
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(false))
    }
}

impl std::error::Error for Diagnostics {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_location_snippet_caret_and_help() {
        let mut d = Diagnostic::error("invalid type: expected a string")
            .with_help("quote the value")
            .with_label("expected a string")
            .in_file("stack.yml");
        d.line = 3;
        d.column = 12;
        d.width = 1;
        d.source_line = Some("    image: 5".into());
        let text = d.render(false);
        assert!(
            text.starts_with("error: invalid type: expected a string"),
            "{text}"
        );
        assert!(text.contains("--> stack.yml:3:12"), "{text}");
        assert!(text.contains("3 |     image: 5"), "{text}");
        assert!(text.contains("^ expected a string"), "{text}");
        assert!(text.contains("help: quote the value"), "{text}");
    }

    #[test]
    fn renders_without_location() {
        let d = Diagnostic::warning("something").in_file("a.yml");
        let text = d.render(false);
        assert!(text.starts_with("warning: something"), "{text}");
        assert!(text.contains("a.yml"), "{text}");
    }
}
