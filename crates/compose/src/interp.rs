//! Variable interpolation (`$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
//! `${VAR:?error}`, `${VAR?error}`, `${VAR:+alt}`, `${VAR+alt}`, `$$`) and `.env` files,
//! as the Compose Specification defines them.

use crate::yaml::{Node, Value};
use std::collections::BTreeMap;

/// The variables interpolation reads, and what it noticed.
pub struct Env<'a> {
    /// Name → value.
    pub vars: &'a BTreeMap<String, String>,
    /// Variables used while unset (Compose warns once per name and uses "").
    pub unset: Vec<String>,
}

/// Why interpolating one string failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InterpError {
    /// `${VAR:?message}` with VAR unset (or empty).
    Required {
        /// The variable.
        var: String,
        /// The user's message (may be empty).
        message: String,
    },
    /// A `${` without its `}` or an invalid name.
    Syntax(String),
}

impl std::fmt::Display for InterpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InterpError::Required { var, message } if message.is_empty() => {
                write!(f, "required variable {var} is missing a value")
            }
            InterpError::Required { var, message } => {
                write!(f, "required variable {var} is missing a value: {message}")
            }
            InterpError::Syntax(m) => write!(f, "invalid interpolation: {m}"),
        }
    }
}

impl Env<'_> {
    fn lookup(&mut self, name: &str) -> Option<String> {
        self.vars.get(name).cloned()
    }

    fn note_unset(&mut self, name: &str) {
        if !self.unset.iter().any(|n| n == name) {
            self.unset.push(name.to_string());
        }
    }

    /// Interpolates one string.
    pub fn interpolate(&mut self, s: &str) -> Result<String, InterpError> {
        let chars: Vec<char> = s.chars().collect();
        let (out, end) = self.expand(&chars, 0, false)?;
        debug_assert_eq!(end, chars.len());
        Ok(out)
    }

    /// Expands from `i` to the end (or, when `nested`, to the `}` closing the enclosing
    /// `${...}`, whose index is returned).
    fn expand(
        &mut self,
        c: &[char],
        mut i: usize,
        nested: bool,
    ) -> Result<(String, usize), InterpError> {
        let mut out = String::new();
        let mut depth = 0usize;
        while i < c.len() {
            match c[i] {
                '}' if nested && depth == 0 => return Ok((out, i)),
                '$' if c.get(i + 1) == Some(&'$') => {
                    out.push('$');
                    i += 2;
                }
                '$' if c.get(i + 1) == Some(&'{') => {
                    let (v, next) = self.braced(c, i + 2)?;
                    out.push_str(&v);
                    i = next;
                }
                '$' if c
                    .get(i + 1)
                    .is_some_and(|x| x.is_ascii_alphabetic() || *x == '_') =>
                {
                    let start = i + 1;
                    let mut j = start;
                    while j < c.len() && (c[j].is_ascii_alphanumeric() || c[j] == '_') {
                        j += 1;
                    }
                    let name: String = c[start..j].iter().collect();
                    match self.lookup(&name) {
                        Some(v) => out.push_str(&v),
                        None => self.note_unset(&name),
                    }
                    i = j;
                }
                ch => {
                    if nested && ch == '{' {
                        depth += 1;
                    } else if nested && ch == '}' {
                        depth -= 1;
                    }
                    out.push(ch);
                    i += 1;
                }
            }
        }
        if nested {
            return Err(InterpError::Syntax(format!(
                "missing closing brace in {:?}",
                c.iter().collect::<String>()
            )));
        }
        Ok((out, i))
    }

    /// `${...}` starting after the `{`; returns the value and the index after `}`.
    fn braced(&mut self, c: &[char], start: usize) -> Result<(String, usize), InterpError> {
        let mut j = start;
        while j < c.len() && (c[j].is_ascii_alphanumeric() || c[j] == '_') {
            j += 1;
        }
        let name: String = c[start..j].iter().collect();
        let whole = || c.iter().collect::<String>();
        if name.is_empty() || name.starts_with(|x: char| x.is_ascii_digit()) {
            return Err(InterpError::Syntax(format!(
                "invalid variable name in {:?}",
                whole()
            )));
        }
        if j >= c.len() {
            return Err(InterpError::Syntax(format!(
                "missing closing brace in {:?}",
                whole()
            )));
        }
        if c[j] == '}' {
            return Ok((
                match self.lookup(&name) {
                    Some(v) => v,
                    None => {
                        self.note_unset(&name);
                        String::new()
                    }
                },
                j + 1,
            ));
        }
        let (colon, op_at) = if c[j] == ':' {
            (true, j + 1)
        } else {
            (false, j)
        };
        let op = *c.get(op_at).ok_or_else(|| {
            InterpError::Syntax(format!("missing closing brace in {:?}", whole()))
        })?;
        if !matches!(op, '-' | '?' | '+') {
            return Err(InterpError::Syntax(format!(
                "unsupported modifier {op:?} in {:?}",
                whole()
            )));
        }
        let value = self.lookup(&name);
        // The word after the operator is expanded lazily in Compose; expanding it always
        // is the same except for unset-variable warnings, so only expand when used.
        let word_start = op_at + 1;
        let end = find_close(c, word_start).ok_or_else(|| {
            InterpError::Syntax(format!("missing closing brace in {:?}", whole()))
        })?;
        let present = match &value {
            None => false,
            Some(v) => !(colon && v.is_empty()),
        };
        let result = match op {
            '-' if present => value.unwrap_or_default(),
            '-' => self.expand(c, word_start, true)?.0,
            '?' if present => value.unwrap_or_default(),
            '?' => {
                return Err(InterpError::Required {
                    var: name,
                    message: self.expand(c, word_start, true)?.0,
                });
            }
            '+' if present => self.expand(c, word_start, true)?.0,
            _ => String::new(),
        };
        Ok((result, end + 1))
    }
}

