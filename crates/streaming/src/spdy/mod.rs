//! SPDY/3.1 framing: frame encoding and decoding, zlib header-block compression with the SPDY/3
//! dictionary, and a server-side session ([`session`]) with SPDY/3.1 flow control.
//!
//! Kubernetes still uses SPDY/3.1 for port-forward (natively, or tunnelled inside websocket
//! messages) and as the fallback transport for exec/attach.

pub mod session;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use std::sync::OnceLock;

use crate::StreamError;

/// The only protocol version spoken.
pub const VERSION: u16 = 3;
/// FIN flag (data frames, SYN_STREAM, SYN_REPLY, HEADERS): the sender will send nothing more.
pub const FLAG_FIN: u8 = 0x01;
/// UNIDIRECTIONAL flag on SYN_STREAM: the receiver must not send on the stream.
pub const FLAG_UNIDIRECTIONAL: u8 = 0x02;
/// The initial per-stream and per-session flow-control window of SPDY/3.1.
pub const INITIAL_WINDOW: i64 = 65_536;
/// Largest window SPDY/3.1 allows (2^31 - 1).
pub const MAX_WINDOW: i64 = 0x7fff_ffff;
/// Largest payload a single frame can carry (24-bit length).
pub const MAX_FRAME_PAYLOAD: usize = (1 << 24) - 1;
/// SETTINGS id of SETTINGS_INITIAL_WINDOW_SIZE.
pub const SETTINGS_INITIAL_WINDOW_SIZE: u32 = 7;
/// Upper bound on a decompressed header block, to refuse compression bombs.
const MAX_HEADER_BLOCK: usize = 1 << 20;

/// RST_STREAM status codes (SPDY/3.1 section 2.6.3).
pub mod rst {
    /// Generic protocol violation.
    pub const PROTOCOL_ERROR: u32 = 1;
    /// Frame for a stream that is not active.
    pub const INVALID_STREAM: u32 = 2;
    /// The stream was refused before any processing.
    pub const REFUSED_STREAM: u32 = 3;
    /// Unsupported SPDY version.
    pub const UNSUPPORTED_VERSION: u32 = 4;
    /// The stream is no longer needed.
    pub const CANCEL: u32 = 5;
    /// Internal error.
    pub const INTERNAL_ERROR: u32 = 6;
    /// The peer violated flow control.
    pub const FLOW_CONTROL_ERROR: u32 = 7;
    /// SYN_REPLY for an already replied stream.
    pub const STREAM_IN_USE: u32 = 8;
    /// Data or SYN_REPLY for a half-closed stream.
    pub const STREAM_ALREADY_CLOSED: u32 = 9;
    /// Frame too large for the receiver.
    pub const FRAME_TOO_LARGE: u32 = 11;
}

/// Control frame type codes.
mod kind {
    pub const SYN_STREAM: u16 = 1;
    pub const SYN_REPLY: u16 = 2;
    pub const RST_STREAM: u16 = 3;
    pub const SETTINGS: u16 = 4;
    pub const PING: u16 = 6;
    pub const GOAWAY: u16 = 7;
    pub const HEADERS: u16 = 8;
    pub const WINDOW_UPDATE: u16 = 9;
}

/// A header block: lowercase names with values; several values of one name are NUL-separated
/// inside one value, as on the wire.
pub type Headers = Vec<(String, String)>;

/// Returns the first value of header `name` (case-insensitive), SPDY header names being lowercase.
pub fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.split('\0').next().unwrap_or(""))
}

/// One SETTINGS entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    /// Entry flags (persist value / persisted).
    pub flags: u8,
    /// 24-bit setting id.
    pub id: u32,
    /// Setting value.
    pub value: u32,
}

