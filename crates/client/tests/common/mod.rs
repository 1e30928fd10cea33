//! The shared end-to-end harness (crates/testkit).
#![allow(unused_imports)]
pub use testkit::*;
