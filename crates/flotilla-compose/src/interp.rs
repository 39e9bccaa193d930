//! Variable interpolation, exactly as Compose does it:
//! `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`,
//! `${VAR?error}`, `${VAR:+alt}`, `${VAR+alt}`, `$$` for a literal `$`, and
//! nested expressions inside defaults (`${A:-${B:-x}}`).
//!
//! Written by hand: no maintained crate implements Compose's exact grammar
//! (shell-expansion crates differ on `$$`, `:?` messages and error cases).

/// Why interpolation failed, and where in the string (character offset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterpError {
    pub message: String,
    pub offset: usize,
    pub help: Option<String>,
}

/// Result of interpolating one string.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Interpolated {
    pub text: String,
    /// Variables referenced without a default and not set (Compose warns and
    /// substitutes an empty string).
    pub unset: Vec<String>,
}

/// Substitute variables in `input`, looking them up with `lookup`.
pub fn interpolate<'a>(
    input: &str,
    lookup: &dyn Fn(&str) -> Option<&'a str>,
) -> Result<Interpolated, InterpError> {
    let chars: Vec<char> = input.chars().collect();
    let mut out = Interpolated::default();
    let mut p = Interp {
        chars: &chars,
        lookup,
        unset: &mut out.unset,
    };
    out.text = p.run(0, chars.len())?;
    Ok(out)
}

struct Interp<'c, 'a, 'u> {
    chars: &'c [char],
    lookup: &'c dyn Fn(&str) -> Option<&'a str>,
    unset: &'u mut Vec<String>,
}

fn is_name_start(c: char) -> bool {
    c == '_' || c.is_ascii_alphabetic()
}

fn is_name_char(c: char) -> bool {
    c == '_' || c.is_ascii_alphanumeric()
}

