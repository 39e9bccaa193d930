//! Turn the merged, interpolated YAML tree into the typed model.
//!
//! Each reader takes a node and returns a typed value or records a
//! diagnostic at the node's position and returns `None`, so that one pass
//! reports every problem in the file.

mod deploy;
mod service;
pub mod top;

pub use top::stack;

use crate::diag::Diagnostic;
use crate::keys;
use crate::yaml::{parse_bool, Node, Value};
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

/// Shared state while normalising one project.
pub struct Ctx<'a> {
    pub project_dir: PathBuf,
    pub project_name: String,
    /// Interpolation environment (for `KEY` without value, `~`).
    pub env: &'a BTreeMap<String, String>,
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
}

impl Ctx<'_> {
    pub fn error(&mut self, d: Diagnostic) {
        self.errors.push(d);
    }

    /// Report `node` as having the wrong shape.
    pub fn expected(&mut self, node: &Node, what: &str, context: &str) {
        let found = node.kind();
        self.errors.push(
            node.pos
                .error(format!(
                    "invalid `{context}`: expected {what}, found {found}"
                ))
                .with_label(format!("expected {what}")),
        );
    }

    /// Check a node is a mapping and return its entries, reporting unknown
    /// keys (with a suggestion). `x-` keys are allowed when `extensions`.
    pub fn fields<'n>(
        &mut self,
        node: &'n Node,
        known: &[&str],
        context: &str,
        extensions: bool,
    ) -> Vec<(&'n str, &'n Node)> {
        let Some(map) = node.as_map() else {
            if !node.is_null() {
                self.expected(node, "a mapping", context);
            }
            return Vec::new();
        };
        let mut out = Vec::with_capacity(map.len());
        for (k, v) in map {
            let name = k.as_str().unwrap_or_default();
            if known.contains(&name) || (extensions && name.starts_with("x-")) {
                out.push((name, v));
            } else {
                self.unknown_key(k, name, known, context);
            }
        }
        out
    }

    pub fn unknown_key(&mut self, key: &Node, name: &str, known: &[&str], context: &str) {
        let mut d = key
            .pos
            .error(format!("unknown key `{name}` in {context}"))
            .with_label("not a Compose key here");
        d = match keys::suggest(name, known) {
            Some(s) => d.with_help(format!("did you mean `{s}`?")),
            None => d.with_help(format!(
                "expected one of: {} (or an `x-` extension)",
                known.join(", ")
            )),
        };
        self.errors.push(d);
    }

    pub fn not_acted_on(&mut self, key: &Node, name: &str, context: &str) {
        self.warnings.push(
            key.pos
                .warning(format!(
                    "`{name}` in {context} is parsed but not acted on by Flotilla yet"
                ))
                .with_label("ignored when running"),
        );
    }

    /// A string, as the schema types it: an unquoted number or boolean is
    /// refused (with a hint to quote it), like Compose's schema check.
    pub fn string(&mut self, node: &Node, context: &str) -> Option<String> {
        match &node.value {
            Value::Scalar { text, plain } if !node.is_null() => {
                let typed = *plain
                    && (parse_bool(text).is_some()
                        || text.parse::<i64>().is_ok()
                        || crate::yaml::parse_float(text).is_some());
                if typed {
                    let what = if parse_bool(text).is_some() {
                        "a boolean"
                    } else {
                        "a number"
                    };
                    self.errors.push(
                        node.pos
                            .error(format!(
                                "invalid `{context}`: expected a string, found {what}"
                            ))
                            .with_label("expected a string")
                            .with_help(format!("quote it: \"{text}\"")),
                    );
                    return None;
                }
                Some(text.clone())
            }
            _ => {
                self.expected(node, "a string", context);
                None
            }
        }
    }

    /// Any scalar's text (numbers and booleans as written), for values the
    /// schema allows as string or number (ports, sizes, durations...).
    pub fn text(&mut self, node: &Node, context: &str) -> Option<String> {
        match &node.value {
            Value::Scalar { text, .. } if !node.is_null() => Some(text.clone()),
            _ => {
                self.expected(node, "a string or a number", context);
                None
            }
        }
    }

    /// A string, or `None` (without error) for null.
    pub fn opt_string(&mut self, node: &Node, context: &str) -> Option<String> {
        if node.is_null() {
            None
        } else {
            self.string(node, context)
        }
    }

    pub fn boolean(&mut self, node: &Node, context: &str) -> Option<bool> {
        match node.as_str().and_then(parse_bool) {
            Some(b) if matches!(node.value, Value::Scalar { .. }) => Some(b),
            _ => {
                self.expected(node, "true or false", context);
                None
            }
        }
    }

    pub fn uint(&mut self, node: &Node, context: &str) -> Option<u64> {
        match node.as_str().map(|t| t.trim().parse::<u64>()) {
            Some(Ok(v)) => Some(v),
            _ => {
                self.expected(node, "a non-negative integer", context);
                None
            }
        }
    }

    pub fn int(&mut self, node: &Node, context: &str) -> Option<i64> {
        match node.as_str().map(|t| t.trim().parse::<i64>()) {
            Some(Ok(v)) => Some(v),
            _ => {
                self.expected(node, "an integer", context);
                None
            }
        }
    }

    pub fn float(&mut self, node: &Node, context: &str) -> Option<f64> {
        match node.as_str().map(|t| t.trim().parse::<f64>()) {
            Some(Ok(v)) if v.is_finite() => Some(v),
            _ => {
                self.expected(node, "a number", context);
                None
            }
        }
    }

    /// Run a short-form parser on a scalar, reporting its error at the node.
    pub fn parse_with<T>(
        &mut self,
        node: &Node,
        context: &str,
        f: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let text = self.text(node, context)?;
        match f(&text) {
            Ok(v) => Some(v),
            Err(e) => {
                self.errors
                    .push(node.pos.error(format!("invalid `{context}`: {e}")));
                None
            }
        }
    }

    pub fn duration(&mut self, node: &Node, context: &str) -> Option<flotilla_spec::Duration> {
        self.parse_with(node, context, crate::short::duration)
    }

    /// Byte size: integer bytes or a string with unit.
    pub fn size(&mut self, node: &Node, context: &str) -> Option<u64> {
        self.parse_with(node, context, crate::short::byte_size)
    }

    /// A list of strings; a single string is accepted when `single_ok`.
    pub fn string_list(&mut self, node: &Node, context: &str, single_ok: bool) -> Vec<String> {
        match &node.value {
            Value::Seq(items) => items
                .iter()
                .filter_map(|i| self.string(i, context))
                .collect(),
            Value::Scalar { .. } if node.is_null() => Vec::new(),
            Value::Scalar { text, .. } if single_ok => vec![text.clone()],
            _ => {
                let what = if single_ok {
                    "a string or a list of strings"
                } else {
                    "a list of strings"
                };
                self.expected(node, what, context);
                Vec::new()
            }
        }
    }

    /// Compose's `list_or_dict`: `["K=V", "K"]` or `{K: V, K: null}`.
    /// Values that are numbers/booleans become their text.
    pub fn list_or_dict(&mut self, node: &Node, context: &str) -> Vec<(String, Option<String>)> {
        match &node.value {
            Value::Seq(items) => items
                .iter()
                .filter_map(|i| {
                    let text = self.string(i, context)?;
                    Some(crate::short::key_value(&text))
                })
                .collect(),
            Value::Map(entries) => entries
                .iter()
                .filter_map(|(k, v)| {
                    let key = k.as_str()?.to_string();
                    if v.is_null() {
                        return Some((key, None));
                    }
                    match &v.value {
                        Value::Scalar { text, .. } => Some((key, Some(text.clone()))),
                        _ => {
                            self.expected(v, "a string, number, boolean or null", context);
                            None
                        }
                    }
                })
                .collect(),
            _ if node.is_null() => Vec::new(),
            _ => {
                self.expected(node, "a list of \"KEY=VALUE\" or a mapping", context);
                Vec::new()
            }
        }
    }

    /// `list_or_dict` where every value is required (labels, sysctls...).
    pub fn string_map(&mut self, node: &Node, context: &str) -> BTreeMap<String, String> {
        self.list_or_dict(node, context)
            .into_iter()
            .map(|(k, v)| (k, v.unwrap_or_default()))
            .collect()
    }

    /// Resolve a host path against the project directory (`~` = HOME).
    pub fn host_path(&self, path: &str) -> String {
        resolve_path(
            &self.project_dir,
            path,
            self.env.get("HOME").map(String::as_str),
        )
        .to_string_lossy()
        .into_owned()
    }

    /// Name of a top-level resource: `name:` or `<project>_<key>`.
    pub fn resource_name(&self, key: &str, explicit: Option<String>, external: bool) -> String {
        match explicit {
            Some(n) => n,
            None if external => key.to_string(),
            None => format!("{}_{}", self.project_name, key),
        }
    }
}