/// A decoded SPDY/3.1 frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// Opens a stream.
    SynStream {
        /// New stream id (odd when the client opens it).
        stream_id: u32,
        /// Stream this one is associated to (server push), usually 0.
        associated_to: u32,
        /// 3-bit priority, 0 highest.
        priority: u8,
        /// Credential slot.
        slot: u8,
        /// FIN / UNIDIRECTIONAL.
        flags: u8,
        /// Request headers.
        headers: Headers,
    },
    /// Accepts a stream.
    SynReply {
        /// Stream replied to.
        stream_id: u32,
        /// FIN.
        flags: u8,
        /// Reply headers.
        headers: Headers,
    },
    /// Aborts a stream.
    RstStream {
        /// Stream aborted.
        stream_id: u32,
        /// One of [`rst`].
        status: u32,
    },
    /// Session settings.
    Settings {
        /// FLAG_SETTINGS_CLEAR_SETTINGS.
        flags: u8,
        /// The entries.
        entries: Vec<Setting>,
    },
    /// Liveness check; the receiver echoes pings the other side started.
    Ping {
        /// Odd from the client, even from the server.
        id: u32,
    },
    /// The sender will accept no new streams.
    GoAway {
        /// Last stream id the sender processed.
        last_good_stream_id: u32,
        /// 0 OK, 1 protocol error, 2 internal error.
        status: u32,
    },
    /// Extra headers for a stream.
    Headers {
        /// Stream id.
        stream_id: u32,
        /// FIN.
        flags: u8,
        /// Headers.
        headers: Headers,
    },
    /// Grants the peer more send window (stream 0: the whole session).
    WindowUpdate {
        /// Stream id, 0 for the session window.
        stream_id: u32,
        /// Bytes added to the window (31 bits).
        delta: u32,
    },
    /// Stream payload.
    Data {
        /// Stream id.
        stream_id: u32,
        /// FIN.
        flags: u8,
        /// Payload.
        data: Bytes,
    },
    /// A control frame of a type this implementation does not know; the spec says to ignore it.
    Unknown {
        /// Control frame type.
        frame_type: u16,
    },
}

/// The SPDY/3 header compression dictionary (SPDY/3 draft, section 2.6.10.1): length-prefixed
/// header names and common values, then a block of raw text. Must be byte-exact or the peer's
/// inflate refuses our header blocks.
pub fn dictionary() -> &'static [u8] {
    static DICT: OnceLock<Vec<u8>> = OnceLock::new();
    DICT.get_or_init(|| {
        const WORDS: &[&str] = &[
            "options",
            "head",
            "post",
            "put",
            "delete",
            "trace",
            "accept",
            "accept-charset",
            "accept-encoding",
            "accept-language",
            "accept-ranges",
            "age",
            "allow",
            "authorization",
            "cache-control",
            "connection",
            "content-base",
            "content-encoding",
            "content-language",
            "content-length",
            "content-location",
            "content-md5",
            "content-range",
            "content-type",
            "date",
            "etag",
            "expect",
            "expires",
            "from",
            "host",
            "if-match",
            "if-modified-since",
            "if-none-match",
            "if-range",
            "if-unmodified-since",
            "last-modified",
            "location",
            "max-forwards",
            "pragma",
            "proxy-authenticate",
            "proxy-authorization",
            "range",
            "referer",
            "retry-after",
            "server",
            "te",
            "trailer",
            "transfer-encoding",
            "upgrade",
            "user-agent",
            "vary",
            "via",
            "warning",
            "www-authenticate",
            "method",
            "get",
            "status",
            "200 OK",
            "version",
            "HTTP/1.1",
            "url",
            "public",
            "set-cookie",
            "keep-alive",
            "origin",
        ];
        const TAIL: &str = concat!(
            "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
            "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request",
            "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented",
            "503 Service Unavailable",
            "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 ",
            "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT",
            "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,",
            "text/plain,text/javascript,publicprivatemax-age=gzip,deflate,sdch",
            "charset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
        );
        let mut d = Vec::with_capacity(1500);
        for w in WORDS {
            d.extend_from_slice(&(w.len() as u32).to_be_bytes());
            d.extend_from_slice(w.as_bytes());
        }
        d.extend_from_slice(TAIL.as_bytes());
        d
    })
}