impl Interp<'_, '_, '_> {
    /// Interpolate `chars[start..end]`.
    fn run(&mut self, start: usize, end: usize) -> Result<String, InterpError> {
        let mut out = String::new();
        let mut i = start;
        while i < end {
            let c = self.chars[i];
            if c != '$' {
                out.push(c);
                i += 1;
                continue;
            }
            match self.chars.get(i + 1).copied().filter(|_| i + 1 < end) {
                Some('$') => {
                    out.push('$');
                    i += 2;
                }
                Some('{') => {
                    let close = self.matching_brace(i + 1, end)?;
                    out.push_str(&self.braced(i, i + 2, close)?);
                    i = close + 1;
                }
                Some(c) if is_name_start(c) => {
                    let mut j = i + 1;
                    while j < end && is_name_char(self.chars[j]) {
                        j += 1;
                    }
                    let name: String = self.chars[i + 1..j].iter().collect();
                    out.push_str(&self.value_or_warn(&name));
                    i = j;
                }
                _ => {
                    return Err(InterpError {
                        message:
                            "invalid interpolation: `$` must be followed by a variable name or `{`"
                                .into(),
                        offset: i,
                        help: Some("write `$$` for a literal `$`".into()),
                    })
                }
            }
        }
        Ok(out)
    }

    fn value_or_warn(&mut self, name: &str) -> String {
        match (self.lookup)(name) {
            Some(v) => v.to_string(),
            None => {
                if !self.unset.iter().any(|n| n == name) {
                    self.unset.push(name.to_string());
                }
                String::new()
            }
        }
    }

    /// Index of the `}` matching the `{` at `open`, honouring nesting.
    fn matching_brace(&self, open: usize, end: usize) -> Result<usize, InterpError> {
        let mut depth = 0usize;
        let mut i = open;
        while i < end {
            match self.chars[i] {
                '$' if i + 1 < end && self.chars[i + 1] == '$' => i += 1,
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(i);
                    }
                }
                _ => {}
            }
            i += 1;
        }
        Err(InterpError {
            message: "invalid interpolation: `${` is never closed".into(),
            offset: open - 1,
            help: Some("add the closing `}`, or write `$$` for a literal `$`".into()),
        })
    }

    /// `${...}` whose body is `chars[body..close]`; `dollar` is the `$` index.
    fn braced(&mut self, dollar: usize, body: usize, close: usize) -> Result<String, InterpError> {
        let mut j = body;
        while j < close && is_name_char(self.chars[j]) {
            j += 1;
        }
        let name: String = self.chars[body..j].iter().collect();
        if name.is_empty() || !is_name_start(self.chars[body]) {
            return Err(InterpError {
                message: format!(
                    "invalid interpolation `{}`: expected a variable name after `${{`",
                    self.chars[dollar..=close].iter().collect::<String>()
                ),
                offset: dollar,
                help: Some("names start with a letter or `_`; write `$$` for a literal `$`".into()),
            });
        }
        if j == close {
            return Ok(self.value_or_warn(&name));
        }
        let colon = self.chars[j] == ':';
        let op_at = if colon { j + 1 } else { j };
        let op = self.chars.get(op_at).copied().filter(|_| op_at < close);
        let arg_start = op_at + 1;
        let value = (self.lookup)(&name);
        // With `:`, an empty value counts as unset.
        let is_set = match value {
            Some(v) => !(colon && v.is_empty()),
            None => false,
        };
        match op {
            Some('-') => {
                if is_set {
                    Ok(value.unwrap_or_default().to_string())
                } else {
                    self.run(arg_start, close)
                }
            }
            Some('+') => {
                if is_set {
                    self.run(arg_start, close)
                } else {
                    Ok(String::new())
                }
            }
            Some('?') => {
                if is_set {
                    Ok(value.unwrap_or_default().to_string())
                } else {
                    let msg = self.run(arg_start, close)?;
                    let what = if colon { "missing a value" } else { "not set" };
                    let message = if msg.is_empty() {
                        format!("required variable {name} is {what}")
                    } else {
                        format!("required variable {name} is {what}: {msg}")
                    };
                    Err(InterpError {
                        message,
                        offset: dollar,
                        help: Some(format!(
                            "set {name} in the environment or in the .env / --env-file file"
                        )),
                    })
                }
            }
            _ => Err(InterpError {
                message: format!(
                    "invalid interpolation `{}`: unknown operator after `{name}`",
                    self.chars[dollar..=close].iter().collect::<String>()
                ),
                offset: dollar,
                help: Some(
                    "use one of `:-`, `-`, `:?`, `?`, `:+`, `+` (e.g. `${NAME:-default}`)".into(),
                ),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &str) -> Result<Interpolated, InterpError> {
        let env = |name: &str| match name {
            "SET" => Some("value"),
            "EMPTY" => Some(""),
            "B" => Some("bee"),
            _ => None,
        };
        interpolate(input, &env)
    }

    #[test]
    fn table() {
        let cases: &[(&str, &str)] = &[
            ("plain", "plain"),
            ("$SET", "value"),
            ("${SET}", "value"),
            ("a-$SET-b", "a-value-b"),
            ("$SET.x", "value.x"),
            ("${UNSET:-def}", "def"),
            ("${EMPTY:-def}", "def"),
            ("${EMPTY-def}", ""),
            ("${UNSET-def}", "def"),
            ("${SET:-def}", "value"),
            ("${SET:+alt}", "alt"),
            ("${EMPTY:+alt}", ""),
            ("${EMPTY+alt}", "alt"),
            ("${UNSET+alt}", ""),
            ("$$SET", "$SET"),
            ("$${SET}", "${SET}"),
            ("echo $$HOME && $$(date)", "echo $HOME && $(date)"),
            ("${UNSET:-${B:-x}}", "bee"),
            ("${UNSET:-${NOPE:-x}}", "x"),
            ("${UNSET:-a $SET b}", "a value b"),
            ("${UNSET:-}", ""),
            ("${SET:?boom}", "value"),
            ("${UNSET:-{}}", "{}"),
        ];
        for (input, want) in cases {
            assert_eq!(run(input).map(|i| i.text).as_deref(), Ok(*want), "{input}");
        }
    }

    #[test]
    fn unset_without_default_is_blank_and_reported() {
        let r = run("x${NOPE}y$NOPE2").unwrap();
        assert_eq!(r.text, "xy");
        assert_eq!(r.unset, vec!["NOPE".to_string(), "NOPE2".to_string()]);
    }

    #[test]
    fn errors() {
        let e = run("${UNSET:?please set it}").unwrap_err();
        assert_eq!(
            e.message,
            "required variable UNSET is missing a value: please set it"
        );
        let e = run("${EMPTY?x}").map(|i| i.text);
        assert_eq!(e.as_deref(), Ok(""));
        let e = run("${UNSET?}").unwrap_err();
        assert_eq!(e.message, "required variable UNSET is not set");
        let e = run("ab${SET").unwrap_err();
        assert_eq!(e.offset, 2);
        assert!(e.message.contains("never closed"));
        assert!(run("$ 5").unwrap_err().message.contains("must be followed"));
        assert!(run("${1A}")
            .unwrap_err()
            .message
            .contains("expected a variable name"));
        assert!(run("${A*b}")
            .unwrap_err()
            .message
            .contains("unknown operator"));
        assert!(run("cost: 5$").is_err());
    }
}