/// `context.key`, the dotted path that names a value in messages. Built by
/// hand: it runs for every key of every service, and `format!` costs
/// several times more than the copy.
pub(crate) fn dotted(context: &str, key: &str) -> String {
    let mut s = String::with_capacity(context.len() + 1 + key.len());
    s.push_str(context);
    s.push('.');
    s.push_str(key);
    s
}

/// Join `path` to `base` and clean `.`/`..` lexically (no filesystem access).
pub fn resolve_path(base: &Path, path: &str, home: Option<&str>) -> PathBuf {
    let expanded: PathBuf = match (path.strip_prefix('~'), home) {
        (Some(rest), Some(home)) if rest.is_empty() || rest.starts_with('/') => {
            PathBuf::from(format!("{home}{rest}"))
        }
        _ => PathBuf::from(path),
    };
    let joined = if expanded.is_absolute() {
        expanded
    } else {
        base.join(expanded)
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let base = Path::new("/proj/app");
        assert_eq!(
            resolve_path(base, "./data", None),
            PathBuf::from("/proj/app/data")
        );
        assert_eq!(
            resolve_path(base, "../x/./y", None),
            PathBuf::from("/proj/x/y")
        );
        assert_eq!(resolve_path(base, "/abs", None), PathBuf::from("/abs"));
        assert_eq!(
            resolve_path(base, "~/c", Some("/home/u")),
            PathBuf::from("/home/u/c")
        );
    }
}
