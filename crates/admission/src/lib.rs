//! Defaulting and validation of API objects before the API server stores them, so that a bad object gets a
//! precise Kubernetes error (same wording, same field paths) and never a half-written object.
//!
//! The API server's write path is: [`normalize`] (or [`normalize_custom`] for custom resources) →
//! [`apply_defaults`] → [`validate`] → store. All functions are pure: no I/O, no async.
#![forbid(unsafe_code)]

mod custom;
mod decode;
mod defaults;
mod field;
pub mod names;
mod validate;

pub use custom::normalize_custom;
pub use decode::{DecodeError, Normalized, is_typed, normalize, strict_decoding_message};
pub use defaults::apply_defaults;
pub use field::{FieldError, FieldErrorKind, Path, go_quote, invalid_message};
pub use validate::{validate, validate_name};
