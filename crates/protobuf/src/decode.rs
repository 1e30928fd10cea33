//! Walks protobuf bytes with the generated schema and builds the JSON that Go's encoding/json would
//! produce for the same Go object.

use base64::Engine as _;
use serde_json::{Map, Number, Value};

use crate::DecodeError;
use crate::schema::{KINDS, MESSAGES};
use crate::wire::{Card, Field, Msg, Reader, Special, Ty, WireType};

/// Deeper than any real object (JSONSchemaProps nest, but not this deep); protects the stack.
const MAX_DEPTH: usize = 100;

/// Finds the message of a top-level kind.
pub(crate) fn find_kind(api_version: &str, kind: &str) -> Option<&'static Msg> {
    let idx = KINDS
        .binary_search_by(|k| (k.api_version, k.kind).cmp(&(api_version, kind)))
        .ok()?;
    MESSAGES.get(usize::from(KINDS[idx].msg))
}

/// Decodes the `runtime.Unknown` envelope that follows the magic, then the object in its `raw` bytes.
pub(crate) fn envelope(bytes: &[u8], base: usize) -> Result<Value, DecodeError> {
    let mut reader = Reader::new(bytes, base);
    let (mut api_version, mut kind) = (String::new(), String::new());
    let (mut content_encoding, mut content_type) = (String::new(), String::new());
    let mut raw: (&[u8], usize) = (&[], base);
    while !reader.is_empty() {
        let (num, wire) = reader.key()?;
        let path = match num {
            1 => "typeMeta",
            2 => "raw",
            3 => "contentEncoding",
            4 => "contentType",
            _ => {
                reader.skip(wire)?;
                continue;
            }
        };
        expect_wire(path, num, WireType::Len, wire)?;
        let (value, offset) = reader.len_delimited()?;
        match num {
            1 => {
                let mut meta = Reader::new(value, offset);
                while !meta.is_empty() {
                    let (num, wire) = meta.key()?;
                    let target = match num {
                        1 => &mut api_version,
                        2 => &mut kind,
                        _ => {
                            meta.skip(wire)?;
                            continue;
                        }
                    };
                    let path = if num == 1 {
                        "typeMeta.apiVersion"
                    } else {
                        "typeMeta.kind"
                    };
                    expect_wire(path, num, WireType::Len, wire)?;
                    *target = utf8(meta.len_delimited()?.0, path)?.to_owned();
                }
            }
            2 => raw = (value, offset),
            3 => content_encoding = utf8(value, path)?.to_owned(),
            _ => content_type = utf8(value, path)?.to_owned(),
        }
    }
    if api_version.is_empty() || kind.is_empty() {
        return Err(DecodeError::MissingTypeMeta);
    }
    // client-go leaves contentType empty for protobuf raw bytes; anything else is not ours to decode.
    let protobuf_type =
        content_type.is_empty() || content_type == "application/vnd.kubernetes.protobuf";
    if !content_encoding.is_empty() || !protobuf_type {
        return Err(DecodeError::UnsupportedEncoding {
            content_encoding,
            content_type,
        });
    }
    let Some(msg) = find_kind(&api_version, &kind) else {
        return Err(DecodeError::UnknownKind { api_version, kind });
    };
    let mut object = Map::new();
    // Go's TypeMeta comes first in every object: kind, then apiVersion.
    object.insert("kind".into(), Value::String(kind));
    object.insert("apiVersion".into(), Value::String(api_version));
    object.extend(decode_object(msg, raw.0, raw.1, "", 0)?);
    Ok(Value::Object(object))
}

fn expect_wire(
    path: &str,
    number: u32,
    expected: WireType,
    found: WireType,
) -> Result<(), DecodeError> {
    if expected == found {
        return Ok(());
    }
    Err(DecodeError::WrongWireType {
        path: path.to_owned(),
        number,
        expected: expected.name(),
        found: found.name(),
    })
}

fn utf8<'a>(bytes: &'a [u8], path: &str) -> Result<&'a str, DecodeError> {
    std::str::from_utf8(bytes).map_err(|_| DecodeError::InvalidUtf8 {
        path: path.to_owned(),
    })
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

fn wire_of(ty: Ty) -> WireType {
    match ty {
        Ty::Bool | Ty::Int32 | Ty::Int64 => WireType::Varint,
        Ty::Double => WireType::Fixed64,
        Ty::String | Ty::Bytes | Ty::Msg(_) => WireType::Len,
    }
}

