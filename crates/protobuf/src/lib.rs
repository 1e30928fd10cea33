//! Decodes Kubernetes protobuf request bodies (the `k8s\0` envelope) into JSON objects.
//!
//! kubectl 1.32+ sends `kubectl create <generator>` bodies as `application/vnd.kubernetes.protobuf` with
//! no JSON fallback. Such a body is the magic `k8s\0` followed by a `runtime.Unknown` message whose
//! `typeMeta` names the apiVersion and kind and whose `raw` bytes are the object's own protobuf. This
//! crate turns it into exactly the JSON object the same client would have sent as `application/json`,
//! so the rest of the server only ever sees JSON.
//!
//! The field numbers, types and JSON names of every built-in message live in a generated table
//! (`schema.rs`, from `tools/gen_schema.py`); a generic wire decoder walks the bytes with it.
#![forbid(unsafe_code)]

mod decode;
#[rustfmt::skip]
mod schema;
mod wire;

/// The four bytes that start every Kubernetes protobuf body.
pub const MAGIC: &[u8; 4] = b"k8s\0";

/// Why a body could not be decoded. Every variant says where (byte offset or field path).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// The body does not start with `k8s\0`.
    #[error("not a Kubernetes protobuf body: expected the magic k8s\\0, found {found:02x?}")]
    BadMagic {
        /// The first (up to four) bytes of the body.
        found: Vec<u8>,
    },
    /// The bytes end inside a value.
    #[error("truncated protobuf: {what} at byte {offset} runs past the end of its message")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Absolute byte offset in the body where it starts.
        offset: usize,
    },
    /// A varint longer than ten bytes or larger than 64 bits.
    #[error("malformed protobuf: varint at byte {offset} is longer than 64 bits")]
    VarintOverflow {
        /// Absolute byte offset in the body.
        offset: usize,
    },
    /// Wire types 3, 4 (groups), 6 and 7 never occur in Kubernetes messages.
    #[error("malformed protobuf: unsupported wire type {wire_type} at byte {offset}")]
    BadWireType {
        /// The wire type found.
        wire_type: u8,
        /// Absolute byte offset of the field key.
        offset: usize,
    },
    /// Field number 0 or out of range.
    #[error("malformed protobuf: invalid field number {number} at byte {offset}")]
    BadFieldNumber {
        /// The field number found.
        number: u64,
        /// Absolute byte offset of the field key.
        offset: usize,
    },
    /// A known field arrived with a wire type that its type cannot have.
    #[error(
        "malformed protobuf: field {path} (number {number}) is {expected} but arrived as {found}"
    )]
    WrongWireType {
        /// JSON path of the field.
        path: String,
        /// The field number.
        number: u32,
        /// The wire type the schema expects.
        expected: &'static str,
        /// The wire type on the wire.
        found: &'static str,
    },
    /// The envelope has no `typeMeta` kind or apiVersion.
    #[error("protobuf envelope has no typeMeta apiVersion/kind")]
    MissingTypeMeta,
    /// The envelope's apiVersion/kind is not a built-in kind with a protobuf form.
    #[error("no protobuf schema for apiVersion {api_version:?} kind {kind:?}")]
    UnknownKind {
        /// The envelope's apiVersion.
        api_version: String,
        /// The envelope's kind.
        kind: String,
    },
    /// The envelope says the raw bytes are compressed or not protobuf.
    #[error(
        "unsupported protobuf envelope: contentEncoding {content_encoding:?}, contentType {content_type:?}"
    )]
    UnsupportedEncoding {
        /// The envelope's contentEncoding.
        content_encoding: String,
        /// The envelope's contentType.
        content_type: String,
    },
    /// A string field is not UTF-8.
    #[error("invalid protobuf: field {path} is not valid UTF-8")]
    InvalidUtf8 {
        /// JSON path of the field.
        path: String,
    },
    /// An embedded JSON field (RawExtension, FieldsV1, JSON) does not hold JSON.
    #[error("invalid embedded JSON in field {path}: {reason}")]
    InvalidJson {
        /// JSON path of the field.
        path: String,
        /// The parser's message.
        reason: String,
    },
    /// A number that JSON cannot hold (a NaN or infinite double).
    #[error("field {path} holds {value}, which JSON cannot represent")]
    InvalidNumber {
        /// JSON path of the field.
        path: String,
        /// The value, as text.
        value: String,
    },
    /// A timestamp outside the years 0..=9999 that RFC 3339 can spell.
    #[error("field {path} holds a time ({seconds} s since 1970) that RFC 3339 cannot represent")]
    InvalidTime {
        /// JSON path of the field.
        path: String,
        /// Seconds since the Unix epoch.
        seconds: i64,
    },
    /// Messages nested deeper than any real object (protects the stack).
    #[error("protobuf nesting deeper than {limit} levels at {path}")]
    TooDeep {
        /// JSON path where the limit was hit.
        path: String,
        /// The limit.
        limit: usize,
    },
}

/// True for a body that starts with the protobuf envelope magic.
pub fn has_envelope(body: &[u8]) -> bool {
    body.starts_with(MAGIC)
}

/// Decodes a Kubernetes protobuf body (with the k8s\0 envelope) into the JSON object that the same object
/// would have in application/json, including "apiVersion" and "kind".
pub fn decode(body: &[u8]) -> Result<serde_json::Value, DecodeError> {
    let Some(rest) = body.strip_prefix(MAGIC) else {
        return Err(DecodeError::BadMagic {
            found: body.iter().take(4).copied().collect(),
        });
    };
    decode::envelope(rest, MAGIC.len())
}

/// True when `apiVersion`/`kind` is a built-in kind that [`decode`] understands.
pub fn supports(api_version: &str, kind: &str) -> bool {
    decode::find_kind(api_version, kind).is_some()
}