/// Compresses header blocks: one zlib stream for the whole session direction, sync-flushed after
/// every block, as SPDY/3 requires.
pub struct HeaderCompressor {
    z: Compress,
}

impl HeaderCompressor {
    /// Starts the direction's zlib stream primed with the SPDY/3 dictionary.
    pub fn new() -> Result<Self, StreamError> {
        let mut z = Compress::new(Compression::default(), true);
        z.set_dictionary(dictionary())
            .map_err(|e| StreamError::Compression(format!("setting the SPDY dictionary: {e}")))?;
        Ok(Self { z })
    }

    /// Encodes and compresses one header block.
    pub fn compress(&mut self, headers: &Headers) -> Result<Vec<u8>, StreamError> {
        let raw = encode_header_block(headers);
        let mut out = Vec::with_capacity(raw.len() / 2 + 64);
        let start = self.z.total_in();
        loop {
            if out.capacity() - out.len() < 256 {
                out.reserve(1024);
            }
            let done = (self.z.total_in() - start) as usize;
            let before = (self.z.total_in(), self.z.total_out());
            self.z
                .compress_vec(&raw[done..], &mut out, FlushCompress::Sync)
                .map_err(|e| StreamError::Compression(e.to_string()))?;
            let done = (self.z.total_in() - start) as usize;
            if (self.z.total_in(), self.z.total_out()) == before {
                if done == raw.len() {
                    return Ok(out);
                }
                return Err(StreamError::Compression("zlib made no progress".into()));
            }
            // zlib finished the sync flush when it consumed everything and left output room.
            if done == raw.len() && out.len() < out.capacity() {
                return Ok(out);
            }
        }
    }
}

/// Decompresses header blocks: the peer's zlib stream for the whole session direction.
pub struct HeaderDecompressor {
    z: Decompress,
}

impl Default for HeaderDecompressor {
    fn default() -> Self {
        Self::new()
    }
}

impl HeaderDecompressor {
    /// Starts the peer direction's zlib stream (the dictionary is supplied when zlib asks for it).
    pub fn new() -> Self {
        Self {
            z: Decompress::new(true),
        }
    }

    /// Decompresses and parses one header block.
    pub fn decompress(&mut self, input: &[u8]) -> Result<Headers, StreamError> {
        let mut out: Vec<u8> = Vec::with_capacity(input.len() * 4 + 256);
        let start = self.z.total_in();
        loop {
            if out.capacity() - out.len() < 1024 {
                out.reserve(4096);
            }
            let done = (self.z.total_in() - start) as usize;
            let before = (self.z.total_in(), self.z.total_out());
            match self
                .z
                .decompress_vec(&input[done..], &mut out, FlushDecompress::Sync)
            {
                Ok(Status::StreamEnd) => {
                    return Err(StreamError::Compression(
                        "peer ended the header zlib stream".into(),
                    ));
                }
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.z.set_dictionary(dictionary()).map_err(|e| {
                        StreamError::Compression(format!(
                            "peer's header block uses another dictionary than SPDY/3's: {e}"
                        ))
                    })?;
                    continue;
                }
                Err(e) => return Err(StreamError::Compression(e.to_string())),
            }
            if (self.z.total_in(), self.z.total_out()) == before {
                // Nothing consumed or produced with output room left: the block is truncated.
                if done == input.len() {
                    break;
                }
                return Err(StreamError::Compression(
                    "zlib made no progress on the header block".into(),
                ));
            }
            let done = (self.z.total_in() - start) as usize;
            if out.len() > MAX_HEADER_BLOCK {
                return Err(StreamError::Protocol(
                    "header block larger than 1 MiB".into(),
                ));
            }
            if done == input.len() && out.len() < out.capacity() {
                break;
            }
        }
        decode_header_block(&out)
    }
}

