//! Defaulting and validation of API objects: names, schemas, unknown fields, field errors.
#![forbid(unsafe_code)]
