//! Protobuf wire-format reading and the shape of the generated schema.

use crate::DecodeError;

/// The protobuf wire type of a field value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WireType {
    /// Wire type 0: a base-128 varint.
    Varint,
    /// Wire type 1: eight little-endian bytes.
    Fixed64,
    /// Wire type 2: a varint length followed by that many bytes.
    Len,
    /// Wire type 5: four little-endian bytes.
    Fixed32,
}

impl WireType {
    /// The name used in error messages.
    pub(crate) fn name(self) -> &'static str {
        match self {
            WireType::Varint => "varint",
            WireType::Fixed64 => "fixed64",
            WireType::Len => "length-delimited",
            WireType::Fixed32 => "fixed32",
        }
    }
}

/// The type of a field (or of a map value).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Ty {
    /// `bool`, a varint.
    Bool,
    /// `int32`, a varint (negative values are sign-extended to ten bytes).
    Int32,
    /// `int64`, a varint.
    Int64,
    /// `double`, fixed64.
    Double,
    /// `string`, UTF-8 bytes.
    String,
    /// `bytes`, rendered as base64 like Go's `[]byte` in JSON.
    Bytes,
    /// A nested message: an index into `schema::MESSAGES`.
    Msg(u16),
}

/// How many values a field holds.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Card {
    /// At most one value (the last one on the wire wins, messages merge).
    Single,
    /// A JSON array.
    Repeated,
    /// A `map<string, V>`: repeated entries with key 1 and value 2, a JSON object.
    Map(Ty),
}

/// The JSON form of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Special {
    /// A plain JSON object of its fields.
    Object,
    /// metav1.Time: RFC 3339 seconds, null when unset.
    Time,
    /// metav1.MicroTime: RFC 3339 with microseconds, null when unset.
    MicroTime,
    /// metav1.Duration: Go's `time.Duration` string. No GA kind uses it today; kept so a regenerated
    /// schema that reaches it decodes it right.
    #[allow(dead_code)]
    Duration,
    /// resource.Quantity: its string.
    Quantity,
    /// intstr.IntOrString: a number or a string.
    IntOrString,
    /// RawExtension, FieldsV1, apiextensions JSON: embedded JSON bytes.
    RawJson,
    /// JSONSchemaPropsOrArray: a schema or an array of schemas.
    SchemaOrArray,
    /// JSONSchemaPropsOrBool: a schema or a bool.
    SchemaOrBool,
    /// JSONSchemaPropsOrStringArray: a schema or an array of strings.
    SchemaOrStringArray,
    /// Verbs, ExtraValue: a Go `[]string` wrapped in a message with one repeated field.
    ItemsArray,
}

/// One field of a message.
#[derive(Debug)]
pub(crate) struct Field {
    /// The protobuf field number.
    pub num: u32,
    /// The JSON name (empty for inline fields).
    pub json: &'static str,
    /// The value type (for maps: the key type, always string).
    pub ty: Ty,
    /// Single, repeated or map.
    pub card: Card,
    /// Keep a zero scalar: the field is required (no omitempty) or a Go pointer.
    pub keep_zero: bool,
    /// The field is an embedded Go struct whose fields appear in the parent object.
    pub inline: bool,
}

/// One message of the schema.
#[derive(Debug)]
pub(crate) struct Msg {
    /// The protobuf package path and name, for error messages.
    pub name: &'static str,
    /// How it is rendered in JSON.
    pub special: Special,
    /// Its fields, sorted by number.
    pub fields: &'static [Field],
}

/// A top-level kind and its message.
#[derive(Debug)]
pub(crate) struct Kind {
    /// e.g. `apps/v1`.
    pub api_version: &'static str,
    /// e.g. `Deployment`.
    pub kind: &'static str,
    /// Index into `schema::MESSAGES`.
    pub msg: u16,
}

/// A cursor over protobuf bytes; `base` is the absolute offset of `buf[0]` in the body, for error messages.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Reader<'a> {
    /// Reads `buf`, which starts `base` bytes into the body.
    pub(crate) fn new(buf: &'a [u8], base: usize) -> Self {
        Reader { buf, pos: 0, base }
    }

    /// The absolute offset of the next byte.
    pub(crate) fn offset(&self) -> usize {
        self.base + self.pos
    }

    /// True when every byte has been read.
    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Reads a base-128 varint of at most ten bytes.
    pub(crate) fn varint(&mut self) -> Result<u64, DecodeError> {
        let start = self.offset();
        let mut value: u64 = 0;
        for i in 0..10 {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err(DecodeError::Truncated {
                    what: "varint",
                    offset: start,
                });
            };
            self.pos += 1;
            if i == 9 && byte > 1 {
                return Err(DecodeError::VarintOverflow { offset: start });
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::VarintOverflow { offset: start })
    }

    /// Reads a field key: the field number and its wire type.
    pub(crate) fn key(&mut self) -> Result<(u32, WireType), DecodeError> {
        let offset = self.offset();
        let key = self.varint()?;
        let wire = match key & 7 {
            0 => WireType::Varint,
            1 => WireType::Fixed64,
            2 => WireType::Len,
            5 => WireType::Fixed32,
            other => {
                return Err(DecodeError::BadWireType {
                    wire_type: other as u8,
                    offset,
                });
            }
        };
        let num = key >> 3;
        if num == 0 || num > u64::from(u32::MAX >> 3) {
            return Err(DecodeError::BadFieldNumber {
                number: num,
                offset,
            });
        }
        Ok((num as u32, wire))
    }

    fn take(&mut self, len: usize, what: &'static str) -> Result<(&'a [u8], usize), DecodeError> {
        let start = self.offset();
        let end = self
            .pos
            .checked_add(len)
            .filter(|&end| end <= self.buf.len());
        let Some(end) = end else {
            return Err(DecodeError::Truncated {
                what,
                offset: start,
            });
        };
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok((bytes, start))
    }

    /// Reads a length-delimited value; returns it and its absolute offset.
    pub(crate) fn len_delimited(&mut self) -> Result<(&'a [u8], usize), DecodeError> {
        let len = self.varint()?;
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        self.take(len, "length-delimited field")
    }

    /// Reads eight little-endian bytes.
    pub(crate) fn fixed64(&mut self) -> Result<u64, DecodeError> {
        let (bytes, _) = self.take(8, "fixed64")?;
        let mut array = [0u8; 8];
        array.copy_from_slice(bytes);
        Ok(u64::from_le_bytes(array))
    }

    /// Skips a value of the given wire type (unknown fields are ignored, as Go's decoder does).
    pub(crate) fn skip(&mut self, wire: WireType) -> Result<(), DecodeError> {
        match wire {
            WireType::Varint => self.varint().map(drop),
            WireType::Fixed64 => self.take(8, "fixed64").map(drop),
            WireType::Len => self.len_delimited().map(drop),
            WireType::Fixed32 => self.take(4, "fixed32").map(drop),
        }
    }
}
