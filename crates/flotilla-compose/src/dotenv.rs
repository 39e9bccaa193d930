//! `.env` / `--env-file` parsing with Compose's dotenv rules: comments,
//! `export` prefix, unquoted values (trailing ` # comment` stripped),
//! single quotes (literal), double quotes (escapes, may span lines), and
//! `${VAR}` interpolation in unquoted and double-quoted values using the
//! variables defined earlier in the file and then the environment.
//!
//! Written by hand because `dotenvy` looks variables up in the process
//! environment only, while Flotilla interpolates from an explicit map
//! (`LoadOptions::environment`) and needs line numbers for its diagnostics.

use crate::interp::interpolate;
use std::collections::BTreeMap;

/// A dotenv problem at a 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DotenvError {
    pub line: usize,
    pub message: String,
}

/// Parse `text`; `env` supplies values for `${VAR}` references and for
/// lines that name a variable without `=`.
pub fn parse(
    text: &str,
    env: &BTreeMap<String, String>,
) -> Result<Vec<(String, String)>, DotenvError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.lines().collect();
    let mut out: Vec<(String, String)> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line_no = i + 1;
        let line = lines[i].trim_end_matches('\r').trim_start();
        i += 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line
            .strip_prefix("export ")
            .map(str::trim_start)
            .unwrap_or(line);
        let err = |message: String| DotenvError {
            line: line_no,
            message,
        };
        let Some(eq) = line.find('=') else {
            let key = line.trim();
            check_key(key).map_err(err)?;
            if let Some(v) = lookup(&out, env, key) {
                out.push((key.to_string(), v.to_string()));
            }
            continue;
        };
        let key = line[..eq].trim();
        check_key(key).map_err(err)?;
        let raw = line[eq + 1..].trim_start();
        let value = if let Some(rest) = raw.strip_prefix('\'') {
            let (body, _) = read_quoted(rest, '\'', &lines, &mut i)
                .ok_or_else(|| err(format!("unterminated single-quoted value for {key}")))?;
            body
        } else if let Some(rest) = raw.strip_prefix('"') {
            let (body, _) = read_quoted(rest, '"', &lines, &mut i)
                .ok_or_else(|| err(format!("unterminated double-quoted value for {key}")))?;
            let unescaped = unescape(&body);
            expand(&unescaped, &out, env).map_err(err)?
        } else {
            let v = match raw.find(" #") {
                Some(c) => &raw[..c],
                None => raw,
            };
            expand(v.trim_end(), &out, env).map_err(err)?
        };
        out.retain(|(k, _)| k != key);
        out.push((key.to_string(), value));
    }
    Ok(out)
}

fn check_key(key: &str) -> Result<(), String> {
    let ok = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid variable name {key:?}: expected letters, digits, `_`, `.` or `-`"
        ))
    }
}

fn lookup<'a>(
    defined: &'a [(String, String)],
    env: &'a BTreeMap<String, String>,
    key: &str,
) -> Option<&'a str> {
    defined
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .or_else(|| env.get(key).map(String::as_str))
}

fn expand(
    value: &str,
    defined: &[(String, String)],
    env: &BTreeMap<String, String>,
) -> Result<String, String> {
    let look = |name: &str| lookup(defined, env, name);
    interpolate(value, &look)
        .map(|r| r.text)
        .map_err(|e| e.message)
}

/// Read a quoted value starting after the opening quote, continuing over
/// following lines until the closing quote. Returns the body.
fn read_quoted(first: &str, quote: char, lines: &[&str], next: &mut usize) -> Option<(String, ())> {
    let mut body = String::new();
    let mut current = first.to_string();
    loop {
        let mut escaped = false;
        for (idx, c) in current.char_indices() {
            if quote == '"' && c == '\\' && !escaped {
                escaped = true;
                continue;
            }
            if c == quote && !escaped {
                let mut b = body;
                b.push_str(&current[..idx]);
                return Some((b, ()));
            }
            escaped = false;
        }
        body.push_str(&current);
        body.push('\n');
        current = lines.get(*next)?.trim_end_matches('\r').to_string();
        *next += 1;
    }
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('"') => out.push('"'),
            Some('\\') => out.push('\\'),
            // `\$` keeps a literal `$` through interpolation.
            Some('$') => out.push_str("$$"),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_table() {
        let text = "# comment\n\nA=1\nexport B=two words # trailing\nC='lit $A'\nD=\"x\\ny $A\"\nE=\"multi\nline\"\nF=${A}-${HOMEVAR}\nG=\nH=\"quote \\\" inside\"\nHOMEVAR\n";
        let mut env = BTreeMap::new();
        env.insert("HOMEVAR".to_string(), "/root".to_string());
        let got = parse(text, &env).unwrap();
        let want: Vec<(&str, &str)> = vec![
            ("A", "1"),
            ("B", "two words"),
            ("C", "lit $A"),
            ("D", "x\ny 1"),
            ("E", "multi\nline"),
            ("F", "1-/root"),
            ("G", ""),
            ("H", "quote \" inside"),
            ("HOMEVAR", "/root"),
        ];
        let got: Vec<(&str, &str)> = got.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn crlf_and_bom() {
        let got = parse("\u{feff}A=1\r\nB=2\r\n", &BTreeMap::new()).unwrap();
        assert_eq!(
            got,
            vec![("A".into(), "1".into()), ("B".into(), "2".into())]
        );
    }

    #[test]
    fn errors_have_lines() {
        let e = parse("A=1\nB=\"open\n", &BTreeMap::new()).unwrap_err();
        assert_eq!(e.line, 2);
        let e = parse("A=1\nbad key=1\n", &BTreeMap::new()).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("invalid variable name"));
    }
}