/// The index of the `}` closing a `${` whose word starts at `i` (nested `${}` skipped).
fn find_close(c: &[char], mut i: usize) -> Option<usize> {
    let mut depth = 0usize;
    while i < c.len() {
        match c[i] {
            '$' if c.get(i + 1) == Some(&'$') => i += 1,
            '{' => depth += 1,
            '}' if depth == 0 => return Some(i),
            '}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

/// Interpolates every string value of a tree (keys are left alone, as in Compose).
/// Errors carry the position of the string that failed.
pub fn interpolate_tree(
    node: &mut Node,
    env: &mut Env<'_>,
) -> Result<(), (crate::Pos, InterpError)> {
    match &mut node.v {
        Value::Str(s) if s.contains('$') => {
            *s = env.interpolate(s).map_err(|e| (node.pos.clone(), e))?;
        }
        Value::Seq(items) => {
            for n in items {
                interpolate_tree(n, env)?;
            }
        }
        Value::Map(m) => {
            for (_, n) in m {
                interpolate_tree(n, env)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Parses a `.env` / `env_file` file: `KEY=VALUE` lines, `export KEY=VALUE`, `#` comments,
/// single quotes (literal), double quotes (with `\n`, `\t`, `\"`, `\\` escapes and
/// interpolation), unquoted values (interpolated, trailing ` #comment` dropped), and `KEY`
/// alone (taken from `lookup` when set, else skipped). Values may refer to variables
/// defined earlier in the same file. Returns the pairs in order, or the 1-based line of a
/// malformed line with what is wrong.
pub fn parse_dotenv(
    text: &str,
    outer: &BTreeMap<String, String>,
) -> Result<Vec<(String, String)>, (usize, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (lineno, raw) in text.lines().enumerate() {
        let lineno = lineno + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line
            .strip_prefix("export ")
            .map(str::trim_start)
            .unwrap_or(line);
        let (key, rest) = match line.find('=') {
            Some(i) => (line[..i].trim(), Some(&line[i + 1..])),
            None => (line, None),
        };
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            return Err((lineno, format!("invalid variable name {key:?}")));
        }
        let mut vars = outer.clone();
        for (k, v) in &out {
            vars.entry(k.clone()).or_insert_with(|| v.clone());
        }
        let Some(rest) = rest else {
            if let Some(v) = outer.get(key) {
                out.push((key.to_string(), v.clone()));
            }
            continue;
        };
        let rest = rest.trim_start();
        let value = if let Some(body) = rest.strip_prefix('\'') {
            match body.find('\'') {
                Some(end) => body[..end].to_string(),
                None => return Err((lineno, "unterminated single quote".into())),
            }
        } else if let Some(body) = rest.strip_prefix('"') {
            let mut s = String::new();
            let mut chars = body.chars();
            let mut closed = false;
            while let Some(ch) = chars.next() {
                match ch {
                    '"' => {
                        closed = true;
                        break;
                    }
                    '\\' => match chars.next() {
                        Some('n') => s.push('\n'),
                        Some('t') => s.push('\t'),
                        Some('r') => s.push('\r'),
                        Some(c) => s.push(c),
                        None => s.push('\\'),
                    },
                    c => s.push(c),
                }
            }
            if !closed {
                return Err((lineno, "unterminated double quote".into()));
            }
            let mut env = Env {
                vars: &vars,
                unset: vec![],
            };
            env.interpolate(&s).map_err(|e| (lineno, e.to_string()))?
        } else {
            let v = match rest.find(" #") {
                Some(i) => &rest[..i],
                None => rest,
            };
            let mut env = Env {
                vars: &vars,
                unset: vec![],
            };
            env.interpolate(v.trim_end())
                .map_err(|e| (lineno, e.to_string()))?
        };
        if let Some(slot) = out.iter_mut().find(|(k, _)| k == key) {
            slot.1 = value;
        } else {
            out.push((key.to_string(), value));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn interp(s: &str, pairs: &[(&str, &str)]) -> Result<String, InterpError> {
        let v = vars(pairs);
        Env {
            vars: &v,
            unset: vec![],
        }
        .interpolate(s)
    }

    #[test]
    fn the_forms_of_the_specification() {
        let set = [("A", "a"), ("E", "")];
        assert_eq!(interp("x-$A-${A}-y", &set).unwrap(), "x-a-a-y");
        assert_eq!(interp("$$A and $${A}", &set).unwrap(), "$A and ${A}");
        assert_eq!(interp("${B:-def}", &set).unwrap(), "def");
        assert_eq!(interp("${E:-def}", &set).unwrap(), "def");
        assert_eq!(interp("${E-def}", &set).unwrap(), "");
        assert_eq!(interp("${B-def}", &set).unwrap(), "def");
        assert_eq!(interp("${A:-def}", &set).unwrap(), "a");
        assert_eq!(interp("${A:+alt}", &set).unwrap(), "alt");
        assert_eq!(interp("${E:+alt}", &set).unwrap(), "");
        assert_eq!(interp("${E+alt}", &set).unwrap(), "alt");
        assert_eq!(interp("${B+alt}", &set).unwrap(), "");
        assert_eq!(interp("${B:-${A}x}", &set).unwrap(), "ax");
        assert_eq!(interp("${B:-${C:-deep}}", &set).unwrap(), "deep");
        assert_eq!(interp("${B:-a:b/c}", &set).unwrap(), "a:b/c");
        assert_eq!(interp("price: 5$", &set).unwrap(), "price: 5$");
        assert_eq!(interp("${A}${A}", &set).unwrap(), "aa");
    }

    #[test]
    fn required_and_syntax_errors() {
        let set = [("E", "")];
        assert_eq!(
            interp("${X:?set X please}", &set),
            Err(InterpError::Required {
                var: "X".into(),
                message: "set X please".into()
            })
        );
        assert!(matches!(
            interp("${E:?}", &set),
            Err(InterpError::Required { .. })
        ));
        assert_eq!(interp("${E?}", &set).unwrap(), "");
        assert!(matches!(interp("${A", &set), Err(InterpError::Syntax(_))));
        assert!(matches!(interp("${}", &set), Err(InterpError::Syntax(_))));
        assert!(matches!(
            interp("${A:=x}", &set),
            Err(InterpError::Syntax(_))
        ));
    }

    #[test]
    fn unset_variables_are_blank_and_reported_once() {
        let v = vars(&[]);
        let mut env = Env {
            vars: &v,
            unset: vec![],
        };
        assert_eq!(env.interpolate("a${X}b$X").unwrap(), "ab");
        assert_eq!(env.unset, vec!["X".to_string()]);
    }

    #[test]
    fn dotenv_files() {
        let text = "# comment\nA=1\nexport B = two words \nC='lit $A'\nD=\"q\\n$A\"\nE=${A}x # trailing\nF\nG=\nH=\"a#b\"\n";
        let outer = vars(&[("F", "from-outer")]);
        let got = parse_dotenv(text, &outer).unwrap();
        let m: BTreeMap<_, _> = got.into_iter().collect();
        assert_eq!(m["A"], "1");
        assert_eq!(m["B"], "two words");
        assert_eq!(m["C"], "lit $A");
        assert_eq!(m["D"], "q\n1");
        assert_eq!(m["E"], "1x");
        assert_eq!(m["F"], "from-outer");
        assert_eq!(m["G"], "");
        assert_eq!(m["H"], "a#b");
        assert_eq!(parse_dotenv("OK=1\nBAD KEY=2\n", &outer).unwrap_err().0, 2);
        assert_eq!(parse_dotenv("X='open\n", &outer).unwrap_err().0, 1);
    }
}