fn message(idx: u16) -> &'static Msg {
    // The generator only emits indices of messages it emitted; index 0 is a harmless fallback.
    MESSAGES.get(usize::from(idx)).unwrap_or(&MESSAGES[0])
}

/// Decodes one message into its fields' raw JSON values, slot per schema field (no zero dropping).
struct Slots {
    values: Vec<Option<Value>>,
}

fn decode_slots(
    msg: &'static Msg,
    bytes: &[u8],
    base: usize,
    path: &str,
    depth: usize,
) -> Result<Slots, DecodeError> {
    if depth > MAX_DEPTH {
        return Err(DecodeError::TooDeep {
            path: path.to_owned(),
            limit: MAX_DEPTH,
        });
    }
    let mut values: Vec<Option<Value>> = vec![None; msg.fields.len()];
    let mut reader = Reader::new(bytes, base);
    while !reader.is_empty() {
        let (num, wire) = reader.key()?;
        let Ok(i) = msg.fields.binary_search_by_key(&num, |f| f.num) else {
            reader.skip(wire)?;
            continue;
        };
        let field = &msg.fields[i];
        let fpath = if field.inline {
            path.to_owned()
        } else {
            join(path, field.json)
        };
        let slot = &mut values[i];
        match field.card {
            Card::Single => {
                expect_wire(&fpath, num, wire_of(field.ty), wire)?;
                let value = read_value(&mut reader, field.ty, &fpath, depth)?;
                match (slot.as_mut(), value) {
                    // A repeated occurrence of a message merges into the first, as in protobuf.
                    (Some(Value::Object(old)), Value::Object(new)) => old.extend(new),
                    (_, value) => *slot = Some(value),
                }
            }
            Card::Repeated => {
                let array = slot.get_or_insert_with(|| Value::Array(Vec::new()));
                let Value::Array(array) = array else { continue };
                let element = wire_of(field.ty);
                if wire == WireType::Len && element != WireType::Len {
                    // Packed numbers: one length-delimited run of values.
                    let (run, offset) = reader.len_delimited()?;
                    let mut packed = Reader::new(run, offset);
                    while !packed.is_empty() {
                        array.push(read_value(&mut packed, field.ty, &fpath, depth)?);
                    }
                } else {
                    expect_wire(&fpath, num, element, wire)?;
                    array.push(read_value(&mut reader, field.ty, &fpath, depth)?);
                }
            }
            Card::Map(value_ty) => {
                expect_wire(&fpath, num, WireType::Len, wire)?;
                let (entry, offset) = reader.len_delimited()?;
                let (key, value) = map_entry(entry, offset, value_ty, &fpath, depth)?;
                let object = slot.get_or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(object) = object {
                    object.insert(key, value);
                }
            }
        }
    }
    Ok(Slots { values })
}

fn map_entry(
    bytes: &[u8],
    base: usize,
    value_ty: Ty,
    path: &str,
    depth: usize,
) -> Result<(String, Value), DecodeError> {
    let mut reader = Reader::new(bytes, base);
    let mut key = String::new();
    let mut value = None;
    while !reader.is_empty() {
        let (num, wire) = reader.key()?;
        match num {
            1 => {
                expect_wire(path, num, WireType::Len, wire)?;
                key = utf8(reader.len_delimited()?.0, path)?.to_owned();
            }
            2 => {
                expect_wire(path, num, wire_of(value_ty), wire)?;
                value = Some(read_value(&mut reader, value_ty, path, depth)?);
            }
            _ => reader.skip(wire)?,
        }
    }
    // A missing value is the zero value of its type, as in protobuf.
    let value = match value {
        Some(value) => value,
        None => match value_ty {
            Ty::Msg(idx) => render(message(idx), &[], base, &join(path, &key), depth + 1)?,
            other => zero(other),
        },
    };
    Ok((key, value))
}

fn zero(ty: Ty) -> Value {
    match ty {
        Ty::Bool => Value::Bool(false),
        Ty::Int32 | Ty::Int64 => Value::from(0),
        Ty::Double => Value::from(0.0),
        Ty::String | Ty::Bytes => Value::String(String::new()),
        Ty::Msg(_) => Value::Null,
    }
}

