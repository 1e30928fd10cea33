//! A YAML tree that remembers where every node came from (file, line, column), so that
//! errors found after interpolation, `extends` and merging still point at the source.

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;
use std::fmt;
use std::sync::Arc;

/// Where a node was written: file, line and column (1-based; 0 when unknown).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Pos {
    /// The file name as given (or `<string>`).
    pub file: Arc<str>,
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file)
        } else {
            write!(f, "{}:{}:{}", self.file, self.line, self.column)
        }
    }
}

/// A YAML value with its position.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// The value.
    pub v: Value,
    /// Where it was written.
    pub pos: Pos,
}

/// The value of a [`Node`]. Mappings keep their order.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `~`, `null` or nothing.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string (quoted or plain).
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, keys as strings with their positions.
    Map(Vec<(Key, Node)>),
}

/// A mapping key and its position.
#[derive(Clone, Debug, PartialEq)]
pub struct Key {
    /// The key text.
    pub name: String,
    /// Where it was written.
    pub pos: Pos,
}

impl Node {
    /// A node without a source position (made by the loader itself).
    pub fn synthetic(v: Value, pos: &Pos) -> Node {
        Node {
            v,
            pos: pos.clone(),
        }
    }

    /// The entry `key` of a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.v {
            Value::Map(m) => m.iter().find(|(k, _)| k.name == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The entry `key` of a mapping, mutably.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        match &mut self.v {
            Value::Map(m) => m.iter_mut().find(|(k, _)| k.name == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Removes and returns the entry `key` of a mapping.
    pub fn remove(&mut self, key: &str) -> Option<Node> {
        match &mut self.v {
            Value::Map(m) => {
                let i = m.iter().position(|(k, _)| k.name == key)?;
                Some(m.remove(i).1)
            }
            _ => None,
        }
    }

    /// Sets `key` in a mapping (replacing or appending).
    pub fn set(&mut self, key: &str, value: Node) {
        if let Value::Map(m) = &mut self.v {
            if let Some((_, v)) = m.iter_mut().find(|(k, _)| k.name == key) {
                *v = value;
            } else {
                let pos = value.pos.clone();
                m.push((
                    Key {
                        name: key.to_string(),
                        pos,
                    },
                    value,
                ));
            }
        }
    }

    /// A scalar as text (numbers and booleans as written in YAML); None for null,
    /// sequences and mappings.
    pub fn scalar_text(&self) -> Option<String> {
        match &self.v {
            Value::Bool(b) => Some(b.to_string()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::Str(s) => Some(s.clone()),
            _ => None,
        }
    }

    /// What kind of YAML value this is, for error messages.
    pub fn kind(&self) -> &'static str {
        match &self.v {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// Plain JSON (positions dropped).
    pub fn to_json(&self) -> serde_json::Value {
        match &self.v {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => (*b).into(),
            Value::Int(i) => (*i).into(),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Value::Str(s) => s.clone().into(),
            Value::Seq(s) => s.iter().map(Node::to_json).collect(),
            Value::Map(m) => m
                .iter()
                .map(|(k, v)| (k.name.clone(), v.to_json()))
                .collect::<serde_json::Map<_, _>>()
                .into(),
        }
    }

    fn set_file(&mut self, file: &Arc<str>) {
        self.pos.file = file.clone();
        match &mut self.v {
            Value::Seq(s) => s.iter_mut().for_each(|n| n.set_file(file)),
            Value::Map(m) => m.iter_mut().for_each(|(k, n)| {
                k.pos.file = file.clone();
                n.set_file(file)
            }),
            _ => {}
        }
    }
}

/// A YAML syntax or structure error with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    /// Where.
    pub pos: Pos,
    /// What.
    pub message: String,
}

/// Parses one YAML document. An empty document is `Null`.
pub fn parse(file: &str, text: &str) -> Result<Node, ParseError> {
    let file: Arc<str> = Arc::from(file);
    if text.trim().is_empty() {
        return Ok(Node {
            v: Value::Null,
            pos: Pos {
                file,
                line: 1,
                column: 1,
            },
        });
    }
    // YAML 1.2 booleans only (`yes`, `on`, `y` stay strings, as in Compose's Go parser);
    // `0755` stays a string rather than becoming 755.
    let options = serde_saphyr::options! {
        strict_booleans: true,
        leading_zero_numbers_as_strings: true,
    };
    match serde_saphyr::from_str_with_options::<Node>(text, options) {
        Ok(mut n) => {
            n.set_file(&file);
            Ok(n)
        }
        Err(e) => {
            let (line, column) = e
                .location()
                .map(|l| (l.line() as u32, l.column() as u32))
                .unwrap_or((0, 0));
            // The error's Display repeats the location and a snippet; keep the first line.
            let full = e.to_string();
            let message = first_sentence(&full);
            Err(ParseError {
                pos: Pos { file, line, column },
                message,
            })
        }
    }
}

fn first_sentence(s: &str) -> String {
    let line = s.lines().find(|l| !l.trim().is_empty()).unwrap_or(s).trim();
    // saphyr prefixes "error: " in some forms, and may suffix " at line X column Y".
    let line = line.strip_prefix("error: ").unwrap_or(line);
    // ... and "line X column Y: " in others; the position is reported separately.
    let line = match line.strip_prefix("line ") {
        Some(rest) => rest
            .split_once(": ")
            .filter(|(pos, _)| pos.contains("column"))
            .map(|(_, m)| m)
            .unwrap_or(line),
        None => line,
    };
    match line.find(" at line ") {
        Some(i) => line[..i].to_string(),
        None => line.to_string(),
    }
}

fn pos_of<T>(s: &Spanned<T>) -> Pos {
    Pos {
        file: Arc::from(""),
        line: s.referenced.line() as u32,
        column: s.referenced.column() as u32,
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Node, D::Error> {
        let s = Spanned::<Raw>::deserialize(d)?;
        let pos = pos_of(&s);
        Ok(Node { v: s.value.0, pos })
    }
}

/// A key: any scalar, kept as text.
struct KeyText(String);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<KeyText, D::Error> {
        let raw = Raw::deserialize(d)?;
        let n = Node {
            v: raw.0,
            pos: Pos::default(),
        };
        match n.v {
            Value::Null => Ok(KeyText("null".into())),
            _ => n
                .scalar_text()
                .map(KeyText)
                .ok_or_else(|| de::Error::custom("mapping keys must be scalars")),
        }
    }
}

struct Raw(Value);

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Raw, D::Error> {
        d.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Raw, E> {
        Ok(Raw(Value::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Raw, E> {
        Ok(Raw(Value::Int(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Raw, E> {
        Ok(Raw(match i64::try_from(v) {
            Ok(i) => Value::Int(i),
            Err(_) => Value::Str(v.to_string()),
        }))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Raw, E> {
        Ok(Raw(match i64::try_from(v) {
            Ok(i) => Value::Int(i),
            Err(_) => Value::Str(v.to_string()),
        }))
    }
    fn visit_u128<E>(self, v: u128) -> Result<Raw, E> {
        Ok(Raw(match i64::try_from(v) {
            Ok(i) => Value::Int(i),
            Err(_) => Value::Str(v.to_string()),
        }))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Raw, E> {
        Ok(Raw(Value::Float(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Raw, E> {
        Ok(Raw(Value::Str(v.to_string())))
    }
    fn visit_string<E>(self, v: String) -> Result<Raw, E> {
        Ok(Raw(Value::Str(v)))
    }
    fn visit_none<E>(self) -> Result<Raw, E> {
        Ok(Raw(Value::Null))
    }
    fn visit_unit<E>(self) -> Result<Raw, E> {
        Ok(Raw(Value::Null))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
        Raw::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        let mut out = Vec::new();
        while let Some(n) = seq.next_element::<Node>()? {
            out.push(n);
        }
        Ok(Raw(Value::Seq(out)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let mut out: Vec<(Key, Node)> = Vec::new();
        while let Some(k) = map.next_key::<Spanned<KeyText>>()? {
            let pos = pos_of(&k);
            let name = k.value.0;
            let v: Node = map.next_value()?;
            if out.iter().any(|(x, _)| x.name == name) {
                return Err(de::Error::custom(format!(
                    "duplicate key {name:?} at line {} column {}",
                    pos.line, pos.column
                )));
            }
            out.push((Key { name, pos }, v));
        }
        Ok(Raw(Value::Map(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_survive_nesting() {
        let n = parse(
            "c.yml",
            "services:\n  web:\n    image: nginx\n    ports:\n      - \"80:80\"\n      - 8080\n",
        )
        .unwrap();
        let web = n.get("services").unwrap().get("web").unwrap();
        let img = web.get("image").unwrap();
        assert_eq!(img.v, Value::Str("nginx".into()));
        assert_eq!((img.pos.line, img.pos.column), (3, 12));
        assert_eq!(&*img.pos.file, "c.yml");
        let ports = web.get("ports").unwrap();
        match &ports.v {
            Value::Seq(s) => {
                assert_eq!(s[0].v, Value::Str("80:80".into()));
                assert_eq!(s[1].v, Value::Int(8080));
                assert_eq!(s[1].pos.line, 6);
            }
            other => panic!("{other:?}"),
        }
        if let Value::Map(m) = &web.v {
            assert_eq!(m[0].0.pos.line, 3);
            assert_eq!(m[0].0.pos.column, 5);
        }
    }

    #[test]
    fn syntax_errors_have_line_and_column() {
        let e = parse("bad.yml", "services:\n  web:\n    image: [a, b\n").unwrap_err();
        assert!(e.pos.line >= 3, "{e:?}");
        assert!(!e.message.is_empty());
    }

    #[test]
    fn anchors_and_merge_keys_resolve() {
        let n = parse(
            "a.yml",
            "x: &base {image: a, environment: {A: 1}}\ny:\n  <<: *base\n  image: b\n",
        )
        .unwrap();
        let y = n.get("y").unwrap();
        assert_eq!(y.get("image").unwrap().v, Value::Str("b".into()));
        assert_eq!(
            y.get("environment").unwrap().get("A").unwrap().v,
            Value::Int(1)
        );
    }
}