/// Serializes a header block (before compression).
pub fn encode_header_block(headers: &Headers) -> Vec<u8> {
    let mut b = Vec::with_capacity(4 + headers.len() * 32);
    b.extend_from_slice(&(headers.len() as u32).to_be_bytes());
    for (n, v) in headers {
        let n = n.to_ascii_lowercase();
        b.extend_from_slice(&(n.len() as u32).to_be_bytes());
        b.extend_from_slice(n.as_bytes());
        b.extend_from_slice(&(v.len() as u32).to_be_bytes());
        b.extend_from_slice(v.as_bytes());
    }
    b
}

/// Parses a decompressed header block.
pub fn decode_header_block(mut b: &[u8]) -> Result<Headers, StreamError> {
    fn take<'a>(b: &mut &'a [u8], what: &str) -> Result<&'a [u8], StreamError> {
        if b.len() < 4 {
            return Err(StreamError::Protocol(format!(
                "header block truncated before {what} length"
            )));
        }
        let len = b.get_u32() as usize;
        if b.len() < len {
            return Err(StreamError::Protocol(format!(
                "header block truncated inside {what}"
            )));
        }
        let (v, rest) = b.split_at(len);
        *b = rest;
        Ok(v)
    }
    if b.len() < 4 {
        return Err(StreamError::Protocol("empty header block".into()));
    }
    let count = b.get_u32() as usize;
    let mut headers = Vec::with_capacity(count.min(256));
    for _ in 0..count {
        let n = take(&mut b, "header name")?;
        let v = take(&mut b, "header value")?;
        let n = String::from_utf8_lossy(n).to_ascii_lowercase();
        let v = String::from_utf8_lossy(v).into_owned();
        headers.push((n, v));
    }
    Ok(headers)
}

/// Decodes the frames one peer sends, holding that direction's header zlib stream.
#[derive(Default)]
pub struct Decoder {
    decompressor: HeaderDecompressor,
}

impl Decoder {
    /// Creates a decoder with a fresh zlib stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one complete frame off the front of `buf`, or returns `None` when more bytes are
    /// needed. Frames may arrive split or coalesced arbitrarily.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, StreamError> {
        if buf.len() < 8 {
            return Ok(None);
        }
        let len = (u32::from_be_bytes([0, buf[5], buf[6], buf[7]])) as usize;
        if buf.len() < 8 + len {
            return Ok(None);
        }
        let head = buf.split_to(8);
        let mut payload = buf.split_to(len).freeze();
        let flags = head[4];
        if head[0] & 0x80 == 0 {
            let stream_id = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) & 0x7fff_ffff;
            return Ok(Some(Frame::Data {
                stream_id,
                flags,
                data: payload,
            }));
        }
        let version = u16::from_be_bytes([head[0], head[1]]) & 0x7fff;
        let frame_type = u16::from_be_bytes([head[2], head[3]]);
        if version != VERSION {
            return Err(StreamError::Protocol(format!(
                "peer speaks SPDY version {version}, only 3 is supported"
            )));
        }
        let need = |n: usize, what: &str| -> Result<(), StreamError> {
            if len < n {
                Err(StreamError::Protocol(format!(
                    "{what} frame too short ({len} bytes)"
                )))
            } else {
                Ok(())
            }
        };
        let frame = match frame_type {
            kind::SYN_STREAM => {
                need(10, "SYN_STREAM")?;
                let stream_id = payload.get_u32() & 0x7fff_ffff;
                let associated_to = payload.get_u32() & 0x7fff_ffff;
                let priority = payload.get_u8() >> 5;
                let slot = payload.get_u8();
                let headers = self.decompressor.decompress(&payload)?;
                Frame::SynStream {
                    stream_id,
                    associated_to,
                    priority,
                    slot,
                    flags,
                    headers,
                }
            }
            kind::SYN_REPLY => {
                need(4, "SYN_REPLY")?;
                let stream_id = payload.get_u32() & 0x7fff_ffff;
                let headers = self.decompressor.decompress(&payload)?;
                Frame::SynReply {
                    stream_id,
                    flags,
                    headers,
                }
            }
            kind::HEADERS => {
                need(4, "HEADERS")?;
                let stream_id = payload.get_u32() & 0x7fff_ffff;
                let headers = self.decompressor.decompress(&payload)?;
                Frame::Headers {
                    stream_id,
                    flags,
                    headers,
                }
            }
            kind::RST_STREAM => {
                need(8, "RST_STREAM")?;
                Frame::RstStream {
                    stream_id: payload.get_u32() & 0x7fff_ffff,
                    status: payload.get_u32(),
                }
            }
            kind::SETTINGS => {
                need(4, "SETTINGS")?;
                let count = payload.get_u32() as usize;
                if payload.len() < count.saturating_mul(8) {
                    return Err(StreamError::Protocol(
                        "SETTINGS frame shorter than its entry count".into(),
                    ));
                }
                let entries = (0..count)
                    .map(|_| {
                        let fid = payload.get_u32();
                        Setting {
                            flags: (fid >> 24) as u8,
                            id: fid & 0x00ff_ffff,
                            value: payload.get_u32(),
                        }
                    })
                    .collect();
                Frame::Settings { flags, entries }
            }
            kind::PING => {
                need(4, "PING")?;
                Frame::Ping {
                    id: payload.get_u32(),
                }
            }
            kind::GOAWAY => {
                need(4, "GOAWAY")?;
                let last_good_stream_id = payload.get_u32() & 0x7fff_ffff;
                let status = if payload.len() >= 4 {
                    payload.get_u32()
                } else {
                    0
                };
                Frame::GoAway {
                    last_good_stream_id,
                    status,
                }
            }
            kind::WINDOW_UPDATE => {
                need(8, "WINDOW_UPDATE")?;
                Frame::WindowUpdate {
                    stream_id: payload.get_u32() & 0x7fff_ffff,
                    delta: payload.get_u32() & 0x7fff_ffff,
                }
            }
            other => Frame::Unknown { frame_type: other },
        };
        Ok(Some(frame))
    }
}