fn is_zero(value: &Value) -> bool {
    match value {
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_i64() == Some(0) || n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

fn read_value(
    reader: &mut Reader<'_>,
    ty: Ty,
    path: &str,
    depth: usize,
) -> Result<Value, DecodeError> {
    Ok(match ty {
        Ty::Bool => Value::Bool(reader.varint()? != 0),
        // int32 is sign-extended to 64 bits on the wire; truncating recovers it.
        Ty::Int32 => Value::from(reader.varint()? as i32),
        Ty::Int64 => Value::from(reader.varint()? as i64),
        Ty::Double => {
            let value = f64::from_bits(reader.fixed64()?);
            let Some(number) = Number::from_f64(value) else {
                return Err(DecodeError::InvalidNumber {
                    path: path.to_owned(),
                    value: value.to_string(),
                });
            };
            Value::Number(number)
        }
        Ty::String => Value::String(utf8(reader.len_delimited()?.0, path)?.to_owned()),
        Ty::Bytes => Value::String(
            base64::engine::general_purpose::STANDARD.encode(reader.len_delimited()?.0),
        ),
        Ty::Msg(idx) => {
            let (bytes, offset) = reader.len_delimited()?;
            render(message(idx), bytes, offset, path, depth + 1)?
        }
    })
}

/// Renders a message in its JSON form.
fn render(
    msg: &'static Msg,
    bytes: &[u8],
    base: usize,
    path: &str,
    depth: usize,
) -> Result<Value, DecodeError> {
    if msg.special == Special::Object {
        return Ok(Value::Object(decode_object(msg, bytes, base, path, depth)?));
    }
    let slots = decode_slots(msg, bytes, base, path, depth)?.values;
    let slot = |num: u32| -> Option<&Value> {
        let i = msg.fields.iter().position(|f| f.num == num)?;
        slots[i].as_ref()
    };
    let int = |num: u32| slot(num).and_then(Value::as_i64).unwrap_or(0);
    let non_empty_array = |num: u32| {
        slot(num)
            .filter(|v| v.as_array().is_some_and(|a| !a.is_empty()))
            .cloned()
    };
    Ok(match msg.special {
        Special::Object => Value::Null,
        // Go's Time.Unmarshal turns an empty message into the zero time, which marshals as null; it drops
        // the nanoseconds (metav1.Time has second precision in JSON).
        Special::Time if bytes.is_empty() => Value::Null,
        Special::Time => Value::String(rfc3339(int(1), None, path)?),
        Special::MicroTime if bytes.is_empty() => Value::Null,
        Special::MicroTime => Value::String(rfc3339(int(1), Some(int(2)), path)?),
        Special::Duration => Value::String(go_duration(int(1))),
        // The zero Quantity marshals as "0".
        Special::Quantity => match slot(1).and_then(Value::as_str) {
            Some(s) if !s.is_empty() => Value::String(s.to_owned()),
            _ => Value::String("0".into()),
        },
        // IntOrString: type 1 is String, anything else Int.
        Special::IntOrString if int(1) == 1 => slot(3)
            .cloned()
            .unwrap_or_else(|| Value::String(String::new())),
        Special::IntOrString => Value::from(int(2)),
        Special::RawJson => match slot(1).and_then(Value::as_str) {
            // Go's RawExtension/FieldsV1/JSON marshal nil raw bytes as null.
            None | Some("") => Value::Null,
            Some(_) => raw_json(msg, bytes, base, path)?,
        },
        Special::SchemaOrArray => non_empty_array(2)
            .or_else(|| slot(1).cloned())
            .unwrap_or(Value::Null),
        Special::SchemaOrBool => match slot(2) {
            Some(schema) => schema.clone(),
            None => Value::Bool(slot(1).and_then(Value::as_bool).unwrap_or(false)),
        },
        Special::SchemaOrStringArray => non_empty_array(2)
            .or_else(|| slot(1).cloned())
            .unwrap_or(Value::Null),
        Special::ItemsArray => slot(1).cloned().unwrap_or_else(|| Value::Array(Vec::new())),
    })
}

/// Re-reads field 1 as raw bytes (the slot holds it base64-encoded) and parses it as JSON.
fn raw_json(
    msg: &'static Msg,
    bytes: &[u8],
    base: usize,
    path: &str,
) -> Result<Value, DecodeError> {
    let mut reader = Reader::new(bytes, base);
    let mut raw: &[u8] = &[];
    while !reader.is_empty() {
        let (num, wire) = reader.key()?;
        if num == 1 && wire == WireType::Len {
            raw = reader.len_delimited()?.0;
        } else {
            reader.skip(wire)?;
        }
    }
    serde_json::from_slice(raw).map_err(|e| DecodeError::InvalidJson {
        path: path.to_owned(),
        reason: format!("{} ({e})", msg.name),
    })
}

/// Decodes a plain message into a JSON object, dropping zero scalars Go's omitempty would drop.
fn decode_object(
    msg: &'static Msg,
    bytes: &[u8],
    base: usize,
    path: &str,
    depth: usize,
) -> Result<Map<String, Value>, DecodeError> {
    let slots = decode_slots(msg, bytes, base, path, depth)?.values;
    let mut object = Map::new();
    for (field, value) in msg.fields.iter().zip(slots) {
        let Some(value) = value else { continue };
        if field.inline {
            if let Value::Object(inner) = value {
                object.extend(inner);
            }
            continue;
        }
        if keep(field, &value) {
            object.insert(field.json.to_owned(), value);
        }
    }
    Ok(object)
}

/// Go always sends non-pointer scalars, even zero; its JSON drops them when the field is omitempty.
fn keep(field: &Field, value: &Value) -> bool {
    let scalar = matches!(field.card, Card::Single) && !matches!(field.ty, Ty::Msg(_));
    !scalar || field.keep_zero || !is_zero(value)
}

/// Formats seconds (and, for MicroTime, nanoseconds truncated to microseconds) as Go's RFC 3339 UTC.
fn rfc3339(seconds: i64, nanos: Option<i64>, path: &str) -> Result<String, DecodeError> {
    let invalid = || DecodeError::InvalidTime {
        path: path.to_owned(),
        seconds,
    };
    let t = time::OffsetDateTime::from_unix_timestamp(seconds).map_err(|_| invalid())?;
    if !(0..=9999).contains(&t.year()) {
        return Err(invalid());
    }
    let date = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    Ok(match nanos {
        None => format!("{date}Z"),
        Some(nanos) => format!("{date}.{:06}Z", nanos.clamp(0, 999_999_999) / 1000),
    })
}

/// Go's `time.Duration.String()`: "1h2m3.5s", "1.5ms", "0s".
pub(crate) fn go_duration(nanos: i64) -> String {
    let sign = if nanos < 0 { "-" } else { "" };
    let u = nanos.unsigned_abs();
    if u == 0 {
        return "0s".into();
    }
    if u < 1_000 {
        return format!("{sign}{u}ns");
    }
    if u < 1_000_000 {
        return format!("{sign}{}µs", frac(u, 3));
    }
    if u < 1_000_000_000 {
        return format!("{sign}{}ms", frac(u, 6));
    }
    let secs = u / 1_000_000_000;
    let sub = u % 1_000_000_000;
    let seconds = frac_parts(secs % 60, sub, 9);
    let (minutes, hours) = ((secs / 60) % 60, secs / 3600);
    if hours > 0 {
        format!("{sign}{hours}h{minutes}m{seconds}s")
    } else if minutes > 0 {
        format!("{sign}{minutes}m{seconds}s")
    } else {
        format!("{sign}{seconds}s")
    }
}

fn frac(v: u64, prec: u32) -> String {
    let scale = 10u64.pow(prec);
    frac_parts(v / scale, v % scale, prec)
}

fn frac_parts(whole: u64, fraction: u64, prec: u32) -> String {
    if fraction == 0 {
        return whole.to_string();
    }
    let digits = format!("{fraction:0width$}", width = prec as usize);
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_match_go() {
        // Values from Go's time.Duration.String documentation and tests.
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(1), "1ns");
        assert_eq!(go_duration(1_100), "1.1µs");
        assert_eq!(go_duration(2_200_000), "2.2ms");
        assert_eq!(go_duration(3_300_000_000), "3.3s");
        assert_eq!(go_duration(4 * 60 * 1_000_000_000 + 5_000_000_000), "4m5s");
        assert_eq!(go_duration(3600 * 1_000_000_000), "1h0m0s");
        assert_eq!(go_duration(-(90 * 1_000_000_000)), "-1m30s");
        assert_eq!(go_duration(i64::MIN), "-2562047h47m16.854775808s");
    }

    #[test]
    fn times_are_utc_rfc3339() {
        assert_eq!(rfc3339(0, None, "t").unwrap(), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(1_700_000_000, Some(123_456_789), "t").unwrap(),
            "2023-11-14T22:13:20.123456Z"
        );
        assert!(matches!(
            rfc3339(i64::MAX, None, "t"),
            Err(DecodeError::InvalidTime { .. })
        ));
    }
}
