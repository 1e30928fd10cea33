//! The pure bottom of Drover's stack: which resources exist ([`registry`]), the
//! Kubernetes `Status` errors every API failure is reported as ([`status`]), and helpers
//! to read and write object metadata on JSON objects ([`meta`]). No I/O here.
#![forbid(unsafe_code)]

pub mod meta;
pub mod quantity;
pub mod registry;
pub mod status;

pub use registry::{Registry, ResourceInfo};
pub use status::ApiError;