/// Encodes the frames one side sends, holding that direction's header zlib stream.
pub struct Encoder {
    compressor: HeaderCompressor,
}

impl Encoder {
    /// Creates an encoder with a fresh zlib stream.
    pub fn new() -> Result<Self, StreamError> {
        Ok(Self {
            compressor: HeaderCompressor::new()?,
        })
    }

    /// Appends the wire form of `frame` to `out`, compressing header blocks.
    pub fn encode(&mut self, frame: &Frame, out: &mut BytesMut) -> Result<(), StreamError> {
        fn control(
            out: &mut BytesMut,
            ty: u16,
            flags: u8,
            payload: &[u8],
        ) -> Result<(), StreamError> {
            if payload.len() > MAX_FRAME_PAYLOAD {
                return Err(StreamError::Protocol("control frame too large".into()));
            }
            out.put_u16(0x8000 | VERSION);
            out.put_u16(ty);
            out.put_u32(((flags as u32) << 24) | payload.len() as u32);
            out.put_slice(payload);
            Ok(())
        }
        match frame {
            Frame::SynStream {
                stream_id,
                associated_to,
                priority,
                slot,
                flags,
                headers,
            } => {
                let mut p = Vec::new();
                p.put_u32(stream_id & 0x7fff_ffff);
                p.put_u32(associated_to & 0x7fff_ffff);
                p.put_u8((priority & 0x7) << 5);
                p.put_u8(*slot);
                p.extend_from_slice(&self.compressor.compress(headers)?);
                control(out, kind::SYN_STREAM, *flags, &p)
            }
            Frame::SynReply {
                stream_id,
                flags,
                headers,
            } => {
                let mut p = Vec::new();
                p.put_u32(stream_id & 0x7fff_ffff);
                p.extend_from_slice(&self.compressor.compress(headers)?);
                control(out, kind::SYN_REPLY, *flags, &p)
            }
            Frame::Headers {
                stream_id,
                flags,
                headers,
            } => {
                let mut p = Vec::new();
                p.put_u32(stream_id & 0x7fff_ffff);
                p.extend_from_slice(&self.compressor.compress(headers)?);
                control(out, kind::HEADERS, *flags, &p)
            }
            Frame::RstStream { stream_id, status } => {
                let mut p = [0u8; 8];
                p[..4].copy_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
                p[4..].copy_from_slice(&status.to_be_bytes());
                control(out, kind::RST_STREAM, 0, &p)
            }
            Frame::Settings { flags, entries } => {
                let mut p = Vec::with_capacity(4 + entries.len() * 8);
                p.put_u32(entries.len() as u32);
                for e in entries {
                    p.put_u32(((e.flags as u32) << 24) | (e.id & 0x00ff_ffff));
                    p.put_u32(e.value);
                }
                control(out, kind::SETTINGS, *flags, &p)
            }
            Frame::Ping { id } => control(out, kind::PING, 0, &id.to_be_bytes()),
            Frame::GoAway {
                last_good_stream_id,
                status,
            } => {
                let mut p = [0u8; 8];
                p[..4].copy_from_slice(&(last_good_stream_id & 0x7fff_ffff).to_be_bytes());
                p[4..].copy_from_slice(&status.to_be_bytes());
                control(out, kind::GOAWAY, 0, &p)
            }
            Frame::WindowUpdate { stream_id, delta } => {
                let mut p = [0u8; 8];
                p[..4].copy_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
                p[4..].copy_from_slice(&(delta & 0x7fff_ffff).to_be_bytes());
                control(out, kind::WINDOW_UPDATE, 0, &p)
            }
            Frame::Data {
                stream_id,
                flags,
                data,
            } => {
                if data.len() > MAX_FRAME_PAYLOAD {
                    return Err(StreamError::Protocol("data frame too large".into()));
                }
                out.put_u32(stream_id & 0x7fff_ffff);
                out.put_u32(((*flags as u32) << 24) | data.len() as u32);
                out.put_slice(data);
                Ok(())
            }
            Frame::Unknown { frame_type } => Err(StreamError::Protocol(format!(
                "cannot encode unknown control frame type {frame_type}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(frames: &[Frame]) -> Vec<Frame> {
        let mut enc = Encoder::new().unwrap();
        let mut wire = BytesMut::new();
        for f in frames {
            enc.encode(f, &mut wire).unwrap();
        }
        let mut dec = Decoder::new();
        let mut out = Vec::new();
        // Feed byte by byte to prove frames may be split anywhere.
        let mut buf = BytesMut::new();
        for b in wire.iter() {
            buf.put_u8(*b);
            while let Some(f) = dec.decode(&mut buf).unwrap() {
                out.push(f);
            }
        }
        assert!(buf.is_empty());
        out
    }

    fn hdrs(pairs: &[(&str, &str)]) -> Headers {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn dictionary_is_spdy3() {
        let d = dictionary();
        assert_eq!(d.len(), 1423);
        assert_eq!(&d[..11], b"\0\0\0\x07options");
        assert!(d.ends_with(b",enq=0."));
        // zlib's dictionary id is the Adler-32 of the dictionary; the SPDY/3 one is well known.
        let (mut a, mut b) = (1u32, 0u32);
        for &x in d {
            a = (a + x as u32) % 65521;
            b = (b + a) % 65521;
        }
        assert_eq!((b << 16) | a, 0xe3c6_a7c2);
    }

    #[test]
    fn control_frames_roundtrip() {
        let frames = vec![
            Frame::SynStream {
                stream_id: 1,
                associated_to: 0,
                priority: 3,
                slot: 0,
                flags: FLAG_FIN,
                headers: hdrs(&[("streamtype", "error"), ("port", "80"), ("requestid", "0")]),
            },
            Frame::SynReply {
                stream_id: 1,
                flags: 0,
                headers: Vec::new(),
            },
            Frame::RstStream {
                stream_id: 3,
                status: rst::CANCEL,
            },
            Frame::Settings {
                flags: 0,
                entries: vec![Setting {
                    flags: 0,
                    id: SETTINGS_INITIAL_WINDOW_SIZE,
                    value: 1 << 20,
                }],
            },
            Frame::Ping { id: 7 },
            Frame::GoAway {
                last_good_stream_id: 5,
                status: 0,
            },
            Frame::Headers {
                stream_id: 1,
                flags: FLAG_FIN,
                headers: hdrs(&[("x", "a\0b")]),
            },
            Frame::WindowUpdate {
                stream_id: 0,
                delta: 12345,
            },
            Frame::Data {
                stream_id: 1,
                flags: FLAG_FIN,
                data: Bytes::from_static(b"hello"),
            },
        ];
        assert_eq!(roundtrip(&frames), frames);
    }

    #[test]
    fn wire_layout() {
        let mut enc = Encoder::new().unwrap();
        let mut w = BytesMut::new();
        enc.encode(&Frame::Ping { id: 1 }, &mut w).unwrap();
        assert_eq!(&w[..], &[0x80, 3, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1]);
        w.clear();
        enc.encode(
            &Frame::WindowUpdate {
                stream_id: 3,
                delta: 0x10000,
            },
            &mut w,
        )
        .unwrap();
        assert_eq!(&w[..], &[0x80, 3, 0, 9, 0, 0, 0, 8, 0, 0, 0, 3, 0, 1, 0, 0]);
        w.clear();
        enc.encode(
            &Frame::Data {
                stream_id: 5,
                flags: FLAG_FIN,
                data: Bytes::from_static(b"ab"),
            },
            &mut w,
        )
        .unwrap();
        assert_eq!(&w[..], &[0, 0, 0, 5, 1, 0, 0, 2, b'a', b'b']);
        let mut dec = Decoder::new();
        let mut partial = BytesMut::from(&w[..9]);
        assert_eq!(dec.decode(&mut partial).unwrap(), None);
        // Unknown control types are skipped, wrong versions are refused.
        let mut odd = BytesMut::from(&[0x80, 3, 0, 0x42, 0, 0, 0, 1, 9][..]);
        assert_eq!(
            dec.decode(&mut odd).unwrap(),
            Some(Frame::Unknown { frame_type: 0x42 })
        );
        let mut v2 = BytesMut::from(&[0x80, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1][..]);
        assert!(dec.decode(&mut v2).is_err());
    }

    #[test]
    fn header_compression_shares_one_stream() {
        let mut c = HeaderCompressor::new().unwrap();
        let mut d = HeaderDecompressor::new();
        let h = hdrs(&[
            ("streamtype", "data"),
            ("port", "8080"),
            ("requestid", "17"),
        ]);
        let first = c.compress(&h).unwrap();
        let second = c.compress(&h).unwrap();
        // The second block refers back to the first: the shared window makes it much smaller.
        assert!(
            second.len() < first.len(),
            "{} !< {}",
            second.len(),
            first.len()
        );
        assert_eq!(d.decompress(&first).unwrap(), h);
        assert_eq!(d.decompress(&second).unwrap(), h);
        // A fresh decompressor cannot read the second block alone; garbage is an error too.
        assert!(HeaderDecompressor::new().decompress(&second).is_err());
        assert!(
            HeaderDecompressor::new()
                .decompress(b"\x78\xbbgarbage")
                .is_err()
        );
        assert!(
            HeaderDecompressor::new()
                .decompress(&first[..first.len() / 2])
                .is_err()
        );
        // Names are lowercased on the wire.
        let mixed = hdrs(&[("RequestID", "1")]);
        assert_eq!(
            d.decompress(&c.compress(&mixed).unwrap()).unwrap(),
            hdrs(&[("requestid", "1")])
        );
        assert_eq!(header(&h, "PORT"), Some("8080"));
    }

    #[test]
    fn header_block_bounds_are_checked() {
        assert!(decode_header_block(&[0, 0, 0, 1, 0, 0, 0, 9, b'a']).is_err());
        assert!(decode_header_block(&[0, 0]).is_err());
        let block = encode_header_block(&hdrs(&[("a", "b")]));
        assert_eq!(decode_header_block(&block).unwrap(), hdrs(&[("a", "b")]));
    }
}
